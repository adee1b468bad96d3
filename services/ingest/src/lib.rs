//! parley-ingest.
