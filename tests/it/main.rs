//! The integration tests: one test binary, one module per part, one shared
//! harness.

mod harness;
mod okx;
mod processor;
mod resume;
mod store;
mod supervisor;
mod viewer;
