//! Unidentified sends (`crypto/SPEC.md` §15.8): sealed envelopes sent
//! with no credential, so that the server does not learn who sends them
//! even while the request lasts. Each destination's access key (or its
//! choice to take sealed envelopes from strangers) authorises the send.
//!
//! Abuse limits work without a sender: per peer host before the keys are
//! checked (a token per destination, each costing a lookup), per
//! destination on refused keys (so guessing is slow whatever keys are
//! tried) and, once they passed, per destination (so wrong keys cannot use
//! up an account's bucket). A wrong key, no key, and an account that does not
//! exist get the same answer, so the route says nothing about which
//! usernames exist.

use std::net::IpAddr;

use starling_crypto::sealed::is_sealed;
use starling_protocol::Username;
use starling_protocol::api::{MultiSendRequest, SendResponse};

use super::access::{self, ACCESS_KEY_LEN};
use super::sends::{self, Envelopes};
use crate::AppState;
use crate::error::{AppError, ErrorCode};
use crate::store::{AccessRecord, Destination, Submitter};

/// An access key as presented.
pub type AccessKey = [u8; ACCESS_KEY_LEN];

/// One destination of an unidentified send.
struct UnidentifiedSend {
    destination: String,
    envelopes: Envelopes,
    key: Option<zeroize::Zeroizing<AccessKey>>,
}

/// `PUT /v1/messages/{username}` without a credential.
pub async fn send_to_account(
    state: &AppState,
    peer: Option<IpAddr>,
    destination: String,
    envelopes: Envelopes,
    key: Option<&str>,
) -> Result<SendResponse, AppError> {
    Username::parse(&destination)?;
    let key = parse_key("Unidentified-Access-Key", key)?;
    let send = UnidentifiedSend {
        destination,
        envelopes,
        key,
    };
    store(state, peer, vec![send], false).await
}

/// `PUT /v1/messages` without a credential: each destination with its
/// own access key.
pub async fn send_many(
    state: &AppState,
    peer: Option<IpAddr>,
    request: MultiSendRequest,
) -> Result<SendResponse, AppError> {
    sends::check_destinations(request.sends.iter().map(|s| s.destination.as_str()))?;
    let mut decoded = Vec::with_capacity(request.sends.len());
    for send in request.sends {
        let envelopes = sends::decode_envelopes(&send.envelopes)?;
        decoded.push((send.destination, envelopes, send.access_key));
    }
    send_decoded(state, peer, decoded).await
}

/// [`send_many`] of envelopes already decoded, to destinations already
/// checked: (destination, envelopes, access key as presented).
pub async fn send_decoded(
    state: &AppState,
    peer: Option<IpAddr>,
    decoded: Vec<(String, Envelopes, Option<String>)>,
) -> Result<SendResponse, AppError> {
    let mut list = Vec::with_capacity(decoded.len());
    for (destination, envelopes, key) in decoded {
        let key = zeroize::Zeroizing::new(key);
        list.push(UnidentifiedSend {
            destination,
            envelopes,
            key: parse_key("access_key", key.as_deref())?,
        });
    }
    store(state, peer, list, true).await
}

/// An access key as presented (base64), if any.
fn parse_key(
    field: &'static str,
    value: Option<&str>,
) -> Result<Option<zeroize::Zeroizing<AccessKey>>, AppError> {
    value
        .map(|v| access::parse_key(field, v).map(zeroize::Zeroizing::new))
        .transpose()
}

/// Checks, authorises and stores an unidentified send.
async fn store(
    state: &AppState,
    peer: Option<IpAddr>,
    list: Vec<UnidentifiedSend>,
    many: bool,
) -> Result<SendResponse, AppError> {
    for send in &list {
        sends::check_envelopes(state, &send.envelopes)?;
        if let Some((device, _)) = send.envelopes.iter().find(|(_, c)| !is_sealed(c)) {
            return Err(AppError::bad_request(
                ErrorCode::UnsealedUnidentified,
                format!(
                    "a send without a credential must be sealed (SPEC §15); the envelope for {} device {device} is not",
                    send.destination
                ),
            ));
        }
    }
    // Counted by host unless it is this one (a reverse proxy, or a local
    // client): then every such send shares one place, and the proxy is
    // what limits each client.
    let peer = peer
        .map(crate::limits::peer_key)
        .filter(|ip| !ip.is_loopback());
    let submitter = match peer {
        Some(ip) => Submitter::Peer(ip),
        None => Submitter::Local,
    };
    let slot = state
        .writer
        .reserve(submitter)
        .map_err(|e| sends::write_error(&state.metrics, many, e))?;
    if let Some(ip) = peer {
        state.limits.unidentified_peer(ip, list.len())?;
    }
    let admitted = authorise(state, &list).await?;
    for record in &admitted {
        state.limits.destination(record.account_id)?;
    }
    let destinations = list
        .into_iter()
        .map(|send| Destination {
            username: send.destination,
            envelopes: sends::build(None, send.envelopes, true),
        })
        .collect();
    let stored = sends::queue(state, None, destinations, slot, many)
        .await?
        .stored()
        .await?;
    state.metrics.sends_unidentified.inc();
    Ok(stored)
}

/// Every destination's access record, or the refusal naming those whose
/// key (or lack of one) was refused; an account that does not exist is
/// refused alike.
async fn authorise(
    state: &AppState,
    list: &[UnidentifiedSend],
) -> Result<Vec<AccessRecord>, AppError> {
    let mut admitted = Vec::with_capacity(list.len());
    let mut refused = Vec::new();
    // Compared against when there is no such account, so that the check
    // runs the same way.
    let nobody = AccessRecord {
        account_id: 0,
        key_hash: None,
        sealed_from_strangers: false,
    };
    for send in list {
        let record = state.store.access(&send.destination).await?;
        let presented = send.key.as_deref();
        let admits = access::admits(record.as_ref().unwrap_or(&nobody), presented);
        match record {
            Some(record) if admits => admitted.push(record),
            _ => refused.push(send.destination.clone()),
        }
    }
    if refused.is_empty() {
        return Ok(admitted);
    }
    state.metrics.sends_refused_access.inc();
    for destination in &refused {
        state.limits.access_refused(destination)?;
    }
    Err(AppError::BadAccessKey(refused))
}
