//! Sends: one envelope per device of the destination account, refused as a
//! whole when the sender's device list is stale, stored durably before the
//! sender is told it worked. The shape of a send is checked here; the
//! device lists are checked by the group-commit writer, in the transaction
//! that stores the envelopes (`store::sends`).
//!
//! HTTP and the WebSocket share this path: [`queue_send`] checks a send and
//! queues it behind every send queued before it, so one connection's sends
//! are stored in the order it made them.

use std::collections::BTreeSet;
use std::sync::Arc;

use rand::RngCore;
use starling_crypto::padding::is_envelope_bucket;
use starling_crypto::sealed::is_sealed;
use starling_protocol::api::{
    DeviceEnvelope, MAX_DESTINATIONS, MultiSendRequest, SendResponse, StaleLists,
};

use starling_protocol::Username;

use crate::AppState;
use crate::auth::AuthedDevice;
use crate::encoding::decode_b64;
use crate::error::{AppError, ErrorCode};
use crate::metrics::Metrics;
use crate::store::{
    Commit, Destination, NewEnvelope, SendOp, SendRefusal, SendSlot, Submitter, WriteError,
    accepted_hour, now_millis,
};

/// The envelopes of a send to one account: device id and ciphertext.
pub type Envelopes = Vec<(u32, Vec<u8>)>;

/// Decodes the base64 content of each envelope of a JSON send.
pub fn decode_envelopes(envelopes: &[DeviceEnvelope]) -> Result<Envelopes, AppError> {
    envelopes
        .iter()
        .map(|e| Ok((e.device_id, decode_b64("content", &e.content)?)))
        .collect()
}

/// Sends to one account and waits until the envelopes are stored.
pub async fn send_to_account(
    state: &AppState,
    sender: &AuthedDevice,
    destination: String,
    envelopes: Envelopes,
    sealed: bool,
) -> Result<SendResponse, AppError> {
    queue_send(state, sender, destination, envelopes, sealed)
        .await?
        .stored()
        .await
}

/// Checks a send's shape and queues it to the writer, behind every send
/// queued before it (so one connection's sends keep their order). The
/// writer checks the device list in the transaction that stores the
/// envelopes; the returned [`QueuedSend`] resolves once they are stored,
/// or with the refusal.
pub async fn queue_send(
    state: &AppState,
    sender: &AuthedDevice,
    destination: String,
    envelopes: Envelopes,
    sealed: bool,
) -> Result<QueuedSend, AppError> {
    Username::parse(&destination)?;
    let slot = admit_send(state, sender, 1)?;
    check_envelopes(state, &envelopes)?;
    let anonymous = sealed || envelopes.iter().any(|(_, c)| is_sealed(c));
    let destination = Destination {
        username: destination,
        envelopes: build(Some(sender), envelopes, anonymous),
    };
    queue(state, Some(sender.key()), vec![destination], slot, false).await
}

/// Sends to several accounts at once (a group message): stored together,
/// or refused together, and then answered.
pub async fn send_many(
    state: &AppState,
    sender: &AuthedDevice,
    request: MultiSendRequest,
) -> Result<SendResponse, AppError> {
    check_destinations(request.sends.iter().map(|s| s.destination.as_str()))?;
    let mut decoded = Vec::with_capacity(request.sends.len());
    for send in request.sends {
        decoded.push((send.destination, decode_envelopes(&send.envelopes)?));
    }
    send_decoded(state, sender, decoded, request.sealed).await
}

/// [`send_many`] of envelopes already decoded, to destinations already
/// checked.
pub async fn send_decoded(
    state: &AppState,
    sender: &AuthedDevice,
    decoded: Vec<(String, Envelopes)>,
    sealed: bool,
) -> Result<SendResponse, AppError> {
    let slot = admit_send(state, sender, decoded.len())?;
    for (_, envelopes) in &decoded {
        check_envelopes(state, envelopes)?;
    }
    // One sealed envelope makes the whole request anonymous: rows of one
    // request stored side by side, some naming the sender, would name the
    // sender of the sealed ones too.
    let anonymous = sealed
        || decoded
            .iter()
            .any(|(_, envelopes)| envelopes.iter().any(|(_, c)| is_sealed(c)));
    let destinations = decoded
        .into_iter()
        .map(|(username, envelopes)| Destination {
            username,
            envelopes: build(Some(sender), envelopes, anonymous),
        })
        .collect();
    queue(state, Some(sender.key()), destinations, slot, true)
        .await?
        .stored()
        .await
}

/// A multi-account send names 1 to [`MAX_DESTINATIONS`] accounts, each
/// once, each a valid username (a malformed name never reaches a batch).
pub(crate) fn check_destinations<'a>(
    destinations: impl ExactSizeIterator<Item = &'a str>,
) -> Result<(), AppError> {
    let count = destinations.len();
    if count == 0 || count > MAX_DESTINATIONS {
        return Err(AppError::bad_request(
            ErrorCode::BadDestinations,
            format!("a send names 1 to {MAX_DESTINATIONS} accounts"),
        ));
    }
    let mut seen = BTreeSet::new();
    for destination in destinations {
        Username::parse(destination)?;
        seen.insert(destination);
    }
    if seen.len() != count {
        return Err(AppError::bad_request(
            ErrorCode::DuplicateDestination,
            "each account once per send",
        ));
    }
    Ok(())
}

/// Takes the send's place among those waiting for the writer, or refuses
/// it as busy, before the send spends a token of the device's rate limit:
/// a client that comes back after the `Retry-After` of a busy refusal
/// finds its bucket as it left it, since the server took nothing. Then
/// spends one token per recipient account.
fn admit_send(
    state: &AppState,
    sender: &AuthedDevice,
    recipients: usize,
) -> Result<SendSlot, AppError> {
    let device = (sender.account_id, sender.device_id);
    let slot = state
        .writer
        .reserve(Submitter::Device(device))
        .map_err(|e| write_error(&state.metrics, recipients > 1, e))?;
    state.limits.send_to(device, recipients)?;
    Ok(slot)
}

/// Size and shape checks.
pub(crate) fn check_envelopes(
    state: &AppState,
    envelopes: &[(u32, Vec<u8>)],
) -> Result<(), AppError> {
    let limits = &state.config.messages;
    if envelopes.is_empty() {
        return Err(AppError::bad_request(
            ErrorCode::NoEnvelopes,
            "a send needs at least one envelope",
        ));
    }
    if envelopes.len() > limits.max_devices_per_account as usize {
        return Err(AppError::bad_request(
            ErrorCode::TooManyEnvelopes,
            "more envelopes than an account has devices",
        ));
    }
    if let Some((device, _)) = envelopes
        .iter()
        .find(|(_, c)| c.len() > limits.max_envelope_bytes)
    {
        return Err(AppError::TooLarge(format!(
            "envelope for device {device} exceeds {} bytes",
            limits.max_envelope_bytes
        )));
    }
    if let Some((device, content)) = envelopes
        .iter()
        .find(|(_, c)| is_sealed(c) && !is_envelope_bucket(c.len() as u64))
    {
        return Err(AppError::bad_request(
            ErrorCode::UnpaddedEnvelope,
            format!(
                "the sealed envelope for device {device} is {} bytes, not a padding bucket (SPEC §14.2)",
                content.len()
            ),
        ));
    }
    let named: BTreeSet<u32> = envelopes.iter().map(|(d, _)| *d).collect();
    if named.len() != envelopes.len() {
        return Err(AppError::bad_request(
            ErrorCode::DuplicateDevice,
            "one envelope per device",
        ));
    }
    Ok(())
}

/// The envelopes of a send to one account (the writer fills in the
/// account from the username); `anonymous` when the request holds any
/// sealed content (SPEC §15), which is never stored with a sender.
pub(crate) fn build(
    sender: Option<&AuthedDevice>,
    envelopes: Envelopes,
    anonymous: bool,
) -> Vec<NewEnvelope> {
    let sender = sender.filter(|_| !anonymous);
    let hour = accepted_hour(now_millis());
    // Ids must be unique and unguessable: the thread's CSPRNG (seeded and
    // reseeded from the OS) gives that without a system call per envelope.
    let mut rng = rand::thread_rng();
    envelopes
        .into_iter()
        .map(|(device_id, content)| {
            let mut envelope_id = [0u8; 16];
            rng.fill_bytes(&mut envelope_id);
            NewEnvelope {
                envelope_id,
                account_id: 0,
                device_id,
                sender: sender.map(|s| s.username.clone()),
                sender_device: sender.map(|s| s.device_id),
                created_at: hour,
                content,
            }
        })
        .collect()
}

/// A send queued to the group-commit writer.
#[derive(Debug)]
pub struct QueuedSend {
    metrics: Arc<Metrics>,
    count: usize,
    /// A multi-recipient send reports stale lists per account.
    many: bool,
    commit: Commit,
}

impl QueuedSend {
    /// Waits until every envelope is stored (the writer then wakes their
    /// devices), or the writer refused the send.
    pub async fn stored(self) -> Result<SendResponse, AppError> {
        match self.commit.await {
            Ok(queue_full) => Ok(SendResponse {
                stored: self.count - queue_full.len(),
                queue_full,
            }),
            Err(error) => Err(write_error(&self.metrics, self.many, error)),
        }
    }
}

/// What a client is told about a send the writer did not store.
pub(crate) fn write_error(metrics: &Metrics, many: bool, error: WriteError) -> AppError {
    match error {
        WriteError::Refused(SendRefusal::UnknownAccount) => AppError::NotFound("account"),
        WriteError::Refused(SendRefusal::SenderRevoked) => {
            AppError::Forbidden("this device was removed or its account disabled")
        }
        WriteError::Refused(SendRefusal::QueueFull(full)) => {
            let devices: Vec<String> = full
                .iter()
                .map(|f| format!("{} device {}", f.destination, f.device_id))
                .collect();
            AppError::Conflict {
                code: ErrorCode::QueueFull,
                reason: format!(
                    "nothing was stored: the queue of undelivered messages is full for {} \
                     (the device has not fetched its messages for a long time)",
                    devices.join(", ")
                ),
            }
        }
        WriteError::Refused(SendRefusal::StaleDevices(stale)) => {
            metrics.stale_device_refusals.inc();
            if many {
                return AppError::StaleDevicesMany(stale);
            }
            let lists = stale.into_values().next();
            let StaleLists { missing, extra } = lists.unwrap_or(StaleLists {
                missing: Vec::new(),
                extra: Vec::new(),
            });
            AppError::StaleDevices { missing, extra }
        }
        // Nothing was stored, and the client may send again after a second.
        WriteError::Busy => {
            metrics.sends_refused_busy.inc();
            AppError::Busy {
                retry_after_secs: 1,
            }
        }
        WriteError::Failed(e) => AppError::Internal(format!("storing envelopes: {e}")),
    }
}

/// Queues a send's envelopes, to be checked and stored in one transaction
/// (`sender` is `None` for an unidentified send).
pub(crate) async fn queue(
    state: &AppState,
    sender: Option<(i64, u32)>,
    destinations: Vec<Destination>,
    slot: SendSlot,
    many: bool,
) -> Result<QueuedSend, AppError> {
    let count = destinations.iter().map(|d| d.envelopes.len()).sum();
    let op = SendOp {
        sender,
        destinations,
    };
    let commit = state
        .writer
        .enqueue_send(op, slot)
        .await
        .map_err(|e| write_error(&state.metrics, many, e))?;
    Ok(QueuedSend {
        metrics: state.metrics.clone(),
        count,
        many,
        commit,
    })
}
