//! parley-testkit.
