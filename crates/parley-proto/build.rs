//! Compiles `proto/parley/v1/*.proto` with protox (pure Rust, no system `protoc`)
//! and generates prost messages plus tonic clients and servers.

use std::path::PathBuf;

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let proto_root = manifest_dir.join("../../proto");
    let schema_dir = proto_root.join("parley/v1");

    let mut files: Vec<PathBuf> = std::fs::read_dir(&schema_dir)?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "proto"))
        .collect();
    files.sort();

    // Cargo cannot see through protox: name every input so edits rebuild.
    println!("cargo:rerun-if-changed={}", schema_dir.display());
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }

    let descriptors = protox::compile(&files, [&proto_root])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let descriptor_path = out_dir.join("parley_descriptor.bin");
    std::fs::write(&descriptor_path, descriptors.encode_to_vec())?;

    tonic_prost_build::configure()
        .file_descriptor_set_path(&descriptor_path)
        .compile_fds(descriptors)?;
    Ok(())
}
