//! Group commit: sends and acknowledgements from every connection are
//! queued to one writer, which applies whatever has accumulated in a single
//! transaction (one fsync) and then answers each caller. A caller is told
//! "stored" only after the commit, so durability is unchanged; throughput
//! no longer pays one disk flush per envelope.

use tokio::sync::{mpsc, oneshot};

use super::{NewEnvelope, Store, with_pool};

/// Most operations folded into one transaction.
pub const MAX_BATCH: usize = 512;

/// One write.
#[derive(Debug)]
pub enum BatchOp {
    /// Store these envelopes.
    Insert(Vec<NewEnvelope>),
    /// Delete these envelopes of a device.
    Acknowledge {
        /// Account.
        account_id: i64,
        /// Device.
        device_id: u32,
        /// Envelope ids.
        ids: Vec<Vec<u8>>,
    },
}

type Reply = oneshot::Sender<Result<u64, String>>;

/// Handle to the writer task.
#[derive(Debug, Clone)]
pub struct Batcher {
    queue: mpsc::Sender<(BatchOp, Reply)>,
}

impl Batcher {
    /// Starts the writer on the current runtime.
    pub fn start(store: Store) -> Self {
        let (queue, receiver) = mpsc::channel(MAX_BATCH * 4);
        tokio::spawn(run(store, receiver));
        Self { queue }
    }

    /// Applies one write; returns after it is committed (for an
    /// acknowledgement: how many envelopes were deleted).
    pub async fn write(&self, op: BatchOp) -> Result<u64, String> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send((op, reply))
            .await
            .map_err(|_| "writer stopped".to_string())?;
        answer.await.map_err(|_| "writer stopped".to_string())?
    }
}

async fn run(store: Store, mut receiver: mpsc::Receiver<(BatchOp, Reply)>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while receiver.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let ops: Vec<&BatchOp> = batch.iter().map(|(op, _)| op).collect();
        match store.apply_batch(&ops).await {
            Ok(results) => {
                for ((_, reply), result) in batch.drain(..).zip(results) {
                    let _ = reply.send(Ok(result));
                }
            }
            Err(_) => {
                // One bad operation must not fail the others: apply each
                // on its own.
                for (op, reply) in batch.drain(..) {
                    let result = store
                        .apply_batch(&[&op])
                        .await
                        .map(|r| r.first().copied().unwrap_or(0))
                        .map_err(|e| e.to_string());
                    let _ = reply.send(result);
                }
            }
        }
    }
}

impl Store {
    /// Applies writes in one transaction; returns per operation the rows
    /// affected.
    pub async fn apply_batch(&self, ops: &[&BatchOp]) -> Result<Vec<u64>, sqlx::Error> {
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let mut results = Vec::with_capacity(ops.len());
            for op in ops {
                let mut affected = 0;
                match op {
                    BatchOp::Insert(envelopes) => {
                        for e in envelopes {
                            affected += sqlx::query(
                                "INSERT INTO envelopes (envelope_id, account_id, device_id, sender, sender_device, created_at, expires_at, content) \
                                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                            )
                            .bind(&e.envelope_id[..])
                            .bind(e.account_id)
                            .bind(i64::from(e.device_id))
                            .bind(e.sender.as_deref())
                            .bind(e.sender_device.map(i64::from))
                            .bind(e.created_at)
                            .bind(e.expires_at)
                            .bind(&e.content)
                            .execute(&mut *tx)
                            .await?
                            .rows_affected();
                        }
                    }
                    BatchOp::Acknowledge { account_id, device_id, ids } => {
                        for id in ids {
                            affected += sqlx::query(
                                "DELETE FROM envelopes WHERE account_id = $1 AND device_id = $2 AND envelope_id = $3",
                            )
                            .bind(account_id)
                            .bind(i64::from(*device_id))
                            .bind(id)
                            .execute(&mut *tx)
                            .await?
                            .rows_affected();
                        }
                    }
                }
                results.push(affected);
            }
            tx.commit().await?;
            Ok(results)
        })
    }
}
