//! Compiles every `.proto` file of this crate with the vendored protoc (no system install needed).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY-free: build scripts are single-threaded; this only affects the code generator below.
    // (`set_var` is unsafe in edition 2024 because of other threads; there are none here.)
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var("PROTOC", protoc);
    }
    let files = ["bookie.proto", "pulsar_api.proto"];
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    tonic_prost_build::configure()
        .bytes(".")
        .build_client(true)
        .build_server(true)
        .compile_protos(&files, &["."])?;
    Ok(())
}
