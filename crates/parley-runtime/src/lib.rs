//! The parts every Parley service process shares.
//!
//! Services differ in what they do with the log; they should not differ in
//! how they connect to it, serve gRPC, report health, shut down, or survive a
//! poison message. Those live here once.

pub mod consumer;
pub mod grpc;
pub mod log;
pub mod shutdown;

pub use consumer::{ConsumerLoop, Handled, HandlerError, RecordHandler};
pub use grpc::{GrpcServer, ServingState};
pub use log::LogArgs;
pub use shutdown::{ShutdownSignal, shutdown_on_signals};
