//! Sealed sender as a device uses it (`crypto/SPEC.md` §15): the server
//! keys it trusts, its own sender certificate, sealing what it sends and
//! unsealing what it receives.
//!
//! Trust starts from the key the server gave at registration or linking
//! (the shell stores it with [`Storage::save_sealed_record`]); a home made
//! before pinning existed pins the server's first chain key on first use.
//! From there, a new key is accepted only when its predecessor endorsed
//! it ([`TrustedServerKeys::advance`]). Our own certificate is checked as a
//! received one is, and must name this account, device and identity: a
//! server handing us someone else's certificate would otherwise make our
//! messages arrive under another name.

use std::collections::BTreeMap;

use rand_core::CryptoRngCore;
use starling_crypto::sealed::{
    self, CertificateError, CertificateVerifier, CertifiedSender, ChainError,
    MAX_CERTIFICATE_TTL_MS, SealError, SenderCertificate, ServerKeyChain, TrustedServerKeys,
    UnsealError,
};
use starling_crypto::{DecodeError, IdentityKey, IdentityKeyPair};
use thiserror::Error;
use zeroize::Zeroizing;

use crate::clock::Clock;
use crate::storage::Storage;
use crate::transport::{AccountEnvelopes, Transport};

/// How often, at most, an unknown certificate signer makes us fetch the
/// server's key chain, in milliseconds.
pub const CHAIN_REFRESH_MILLIS: i64 = 10 * 60_000;

/// A certificate is renewed when less than this is left of it, in
/// milliseconds (or less than half its lifetime, whichever is shorter).
pub const CERTIFICATE_MARGIN_MILLIS: i64 = 2 * 3_600_000;

/// What the store keeps of sealed sender between runs.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SealedRecord {
    /// The trusted server keys ([`TrustedServerKeys::to_bytes`]); `None`
    /// until the first pin.
    pub trusted_keys: Option<Vec<u8>>,
    /// Our sender certificate (encoded) and when it was fetched
    /// ([`Clock`] milliseconds).
    pub certificate: Option<(Vec<u8>, i64)>,
    /// Our account's profile key, once made (or learned from a sibling
    /// device): contacts derive our access key from it.
    pub profile_key: Option<Zeroizing<[u8; 32]>>,
    /// The profile key was made on this device and saved before the server
    /// was asked to take its access key, with no answer yet: it is offered
    /// again (the server takes the same key twice) before it is used.
    pub profile_key_pending: bool,
}

impl std::fmt::Debug for SealedRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedRecord")
            .field("pinned", &self.trusted_keys.is_some())
            .field("certificate", &self.certificate.is_some())
            .field("profile_key", &self.profile_key.is_some())
            .field("profile_key_pending", &self.profile_key_pending)
            .finish()
    }
}

/// Why sealing could not go ahead. Nothing was sent.
#[derive(Debug, Error)]
pub enum SealedError<S, T> {
    /// The local store failed.
    #[error(transparent)]
    Storage(S),
    /// The server call failed.
    #[error(transparent)]
    Transport(T),
    /// The server's key chain does not extend the keys we trust.
    #[error("the server's certificate keys do not extend the pinned ones: {0}")]
    Chain(ChainError),
    /// The server's certificate for us is not one we can send with.
    #[error("the server issued a sender certificate this device refuses: {0}")]
    OwnCertificate(String),
    /// What the server gave does not decode.
    #[error("what the server sent for sealed sender does not decode: {0}")]
    Malformed(DecodeError),
    /// The stored sealed-sender state does not decode: the local store is
    /// damaged (nothing received may be acknowledged on its account).
    #[error("the stored sealed-sender state is damaged: {0}")]
    DamagedStore(DecodeError),
    /// No identity key is known for a device we send to.
    #[error("no identity key is known for {0}.{1}")]
    UnknownDevice(String, u32),
    /// Sealing failed.
    #[error(transparent)]
    Seal(SealError),
    /// Another device of the account made its profile key, and has not
    /// shared it with this one yet (it comes with its next message).
    #[error(
        "this device does not have the account's profile key yet: send a message from another device of the account first"
    )]
    NoProfileKey,
}

/// Why a received sealed envelope was refused (the reason an
/// [`crate::Event::SealedSenderRejected`] carries).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rejection {
    /// The certificate's signature does not verify (forged or altered).
    BadSignature,
    /// The certificate had expired when the envelope reached the server.
    Expired,
    /// Signed by a key the device does not trust.
    UnknownSigner,
    /// Signed by an older server key past its retirement.
    RetiredSigner,
    /// The certificate's identity is not the one of the session (or sender
    /// key) the message decrypts with.
    IdentityMismatch,
    /// The envelope was sealed by a key other than the certificate's.
    StaticKeyMismatch,
    /// The certificate names this very device.
    SelfSend,
    /// The certificate does not decode.
    Malformed,
    /// The sending device's identity key is not the one the transparency
    /// log holds for it (a device the server added, or a swapped key).
    NotInLog,
}

impl Rejection {
    /// The reason as a short stable word, for events and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadSignature => "bad_signature",
            Self::Expired => "expired",
            Self::UnknownSigner => "unknown_signer",
            Self::RetiredSigner => "retired_signer",
            Self::IdentityMismatch => "identity_mismatch",
            Self::StaticKeyMismatch => "static_key_mismatch",
            Self::SelfSend => "self_send",
            Self::Malformed => "malformed",
            Self::NotInLog => "not_in_log",
        }
    }

    fn of_certificate(error: &CertificateError) -> Self {
        match error {
            CertificateError::BadSignature => Self::BadSignature,
            CertificateError::Expired { .. } => Self::Expired,
            CertificateError::UnknownSigner(_) => Self::UnknownSigner,
            CertificateError::RetiredSigner(_) => Self::RetiredSigner,
            _ => Self::Malformed,
        }
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What unsealing a received envelope gave.
#[derive(Debug)]
pub enum Unsealed {
    /// The certificate verified: who sent it (still to be bound to the
    /// session it decrypts with) and the inner transport bytes.
    Certified(CertifiedSender, Zeroizing<Vec<u8>>),
    /// The envelope opened, but its sender may not be believed. The
    /// claimed sender is empty when the certificate could not be read.
    Rejected {
        /// Who the certificate claims sent it.
        claimed: (String, u32),
        /// Why it was refused.
        reason: Rejection,
    },
    /// Not an envelope for this device, or damaged.
    Unreadable(String),
}

/// Who this device is, as its own certificate must say.
#[derive(Debug, Clone, Copy)]
pub struct Me<'a> {
    /// Our username.
    pub username: &'a str,
    /// This device's id.
    pub device_id: u32,
    /// This device's identity key pair.
    pub identity: &'a IdentityKeyPair,
}

/// The state loaded from the store.
struct Loaded {
    verifier: Option<CertificateVerifier>,
    certificate: Option<(SenderCertificate, i64)>,
    /// When the chain was last fetched and parsed.
    chain_fetched_at: Option<i64>,
    /// Unknown signer ids a refresh was made for regardless of the rate
    /// limit (a rotation just after a refresh must not cost messages).
    forced_for: Vec<u32>,
    profile_key: Option<Zeroizing<[u8; 32]>>,
    /// See [`SealedRecord::profile_key_pending`].
    profile_key_pending: bool,
    /// The server already held another device's access key when we set
    /// ours: wait for that device's key (it comes with its messages).
    key_taken: bool,
}

/// A device's sealed-sender state, loaded from the store on first use.
#[derive(Default)]
pub struct Sealing {
    loaded: Option<Loaded>,
}

impl std::fmt::Debug for Sealing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealing")
            .field("loaded", &self.loaded.is_some())
            .finish()
    }
}

/// What a sealing step fails with, for a store `S` and a server `T`.
pub type Result<V, S, T> =
    std::result::Result<V, SealedError<<S as Storage>::Error, <T as Transport>::Error>>;

fn malformed<S, T>(error: DecodeError) -> SealedError<S, T> {
    SealedError::Malformed(error)
}

fn damaged<S, T>(error: DecodeError) -> SealedError<S, T> {
    SealedError::DamagedStore(error)
}

/// Unknown signer ids a chain refresh was forced for, at most.
const FORCED_REFRESHES: usize = 16;

fn millis(at: i64) -> u64 {
    u64::try_from(at).unwrap_or(0)
}

/// Whether a certificate fetched at `fetched_at` and expiring at
/// `expires_at` should be renewed at `now`.
pub fn certificate_due(now: i64, fetched_at: i64, expires_at: u64) -> bool {
    let expires_at = i64::try_from(expires_at).unwrap_or(i64::MAX);
    let lifetime = expires_at.saturating_sub(fetched_at);
    let margin = CERTIFICATE_MARGIN_MILLIS.min(lifetime / 2);
    now > fetched_at.saturating_add(lifetime) || expires_at.saturating_sub(now) < margin
}

impl Sealing {
    /// The state, loaded from the store when this is its first use.
    async fn load<S: Storage, T: Transport>(&mut self, storage: &S) -> Result<&mut Loaded, S, T> {
        let loaded = match self.loaded.take() {
            Some(loaded) => loaded,
            None => Self::read::<S, T>(storage).await?,
        };
        Ok(self.loaded.insert(loaded))
    }

    async fn read<S: Storage, T: Transport>(storage: &S) -> Result<Loaded, S, T> {
        let record = storage.sealed_record().await;
        let record = record.map_err(SealedError::Storage)?;
        let verifier = match &record.trusted_keys {
            Some(bytes) => Some(CertificateVerifier::new(
                TrustedServerKeys::from_bytes(bytes).map_err(damaged)?,
            )),
            None => None,
        };
        let certificate = match &record.certificate {
            Some((bytes, at)) => {
                Some((SenderCertificate::from_bytes(bytes).map_err(damaged)?, *at))
            }
            None => None,
        };
        Ok(Loaded {
            verifier,
            certificate,
            chain_fetched_at: None,
            forced_for: Vec::new(),
            profile_key: record.profile_key,
            profile_key_pending: record.profile_key_pending,
            key_taken: false,
        })
    }

    /// Forgets what was loaded: the next use reads the store again (after
    /// the shell changed it, or a step failed half-way).
    pub fn forget(&mut self) {
        self.loaded = None;
    }

    async fn save<S: Storage, T: Transport>(&mut self, storage: &S) -> Result<(), S, T> {
        let Some(loaded) = &self.loaded else {
            return Ok(());
        };
        let record = SealedRecord {
            trusted_keys: loaded.verifier.as_ref().map(|v| v.trust().to_bytes()),
            certificate: loaded
                .certificate
                .as_ref()
                .map(|(c, at)| (c.to_bytes(), *at)),
            profile_key: loaded.profile_key.clone(),
            profile_key_pending: loaded.profile_key_pending,
        };
        let saved = storage.save_sealed_record(&record).await;
        if saved.is_err() {
            self.forget();
        }
        saved.map_err(SealedError::Storage)
    }

    /// Fetches the server's key chain and accepts what the keys we trust
    /// endorse (pinning its first key when nothing is pinned yet). Rate
    /// limited to once per [`CHAIN_REFRESH_MILLIS`] unless nothing is
    /// pinned; returns whether a new key was accepted.
    pub async fn refresh_trust<S: Storage, T: Transport>(
        &mut self,
        storage: &S,
        transport: &T,
        now: i64,
    ) -> Result<bool, S, T> {
        self.refresh(storage, transport, now, None).await
    }

    /// [`Self::refresh_trust`], forced once for each new unknown `signer`.
    async fn refresh<S: Storage, T: Transport>(
        &mut self,
        storage: &S,
        transport: &T,
        now: i64,
        signer: Option<u32>,
    ) -> Result<bool, S, T> {
        let loaded = self.load::<S, T>(storage).await?;
        let recent = loaded
            .chain_fetched_at
            .is_some_and(|at| (0..CHAIN_REFRESH_MILLIS).contains(&now.saturating_sub(at)));
        let forced = signer.is_some_and(|id| !loaded.forced_for.contains(&id));
        if recent && !forced && loaded.verifier.is_some() {
            return Ok(false);
        }
        if let Some(id) = signer.filter(|_| forced) {
            if loaded.forced_for.len() == FORCED_REFRESHES {
                loaded.forced_for.remove(0);
            }
            loaded.forced_for.push(id);
        }
        let bytes = transport
            .server_key_chain()
            .await
            .map_err(SealedError::Transport)?;
        let chain = ServerKeyChain::from_bytes(&bytes).map_err(SealedError::Chain)?;
        loaded.chain_fetched_at = Some(now);
        let mut trust = match &loaded.verifier {
            Some(verifier) => verifier.trust().clone(),
            None => {
                let first = chain
                    .keys()
                    .first()
                    .ok_or(SealedError::Chain(ChainError::NotConsecutive))?;
                tracing::info!("pinning the server's certificate key on first use");
                TrustedServerKeys::pin(first.id(), &first.public_key(), first.created_at())
                    .map_err(malformed)?
            }
        };
        let added = trust
            .advance(&chain, millis(now))
            .map_err(SealedError::Chain)?;
        let pinned_now = loaded.verifier.is_none();
        match &mut loaded.verifier {
            Some(verifier) => verifier.set_trust(trust),
            None => loaded.verifier = Some(CertificateVerifier::new(trust)),
        }
        if added > 0 || pinned_now {
            self.save::<S, T>(storage).await?;
        }
        Ok(added > 0)
    }

    /// The verifier, pinning from the server's chain first when nothing
    /// is pinned yet.
    async fn verifier<S: Storage, T: Transport>(
        &mut self,
        storage: &S,
        transport: &T,
        now: i64,
    ) -> Result<&mut CertificateVerifier, S, T> {
        if self.load::<S, T>(storage).await?.verifier.is_none() {
            self.refresh_trust(storage, transport, now).await?;
        }
        match self.load::<S, T>(storage).await?.verifier.as_mut() {
            Some(verifier) => Ok(verifier),
            None => Err(SealedError::Chain(ChainError::NotConsecutive)),
        }
    }

    /// Checks a certificate at `at`, fetching the server's chain once when
    /// its signer is unknown (a rotation we have not seen yet).
    async fn check<S: Storage, T: Transport>(
        &mut self,
        storage: &S,
        transport: &T,
        certificate: &SenderCertificate,
        at: u64,
        now: i64,
    ) -> Result<std::result::Result<CertifiedSender, CertificateError>, S, T> {
        let verifier = self.verifier(storage, transport, now).await?;
        let checked = verifier.verify(certificate, at);
        let Err(CertificateError::UnknownSigner(signer)) = checked else {
            return Ok(checked);
        };
        match self.refresh(storage, transport, now, Some(signer)).await {
            Ok(true) => {
                let verifier = self.verifier(storage, transport, now).await?;
                Ok(verifier.verify(certificate, at))
            }
            Ok(false) => Ok(checked),
            // A chain that does not extend our keys endorses nothing: the
            // signer stays unknown.
            Err(SealedError::Chain(error)) => {
                tracing::warn!(%error, "the server's certificate key chain was refused");
                Ok(checked)
            }
            Err(error) => Err(error),
        }
    }

    /// Our sender certificate, fetched (and checked) when we have none or
    /// it is due for renewal.
    pub async fn certificate<S: Storage, T: Transport>(
        &mut self,
        storage: &S,
        transport: &T,
        me: Me<'_>,
        clock: &impl Clock,
    ) -> Result<SenderCertificate, S, T> {
        let now = clock.now_millis();
        let loaded = self.load::<S, T>(storage).await?;
        let newest = loaded.verifier.as_ref().map(|v| v.trust().newest_id());
        if let Some((certificate, fetched_at)) = &loaded.certificate
            && !certificate_due(now, *fetched_at, certificate.expires_at())
            && newest == Some(certificate.signer_key_id())
        {
            return Ok(certificate.clone());
        }
        let bytes = transport
            .sender_certificate()
            .await
            .map_err(SealedError::Transport)?;
        let certificate = SenderCertificate::from_bytes(&bytes).map_err(malformed)?;
        let checked = self
            .check(storage, transport, &certificate, millis(now), now)
            .await?;
        let certified = checked.map_err(|e| SealedError::OwnCertificate(e.to_string()))?;
        let longest = millis(now).saturating_add(MAX_CERTIFICATE_TTL_MS + 3_600_000);
        if certified.expires_at > longest {
            return Err(SealedError::OwnCertificate(
                "it is valid for longer than any certificate may be".into(),
            ));
        }
        if certified.username != me.username
            || certified.device_id != me.device_id
            || certified.identity != me.identity.public().public_bytes()
        {
            return Err(SealedError::OwnCertificate(
                "it names another account, device or identity".into(),
            ));
        }
        self.load::<S, T>(storage).await?.certificate = Some((certificate.clone(), now));
        self.save::<S, T>(storage).await?;
        Ok(certificate)
    }

    /// Our account's profile key, made (and its access key set on the
    /// server) on first use. `None` while another device of the account
    /// holds the key the server has and has not shared it with us yet.
    ///
    /// A new key is saved before the server is asked to take it, and
    /// offered again until the server answers: a lost answer must not
    /// leave the server holding a key no device has.
    pub async fn profile_key<S: Storage, T: Transport>(
        &mut self,
        storage: &S,
        transport: &T,
        rng: &mut impl CryptoRngCore,
    ) -> Result<Option<[u8; 32]>, S, T> {
        let loaded = self.load::<S, T>(storage).await?;
        if loaded.key_taken {
            return Ok(None);
        }
        let key = match &loaded.profile_key {
            Some(key) if !loaded.profile_key_pending => return Ok(Some(**key)),
            Some(key) => key.clone(),
            None => {
                let mut key = Zeroizing::new([0u8; 32]);
                rng.fill_bytes(&mut key[..]);
                loaded.profile_key = Some(key.clone());
                loaded.profile_key_pending = true;
                self.save::<S, T>(storage).await?;
                key
            }
        };
        let access = Zeroizing::new(sealed::access_key(&key));
        let set = transport
            .set_access(&access, false, true)
            .await
            .map_err(SealedError::Transport)?;
        let loaded = self.load::<S, T>(storage).await?;
        loaded.profile_key_pending = false;
        if set {
            self.save::<S, T>(storage).await?;
            return Ok(Some(*key));
        }
        // Another device's key was there first: ours is dropped, and theirs
        // comes with their messages.
        loaded.key_taken = true;
        loaded.profile_key = None;
        self.save::<S, T>(storage).await?;
        Ok(None)
    }

    /// Sets whether strangers (senders without our access key) may send
    /// our account sealed envelopes. Needs the account's profile key: a
    /// device that has not received it from a sibling yet is refused.
    pub async fn set_sealed_from_strangers<S: Storage, T: Transport>(
        &mut self,
        storage: &S,
        transport: &T,
        allow: bool,
        rng: &mut impl CryptoRngCore,
    ) -> Result<(), S, T> {
        let Some(key) = self.profile_key(storage, transport, rng).await? else {
            return Err(SealedError::NoProfileKey);
        };
        let key = Zeroizing::new(key);
        let access = Zeroizing::new(sealed::access_key(&key));
        transport
            .set_access(&access, allow, false)
            .await
            .map_err(SealedError::Transport)?;
        Ok(())
    }

    /// Takes the profile key a sibling device sent, when we have none or
    /// only one the server has not confirmed (two devices that made one
    /// each keep the first the server took).
    pub async fn adopt_profile_key<S: Storage, T: Transport>(
        &mut self,
        storage: &S,
        key: [u8; 32],
    ) -> Result<(), S, T> {
        let loaded = self.load::<S, T>(storage).await?;
        if loaded.profile_key.is_some() && !loaded.profile_key_pending {
            return Ok(());
        }
        // A sibling only sends a key the server took: it replaces one of
        // ours still waiting for an answer.
        loaded.profile_key = Some(Zeroizing::new(key));
        loaded.profile_key_pending = false;
        loaded.key_taken = false;
        self.save::<S, T>(storage).await
    }

    /// Removes the outer layers of a received envelope and checks its
    /// certificate at `at` (when the envelope reached the server).
    pub async fn unseal<S: Storage, T: Transport>(
        &mut self,
        storage: &S,
        transport: &T,
        me: Me<'_>,
        content: &[u8],
        at: u64,
        now: i64,
    ) -> Result<Unsealed, S, T> {
        let opened = match sealed::open(me.identity, content) {
            Ok(opened) => opened,
            Err(UnsealError::StaticKeyMismatch) => {
                return Ok(Unsealed::Rejected {
                    claimed: (String::new(), 0),
                    reason: Rejection::StaticKeyMismatch,
                });
            }
            Err(error) => return Ok(Unsealed::Unreadable(error.to_string())),
        };
        let certificate = opened.certificate().clone();
        let claimed = (certificate.username().to_owned(), certificate.device_id());
        if let Err(error) = self
            .check(storage, transport, &certificate, at, now)
            .await?
        {
            let reason = Rejection::of_certificate(&error);
            return Ok(Unsealed::Rejected { claimed, reason });
        }
        if claimed.0 == me.username && claimed.1 == me.device_id {
            let reason = Rejection::SelfSend;
            return Ok(Unsealed::Rejected { claimed, reason });
        }
        let verifier = self.verifier(storage, transport, now).await?;
        match opened.verify(verifier, at) {
            Ok(certified) => Ok(Unsealed::Certified(certified.sender, certified.inner)),
            Err(error) => Ok(Unsealed::Unreadable(error.to_string())),
        }
    }
}

/// Seals each envelope of `sends` (inner transport bytes) for its device
/// with `certificate`: once per device with v1, or once for all with v2
/// when several devices get the same bytes (a group message).
pub async fn seal_sends<S: Storage, T: Transport>(
    storage: &S,
    me: Me<'_>,
    certificate: &SenderCertificate,
    sends: &[AccountEnvelopes],
    rng: &mut impl CryptoRngCore,
) -> Result<Vec<AccountEnvelopes>, S, T> {
    let mut keys: BTreeMap<&str, Vec<(u32, IdentityKey)>> = BTreeMap::new();
    for send in sends {
        let known = storage.identity_keys(&send.destination).await;
        keys.insert(&send.destination, known.map_err(SealedError::Storage)?);
    }
    let key_of = |destination: &str, device: u32| {
        keys.get(destination)
            .and_then(|k| k.iter().find(|(d, _)| *d == device))
            .map(|(_, key)| key)
            .ok_or_else(|| SealedError::UnknownDevice(destination.to_owned(), device))
    };
    // Devices by the bytes they get, to seal shared bytes once.
    let mut shared: BTreeMap<&[u8], Vec<(usize, usize)>> = BTreeMap::new();
    for (a, send) in sends.iter().enumerate() {
        for (e, (_, inner)) in send.envelopes.iter().enumerate() {
            shared.entry(inner.as_slice()).or_default().push((a, e));
        }
    }
    let mut sealed_bytes: BTreeMap<(usize, usize), Vec<u8>> = BTreeMap::new();
    for (inner, places) in shared {
        let recipients = places
            .iter()
            .map(|&(a, e)| key_of(&sends[a].destination, sends[a].envelopes[e].0))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let sealed: Vec<Vec<u8>> = if let [recipient] = recipients.as_slice() {
            vec![
                sealed::seal_single(me.identity, recipient, certificate, inner, rng)
                    .map_err(SealedError::Seal)?,
            ]
        } else {
            let multi = sealed::seal_multi(me.identity, &recipients, certificate, inner, rng)
                .map_err(SealedError::Seal)?;
            (0..places.len())
                .filter_map(|i| multi.envelope(i))
                .collect()
        };
        if sealed.len() != places.len() {
            return Err(SealedError::Seal(SealError::NoRecipients));
        }
        sealed_bytes.extend(places.into_iter().zip(sealed));
    }
    // Built only from sealed bytes: a device left out fails the send
    // rather than getting its inner bytes unsealed.
    let mut out = Vec::with_capacity(sends.len());
    for (a, send) in sends.iter().enumerate() {
        let mut envelopes = Vec::with_capacity(send.envelopes.len());
        for (e, (device, _)) in send.envelopes.iter().enumerate() {
            let bytes = sealed_bytes
                .remove(&(a, e))
                .ok_or_else(|| SealedError::UnknownDevice(send.destination.clone(), *device))?;
            envelopes.push((*device, bytes));
        }
        out.push(AccountEnvelopes {
            destination: send.destination.clone(),
            envelopes,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;

    #[test]
    fn a_day_long_certificate_is_renewed_two_hours_before_expiry() {
        let fetched = 10 * HOUR;
        let expires = u64::try_from(34 * HOUR).unwrap();
        assert!(!certificate_due(fetched, fetched, expires));
        assert!(!certificate_due(32 * HOUR, fetched, expires));
        assert!(certificate_due(32 * HOUR + 1, fetched, expires));
        assert!(certificate_due(40 * HOUR, fetched, expires));
    }

    #[test]
    fn a_short_certificate_is_renewed_at_half_its_life() {
        let fetched = 10 * HOUR;
        let expires = u64::try_from(11 * HOUR).unwrap();
        assert!(!certificate_due(fetched + HOUR / 2, fetched, expires));
        assert!(certificate_due(fetched + HOUR / 2 + 1, fetched, expires));
    }

    #[test]
    fn rejections_have_stable_names() {
        let names: Vec<&str> = [
            Rejection::BadSignature,
            Rejection::Expired,
            Rejection::UnknownSigner,
            Rejection::RetiredSigner,
            Rejection::IdentityMismatch,
            Rejection::StaticKeyMismatch,
            Rejection::SelfSend,
            Rejection::Malformed,
        ]
        .iter()
        .map(|r| r.as_str())
        .collect();
        assert_eq!(
            names,
            [
                "bad_signature",
                "expired",
                "unknown_signer",
                "retired_signer",
                "identity_mismatch",
                "static_key_mismatch",
                "self_send",
                "malformed"
            ]
        );
        assert_eq!(
            Rejection::of_certificate(&CertificateError::BadSignature),
            Rejection::BadSignature
        );
        assert_eq!(
            Rejection::of_certificate(&CertificateError::Expired {
                expires_at: 1,
                at: 2
            }),
            Rejection::Expired
        );
    }
}
