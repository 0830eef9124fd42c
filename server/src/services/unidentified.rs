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
use super::sends::{self, Envelopes, QueuedSend};
use crate::AppState;
use crate::error::{AppError, ErrorCode};
use crate::metrics::Metrics;
use crate::store::{AccessRecord, Destination, Submitter};

/// An access key as presented.
pub type AccessKey = [u8; ACCESS_KEY_LEN];

/// Where an unidentified send comes from, as the abuse limits see it.
#[derive(Debug, Clone, Copy)]
pub enum Origin {
    /// An HTTP request from this peer address (if known).
    Request(Option<IpAddr>),
    /// A frame on the anonymous WebSocket `connection` (a number local to
    /// this process) from this peer address.
    Socket {
        /// The peer address, if known.
        peer: Option<IpAddr>,
        /// The connection's number in this process.
        connection: u64,
    },
}

impl Origin {
    /// The peer host that is charged, unless it is this host (a reverse
    /// proxy or a local client: the proxy limits each of its clients).
    fn remote_host(self) -> Option<IpAddr> {
        let peer = match self {
            Origin::Request(peer) | Origin::Socket { peer, .. } => peer,
        };
        // Loopback is told before the /64 is taken, which would turn ::1
        // into ::.
        peer.filter(|ip| !ip.to_canonical().is_loopback())
            .map(crate::limits::peer_key)
    }
}

/// An unidentified send queued to the writer; [`QueuedUnidentified::stored`]
/// waits for its commit.
pub struct QueuedUnidentified {
    queued: QueuedSend,
    metrics: std::sync::Arc<Metrics>,
}

impl QueuedUnidentified {
    /// Waits until every envelope is stored, or the writer refused the send.
    pub async fn stored(self) -> Result<SendResponse, AppError> {
        let stored = self.queued.stored().await?;
        self.metrics.sends_unidentified.inc();
        Ok(stored)
    }
}

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
    let key = parse_key("Unidentified-Access-Key", key)?;
    queue_send(state, Origin::Request(peer), destination, envelopes, key)
        .await?
        .stored()
        .await
}

/// Checks, authorises and queues an unidentified send to one account
/// (`key`: its access key as presented, if any); the caller awaits its
/// commit, so that a connection can go on reading while it is stored.
pub async fn queue_send(
    state: &AppState,
    origin: Origin,
    destination: String,
    envelopes: Envelopes,
    key: Option<zeroize::Zeroizing<AccessKey>>,
) -> Result<QueuedUnidentified, AppError> {
    Username::parse(&destination)?;
    let send = UnidentifiedSend {
        destination,
        envelopes,
        key,
    };
    queue(state, origin, vec![send], false).await
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
    queue(state, Origin::Request(peer), list, true)
        .await?
        .stored()
        .await
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

/// Checks, authorises and queues an unidentified send.
async fn queue(
    state: &AppState,
    origin: Origin,
    list: Vec<UnidentifiedSend>,
    many: bool,
) -> Result<QueuedUnidentified, AppError> {
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
    // client): then requests share one place, and the proxy is what limits
    // each client; an anonymous socket from this host is its own place.
    let submitter = match (origin.remote_host(), origin) {
        (Some(ip), _) => Submitter::Peer(ip),
        (None, Origin::Socket { connection, .. }) => Submitter::Connection(connection),
        (None, Origin::Request(_)) => Submitter::Local,
    };
    let slot = state
        .writer
        .reserve(submitter)
        .map_err(|e| sends::write_error(&state.metrics, many, e))?;
    match submitter {
        Submitter::Peer(ip) => state.limits.unidentified_peer(ip, list.len())?,
        Submitter::Connection(id) => state.limits.unidentified_connection(id, list.len())?,
        Submitter::Device(_) | Submitter::Local => {}
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
    let queued = sends::queue(state, None, destinations, slot, many).await?;
    Ok(QueuedUnidentified {
        queued,
        metrics: state.metrics.clone(),
    })
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
        let record = access::lookup(state, &send.destination).await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_host_is_told_apart_on_both_families() {
        for local in ["127.0.0.1", "::1", "::ffff:127.0.0.1"] {
            let ip: IpAddr = local.parse().unwrap();
            assert_eq!(Origin::Request(Some(ip)).remote_host(), None, "{local}");
        }
        let remote: IpAddr = "2001:db8::7".parse().unwrap();
        let host = Origin::Socket {
            peer: Some(remote),
            connection: 1,
        }
        .remote_host();
        assert_eq!(host, Some("2001:db8::".parse().unwrap()));
    }
}
