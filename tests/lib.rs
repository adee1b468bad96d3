//! End-to-end tests of the whole system; see `e2e.rs`.
