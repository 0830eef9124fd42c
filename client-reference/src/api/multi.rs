//! Uploading a multi-recipient sealed envelope once (`PUT
//! /v1/multi-recipient`, `crypto/SPEC.md` §15.6): when every envelope of
//! a send is a v2 copy of the same seal (`0x32 ‖ C ‖ AT ‖ E ‖ ct` with the
//! same `E ‖ ct`, as a group message is), the request carries `E` and `ct`
//! once and each device's `C` and `AT`. The server stores exactly the
//! bytes it would have stored for the per-device request. Pure.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use starling_protocol::api::{MultiRecipient, MultiRecipientRequest, RecipientDevice};

use starling_client_core::transport::AccountEnvelopes;

/// The version byte of a multi-recipient copy.
const VERSION_MULTI: u8 = 0x32;
/// Version byte, `C` and `AT`: what differs between copies.
const PER_DEVICE: usize = 1 + 32 + 16;
/// `E`, the first of the shared bytes.
const EPHEMERAL: usize = 32;

/// `sends`, each with its destination's access key on an unidentified
/// upload, as one multi-recipient upload, or `None` when they are not all
/// copies of one seal (or are too few for it to save anything).
pub(crate) fn compact(
    sends: &[(&AccountEnvelopes, Option<&[u8; 16]>)],
) -> Option<MultiRecipientRequest> {
    let copies: Vec<&[u8]> = sends
        .iter()
        .flat_map(|(s, _)| s.envelopes.iter().map(|(_, bytes)| bytes.as_slice()))
        .collect();
    let first = copies.first()?;
    let shared = first.get(PER_DEVICE..)?;
    let all_one_seal = copies.len() > 1
        && shared.len() > EPHEMERAL
        && copies.iter().all(|copy| {
            copy.first() == Some(&VERSION_MULTI) && copy.get(PER_DEVICE..) == Some(shared)
        });
    if !all_one_seal {
        return None;
    }
    let (ephemeral, ciphertext) = shared.split_at(EPHEMERAL);
    let recipients = sends
        .iter()
        .map(|(send, key)| MultiRecipient {
            destination: send.destination.clone(),
            access_key: key.map(|k| B64.encode(k)),
            devices: send
                .envelopes
                .iter()
                .map(|(device_id, copy)| RecipientDevice {
                    device_id: *device_id,
                    c: B64.encode(&copy[1..33]),
                    at: B64.encode(&copy[33..PER_DEVICE]),
                })
                .collect(),
        })
        .collect();
    Some(MultiRecipientRequest {
        ephemeral_public: B64.encode(ephemeral),
        ciphertext: B64.encode(ciphertext),
        recipients,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn copy(c: u8, tail: &[u8]) -> Vec<u8> {
        [&[VERSION_MULTI][..], &[c; 32], &[c ^ 0xff; 16], tail].concat()
    }

    fn plain(sends: &[AccountEnvelopes]) -> Vec<(&AccountEnvelopes, Option<&[u8; 16]>)> {
        sends.iter().map(|s| (s, None)).collect()
    }

    fn send(to: &str, envelopes: Vec<(u32, Vec<u8>)>) -> AccountEnvelopes {
        AccountEnvelopes {
            destination: to.into(),
            envelopes,
        }
    }

    #[test]
    fn copies_of_one_seal_upload_once_and_reassemble_exactly() {
        let tail: Vec<u8> = (0..=200).collect();
        let sends = vec![
            send("bob", vec![(1, copy(1, &tail)), (2, copy(2, &tail))]),
            send("carol", vec![(1, copy(3, &tail))]),
        ];
        let keys = [[7u8; 16], [8u8; 16]];
        let keyed: Vec<_> = sends.iter().zip(&keys).map(|(s, k)| (s, Some(k))).collect();
        let request = compact(&keyed).unwrap();
        let e = B64.decode(&request.ephemeral_public).unwrap();
        let ct = B64.decode(&request.ciphertext).unwrap();
        assert_eq!([e.clone(), ct.clone()].concat(), tail);
        for (send, recipient) in sends.iter().zip(&request.recipients) {
            assert_eq!(send.destination, recipient.destination);
            for ((device, bytes), part) in send.envelopes.iter().zip(&recipient.devices) {
                assert_eq!(*device, part.device_id);
                let c: [u8; 32] = B64.decode(&part.c).unwrap().try_into().unwrap();
                let at: [u8; 16] = B64.decode(&part.at).unwrap().try_into().unwrap();
                let e: [u8; 32] = e.clone().try_into().unwrap();
                assert_eq!(&starling_crypto::sealed::assemble(&c, &at, &e, &ct), bytes);
            }
        }
        assert_eq!(
            request.recipients[1].access_key,
            Some(B64.encode([8u8; 16]))
        );
        assert!(
            compact(&plain(&sends)).unwrap().recipients[0]
                .access_key
                .is_none()
        );
    }

    #[test]
    fn anything_else_goes_per_device() {
        let tail = vec![9u8; 100];
        // Two seals, a v1 envelope, a single copy, a short one: no.
        let two = vec![send(
            "bob",
            vec![(1, copy(1, &tail)), (2, copy(2, &[8; 100]))],
        )];
        assert!(compact(&plain(&two)).is_none());
        let mut v1 = copy(1, &tail);
        v1[0] = 0x31;
        let mixed = vec![send("bob", vec![(1, copy(1, &tail)), (2, v1)])];
        assert!(compact(&plain(&mixed)).is_none());
        assert!(compact(&plain(&[send("bob", vec![(1, copy(1, &tail))])])).is_none());
        let short = vec![send("bob", vec![(1, vec![0x32; 10]), (2, vec![0x32; 10])])];
        assert!(compact(&plain(&short)).is_none());
        assert!(compact(&[]).is_none());
    }
}
