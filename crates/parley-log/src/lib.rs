//! parley-log.
