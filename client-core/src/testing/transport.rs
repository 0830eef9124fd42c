//! [`Memory`] as a [`Transport`]: a scripted server. It serves the bundles
//! and device lists it is given, answers sends with the refusals queued
//! in it, and records every send.

use starling_crypto::PreKeyBundle;
use starling_protocol::api::{KeyUpload, PrekeyCounts};

use super::{Fake, Memory};
use crate::transport::{AccountEnvelopes, SendOutcome, Transport};

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

    async fn devices(&self, username: &str) -> Result<Vec<u32>, Fake> {
        Ok(self
            .devices
            .borrow()
            .get(username)
            .cloned()
            .unwrap_or_else(|| vec![1]))
    }

    async fn bundles(
        &self,
        username: &str,
        device: Option<u32>,
    ) -> Result<Vec<(u32, PreKeyBundle)>, Fake> {
        Ok(self
            .bundles
            .borrow()
            .get(username)
            .into_iter()
            .flatten()
            .filter(|(d, _)| device.is_none_or(|wanted| wanted == *d))
            .cloned()
            .collect())
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
