//! Streaming attachment encryption: round trips at chunk boundaries, any
//! slicing of the input, and detection of truncation, reordering,
//! extension and tampering.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::rng;
use rand::Rng;
use starling_crypto::attachment::{
    ATTACHMENT_VERSION, AttachmentDecryptor, AttachmentEncryptor, AttachmentError, AttachmentInfo,
    AttachmentKey, CHUNK_SIZE, HEADER_SIZE, LEGACY_ATTACHMENT_VERSION, SEALED_CHUNK, TAG_SIZE,
    UNPADDED_ATTACHMENT_VERSION, ciphertext_len, padded_plaintext_len_of, stored_len,
};
use starling_crypto::padding::padme;

fn plaintext(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = rng(seed);
    (0..len).map(|_| rng.r#gen()).collect()
}

fn decrypt(ciphertext: &[u8], info: &AttachmentInfo) -> Result<Vec<u8>, AttachmentError> {
    AttachmentDecryptor::decrypt_all(ciphertext, info)
}

#[test]
fn round_trip_at_chunk_boundaries() {
    let mut rng = rng(1);
    for len in [
        0,
        1,
        CHUNK_SIZE - 1,
        CHUNK_SIZE,
        CHUNK_SIZE + 1,
        3 * CHUNK_SIZE + 5,
    ] {
        let data = plaintext(len, len as u64);
        let (ciphertext, info) = AttachmentEncryptor::encrypt_all(&data, &mut rng).unwrap();
        assert_eq!(
            Some(ciphertext.len() as u64),
            stored_len(len as u64),
            "len {len}"
        );
        assert_eq!(info.plaintext_len, len as u64);
        assert_eq!(decrypt(&ciphertext, &info).unwrap(), data, "len {len}");
    }
}

#[test]
fn any_slicing_gives_the_same_result() {
    let mut rng = rng(2);
    let data = plaintext(2 * CHUNK_SIZE + 777, 2);
    let mut ciphertext = Vec::new();
    let mut encryptor = AttachmentEncryptor::new(&mut rng);
    let mut rest = &data[..];
    while !rest.is_empty() {
        let take = rng.gen_range(1..=rest.len().min(100_000));
        encryptor.update(&rest[..take], &mut ciphertext).unwrap();
        rest = &rest[take..];
    }
    let info = encryptor.finish(&mut ciphertext).unwrap();
    let mut decryptor = AttachmentDecryptor::new(&info);
    let mut out = Vec::new();
    let mut rest = &ciphertext[..];
    while !rest.is_empty() {
        let take = rng.gen_range(1..=rest.len().min(70_000));
        decryptor.update(&rest[..take], &mut out).unwrap();
        rest = &rest[take..];
    }
    decryptor.finish(&mut out).unwrap();
    assert_eq!(out, data);
}

#[test]
fn digest_is_blake3_of_the_whole_ciphertext_for_any_slicing() {
    let mut rng = rng(6);
    let data = plaintext(3 * CHUNK_SIZE + 12_345, 6);
    for max_slice in [1_000, 20_000, CHUNK_SIZE, 3 * CHUNK_SIZE] {
        let mut ciphertext = Vec::new();
        let mut encryptor = AttachmentEncryptor::new(&mut rng);
        let mut rest = &data[..];
        while !rest.is_empty() {
            let take = rng.gen_range(1..=rest.len().min(max_slice));
            encryptor.update(&rest[..take], &mut ciphertext).unwrap();
            rest = &rest[take..];
        }
        let info = encryptor.finish(&mut ciphertext).unwrap();
        assert_eq!(info.digest, *blake3::hash(&ciphertext).as_bytes());
        assert_eq!(ciphertext[0], ATTACHMENT_VERSION);
    }
}

#[test]
fn a_full_last_chunk_is_followed_by_an_empty_one() {
    // A full chunk is never the last: a file of whole chunks ends with an
    // empty, flagged chunk (its tag alone).
    let mut rng = rng(7);
    for chunks in [0, 1, 2] {
        let data = plaintext(chunks * CHUNK_SIZE, 7);
        let (ciphertext, info) = AttachmentEncryptor::encrypt_all(&data, &mut rng).unwrap();
        assert_eq!(
            ciphertext.len(),
            HEADER_SIZE + chunks * (CHUNK_SIZE + TAG_SIZE) + TAG_SIZE
        );
        assert_eq!(decrypt(&ciphertext, &info).unwrap(), data);
        // Without the empty last chunk, the last full one fails as last.
        assert_eq!(
            decrypt(&ciphertext[..ciphertext.len() - TAG_SIZE], &info),
            Err(AttachmentError::Authentication(chunks as u64))
        );
    }
}

#[test]
fn version_1_streams_are_refused() {
    let mut rng = rng(8);
    let (mut ciphertext, info) = AttachmentEncryptor::encrypt_all(b"old", &mut rng).unwrap();
    ciphertext[0] = 1;
    assert_eq!(
        decrypt(&ciphertext, &info),
        Err(AttachmentError::UnsupportedVersion(1))
    );
}

/// A version 2 stream as the reference STREAM implementation seals it: the
/// header as every chunk's associated data. Returns it with its info.
fn reference_version_2_stream(data: &[u8], seed: u64) -> (Vec<u8>, AttachmentInfo) {
    use aead_stream::EncryptorBE32;
    use chacha20poly1305::{ChaCha20Poly1305, KeyInit};

    let mut rng = rng(seed);
    let key: [u8; 32] = rng.r#gen();
    let prefix: [u8; 7] = rng.r#gen();
    let mut header = vec![LEGACY_ATTACHMENT_VERSION];
    header.extend_from_slice(&prefix);
    let aead = ChaCha20Poly1305::new((&key).into());
    let mut stream = EncryptorBE32::from_aead(aead, (&prefix).into());
    let mut ciphertext = header.clone();
    let mut chunks = data.chunks_exact(CHUNK_SIZE);
    for chunk in chunks.by_ref() {
        let mut buffer = chunk.to_vec();
        stream.encrypt_next_in_place(&header, &mut buffer).unwrap();
        ciphertext.extend_from_slice(&buffer);
    }
    let mut buffer = chunks.remainder().to_vec();
    stream.encrypt_last_in_place(&header, &mut buffer).unwrap();
    ciphertext.extend_from_slice(&buffer);
    let info = AttachmentInfo {
        key: AttachmentKey::from_bytes(&key),
        digest: *blake3::hash(&ciphertext).as_bytes(),
        plaintext_len: data.len() as u64,
    };
    (ciphertext, info)
}

#[test]
fn version_2_streams_still_decrypt_and_versions_cannot_be_swapped() {
    for len in [0, 5, CHUNK_SIZE, 2 * CHUNK_SIZE + 3] {
        let data = plaintext(len, 80 + len as u64);
        let (ciphertext, info) = reference_version_2_stream(&data, len as u64);
        assert_eq!(decrypt(&ciphertext, &info).unwrap(), data, "len {len}");

        // Relabelled as version 3, every chunk fails (no associated data).
        let mut relabelled = ciphertext.clone();
        relabelled[0] = ATTACHMENT_VERSION;
        assert_eq!(
            decrypt(&relabelled, &info),
            Err(AttachmentError::Authentication(0))
        );
    }
    // And a version 3 stream relabelled as version 2 fails the same way.
    let mut rng = rng(81);
    let (mut ciphertext, info) = AttachmentEncryptor::encrypt_all(b"new", &mut rng).unwrap();
    ciphertext[0] = LEGACY_ATTACHMENT_VERSION;
    assert_eq!(
        decrypt(&ciphertext, &info),
        Err(AttachmentError::Authentication(0))
    );
}

#[test]
fn memory_stays_bounded_while_streaming() {
    // 16 MiB through both sides with the output drained after every slice:
    // neither side ever holds more than about one chunk.
    let mut rng = rng(3);
    let slice = plaintext(CHUNK_SIZE / 2 + 3, 3);
    let mut encryptor = AttachmentEncryptor::new(&mut rng);
    let mut sealed = Vec::new();
    let mut all_ciphertext = Vec::new();
    let mut largest = 0;
    for _ in 0..(16 << 20) / slice.len() {
        encryptor.update(&slice, &mut sealed).unwrap();
        largest = largest.max(sealed.len());
        all_ciphertext.extend_from_slice(&sealed);
        sealed.clear();
    }
    let info = encryptor.finish(&mut sealed).unwrap();
    all_ciphertext.extend_from_slice(&sealed);
    assert!(largest <= HEADER_SIZE + CHUNK_SIZE + TAG_SIZE);
    let mut decryptor = AttachmentDecryptor::new(&info);
    let mut opened = Vec::new();
    for piece in all_ciphertext.chunks(CHUNK_SIZE / 3) {
        decryptor.update(piece, &mut opened).unwrap();
        assert!(opened.len() <= CHUNK_SIZE);
        opened.clear();
    }
    decryptor.finish(&mut opened).unwrap();
}

#[test]
fn attachment_truncation_reordering_tampering_detected() {
    let mut rng = rng(4);
    let data = plaintext(3 * CHUNK_SIZE + 100, 4);
    let (ciphertext, info) = AttachmentEncryptor::encrypt_all(&data, &mut rng).unwrap();
    let sealed = CHUNK_SIZE + TAG_SIZE;
    let chunk = |i: usize| &ciphertext[HEADER_SIZE + i * sealed..HEADER_SIZE + (i + 1) * sealed];

    // Truncation at a chunk boundary: the last full chunk is not flagged last.
    let truncated = &ciphertext[..HEADER_SIZE + 3 * sealed];
    assert!(matches!(
        decrypt(truncated, &info),
        Err(AttachmentError::Authentication(_))
    ));
    // Truncation mid-chunk.
    assert!(decrypt(&ciphertext[..ciphertext.len() - 1], &info).is_err());
    // Only the header.
    assert!(decrypt(&ciphertext[..HEADER_SIZE], &info).is_err());
    assert_eq!(
        decrypt(&ciphertext[..3], &info),
        Err(AttachmentError::TooShort)
    );

    // Reordering two chunks.
    let mut reordered = ciphertext[..HEADER_SIZE].to_vec();
    reordered.extend_from_slice(chunk(1));
    reordered.extend_from_slice(chunk(0));
    reordered.extend_from_slice(&ciphertext[HEADER_SIZE + 2 * sealed..]);
    assert_eq!(
        decrypt(&reordered, &info),
        Err(AttachmentError::Authentication(0))
    );

    // Extension after the last chunk.
    let mut extended = ciphertext.clone();
    extended.extend_from_slice(&[0; 40]);
    assert!(decrypt(&extended, &info).is_err());

    // A flipped bit anywhere: header, body, tag.
    for position in [
        1,
        HEADER_SIZE + 5,
        HEADER_SIZE + sealed - 1,
        ciphertext.len() - 1,
    ] {
        let mut tampered = ciphertext.clone();
        tampered[position] ^= 0x10;
        assert!(decrypt(&tampered, &info).is_err(), "flip at {position}");
    }
    let mut version = ciphertext.clone();
    version[0] = 9;
    assert_eq!(
        decrypt(&version, &info),
        Err(AttachmentError::UnsupportedVersion(9))
    );

    // A different, genuine ciphertext under the same key fails the digest.
    let mut wrong_digest = info.clone();
    wrong_digest.digest[0] ^= 1;
    assert_eq!(
        decrypt(&ciphertext, &wrong_digest),
        Err(AttachmentError::DigestMismatch)
    );
    // A length in another padding bucket: the stream is too short.
    let mut wrong_len = info.clone();
    wrong_len.plaintext_len += 5_000;
    assert_eq!(
        decrypt(&ciphertext, &wrong_len),
        Err(AttachmentError::LengthMismatch)
    );
    // A length in the same bucket, one byte short: that byte (not zero)
    // would be padding.
    let mut wrong_len = info.clone();
    wrong_len.plaintext_len -= 1;
    assert_ne!(data[data.len() - 1], 0);
    assert_eq!(
        decrypt(&ciphertext, &wrong_len),
        Err(AttachmentError::BadPadding)
    );

    assert_eq!(decrypt(&ciphertext, &info).unwrap(), data);
}

#[test]
fn key_debug_is_redacted() {
    let mut rng = rng(5);
    let (_, info) = AttachmentEncryptor::encrypt_all(b"x", &mut rng).unwrap();
    let key_hex = hex::encode(&info.key.to_bytes()[..]);
    let shown = format!("{info:?}");
    assert!(!shown.contains(&key_hex[..16]));
    assert!(shown.contains("AttachmentKey(..)"));
}

/// The chunk key of a stream of `version` (SPEC §9.1), computed here with
/// the `hkdf` crate directly.
fn stream_key(version: u8, key: &[u8; 32]) -> [u8; 32] {
    let mut out = *key;
    if version == ATTACHMENT_VERSION {
        hkdf::Hkdf::<sha2::Sha256>::new(None, key)
            .expand(b"Starling_Attachment_v4", &mut out)
            .unwrap();
    }
    out
}

/// Opens every chunk of `ciphertext` with `aead-stream`'s `StreamBE32`, the
/// reference STREAM implementation, without associated data (versions 3
/// and 4).
fn open_with_reference_stream(ciphertext: &[u8], info: &AttachmentInfo) -> Vec<u8> {
    use aead_stream::DecryptorBE32;
    use chacha20poly1305::{ChaCha20Poly1305, KeyInit};

    let (header, mut body) = ciphertext.split_at(HEADER_SIZE);
    let key = stream_key(header[0], &info.key.to_bytes());
    let aead = ChaCha20Poly1305::new((&key).into());
    let prefix: &[u8; 7] = header[1..].try_into().unwrap();
    let mut stream = DecryptorBE32::from_aead(aead, prefix.into());
    let mut plaintext = Vec::new();
    while body.len() > SEALED_CHUNK {
        let (chunk, rest) = body.split_at(SEALED_CHUNK);
        let mut buffer = chunk.to_vec();
        stream.decrypt_next_in_place(b"", &mut buffer).unwrap();
        plaintext.extend_from_slice(&buffer);
        body = rest;
    }
    let mut buffer = body.to_vec();
    stream.decrypt_last_in_place(b"", &mut buffer).unwrap();
    plaintext.extend_from_slice(&buffer);
    plaintext
}

#[test]
fn chunks_are_the_reference_stream_construction() {
    let mut rng = rng(6);
    for len in [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, 2 * CHUNK_SIZE + 9] {
        let data = plaintext(len, 60 + len as u64);
        let (ciphertext, info) = AttachmentEncryptor::encrypt_all(&data, &mut rng).unwrap();
        let mut padded = data.clone();
        padded.resize(usize::try_from(padme(len as u64).unwrap()).unwrap(), 0);
        assert_eq!(
            open_with_reference_stream(&ciphertext, &info),
            padded,
            "len {len}"
        );
    }
}

#[test]
fn update_into_writes_what_update_appends_in_any_slicing() {
    let mut rng = rng(7);
    let data = plaintext(3 * CHUNK_SIZE + 4321, 7);
    let seed = 70;
    let mut ciphertext = Vec::new();
    let mut by_vec = AttachmentEncryptor::new(&mut common::rng(seed));
    let mut into_slices = AttachmentEncryptor::new(&mut common::rng(seed));
    let mut sliced = Vec::new();
    let mut out = vec![0u8; AttachmentEncryptor::max_update_len(100_000)];
    let mut rest = &data[..];
    while !rest.is_empty() {
        let take = rng.gen_range(1..=rest.len().min(100_000));
        by_vec.update(&rest[..take], &mut ciphertext).unwrap();
        let expected = into_slices.update_len(take);
        let written = into_slices.update_into(&rest[..take], &mut out).unwrap();
        assert_eq!(written, expected);
        sliced.extend_from_slice(&out[..written]);
        rest = &rest[take..];
    }
    let info = by_vec.finish(&mut ciphertext).unwrap();
    let sliced_info = into_slices.finish(&mut sliced).unwrap();
    assert_eq!(sliced, ciphertext);
    assert_eq!(sliced_info.digest, info.digest);

    let mut decryptor = AttachmentDecryptor::new(&info);
    let mut opened = Vec::new();
    let mut out = vec![0u8; AttachmentDecryptor::max_update_len(100_000)];
    let mut rest = &ciphertext[..];
    while !rest.is_empty() {
        let take = rng.gen_range(1..=rest.len().min(100_000));
        let expected = decryptor.update_len(take);
        let written = decryptor.update_into(&rest[..take], &mut out).unwrap();
        assert_eq!(written, expected);
        opened.extend_from_slice(&out[..written]);
        rest = &rest[take..];
    }
    decryptor.finish(&mut opened).unwrap();
    assert_eq!(opened, data);
}

#[test]
fn a_short_output_buffer_is_refused_and_nothing_happens() {
    let mut rng = rng(8);
    let data = plaintext(CHUNK_SIZE + 10, 8);
    let mut encryptor = AttachmentEncryptor::new(&mut rng);
    let needed = encryptor.update_len(data.len());
    assert_eq!(needed, HEADER_SIZE + SEALED_CHUNK);
    let mut out = vec![0u8; needed - 1];
    assert_eq!(
        encryptor.update_into(&data, &mut out),
        Err(AttachmentError::OutputTooSmall { needed })
    );
    // The refused call left no trace: the stream still decrypts to `data`.
    let mut ciphertext = Vec::new();
    encryptor.update(&data, &mut ciphertext).unwrap();
    let info = encryptor.finish(&mut ciphertext).unwrap();
    assert_eq!(info.plaintext_len, data.len() as u64);

    let mut decryptor = AttachmentDecryptor::new(&info);
    let needed = decryptor.update_len(ciphertext.len());
    assert_eq!(needed, CHUNK_SIZE);
    let mut out = vec![0u8; needed - 1];
    assert_eq!(
        decryptor.update_into(&ciphertext, &mut out),
        Err(AttachmentError::OutputTooSmall { needed })
    );
    assert_eq!(decrypt(&ciphertext, &info).unwrap(), data);
    let mut opened = Vec::new();
    decryptor.update(&ciphertext, &mut opened).unwrap();
    decryptor.finish(&mut opened).unwrap();
    assert_eq!(opened, data);
}

#[test]
fn a_failed_chunk_writes_nothing_and_earlier_chunks_stay() {
    let mut rng = rng(9);
    let data = plaintext(3 * CHUNK_SIZE, 9);
    let (mut ciphertext, info) = AttachmentEncryptor::encrypt_all(&data, &mut rng).unwrap();
    ciphertext[HEADER_SIZE + SEALED_CHUNK + 3] ^= 1;
    let mut decryptor = AttachmentDecryptor::new(&info);
    let mut out = vec![0xAA; AttachmentDecryptor::max_update_len(ciphertext.len())];
    assert_eq!(
        decryptor.update_into(&ciphertext, &mut out),
        Err(AttachmentError::Authentication(1))
    );
    assert_eq!(&out[..CHUNK_SIZE], &data[..CHUNK_SIZE]);
    assert!(
        out[CHUNK_SIZE..2 * CHUNK_SIZE]
            .iter()
            .all(|&byte| byte == 0xAA)
    );

    let mut decryptor = AttachmentDecryptor::new(&info);
    let mut opened = Vec::new();
    assert_eq!(
        decryptor.update(&ciphertext, &mut opened),
        Err(AttachmentError::Authentication(1))
    );
    assert_eq!(opened, &data[..CHUNK_SIZE]);
}

/// A stream sealed by the reference STREAM implementation without
/// associated data, of `stream` as plaintext, announced as `file_len`
/// bytes, with header byte `version`.
fn reference_stream(
    version: u8,
    stream: &[u8],
    file_len: u64,
    seed: u64,
) -> (Vec<u8>, AttachmentInfo) {
    use aead_stream::EncryptorBE32;
    use chacha20poly1305::{ChaCha20Poly1305, KeyInit};

    let mut rng = rng(seed);
    let key: [u8; 32] = rng.r#gen();
    let prefix: [u8; 7] = rng.r#gen();
    let aead = ChaCha20Poly1305::new((&stream_key(version, &key)).into());
    let mut sealer = EncryptorBE32::from_aead(aead, (&prefix).into());
    let mut ciphertext = vec![version];
    ciphertext.extend_from_slice(&prefix);
    let mut chunks = stream.chunks_exact(CHUNK_SIZE);
    for chunk in chunks.by_ref() {
        let mut buffer = chunk.to_vec();
        sealer.encrypt_next_in_place(b"", &mut buffer).unwrap();
        ciphertext.extend_from_slice(&buffer);
    }
    let mut buffer = chunks.remainder().to_vec();
    sealer.encrypt_last_in_place(b"", &mut buffer).unwrap();
    ciphertext.extend_from_slice(&buffer);
    let info = AttachmentInfo {
        key: AttachmentKey::from_bytes(&key),
        digest: *blake3::hash(&ciphertext).as_bytes(),
        plaintext_len: file_len,
    };
    (ciphertext, info)
}

#[test]
fn padded_stream_hides_exact_size() {
    // Files of 4097 to 4350 bytes are all stored at one length; unpadded
    // (version 3) each had its own.
    let mut rng = rng(90);
    let lengths: std::collections::BTreeSet<usize> = (4_097..4_350)
        .step_by(23)
        .map(|len| {
            let (ciphertext, info) =
                AttachmentEncryptor::encrypt_all(&vec![7u8; len], &mut rng).unwrap();
            assert_eq!(decrypt(&ciphertext, &info).unwrap(), vec![7u8; len]);
            ciphertext.len()
        })
        .collect();
    assert_eq!(lengths.len(), 1, "{lengths:?}");
    let stored = *lengths.iter().next().unwrap() as u64;
    assert_eq!(padded_plaintext_len_of(stored), Some(4_352));
}

#[test]
fn stored_lengths_invert_only_on_padded_streams() {
    for len in [0u64, 1, 1_000, 65_535, 65_536, 200_000, 10_000_000] {
        let stored = stored_len(len).unwrap();
        assert_eq!(padded_plaintext_len_of(stored), padme(len), "len {len}");
        assert_eq!(stored, ciphertext_len(padme(len).unwrap()));
    }
    // 1025 bytes is not a Padmé length; 65 550 bytes is no stream length.
    assert_eq!(padded_plaintext_len_of(ciphertext_len(1_025)), None);
    assert_eq!(padded_plaintext_len_of(HEADER_SIZE as u64 + 65_550), None);
    assert_eq!(padded_plaintext_len_of(3), None);
}

#[test]
fn nonzero_padding_refused() {
    let file = plaintext(1_000, 91);
    let mut stream = file.clone();
    stream.resize(1_024, 0);
    let (ciphertext, info) = reference_stream(ATTACHMENT_VERSION, &stream, 1_000, 91);
    assert_eq!(decrypt(&ciphertext, &info).unwrap(), file);
    stream[1_010] = 1;
    let (ciphertext, info) = reference_stream(ATTACHMENT_VERSION, &stream, 1_000, 92);
    assert_eq!(
        decrypt(&ciphertext, &info),
        Err(AttachmentError::BadPadding)
    );
    // Padding short of the Padmé length is refused too.
    stream[1_010] = 0;
    let (ciphertext, info) = reference_stream(ATTACHMENT_VERSION, &stream[..1_020], 1_000, 93);
    assert_eq!(
        decrypt(&ciphertext, &info),
        Err(AttachmentError::LengthMismatch)
    );
}

#[test]
fn unpadded_version_3_streams_still_decrypt() {
    for len in [0, 1_000, CHUNK_SIZE + 3] {
        let file = plaintext(len, 94);
        let (ciphertext, info) =
            reference_stream(UNPADDED_ATTACHMENT_VERSION, &file, len as u64, 94);
        assert_eq!(decrypt(&ciphertext, &info).unwrap(), file, "len {len}");
    }
}

#[test]
fn versions_3_and_4_cannot_be_swapped() {
    let mut rng = rng(95);
    let (mut ciphertext, info) = AttachmentEncryptor::encrypt_all(b"padded", &mut rng).unwrap();
    ciphertext[0] = UNPADDED_ATTACHMENT_VERSION;
    assert_eq!(
        decrypt(&ciphertext, &info),
        Err(AttachmentError::Authentication(0))
    );
    let (mut ciphertext, info) = reference_stream(UNPADDED_ATTACHMENT_VERSION, b"plain", 5, 96);
    ciphertext[0] = ATTACHMENT_VERSION;
    assert_eq!(
        decrypt(&ciphertext, &info),
        Err(AttachmentError::Authentication(0))
    );
}
