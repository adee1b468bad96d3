//! parley-notify.
