//! Sender certificates for sealed sender (`crypto/SPEC.md` §15): the
//! server's key chain, kept as one file per key in the data folder
//! (`sender-certificate-<id>.key`, readable by the owner only), and the
//! short-lived certificates it signs for devices.
//!
//! The chain is loaded at start; `starling-server admin rotate-sender-key`
//! adds a key endorsed by the newest, which the server signs with from its
//! next start. Clients pin the newest key when they register or link.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use starling_crypto::IdentityKey;
use starling_crypto::sealed::{
    MAX_CERTIFICATE_TTL_MS, SenderCertificate, ServerKeyChain, ServerSigningKey,
};
use starling_protocol::api::{SenderCertificateResponse, ServerKeyChainResponse, ServerKeyPin};

use crate::AppState;
use crate::auth::AuthedDevice;
use crate::error::AppError;
use crate::store::now_millis;

/// Prefix and suffix of a key file's name.
const FILE_PREFIX: &str = "sender-certificate-";
const FILE_SUFFIX: &str = ".key";
/// Keys served in the chain: the newest, oldest first.
const SERVED_KEYS: usize = 16;

/// The server's sender-certificate keys, oldest first (never empty), and
/// the chain clients fetch, verified and encoded once when loaded.
#[derive(Debug)]
pub struct CertificateKeys {
    keys: Vec<ServerSigningKey>,
    served: String,
}

impl CertificateKeys {
    /// Loads every key file of `data_dir`, or creates the first key. Fails
    /// on an unreadable file or a chain whose endorsements do not verify.
    pub fn load_or_create(data_dir: &Path) -> std::io::Result<Self> {
        let mut keys = load_keys(data_dir)?;
        if keys.is_empty() {
            let first = ServerSigningKey::generate(now_ms(), &mut rand::rngs::OsRng);
            write_key(data_dir, &first)?;
            keys.push(first);
        }
        let served = STANDARD.encode(chain_of(&keys)?.to_bytes());
        Ok(Self { keys, served })
    }

    /// Adds a key endorsed by the newest one and writes it; returns its id.
    pub fn rotate(data_dir: &Path) -> std::io::Result<u32> {
        let this = Self::load_or_create(data_dir)?;
        let successor = this
            .newest()
            .successor(now_ms(), &mut rand::rngs::OsRng)
            .ok_or_else(|| invalid("the sender-certificate key ids are exhausted".into()))?;
        write_key(data_dir, &successor)?;
        Ok(successor.public().id())
    }

    fn newest(&self) -> &ServerSigningKey {
        // `load_or_create` never leaves the list empty.
        &self.keys[self.keys.len() - 1]
    }

    /// The newest keys as a chain, as clients fetch it.
    pub fn chain(&self) -> std::io::Result<ServerKeyChain> {
        chain_of(&self.keys)
    }

    /// The newest key, as a client pins it.
    pub fn pin(&self) -> ServerKeyPin {
        let public = self.newest().public();
        ServerKeyPin {
            id: public.id(),
            public_key: STANDARD.encode(public.public_key()),
            created_at: public.created_at(),
        }
    }

    /// A certificate for `device`'s `identity`, valid `ttl_ms` from now.
    fn issue(
        &self,
        device: &AuthedDevice,
        identity: &IdentityKey,
        ttl_ms: u64,
    ) -> Result<SenderCertificate, AppError> {
        let expires_at = now_ms().saturating_add(ttl_ms.min(MAX_CERTIFICATE_TTL_MS));
        SenderCertificate::issue(
            self.newest(),
            &device.username,
            device.device_id,
            identity,
            expires_at,
        )
        .map_err(|e| AppError::Internal(format!("sender certificate: {e}")))
    }
}

/// Refuses to go on when the key files are gone but the database has
/// accounts: their devices pinned the lost key, and a silently created new
/// first key would make every sealed message they receive unverifiable.
pub fn check_keys_present(data_dir: &Path, accounts_exist: bool) -> std::io::Result<()> {
    if accounts_exist && load_keys(data_dir)?.is_empty() {
        return Err(invalid(format!(
            "no sender-certificate key ({FILE_PREFIX}<id>{FILE_SUFFIX}) in {}, but the database has \
             accounts whose devices pinned one: restore the key files from a backup, or run \
             `starling-server admin rotate-sender-key --new-chain` to start a new chain that \
             every device must then trust again by being linked anew",
            data_dir.display()
        )));
    }
    Ok(())
}

/// `GET /v1/certificate/server-keys`.
pub fn server_keys(state: &AppState) -> ServerKeyChainResponse {
    ServerKeyChainResponse {
        chain: state.certificate_keys.served.clone(),
    }
}

/// `GET /v1/certificate/sender`: a certificate for the calling device's
/// identity as the server stores it, within the device's hourly limit.
pub async fn sender_certificate(
    state: &AppState,
    device: &AuthedDevice,
) -> Result<SenderCertificateResponse, AppError> {
    state
        .limits
        .certificate((device.account_id, device.device_id))?;
    let stored = state
        .store
        .identity_key(device.account_id, device.device_id)
        .await?
        .ok_or(AppError::NotFound("device"))?;
    let identity = IdentityKey::from_bytes(&stored)
        .map_err(|e| AppError::Internal(format!("stored identity key: {e}")))?;
    let ttl_ms = state
        .config
        .sealed
        .certificate_ttl_hours
        .saturating_mul(3_600_000);
    let certificate = state.certificate_keys.issue(device, &identity, ttl_ms)?;
    state.metrics.certificates_issued.inc();
    Ok(SenderCertificateResponse {
        certificate: STANDARD.encode(certificate.to_bytes()),
        expires_at: certificate.expires_at(),
    })
}

/// The newest [`SERVED_KEYS`] of `keys` as a chain, every endorsement
/// checked.
fn chain_of(keys: &[ServerSigningKey]) -> std::io::Result<ServerKeyChain> {
    let from = keys.len().saturating_sub(SERVED_KEYS);
    ServerKeyChain::new(keys[from..].iter().map(|k| k.public().clone()).collect())
        .map_err(|e| invalid(format!("the sender-certificate key files: {e}")))
}

fn now_ms() -> u64 {
    u64::try_from(now_millis()).unwrap_or(0)
}

fn invalid(message: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message)
}

fn key_path(data_dir: &Path, id: u32) -> PathBuf {
    data_dir.join(format!("{FILE_PREFIX}{id}{FILE_SUFFIX}"))
}

/// Every key file of `data_dir`, by id.
fn load_keys(data_dir: &Path) -> std::io::Result<Vec<ServerSigningKey>> {
    let entries = match std::fs::read_dir(data_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut keys = Vec::new();
    for entry in entries {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if !(name.starts_with(FILE_PREFIX) && name.ends_with(FILE_SUFFIX)) {
            continue;
        }
        let bytes = zeroize::Zeroizing::new(std::fs::read(&path)?);
        let key = ServerSigningKey::from_bytes(&bytes)
            .map_err(|e| invalid(format!("{}: {e}", path.display())))?;
        if key_path(data_dir, key.public().id()) != path {
            return Err(invalid(format!(
                "{} holds key {}",
                path.display(),
                key.public().id()
            )));
        }
        keys.push(key);
    }
    keys.sort_by_key(|k| k.public().id());
    Ok(keys)
}

/// Writes a new key file, which must not exist yet.
fn write_key(data_dir: &Path, key: &ServerSigningKey) -> std::io::Result<()> {
    std::fs::create_dir_all(data_dir)?;
    crate::keyfile::write_new(&key_path(data_dir, key.public().id()), &key.to_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_created_once_and_rotate_into_one_chain() {
        let dir = tempfile::tempdir().unwrap();
        let first = CertificateKeys::load_or_create(dir.path()).unwrap();
        assert_eq!(first.pin().id, 1);
        let again = CertificateKeys::load_or_create(dir.path()).unwrap();
        assert_eq!(again.pin(), first.pin());
        assert_eq!(CertificateKeys::rotate(dir.path()).unwrap(), 2);
        let rotated = CertificateKeys::load_or_create(dir.path()).unwrap();
        assert_eq!(rotated.pin().id, 2);
        let chain = rotated.chain().unwrap();
        assert_eq!(chain.keys().len(), 2);
        assert_eq!(
            chain.keys()[0].public_key(),
            first.keys[0].public().public_key()
        );
    }

    #[test]
    fn lost_key_files_are_refused_once_accounts_exist() {
        let dir = tempfile::tempdir().unwrap();
        assert!(check_keys_present(dir.path(), false).is_ok());
        let error = check_keys_present(dir.path(), true).unwrap_err();
        assert!(error.to_string().contains("--new-chain"), "{error}");
        CertificateKeys::load_or_create(dir.path()).unwrap();
        assert!(check_keys_present(dir.path(), true).is_ok());
    }

    #[test]
    fn a_foreign_key_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        CertificateKeys::load_or_create(dir.path()).unwrap();
        // Key 2 from another server's chain: not endorsed by this key 1.
        let other = tempfile::tempdir().unwrap();
        CertificateKeys::rotate(other.path()).unwrap();
        std::fs::copy(key_path(other.path(), 2), key_path(dir.path(), 2)).unwrap();
        assert!(CertificateKeys::load_or_create(dir.path()).is_err());
    }
}
