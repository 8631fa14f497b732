//! Viewer tests: the HTTP surface against a real server on 127.0.0.1
//! ([`http`]), the page end to end in headless Chromium ([`browser`]) and
//! its benchmark ([`bench`], ignored by default). Helpers for these live
//! here and in [`client`]/[`webdriver`], apart from the shared harness.

mod bench;
pub mod browser;
pub mod client;
pub mod http;
mod page;
mod series;
mod webdriver;
