//! Group commit: sends and acknowledgements from every connection are
//! queued to one writer, which applies whatever has accumulated in a single
//! transaction (one fsync) and then answers each caller. A caller is told
//! "stored" only after the commit, so durability is unchanged; throughput
//! no longer pays one disk flush per envelope.
//!
//! Inside the transaction the writer reads the device lists of every
//! account the batch's sends address, inserts the envelopes of the accepted
//! sends and deletes acknowledged envelopes. On PostgreSQL, where every
//! statement is a round trip, it does so in a few multi-row statements per
//! batch, on a pooled connection it keeps for itself. On SQLite it runs on
//! a thread of its own with a rusqlite connection of its own
//! (`sqlite_batch`, decision 23), one prepared row-statement at a time.
//! Once the queue is long, new sends are refused as busy (decision 20)
//! rather than stalling the connections that make them. After the commit
//! it hands every stored envelope, in queue order, to the [`Notifier`], so
//! a connected device gets it without reading it back.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use sqlx::pool::PoolConnection;
use sqlx::{Acquire, PgConnection, Postgres, QueryBuilder, Row};
use tokio::sync::{mpsc, oneshot};

use super::queue_usage::{DeviceKey, QueueCaps, QueueUsage};
use super::sends::{self, Accounts, InsertRow, Plan, SendOp, SendRefusal};
use super::sqlite_batch::SqliteWriter;
use super::{Backend, NewEnvelope, Pool, Store};
use crate::delivery::{CommittedEnvelope, Notifier, StoredEnvelope};
use crate::metrics::Metrics;
use starling_protocol::api::FullQueue;

/// Most operations folded into one transaction.
pub const MAX_BATCH: usize = 512;
/// Rows per multi-row PostgreSQL statement: 8 parameters per inserted
/// envelope and 3 per acknowledged one stay far below its parameter limit.
const ROWS_PER_STATEMENT: usize = 128;

/// One write.
#[derive(Debug)]
pub enum BatchOp {
    /// Store a send, if the sender's device lists are current.
    Send(SendOp),
    /// Store these envelopes as they are (account ids already known).
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

/// What a committed batch did.
#[derive(Debug, Default)]
pub struct BatchOutcome {
    /// The envelopes inserted, in queue order.
    pub committed: Vec<CommittedEnvelope>,
    /// Envelopes the acknowledgements deleted.
    pub deleted: u64,
    /// Per operation, why it was refused (sends only).
    pub refusals: Vec<Option<SendRefusal>>,
    /// Per operation, the devices a stored send left out for a full queue.
    pub full: Vec<Vec<FullQueue>>,
}

/// A write that did not happen.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The send was refused; nothing of it was stored.
    #[error("send refused")]
    Refused(SendRefusal),
    /// Too many writes wait for the writer already: the send was not
    /// queued (nothing of it was stored), and may be retried.
    #[error("the writer is busy")]
    Busy,
    /// The database failed, or the writer stopped.
    #[error("{0}")]
    Failed(String),
}

/// What a committed write reports: the devices a send left out.
type Answer = Result<Vec<FullQueue>, WriteError>;

type Reply = oneshot::Sender<Answer>;

/// Sends a device may have waiting for the writer at once; beyond, its
/// sends are refused as busy, whatever the queue.
pub const MAX_IN_FLIGHT_PER_DEVICE: u32 = 64;

/// Writes the queue to the writer holds; a write beyond it waits for room.
pub const QUEUE_CAPACITY: usize = MAX_BATCH * 4;

/// Handle to the writer.
#[derive(Debug, Clone)]
pub struct Batcher {
    queue: mpsc::Sender<(BatchOp, Reply)>,
    /// Queued writes from which new sends are refused as [`WriteError::Busy`]
    /// to devices that already have one waiting.
    busy_at: usize,
    /// Sends waiting for the writer, per sending device.
    in_flight: Arc<Mutex<HashMap<Submitter, u32>>>,
}

impl Batcher {
    /// Starts the writer with the current runtime; `notifier` hears of every
    /// envelope it commits, `metrics` counts what it stored and deleted.
    /// Once `busy_at` writes wait in its queue, [`Batcher::reserve`]
    /// refuses the sends of devices that already have one waiting, and
    /// halfway from there to [`QUEUE_CAPACITY`] every send.
    /// A send that would take a device past `caps` is left out for it.
    /// Fails outside a Tokio runtime, or if the writer's thread cannot be
    /// started.
    pub fn start(
        store: Store,
        notifier: Arc<dyn Notifier>,
        metrics: Arc<Metrics>,
        busy_at: usize,
        caps: QueueCaps,
    ) -> std::io::Result<Self> {
        let (queue, receiver) = mpsc::channel(QUEUE_CAPACITY);
        let writer = Writer {
            store,
            notifier,
            metrics,
            usage: QueueUsage::new(caps),
        };
        let handle = tokio::runtime::Handle::try_current().map_err(std::io::Error::other)?;
        match writer.store.backend() {
            // On SQLite the writer's statements block: it runs on a thread
            // of its own, driving its future (the queue, the replies) with
            // the runtime's handle, and never holds up a connection task.
            Backend::Sqlite => {
                std::thread::Builder::new()
                    .name("starling-writer".into())
                    .spawn(move || handle.block_on(writer.run(receiver)))?;
            }
            // PostgreSQL's answers arrive through the runtime's I/O driver,
            // which the runtime's workers poll: a thread of its own would
            // only add a hand-off.
            Backend::Postgres => {
                handle.spawn(writer.run(receiver));
            }
        }
        Ok(Self {
            queue,
            busy_at,
            in_flight: Arc::default(),
        })
    }

    /// Writes waiting for the writer (not counting the batch it applies).
    pub fn queued(&self) -> usize {
        self.queue.max_capacity() - self.queue.capacity()
    }

    /// Whether the writer is past its busy mark: from there a device with
    /// a send waiting has its next one refused ([`Batcher::reserve`]), so
    /// a connection that can wait before reading its next send should.
    pub fn past_busy_mark(&self) -> bool {
        self.queued() >= self.busy_at
    }

    /// Takes a place for a send of `device` among the sends waiting for
    /// the writer, unless overload refuses it ([`WriteError::Busy`]): at
    /// [`MAX_IN_FLIGHT_PER_DEVICE`] sends waiting; above the busy mark if
    /// it has any; and, whatever it has, once the queue is halfway from
    /// the busy mark to its capacity, so that acknowledgements always find
    /// room and connections never stall behind a full queue. Overload is
    /// shared fairly: a device flooding the queue is refused, while one
    /// with nothing waiting still gets its send queued. The place is given
    /// back when the slot is dropped.
    pub fn reserve(&self, device: Submitter) -> Result<SendSlot, WriteError> {
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        let waiting = in_flight.get(&device).copied().unwrap_or(0);
        let queued = self.queued();
        let hard = self.busy_at + QUEUE_CAPACITY.saturating_sub(self.busy_at) / 2;
        if waiting >= MAX_IN_FLIGHT_PER_DEVICE
            || (waiting > 0 && queued >= self.busy_at)
            || queued >= hard
        {
            return Err(WriteError::Busy);
        }
        in_flight.insert(device, waiting + 1);
        Ok(SendSlot {
            in_flight: self.in_flight.clone(),
            device,
        })
    }

    /// Queues a send like [`Batcher::enqueue`], holding its `slot` (from
    /// [`Batcher::reserve`]) until it is answered: under overload the
    /// server answers "busy" to those who load it and goes on delivering
    /// and deleting, instead of stalling every connection behind the
    /// queue. Acknowledgements are never refused; they shrink the work.
    pub async fn enqueue_send(&self, op: SendOp, slot: SendSlot) -> Result<Commit, WriteError> {
        let mut commit = self.enqueue(BatchOp::Send(op)).await?;
        commit.slot = Some(slot);
        Ok(commit)
    }

    /// Queues one write without waiting for its commit (it is applied
    /// in order with the others; a failure is logged).
    pub async fn submit(&self, op: BatchOp) -> Result<(), WriteError> {
        self.enqueue(op).await.map(drop)
    }

    /// Queues one write behind those already queued; the returned
    /// [`Commit`] resolves once it is committed.
    pub async fn enqueue(&self, op: BatchOp) -> Result<Commit, WriteError> {
        let (reply, answer) = oneshot::channel();
        self.queue.send((op, reply)).await.map_err(|_| stopped())?;
        Ok(Commit { answer, slot: None })
    }

    /// Applies one write; returns after it is committed.
    pub async fn write(&self, op: BatchOp) -> Result<(), WriteError> {
        self.enqueue(op).await?.await.map(drop)
    }
}

/// Who a send's place among those waiting for the writer is counted
/// against: the sending device, or for an unidentified send the peer's
/// host (all of them together when it is the server's own host: a
/// reverse proxy, which limits each client itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Submitter {
    /// An authenticated device.
    Device((i64, u32)),
    /// Unidentified senders at this host (`limits::peer_key`).
    Peer(std::net::IpAddr),
    /// Unidentified senders on this host or of unknown address, by HTTP.
    Local,
    /// An anonymous WebSocket from this host (its number in this process).
    Connection(u64),
}

/// A device's place among the sends waiting for the writer, given back
/// when its send is answered (or abandoned).
#[derive(Debug)]
pub struct SendSlot {
    in_flight: Arc<Mutex<HashMap<Submitter, u32>>>,
    device: Submitter,
}

impl Drop for SendSlot {
    fn drop(&mut self) {
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(waiting) = in_flight.get_mut(&self.device) {
            *waiting = waiting.saturating_sub(1);
            if *waiting == 0 {
                in_flight.remove(&self.device);
            }
        }
    }
}

fn stopped() -> WriteError {
    WriteError::Failed("writer stopped".to_string())
}

/// A queued write; resolves when it is committed (with the devices a send
/// left out for a full queue), or refused.
#[derive(Debug)]
pub struct Commit {
    answer: oneshot::Receiver<Answer>,
    slot: Option<SendSlot>,
}

impl Future for Commit {
    type Output = Answer;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let answer = Pin::new(&mut self.answer).poll(cx);
        answer.map(|answer| {
            self.slot = None;
            answer.unwrap_or_else(|_| Err(stopped()))
        })
    }
}

struct Writer {
    store: Store,
    notifier: Arc<dyn Notifier>,
    metrics: Arc<Metrics>,
    usage: QueueUsage,
}

impl Writer {
    async fn run(mut self, mut receiver: mpsc::Receiver<(BatchOp, Reply)>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        let mut connection = None;
        while receiver.recv_many(&mut batch, MAX_BATCH).await > 0 {
            let ops: Vec<&BatchOp> = batch.iter().map(|(op, _)| op).collect();
            match self.apply(&mut connection, &ops).await {
                Ok(outcome) => {
                    let answers = self.announce(outcome);
                    for ((_, reply), answer) in batch.drain(..).zip(answers) {
                        let _ = reply.send(answer);
                    }
                }
                Err(_) => {
                    // One bad operation must not fail the others: apply
                    // each on its own.
                    for (op, reply) in batch.drain(..) {
                        let result = match self.apply(&mut connection, &[&op]).await {
                            Ok(outcome) => self
                                .announce(outcome)
                                .pop()
                                .unwrap_or_else(|| Ok(Vec::new())),
                            Err(error) => {
                                tracing::warn!(error = %error, "a write of the group commit failed");
                                Err(WriteError::Failed(error.to_string()))
                            }
                        };
                        let _ = reply.send(result);
                    }
                }
            }
        }
    }

    /// Applies `ops` on the writer's own connection, taking one from the
    /// pool first if it has none; a connection that failed is given back
    /// (and replaced on the next write), since it may be broken.
    async fn apply(
        &mut self,
        connection: &mut Option<WriterConnection>,
        ops: &[&BatchOp],
    ) -> Result<BatchOutcome, sqlx::Error> {
        let mut held = match connection.take() {
            Some(held) => held,
            None => self.store.writer_connection().await?,
        };
        match held.apply(ops, &mut self.usage).await {
            Ok(outcome) => {
                *connection = Some(held);
                Ok(outcome)
            }
            Err(error) => {
                // What the failed transaction counted did not happen.
                self.usage.forget();
                Err(error)
            }
        }
    }

    /// Counts and announces what was committed; returns each operation's
    /// answer.
    fn announce(&self, outcome: BatchOutcome) -> Vec<Answer> {
        self.metrics
            .envelopes_stored
            .inc_by(outcome.committed.len() as u64);
        self.metrics.envelopes_acknowledged.inc_by(outcome.deleted);
        for envelope in outcome.committed {
            self.notifier.envelope_committed(envelope);
        }
        let refused_full = outcome.full.iter().map(Vec::len).sum::<usize>()
            + outcome
                .refusals
                .iter()
                .map(|r| match r {
                    Some(SendRefusal::QueueFull(full)) => full.len(),
                    _ => 0,
                })
                .sum::<usize>();
        self.metrics
            .envelopes_refused_queue_full
            .inc_by(refused_full as u64);
        outcome
            .refusals
            .into_iter()
            .zip(outcome.full)
            .map(|(refusal, full)| match refusal {
                Some(refusal) => Err(WriteError::Refused(refusal)),
                None => Ok(full),
            })
            .collect()
    }
}

impl Store {
    /// Applies writes in one transaction; returns the envelopes inserted,
    /// in queue order, how many the acknowledgements deleted, and which
    /// sends were refused. (On SQLite the statements run on the calling
    /// thread, as on the writer's.)
    pub async fn apply_batch(&self, ops: &[&BatchOp]) -> Result<BatchOutcome, sqlx::Error> {
        let mut usage = QueueUsage::new(QueueCaps {
            max_envelopes: u64::MAX,
            max_bytes: u64::MAX,
        });
        self.writer_connection().await?.apply(ops, &mut usage).await
    }

    /// A connection for a writer to keep: on SQLite one of its own to the
    /// database file, on PostgreSQL one taken from the pool.
    async fn writer_connection(&self) -> Result<WriterConnection, sqlx::Error> {
        Ok(match &self.pool {
            Pool::Sqlite(_) => {
                let file = self.sqlite_file.as_deref().ok_or_else(|| {
                    sqlx::Error::Configuration("the SQLite store has no database file".into())
                })?;
                WriterConnection::Sqlite(SqliteWriter::open(file).map_err(sqlite_error)?)
            }
            Pool::Postgres(pool) => WriterConnection::Postgres(pool.acquire().await?),
        })
    }
}

/// A rusqlite error as the store reports errors.
fn sqlite_error(error: rusqlite::Error) -> sqlx::Error {
    sqlx::Error::AnyDriverError(Box::new(error))
}

/// The connection the group-commit writer keeps for itself.
enum WriterConnection {
    Sqlite(SqliteWriter),
    Postgres(PoolConnection<Postgres>),
}

impl WriterConnection {
    async fn apply(
        &mut self,
        ops: &[&BatchOp],
        usage: &mut QueueUsage,
    ) -> Result<BatchOutcome, sqlx::Error> {
        match self {
            Self::Sqlite(writer) => writer.apply(ops, usage).map_err(sqlite_error),
            Self::Postgres(connection) => apply_postgres(connection, ops, usage).await,
        }
    }
}

/// Applies `ops` in one PostgreSQL transaction, a few multi-row statements
/// for the whole batch.
async fn apply_postgres(
    connection: &mut PgConnection,
    ops: &[&BatchOp],
    usage: &mut QueueUsage,
) -> Result<BatchOutcome, sqlx::Error> {
    let mut tx = connection.begin().await?;
    // The destinations' accounts and the senders', in the same statement:
    // a send from a device removed meanwhile is refused in this commit.
    let accounts = read_accounts(
        &mut tx,
        &sends::destination_usernames(ops),
        &sends::sender_accounts(ops),
    )
    .await?;
    let enabled = sends::enabled_devices(&accounts);
    let mut plan = sends::plan(ops, &accounts, &enabled);
    let now = Instant::now();
    let unread = usage.to_read(plan.send_devices(), now);
    for chunk in unread.chunks(ROWS_PER_STATEMENT) {
        let waiting = read_usage(&mut tx, chunk).await?;
        for device in chunk {
            let (envelopes, bytes) = waiting.get(device).copied().unwrap_or((0, 0));
            usage.read(*device, envelopes, bytes, now);
        }
    }
    plan.apply_queue_caps(usage);
    let mut committed = Vec::with_capacity(plan.rows.len());
    for chunk in plan.rows.chunks(ROWS_PER_STATEMENT) {
        let mut insert = insert_statement(chunk);
        insert.push(" RETURNING seq, envelope_id");
        let mut seqs = HashMap::with_capacity(chunk.len());
        for row in insert.build().fetch_all(&mut *tx).await? {
            let id: Vec<u8> = row.try_get("envelope_id")?;
            seqs.insert(id, row.try_get::<i64, _>("seq")?);
        }
        for row in chunk {
            let seq = seqs.get(&row.envelope.envelope_id[..]).copied();
            let seq = seq.ok_or_else(|| {
                sqlx::Error::Protocol("an inserted envelope has no sequence".into())
            })?;
            committed.push(committed_envelope(seq, row));
        }
    }
    let mut deleted = 0;
    for chunk in acknowledgements(ops).chunks(ROWS_PER_STATEMENT) {
        let mut delete = delete_statement(chunk);
        delete.push(" RETURNING account_id, device_id, length(content) AS size");
        for row in delete.build().fetch_all(&mut *tx).await? {
            let device = device_key(row.try_get("account_id")?, row.try_get("device_id")?);
            usage.deleted(device, row.try_get::<i32, _>("size")?.unsigned_abs().into());
            deleted += 1;
        }
    }
    tx.commit().await?;
    committed.sort_by_key(|c| c.envelope.seq);
    Ok(outcome(committed, deleted, plan))
}

/// The outcome of a committed batch.
pub(super) fn outcome(
    committed: Vec<CommittedEnvelope>,
    deleted: u64,
    plan: Plan<'_>,
) -> BatchOutcome {
    BatchOutcome {
        committed,
        deleted,
        refusals: plan.refusals,
        full: plan.full,
    }
}

/// A device as its columns store it.
pub(super) fn device_key(account_id: i64, device_id: i64) -> DeviceKey {
    (account_id, u32::try_from(device_id).unwrap_or(u32::MAX))
}

/// How many envelopes, and bytes, wait for each of `devices` (those
/// with none are left out: they wait for nothing).
async fn read_usage(
    connection: &mut PgConnection,
    devices: &[DeviceKey],
) -> Result<HashMap<DeviceKey, (u64, u64)>, sqlx::Error> {
    let mut query = QueryBuilder::<Postgres>::new(
        "SELECT account_id, device_id, count(*) AS envelopes, \
         coalesce(sum(length(content)), 0)::BIGINT AS bytes FROM envelopes WHERE ",
    );
    let mut terms = query.separated(" OR ");
    for (account_id, device_id) in devices {
        terms.push("(account_id = ");
        terms.push_bind_unseparated(*account_id);
        terms.push_unseparated(" AND device_id = ");
        terms.push_bind_unseparated(i64::from(*device_id));
        terms.push_unseparated(")");
    }
    query.push(" GROUP BY account_id, device_id");
    let mut usage = HashMap::with_capacity(devices.len());
    for row in query.build().fetch_all(&mut *connection).await? {
        usage.insert(
            device_key(row.try_get("account_id")?, row.try_get("device_id")?),
            (
                row.try_get::<i64, _>("envelopes")?.unsigned_abs(),
                row.try_get::<i64, _>("bytes")?.unsigned_abs(),
            ),
        );
    }
    Ok(usage)
}

/// Reads the enabled accounts among `usernames`, and those with the ids
/// `account_ids`, with their devices.
async fn read_accounts(
    connection: &mut PgConnection,
    usernames: &[&str],
    account_ids: &[i64],
) -> Result<Accounts, sqlx::Error> {
    let mut accounts = Accounts::new();
    let mut chunks: Vec<&[&str]> = usernames.chunks(ROWS_PER_STATEMENT).collect();
    if chunks.is_empty() {
        chunks.push(&[]);
    }
    for (index, chunk) in chunks.into_iter().enumerate() {
        // The account ids go with the first statement.
        let ids = if index == 0 { account_ids } else { &[] };
        if chunk.is_empty() && ids.is_empty() {
            continue;
        }
        let mut query = QueryBuilder::<Postgres>::new(
            "SELECT a.username, a.id, d.device_id FROM accounts a \
             LEFT JOIN devices d ON d.account_id = a.id WHERE NOT a.disabled AND (",
        );
        if !chunk.is_empty() {
            query.push("a.username IN (");
            let mut list = query.separated(", ");
            for username in chunk {
                list.push_bind(*username);
            }
            query.push(")");
        }
        if !ids.is_empty() {
            if !chunk.is_empty() {
                query.push(" OR ");
            }
            query.push("a.id IN (");
            let mut list = query.separated(", ");
            for id in ids {
                list.push_bind(*id);
            }
            query.push(")");
        }
        query.push(")");
        for row in query.build().fetch_all(&mut *connection).await? {
            sends::add_account_row(
                &mut accounts,
                row.try_get("username")?,
                row.try_get("id")?,
                row.try_get("device_id")?,
            );
        }
    }
    Ok(accounts)
}

/// Every acknowledged id with the device that acknowledged it.
pub(super) fn acknowledgements<'a>(ops: &[&'a BatchOp]) -> Vec<(i64, u32, &'a [u8])> {
    ops.iter()
        .filter_map(|op| match op {
            BatchOp::Acknowledge {
                account_id,
                device_id,
                ids,
            } => Some(
                ids.iter()
                    .map(move |id| (*account_id, *device_id, id.as_slice())),
            ),
            _ => None,
        })
        .flatten()
        .collect()
}

/// `INSERT INTO envelopes … VALUES (…), (…)` for a chunk of rows.
fn insert_statement<'a>(chunk: &[InsertRow<'a>]) -> QueryBuilder<'a, Postgres> {
    let mut insert = QueryBuilder::new(
        "INSERT INTO envelopes (envelope_id, account_id, device_id, sender, sender_device, created_at, content) ",
    );
    insert.push_values(chunk, |mut values, row| {
        let e = row.envelope;
        values
            .push_bind(&e.envelope_id[..])
            .push_bind(row.account_id)
            .push_bind(i64::from(e.device_id))
            .push_bind(e.sender.as_deref())
            .push_bind(e.sender_device.map(i64::from))
            .push_bind(e.created_at)
            .push_bind(&e.content[..]);
    });
    insert
}

/// `DELETE FROM envelopes WHERE (id and owner) OR (…)` for a chunk of
/// acknowledgements: an envelope goes only if the acknowledging device is
/// its destination.
fn delete_statement<'a>(chunk: &[(i64, u32, &'a [u8])]) -> QueryBuilder<'a, Postgres> {
    let mut delete = QueryBuilder::new("DELETE FROM envelopes WHERE ");
    let mut terms = delete.separated(" OR ");
    for (account_id, device_id, id) in chunk {
        terms.push("(envelope_id = ");
        terms.push_bind_unseparated(*id);
        terms.push_unseparated(" AND account_id = ");
        terms.push_bind_unseparated(*account_id);
        terms.push_unseparated(" AND device_id = ");
        terms.push_bind_unseparated(i64::from(*device_id));
        terms.push_unseparated(")");
    }
    delete
}

pub(super) fn committed_envelope(seq: i64, row: &InsertRow<'_>) -> CommittedEnvelope {
    let e = row.envelope;
    CommittedEnvelope {
        account_id: row.account_id,
        device_id: e.device_id,
        envelope: Arc::new(StoredEnvelope {
            seq,
            envelope_id: e.envelope_id.to_vec(),
            sender: e.sender.clone(),
            sender_device: e.sender_device,
            created_at: e.created_at,
            content: e.content.clone(),
        }),
    }
}
