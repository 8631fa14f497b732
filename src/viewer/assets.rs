//! The page and its assets, embedded in the binary.
//!
//! `web/static/` holds the hand-written page (HTML, CSS, the JS glue);
//! `web/dist/` the chart compiled to wasm and its wasm-bindgen loader,
//! built by `scripts/build-web` (the root `build.rs` refuses to build
//! without them). Embedding means the viewer binary is the whole front
//! end: no path on disk is ever served, so there is nothing to traverse.

/// One embedded file.
#[derive(Debug)]
pub struct Asset {
    pub path: &'static str,
    pub content_type: &'static str,
    pub bytes: &'static [u8],
}

pub const PAGE: Asset = Asset {
    path: "/",
    content_type: "text/html; charset=utf-8",
    bytes: include_bytes!("../../web/static/index.html"),
};

/// Everything under `/assets/`, by file name.
pub const ASSETS: [Asset; 4] = [
    Asset {
        path: "app.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../web/static/app.js"),
    },
    Asset {
        path: "style.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../../web/static/style.css"),
    },
    Asset {
        path: "orderflow_web.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../web/dist/orderflow_web.js"),
    },
    Asset {
        path: "orderflow_web_bg.wasm",
        content_type: "application/wasm",
        bytes: include_bytes!("../../web/dist/orderflow_web_bg.wasm"),
    },
];

/// The asset named `name` (a single path segment, matched exactly).
pub fn asset(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == name)
}
