//! Shared test harness: temp dirs, binaries, the real OKX capture.
#![allow(dead_code)]

use std::path::PathBuf;

/// The real OKX capture beside the repository, or `None` (with a message)
/// when it is absent.
pub fn okx_capture() -> Option<PathBuf> {
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/okx-capture-2022-05-13");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("skipping: the OKX capture is not at {}", dir.display());
        None
    }
}
