//! The parts every Parley service process shares.
//!
//! Services differ in what they do with the log; they should not differ in
//! how they connect to it, serve gRPC, report health, shut down, or survive a
//! poison message. Those live here once.
//!
//! Owns: log connection flags, the gRPC server with health (per-service
//! NOT_SERVING) and reflection, TLS and tokens, shutdown, the durable
//! consumer loop with poison parking, and the envelopes written to and read
//! from the log ([`envelope`]). It joins the log (bytes) and the domain
//! (events); it must never import the extractor, the knowledge base, the
//! resolver or a service.

#![warn(missing_docs)]

pub mod client;
pub mod config;
pub mod consumer;
pub mod envelope;
pub mod grpc;
pub mod limits;
pub mod log;
pub mod observe;
pub mod security;
pub mod shutdown;

pub use config::parse_config;

/// Error text of a service asked to stop before it was ready (not a failure).
pub const STOPPED_BEFORE_READY: &str = "shutdown requested before the service was ready";
pub use consumer::{ConsumerLoop, Handled, HandlerError, RecordHandler};
pub use envelope::{
    DecodeError, DecodedRecord, EnvelopeBuilder, append_events, append_request, decode_record,
};
pub use grpc::{GrpcServer, ServeError, ServingState};
pub use log::LogArgs;
pub use security::{SecurityError, ServerSecurity, ServerSecurityArgs};
pub use shutdown::{ShutdownSignal, shutdown_on_signals};
