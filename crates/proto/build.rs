//! Generates the tonic/prost code and the descriptor set (for gRPC
//! reflection) from `proto/hookline/v1`, with a vendored `protoc` so no
//! system install is needed.

use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);

    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let files = ["subscriptions.proto", "events.proto", "deliveries.proto"].map(|f| root.join("hookline/v1").join(f));
    let includes = [root.clone(), protoc_bin_vendored::include_path()?];
    let descriptor = PathBuf::from(env::var("OUT_DIR")?).join("hookline_descriptor.bin");

    tonic_prost_build::configure()
        .file_descriptor_set_path(&descriptor)
        .compile_with_config(config, &files, &includes)?;
    println!("cargo:rerun-if-changed={}", root.display());
    Ok(())
}
