//! A device's queue as its connection consumes it: envelopes read in queue
//! order, and acknowledgements that delete them. Acknowledgements go
//! through the group-commit writer, in order with the sends, so they cost
//! no transaction of their own.
//!
//! A failure here ends the connection rather than answering a request,
//! so it is a [`QueueError`], not an API error.

use crate::AppState;
use crate::auth::AuthedDevice;
use crate::delivery::StoredEnvelope;
use crate::store::{BatchOp, WriteError};

/// Why the queue could not be read or an acknowledgement not applied.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// Reading the queue failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The group-commit writer refused or failed the deletion.
    #[error("writer: {0}")]
    Writer(#[from] WriteError),
}

/// Up to `limit` envelopes queued for `device` past sequence number
/// `after`, oldest first.
pub async fn read_after(
    state: &AppState,
    device: &AuthedDevice,
    after: i64,
    limit: usize,
) -> Result<Vec<StoredEnvelope>, QueueError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    Ok(state
        .store
        .envelopes_after(device.account_id, device.device_id, after, limit)
        .await?)
}

/// Deletes envelopes `device` acknowledged; returns once that is committed.
pub async fn acknowledge(
    state: &AppState,
    device: &AuthedDevice,
    ids: Vec<Vec<u8>>,
) -> Result<(), QueueError> {
    Ok(state.writer.write(acknowledgement(device, ids)).await?)
}

/// Queues the deletion of envelopes `device` acknowledged, without waiting
/// for its commit (a failure is logged by the writer). Were it lost in a
/// crash, the envelopes would come again; clients drop duplicates.
pub async fn acknowledge_later(
    state: &AppState,
    device: &AuthedDevice,
    ids: Vec<Vec<u8>>,
) -> Result<(), QueueError> {
    Ok(state.writer.submit(acknowledgement(device, ids)).await?)
}

fn acknowledgement(device: &AuthedDevice, ids: Vec<Vec<u8>>) -> BatchOp {
    BatchOp::Acknowledge {
        account_id: device.account_id,
        device_id: device.device_id,
        ids,
    }
}
