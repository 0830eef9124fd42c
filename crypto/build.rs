//! Compiles `proto/` into Rust types with prost, using protox so that no
//! `protoc` binary is needed on the build machine.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/starling/crypto/v1/wire.proto",
        "proto/starling/crypto/v1/state.proto",
    ];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors = protox::compile(files, ["proto"])?;
    // Types that carry secret key material: wiped on drop, and their Debug is
    // written by hand (redacted) instead of derived.
    let secret_types = [
        ".starling.crypto.state",
        ".starling.crypto.v1.SenderKeyDistribution",
        // Not keys, but what sealed sender hides: who sent.
        ".starling.crypto.v1.SenderCertificate",
        ".starling.crypto.v1.SealedSenderContent",
    ];
    let mut config = prost_build::Config::new();
    config.skip_debug(secret_types);
    for path in secret_types {
        config.type_attribute(
            path,
            "#[derive(::zeroize::Zeroize, ::zeroize::ZeroizeOnDrop)]",
        );
    }
    config.compile_fds(descriptors)?;
    Ok(())
}
