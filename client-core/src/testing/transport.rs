//! [`Memory`] as a [`Transport`]: a scripted server. It serves the bundles
//! and device lists it is given, answers sends with the refusals queued
//! in it, and records every send.

use starling_crypto::PreKeyBundle;
use starling_protocol::api::{KeyUpload, PrekeyCounts};

use super::{Fake, Memory};
use crate::transparency::{
    AppendOnlyClaim, AuditStep, LogPins, Proved, ServedHistory, TransparencyError,
};
use crate::transport::{AccountEnvelopes, SendOutcome, Transport};

impl Memory {
    /// The log's proof for `username`: the identity of each device from
    /// its bundle, a placeholder for devices served without one.
    fn logged(&self, username: &str, ids: &[u32]) -> crate::transparency::LogProof {
        let bundles = self.bundles.borrow();
        let served = bundles.get(username);
        let mut devices: Vec<(u32, [u8; 64])> = ids
            .iter()
            .map(|id| {
                let identity = served
                    .and_then(|b| b.iter().find(|(d, _)| d == id))
                    .map_or([0; 64], |(_, bundle)| bundle.identity().public_bytes());
                (*id, identity)
            })
            .collect();
        devices.sort_by_key(|(id, _)| *id);
        devices.dedup_by_key(|(id, _)| *id);
        self.log.prove(username, &devices)
    }
}

impl Transport for Memory {
    type Error = Fake;

    async fn upload_keys(&self, upload: &KeyUpload) -> Result<PrekeyCounts, Fake> {
        if self.offline.get() {
            return Err(Fake);
        }
        self.uploads.borrow_mut().push(upload.clone());
        Ok(PrekeyCounts {
            one_time: 100,
            kem: 100,
        })
    }

    async fn key_count(&self) -> Result<PrekeyCounts, Fake> {
        let (one_time, kem) = self.counts.get();
        Ok(PrekeyCounts { one_time, kem })
    }

    async fn devices(&self, username: &str) -> Result<Proved<Vec<u32>>, Fake> {
        let ids = self
            .devices
            .borrow()
            .get(username)
            .cloned()
            .unwrap_or_else(|| vec![1]);
        let proof = self.logged(username, &ids);
        Ok(Proved {
            value: ids,
            proof: Some(proof),
            certificates: Vec::new(),
        })
    }

    async fn bundles(
        &self,
        username: &str,
        device: Option<u32>,
    ) -> Result<Proved<Vec<(u32, PreKeyBundle)>>, Fake> {
        let all: Vec<(u32, PreKeyBundle)> = self
            .bundles
            .borrow()
            .get(username)
            .cloned()
            .unwrap_or_default();
        let proof = (!all.is_empty()).then(|| {
            let ids: Vec<u32> = all.iter().map(|(d, _)| *d).collect();
            self.logged(username, &ids)
        });
        Ok(Proved {
            value: all
                .into_iter()
                .filter(|(d, _)| device.is_none_or(|wanted| wanted == *d))
                .collect(),
            proof,
            certificates: Vec::new(),
        })
    }

    async fn log_pins(&self) -> Result<Option<LogPins>, Fake> {
        Ok(Some(self.log.pins()))
    }

    async fn own_history(&self) -> Result<Option<ServedHistory>, Fake> {
        if let Some(served) = self.history_override.borrow().clone() {
            return Ok(Some(served));
        }
        let me = self
            .me
            .borrow()
            .as_ref()
            .map(|(username, _, _)| username.clone());
        Ok(me.and_then(|username| self.log.history(&username)))
    }

    async fn latest_version(&self, username: &str) -> Result<Option<ServedHistory>, Fake> {
        self.latest_asked.borrow_mut().push(username.to_owned());
        if let Some(served) = self.latest_override.borrow().clone() {
            return Ok(Some(served));
        }
        Ok(self.log.latest(username))
    }

    async fn audit_steps(&self, from: u64) -> Result<Vec<AuditStep>, Fake> {
        Ok(self.log.audit_steps(from))
    }

    async fn check_append_only(
        &self,
        proof: &[u8],
        claim: &AppendOnlyClaim,
    ) -> Result<(), TransparencyError> {
        self.log.check_append_only(proof, claim)
    }

    async fn send(
        &self,
        destination: &str,
        envelopes: &[(u32, Vec<u8>)],
    ) -> Result<SendOutcome, Fake> {
        self.send_many(&[AccountEnvelopes {
            destination: destination.to_owned(),
            envelopes: envelopes.to_vec(),
        }])
        .await
    }

    async fn send_many(&self, sends: &[AccountEnvelopes]) -> Result<SendOutcome, Fake> {
        self.sent.borrow_mut().push(sends.to_vec());
        let mut refusals = self.refusals.borrow_mut();
        if refusals.is_empty() {
            Ok(SendOutcome::Stored)
        } else {
            Ok(SendOutcome::Stale(refusals.remove(0)))
        }
    }

    /// Stored as asked, and recorded.
    async fn send_unidentified(
        &self,
        sends: &[(AccountEnvelopes, [u8; 16])],
    ) -> Result<SendOutcome, Fake> {
        self.sent_unidentified.borrow_mut().push(sends.to_vec());
        Ok(SendOutcome::Stored)
    }

    async fn set_access(
        &self,
        access_key: &[u8; 16],
        _sealed_from_strangers: bool,
        if_absent: bool,
    ) -> Result<bool, Fake> {
        let mut stored = self.access_key.borrow_mut();
        if if_absent && stored.is_some() {
            return Ok(false);
        }
        *stored = Some(*access_key);
        Ok(true)
    }

    async fn sender_certificate(&self) -> Result<Vec<u8>, Fake> {
        let me = self.me.borrow();
        let (username, device, identity) = me.as_ref().ok_or(Fake)?;
        let expires = super::SERVER_NOW.unsigned_abs() + super::CERTIFICATE_TTL;
        Ok(self
            .authority
            .issue(username, *device, identity, expires)
            .to_bytes())
    }

    async fn server_key_chain(&self) -> Result<Vec<u8>, Fake> {
        Ok(self.authority.chain())
    }

    /// Its one failure is an unreachable server, never "not found".
    fn is_not_found(_: &Fake) -> bool {
        false
    }
}
