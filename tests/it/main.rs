//! The integration tests: one test binary, one module per part, one shared
//! harness.

mod control;
pub mod faults;
mod harness;
mod okx;
mod processor;
mod resume;
mod store;
mod supervisor;
pub mod viewer;
