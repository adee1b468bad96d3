//! parley-kb.
