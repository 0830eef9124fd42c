//! `PUT /v1/multi-recipient`: a multi-recipient sealed envelope
//! (`crypto/SPEC.md` §15.6) uploaded once. The shared `E` and `ct` come
//! once, each device's `C` and `AT` apart; the server assembles each
//! device's `0x32 ‖ C ‖ AT ‖ E ‖ ct` and stores it exactly as a send of
//! those envelopes would be stored (`sends` with a credential,
//! `unidentified` without): the same checks, limits and stale-list
//! answers, and no sender at rest either way.

use std::collections::BTreeSet;
use std::net::IpAddr;

use starling_crypto::padding::is_envelope_bucket;
use starling_protocol::api::{MultiRecipientRequest, SendResponse};

use super::sends::{self, Envelopes};
use super::unidentified;
use crate::AppState;
use crate::auth::AuthedDevice;
use crate::encoding::decode_b64;
use crate::error::{AppError, ErrorCode};

/// Every device's copy repeats `ct`: the copies together may come to at
/// most the request size limit (what a per-device request could carry),
/// so that a small upload cannot make the server build more.
const ASSEMBLED_PER_REQUEST_BYTE: usize = 1;

/// Version byte, `C` and `AT`, and `E`: what a copy adds to `ct`.
const COPY_HEADER: usize = 1 + 32 + 16 + 32;

/// One destination, split: its username, each device's envelope, and the
/// access key as presented.
type Split = (String, Envelopes, Option<String>);

/// Fixed-length base64 field `name`.
fn fixed<const N: usize>(name: &'static str, text: &str) -> Result<[u8; N], AppError> {
    <[u8; N]>::try_from(decode_b64(name, text)?.as_slice()).map_err(|_| {
        AppError::bad_request(ErrorCode::BadJson, format!("`{name}` must be {N} bytes"))
    })
}

/// Checks the request's shape and assembles each device's envelope. What
/// every copy shares (its length, hence the size limit and the padding
/// bucket) and each destination's device list are checked first, so a
/// refused upload builds nothing.
pub fn split(state: &AppState, request: MultiRecipientRequest) -> Result<Vec<Split>, AppError> {
    sends::check_destinations(request.recipients.iter().map(|r| r.destination.as_str()))?;
    let ephemeral = fixed::<32>("ephemeral_public", &request.ephemeral_public)?;
    let ciphertext = decode_b64("ciphertext", &request.ciphertext)?;
    let each = COPY_HEADER + ciphertext.len();
    let limits = &state.config.messages;
    if each > limits.max_envelope_bytes {
        return Err(AppError::TooLarge(format!(
            "each copy would exceed {} bytes",
            limits.max_envelope_bytes
        )));
    }
    if !is_envelope_bucket(each as u64) {
        return Err(AppError::bad_request(
            ErrorCode::UnpaddedEnvelope,
            format!("a {each}-byte copy is not a padding bucket (SPEC §15.4)"),
        ));
    }
    for recipient in &request.recipients {
        let ids: BTreeSet<u32> = recipient.devices.iter().map(|d| d.device_id).collect();
        if ids.is_empty()
            || ids.len() != recipient.devices.len()
            || ids.len() > limits.max_devices_per_account as usize
        {
            return Err(AppError::bad_request(
                ErrorCode::TooManyEnvelopes,
                format!(
                    "each destination needs 1 to {} distinct devices",
                    limits.max_devices_per_account
                ),
            ));
        }
    }
    let devices: usize = request.recipients.iter().map(|r| r.devices.len()).sum();
    let budget = state
        .config
        .max_request_bytes
        .saturating_mul(ASSEMBLED_PER_REQUEST_BYTE);
    if devices.saturating_mul(each) > budget {
        return Err(AppError::TooLarge(format!(
            "{devices} copies of a {each}-byte envelope exceed {budget} bytes; send in parts"
        )));
    }
    request
        .recipients
        .into_iter()
        .map(|recipient| {
            let envelopes = recipient
                .devices
                .iter()
                .map(|device| {
                    let c = fixed::<32>("c", &device.c)?;
                    let at = fixed::<16>("at", &device.at)?;
                    let envelope =
                        starling_crypto::sealed::assemble(&c, &at, &ephemeral, &ciphertext);
                    Ok((device.device_id, envelope))
                })
                .collect::<Result<Envelopes, AppError>>()?;
            Ok((recipient.destination, envelopes, recipient.access_key))
        })
        .collect()
}

/// Stores an authenticated multi-recipient upload.
pub async fn send(
    state: &AppState,
    sender: &AuthedDevice,
    request: MultiRecipientRequest,
) -> Result<SendResponse, AppError> {
    if request.recipients.iter().any(|r| r.access_key.is_some()) {
        return Err(AppError::bad_request(
            ErrorCode::BadJson,
            "an access key goes only with an upload that carries no credential",
        ));
    }
    let split = split(state, request)?;
    let decoded = split.into_iter().map(|(d, e, _)| (d, e)).collect();
    let stored = sends::send_decoded(state, sender, decoded, true).await?;
    state.metrics.sends_multi_recipient.inc();
    Ok(stored)
}

/// Stores an unidentified multi-recipient upload.
pub async fn send_unidentified(
    state: &AppState,
    peer: Option<IpAddr>,
    request: MultiRecipientRequest,
) -> Result<SendResponse, AppError> {
    let split = split(state, request)?;
    let stored = unidentified::send_decoded(state, peer, split).await?;
    state.metrics.sends_multi_recipient.inc();
    Ok(stored)
}
