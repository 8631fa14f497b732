//! The integration tests: one test binary, one module per part, one shared
//! harness.

mod harness;

mod viewer;
