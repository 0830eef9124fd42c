//! What a sealed envelope encrypts: the sender certificate and the inner
//! message, padded so that the whole envelope is a bucket (SPEC §15.4).

use zeroize::Zeroizing;

use crate::MAX_ENCODED_LEN;
use crate::error::{check_version, decode_proto};
use crate::padding::{envelope_bucket, pad, unpad};
use crate::proto::wire;

use super::ENVELOPE_OVERHEAD;
use super::certificate::SenderCertificate;
use super::errors::{SealError, UnsealError};

/// Format version of `SealedSenderContent`.
const VERSION: u32 = 1;

/// `encode(SealedSenderContent) ‖ 0x80 ‖ 0x00…`, long enough that the
/// envelope around it (`ENVELOPE_OVERHEAD` more) is exactly a bucket.
pub(super) fn padded_plaintext(
    certificate: &SenderCertificate,
    inner: &[u8],
) -> Result<Zeroizing<Vec<u8>>, SealError> {
    // The certificate is what sealing hides, so every copy is wiped (the
    // generated type zeroizes on drop).
    let proto = wire::SealedSenderContent {
        version: VERSION,
        certificate: Some(certificate.to_proto()),
        inner: inner.to_vec(),
    };
    let encoded = Zeroizing::new(prost::Message::encode_to_vec(&proto));
    let unpadded = ENVELOPE_OVERHEAD + encoded.len() + 1;
    let bucket = envelope_bucket(unpadded as u64)
        .and_then(|b| usize::try_from(b).ok())
        .filter(|&b| b <= MAX_ENCODED_LEN)
        .ok_or(SealError::TooLarge { len: unpadded })?;
    let padded = pad(&encoded, bucket - ENVELOPE_OVERHEAD)
        .map_err(|_| SealError::TooLarge { len: unpadded })?;
    Ok(Zeroizing::new(padded))
}

/// The certificate and inner message of a decrypted, padded plaintext.
pub(super) fn parse_plaintext(
    padded: &[u8],
) -> Result<(SenderCertificate, Zeroizing<Vec<u8>>), UnsealError> {
    let encoded = unpad(padded).map_err(|_| UnsealError::BadPadding)?;
    let mut proto: wire::SealedSenderContent = decode_proto(encoded, MAX_ENCODED_LEN)?;
    let inner = Zeroizing::new(std::mem::take(&mut proto.inner));
    check_version(proto.version, VERSION)?;
    let certificate = proto
        .certificate
        .as_ref()
        .ok_or(crate::DecodeError::MissingField("certificate"))?;
    let certificate = SenderCertificate::from_proto(certificate)?;
    Ok((certificate, inner))
}
