//! Parley's protobuf schemas as Rust types.
//!
//! Everything in the log and on the wire is defined once in `proto/parley/v1`;
//! this crate is the only place the generated code lives, so every service
//! agrees on the bytes.
//!
//! Owns: the generated messages, gRPC clients and servers, and the encoded
//! descriptor set. Must never import another Parley crate: schemas depend
//! on nothing of ours.

#![allow(missing_docs, clippy::all)]

/// Version 1 of Parley's schemas (`package parley.v1`).
pub mod v1 {
    tonic::include_proto!("parley.v1");
}

/// Encoded `FileDescriptorSet` of every schema, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("parley_descriptor");
