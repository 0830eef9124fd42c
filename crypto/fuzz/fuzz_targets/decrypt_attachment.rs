//! Attachment streams: the input (see `fixture::AttachmentInput`) is fed to
//! an `AttachmentDecryptor` in slices whose sizes come from its first bytes,
//! once with a fixed `AttachmentInfo` no ciphertext matches and once with
//! the info of a genuine encryption. Never a panic; slicing must not change
//! the outcome; a stream that decrypts must give the genuine plaintext.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use starling_crypto::attachment::{AttachmentDecryptor, AttachmentInfo};
use starling_crypto_fuzz::fixture::{
    AttachmentInput, attachment_plaintext, decrypt_in_slices, fixed_attachment_info,
    genuine_attachments,
};

/// The genuine encryptions, made once.
static GENUINE: OnceLock<Vec<(Vec<u8>, AttachmentInfo)>> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let input = AttachmentInput::parse(data);
    let genuine = GENUINE.get_or_init(genuine_attachments);

    let fixed = fixed_attachment_info();
    let sliced = decrypt_in_slices(input.stream, &input.slice_lens, &fixed);
    let whole = AttachmentDecryptor::decrypt_all(input.stream, &fixed);
    assert_eq!(sliced, whole, "slicing changed the outcome");

    let (_, info) = &genuine[input.info_index];
    let sliced = decrypt_in_slices(input.stream, &input.slice_lens, info);
    let whole = AttachmentDecryptor::decrypt_all(input.stream, info);
    assert_eq!(sliced, whole, "slicing changed the outcome");
    if let Ok(plaintext) = whole {
        assert_eq!(plaintext, attachment_plaintext(input.info_index));
    }
});
