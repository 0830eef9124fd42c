//! Compiles the content protocol with prost through protox (no `protoc`
//! needed). The server's frames come from `starling-protocol`.

/// Content messages that carry plaintext or keys: prost derives no `Debug`
/// for them; `src/content/debug.rs` writes one that leaves those out.
const REDACTED_DEBUG: [&str; 11] = [
    ".starling.client.v1.Quote",
    ".starling.client.v1.Text",
    ".starling.client.v1.Reaction",
    ".starling.client.v1.Edit",
    ".starling.client.v1.Attachment",
    ".starling.client.v1.Location",
    ".starling.client.v1.CodeSnippet",
    ".starling.client.v1.GroupControl",
    ".starling.client.v1.SenderKey",
    ".starling.client.v1.CallKey",
    ".starling.client.v1.CallMediaKey",
];

/// Content messages that carry secret keys (a sender-key chain, call
/// secrets): wiped when dropped, so no plain copy outlives its use.
const WIPED_ON_DROP: [&str; 3] = [
    ".starling.client.v1.SenderKey",
    ".starling.client.v1.CallKey",
    ".starling.client.v1.CallMediaKey",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["proto/starling/client/v1/content.proto"];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors = protox::compile(files, ["proto"])?;
    let mut config = prost_build::Config::new();
    config.skip_debug(REDACTED_DEBUG);
    for path in WIPED_ON_DROP {
        config.type_attribute(path, "#[derive(::zeroize::ZeroizeOnDrop)]");
    }
    // The participant list is public within the call: not a secret.
    config.field_attribute(
        ".starling.client.v1.CallKey.participants",
        "#[zeroize(skip)]",
    );
    // The group a sender key travels with: its name is redacted from
    // `Debug`, and it holds no key.
    config.field_attribute(".starling.client.v1.SenderKey.group", "#[zeroize(skip)]");
    config.compile_fds(descriptors)?;
    Ok(())
}
