//! Cross-signed links (`crypto/SPEC.md` §2.5): a new device of an account
//! that one of the account's devices linked carries a certificate from
//! it. A certificate counts only against an identity key this device
//! already holds for the signer (or its own), and only a key taken without
//! a warning (or verified since) vouches: the server cannot vouch for a
//! key of its own, and a device it planted once (announced then) cannot
//! vouch for the next ones.

use starling_crypto::IdentityKey;
use starling_crypto::link::DeviceCertificate;

use crate::storage::Storage;

/// The device of `username` that vouched for `identity`, when
/// `certificate` verifies against the key this device holds for it;
/// `this_device` is this device's id and key when `username` is our own
/// account. A certificate that does not decode or verify vouches for
/// nothing (the device is then new, unvouched, as without one).
pub async fn vouched_by<S: Storage>(
    storage: &S,
    username: &str,
    this_device: Option<(u32, &IdentityKey)>,
    identity: &IdentityKey,
    certificate: Option<&[u8]>,
) -> Result<Option<u32>, S::Error> {
    let Some(certificate) = certificate.and_then(|c| DeviceCertificate::from_bytes(c).ok()) else {
        return Ok(None);
    };
    let signer = certificate.signer_device();
    let key = match this_device {
        Some((id, key)) if id == signer => Some(key.clone()),
        _ => storage.vouching_key(username, signer).await?,
    };
    Ok(key
        .filter(|key| key != identity && certificate.verify(username, key, identity).is_ok())
        .map(|_| signer))
}
