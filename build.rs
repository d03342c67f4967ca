//! Generates the Rust types for `proto/switchboard/v1` with prost, and their
//! canonical proto3 JSON mapping with pbjson. No system `protoc` is needed:
//! `protox` parses the schemas into a descriptor set in-process.

use std::path::PathBuf;

const PROTO_ROOT: &str = "proto";
const PROTOS: &[&str] = &[
    "switchboard/v1/envelope.proto",
    "switchboard/v1/commands.proto",
    "switchboard/v1/pushes.proto",
    "switchboard/v1/types.proto",
    "switchboard/v1/errors.proto",
    "switchboard/v1/close_codes.proto",
    "switchboard/v1/api.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed={PROTO_ROOT}");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let descriptor_path = out_dir.join("switchboard_descriptor.bin");

    let file_descriptors = protox::compile(PROTOS, [PROTO_ROOT])?;
    let encoded = prost::Message::encode_to_vec(&file_descriptors);
    std::fs::write(&descriptor_path, &encoded)?;

    prost_build::Config::new()
        // Payload bytes are shared, never copied, on the fan-out path.
        .bytes(["."])
        .file_descriptor_set_path(&descriptor_path)
        .skip_protoc_run()
        .compile_protos(PROTOS, &[PROTO_ROOT])?;

    pbjson_build::Builder::new()
        .register_descriptors(&encoded)?
        .ignore_unknown_fields()
        .build(&[".switchboard"])?;
    Ok(())
}
