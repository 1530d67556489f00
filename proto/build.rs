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
    // Every command of BaseCommand boxed: unboxed, BaseCommand is ~5 KB that each frame zeroes,
    // moves and scans; boxed, a frame carries one pointer per command kind.
    let mut builder = tonic_prost_build::configure();
    for field in base_command_fields(&std::fs::read_to_string("pulsar_api.proto")?) {
        builder = builder.boxed(format!(".pulsar.proto.BaseCommand.{field}"));
    }
    builder
        .bytes(".")
        .build_client(true)
        .build_server(true)
        .compile_protos(&files, &["."])?;
    Ok(())
}

/// Names of BaseCommand's message fields (`optional CommandX name = N;`).
fn base_command_fields(proto: &str) -> Vec<String> {
    let Some(start) = proto.find("message BaseCommand") else {
        return vec![];
    };
    let body = &proto[start..];
    let body = &body[..body.find("\n}").unwrap_or(body.len())];
    body.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            match (w.next(), w.next(), w.next()) {
                (Some("optional"), Some(ty), Some(name)) if ty.starts_with("Command") => {
                    Some(name.to_owned())
                }
                _ => None,
            }
        })
        .collect()
}
