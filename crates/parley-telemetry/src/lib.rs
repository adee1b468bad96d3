//! parley-telemetry.
