//! parley-resolver.
