//! parley-domain.
