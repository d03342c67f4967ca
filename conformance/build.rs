//! Generates Rust types for the test-only schemas (`switchboard.testing.v1`)
//! and the example application schema (`chat.v1`). Types from
//! `switchboard.v1` are not generated again: they are the server crate's.

use std::path::PathBuf;

const INCLUDES: &[&str] = &["../proto", "../examples/proto"];
const PROTOS: &[&str] = &[
    "switchboard/testing/v1/scenario.proto",
    "switchboard/testing/v1/vectors.proto",
    "chat/v1/chat.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for include in INCLUDES {
        println!("cargo:rerun-if-changed={include}");
    }
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let descriptor_path = out_dir.join("conformance_descriptor.bin");

    let file_descriptors = protox::compile(PROTOS, INCLUDES)?;
    let encoded = prost::Message::encode_to_vec(&file_descriptors);
    std::fs::write(&descriptor_path, &encoded)?;

    prost_build::Config::new()
        .bytes(["."])
        .extern_path(".switchboard.v1", "::switchboard::proto")
        .file_descriptor_set_path(&descriptor_path)
        .skip_protoc_run()
        .compile_protos(PROTOS, INCLUDES)?;

    pbjson_build::Builder::new()
        .register_descriptors(&encoded)?
        .extern_path(".switchboard.v1", "::switchboard::proto")
        .build(&[".switchboard.testing", ".chat"])?;
    Ok(())
}
