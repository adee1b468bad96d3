//! parley-extract.
