//! The page and its assets, embedded in the binary.
//!
//! `web/static/` holds the hand-written page (HTML, CSS, the JS glue);
//! `web/dist/` the chart compiled to wasm and its wasm-bindgen loader,
//! built by `scripts/build-web` and staged by the root `build.rs`. A build
//! without them (a fresh clone built with cargo alone) still works: the
//! page is then [`UNBUILT_PAGE`], which says how to build the chart.
//! Embedding means the viewer binary is the whole front end: no path on
//! disk is ever served, so there is nothing to traverse.

/// One embedded file.
#[derive(Debug)]
pub struct Asset {
    pub path: &'static str,
    pub content_type: &'static str,
    pub bytes: &'static [u8],
}

/// Whether the chart (wasm) was built and embedded.
pub const CHART_BUILT: bool = cfg!(chart_built);

/// The page: the chart, or the note saying how to build it.
pub const PAGE: Asset = Asset {
    path: "/",
    content_type: "text/html; charset=utf-8",
    bytes: if CHART_BUILT {
        include_bytes!("../../web/static/index.html")
    } else {
        UNBUILT_PAGE.as_bytes()
    },
};

/// Served at `/` by a viewer built without the chart.
pub const UNBUILT_PAGE: &str = "<!doctype html>
<html lang=\"en\"><head><meta charset=\"utf-8\"><title>orderflow: chart not built</title>
<link rel=\"stylesheet\" href=\"/assets/style.css\"></head>
<body class=\"unbuilt\"><main><p>This orderflow-viewer was built without its chart.</p>
<p>Build the chart with <code>scripts/build-web</code> (it installs the wasm32 target and
wasm-bindgen-cli when needed), then build the viewer again with <code>cargo build --release</code>.</p>
<p>The data API works regardless: <a href=\"/api/status\">/api/status</a>,
<a href=\"/api/series\">/api/series</a>, <a href=\"/healthz\">/healthz</a>.</p></main></body></html>
";

/// Everything under `/assets/`, by file name.
pub const ASSETS: [Asset; 5] = [
    Asset {
        path: "app.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../web/static/app.js"),
    },
    Asset {
        path: "store.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../web/static/store.js"),
    },
    Asset {
        path: "style.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../../web/static/style.css"),
    },
    Asset {
        path: "orderflow_web.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!(concat!(env!("OUT_DIR"), "/orderflow_web.js")),
    },
    Asset {
        path: "orderflow_web_bg.wasm",
        content_type: "application/wasm",
        bytes: include_bytes!(concat!(env!("OUT_DIR"), "/orderflow_web_bg.wasm")),
    },
];

/// The asset named `name` (a single path segment, matched exactly).
pub fn asset(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == name)
}
