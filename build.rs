//! Stages the chart for embedding in the viewer.
//!
//! The chart is a separate crate compiled to wasm32 by `scripts/build-web`
//! into `web/dist/`. When it is there, its two files are copied into
//! `OUT_DIR` and embedded. When it is not (a fresh clone that has only run
//! `cargo build`), the viewer is still built: the staged files are empty,
//! `CHART_BUILT` is false, and the viewer serves a plain page that says how
//! to build the chart (see `src/viewer/assets.rs`). Cargo alone always
//! builds, tests and documents the crate.

use std::path::{Path, PathBuf};

const DIST: [&str; 2] = ["orderflow_web.js", "orderflow_web_bg.wasm"];

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default());
    let dist = Path::new("web/dist");
    println!("cargo:rerun-if-changed=web/dist");
    println!("cargo:rustc-check-cfg=cfg(chart_built)");
    let built = DIST.iter().all(|f| dist.join(f).is_file());
    for f in DIST {
        println!("cargo:rerun-if-changed=web/dist/{f}");
        let staged = out.join(f);
        let result = if built {
            std::fs::copy(dist.join(f), &staged).map(|_| ())
        } else {
            std::fs::write(&staged, b"")
        };
        if let Err(e) = result {
            println!("cargo:warning=cannot stage {f} in {}: {e}", out.display());
            std::process::exit(1);
        }
    }
    if built {
        println!("cargo:rustc-cfg=chart_built");
    } else {
        println!(
            "cargo:warning=the chart (web/dist) is not built: the viewer will serve a page \
             saying so; run scripts/build-web, then build again"
        );
    }
}
