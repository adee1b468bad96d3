//! parley-resolve.
