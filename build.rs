//! Makes sure the viewer embeds a chart: the wasm page assets in
//! `web/dist/` are built by `scripts/build-web` (a separate cargo build
//! for wasm32), and this build fails with that instruction when they are
//! missing, rather than producing a viewer without a chart.

use std::path::Path;

const DIST: [&str; 2] = [
    "web/dist/orderflow_web.js",
    "web/dist/orderflow_web_bg.wasm",
];
const STATIC: [&str; 3] = [
    "web/static/index.html",
    "web/static/app.js",
    "web/static/style.css",
];

fn main() {
    let mut missing = Vec::new();
    for f in DIST.iter().chain(STATIC.iter()) {
        println!("cargo:rerun-if-changed={f}");
        if !Path::new(f).is_file() {
            missing.push(*f);
        }
    }
    println!("cargo:rerun-if-changed=web/dist");
    if !missing.is_empty() {
        eprintln!();
        eprintln!(
            "error: the viewer's web assets are missing: {}",
            missing.join(", ")
        );
        eprintln!("       build them first with:  scripts/build-web");
        eprintln!("       (it installs the wasm32 target and wasm-bindgen-cli when needed)");
        eprintln!();
        std::process::exit(1);
    }
}
