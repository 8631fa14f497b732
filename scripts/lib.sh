# Shared helpers for the scripts: idempotent installs of what a fresh
# machine lacks. Source it; do not run it.

# apt packages, installed only when a command they provide is missing.
# usage: ensure_apt COMMAND PACKAGE...
ensure_apt() {
    local cmd=$1
    shift
    if command -v "$cmd" >/dev/null 2>&1; then
        return 0
    fi
    echo "installing $* (for $cmd)" >&2
    local sudo=""
    if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

# rustup components (clippy, rustfmt) when missing.
ensure_rust_components() {
    local have
    have=$(rustup component list --installed 2>/dev/null || true)
    for c in "$@"; do
        if ! grep -q "^$c" <<<"$have"; then
            rustup component add "$c"
        fi
    done
}
