//! akd's storage interface (`Database`) on the server's own database,
//! SQLite or PostgreSQL: the tree's summary in `kt_azks`, its nodes in
//! `kt_nodes` (in [`super::codec`]), every version of every label in
//! `kt_values`. A publish reaches [`Database::batch_set`] as one commit of
//! akd's transaction, and is written in one SQL transaction, fenced
//! against a second publisher; lookups read through a view that cannot
//! write.

use std::collections::HashMap;
use std::sync::Arc;

use akd::errors::StorageError;
use akd::storage::types::{DbRecord, KeyData, StorageType, ValueState, ValueStateRetrievalFlag};
use akd::storage::{Database, DbSetState, Storable};
use akd::tree_node::{NodeKey, TreeNodeWithPreviousValue};
use akd::{AkdLabel, AkdValue, Azks};
use async_trait::async_trait;

use super::codec;
use crate::store::{KtFence, KtRow, KtValue, KtValueAt, KtWriteError, Store};

/// akd's records in the server's database.
#[derive(Debug, Clone)]
pub struct LogStorage {
    store: Store,
    mode: Mode,
}

/// What a [`LogStorage`] may write.
#[derive(Debug, Clone)]
enum Mode {
    /// Anything (akd's storage suite, tools).
    Plain,
    /// The publisher's: the tree only from the epoch before, with the
    /// fence's device lists (see [`Store::kt_write`]).
    Fenced(Arc<KtFence>),
    /// Nothing: lookups only.
    ReadOnly,
}

impl LogStorage {
    /// The log's records in `store`, written as akd asks.
    pub fn new(store: Store) -> Self {
        Self {
            store,
            mode: Mode::Plain,
        }
    }

    /// The publisher's view of the log: every commit fenced by `fence`.
    pub fn fenced(store: Store, fence: Arc<KtFence>) -> Self {
        Self {
            store,
            mode: Mode::Fenced(fence),
        }
    }

    /// A view of the log that never writes.
    pub fn read_only(store: Store) -> Self {
        Self {
            store,
            mode: Mode::ReadOnly,
        }
    }
}

fn db_error(error: sqlx::Error) -> StorageError {
    StorageError::Connection(error.to_string())
}

fn corrupt(what: impl std::fmt::Display) -> StorageError {
    StorageError::Other(format!("stored transparency record: {what}"))
}

fn to_i64(n: u64) -> Result<i64, StorageError> {
    i64::try_from(n).map_err(|_| StorageError::Other(format!("{n} is past the database's range")))
}

fn to_u64(n: i64) -> Result<u64, StorageError> {
    u64::try_from(n).map_err(|_| corrupt(format!("negative number {n}")))
}

/// A node's key in `kt_nodes`: its label's bytes.
fn node_key(key: &NodeKey) -> Vec<u8> {
    codec::label_bytes(&key.0).to_vec()
}

fn to_row(record: DbRecord) -> Result<KtRow, StorageError> {
    Ok(match record {
        DbRecord::Azks(azks) => KtRow::Azks {
            latest_epoch: to_i64(azks.latest_epoch)?,
            num_nodes: to_i64(azks.num_nodes)?,
        },
        DbRecord::TreeNode(node) => KtRow::Node {
            key: codec::label_bytes(&node.label).to_vec(),
            node: codec::encode(&node),
        },
        DbRecord::ValueState(state) => KtRow::Value(KtValue {
            label: state.username.0,
            epoch: to_i64(state.epoch)?,
            version: to_i64(state.version)?,
            node_label: codec::label_bytes(&state.label).to_vec(),
            value: state.value.0,
        }),
    })
}

fn to_state(value: KtValue) -> Result<ValueState, StorageError> {
    let label = codec::label_from_bytes(&value.node_label).map_err(corrupt)?;
    Ok(ValueState {
        value: AkdValue(value.value),
        version: to_u64(value.version)?,
        label,
        epoch: to_u64(value.epoch)?,
        username: AkdLabel(value.label),
    })
}

fn not_found(what: impl std::fmt::Debug) -> StorageError {
    StorageError::NotFound(format!("{what:?}"))
}

impl LogStorage {
    async fn azks(&self) -> Result<DbRecord, StorageError> {
        let (latest_epoch, num_nodes) = self
            .store
            .kt_azks()
            .await
            .map_err(db_error)?
            .ok_or_else(|| not_found("azks"))?;
        Ok(DbRecord::Azks(Azks {
            latest_epoch: to_u64(latest_epoch)?,
            num_nodes: to_u64(num_nodes)?,
        }))
    }

    async fn nodes(&self, keys: &[NodeKey]) -> Result<Vec<DbRecord>, StorageError> {
        let keys: Vec<Vec<u8>> = keys.iter().map(node_key).collect();
        self.store
            .kt_nodes(&keys)
            .await
            .map_err(db_error)?
            .into_iter()
            .map(|(_, node)| {
                codec::decode(&node)
                    .map(DbRecord::TreeNode)
                    .map_err(corrupt)
            })
            .collect()
    }

    async fn value(&self, label: &[u8], at: KtValueAt) -> Result<ValueState, StorageError> {
        match self.store.kt_value(label, at).await.map_err(db_error)? {
            Some(value) => to_state(value),
            None => Err(not_found(("value state", at))),
        }
    }
}

/// The query of an akd retrieval flag.
fn value_at(flag: ValueStateRetrievalFlag) -> Result<KtValueAt, StorageError> {
    Ok(match flag {
        ValueStateRetrievalFlag::SpecificVersion(v) => KtValueAt::Version(to_i64(v)?),
        ValueStateRetrievalFlag::SpecificEpoch(e) => KtValueAt::Epoch(to_i64(e)?),
        ValueStateRetrievalFlag::LeqEpoch(e) => KtValueAt::AtOrBefore(to_i64(e)?),
        ValueStateRetrievalFlag::MaxEpoch => KtValueAt::Newest,
        ValueStateRetrievalFlag::MinEpoch => KtValueAt::Oldest,
    })
}

/// Keys of `St` as their full binary ids (akd's one key form that
/// every record type has).
fn binary_ids<St: Storable>(ids: &[St::StorageKey]) -> Vec<Vec<u8>> {
    ids.iter().map(St::get_full_binary_key_id).collect()
}

#[async_trait]
impl Database for LogStorage {
    async fn set(&self, record: DbRecord) -> Result<(), StorageError> {
        self.batch_set(vec![record], DbSetState::General).await
    }

    async fn batch_set(
        &self,
        records: Vec<DbRecord>,
        _state: DbSetState,
    ) -> Result<(), StorageError> {
        if records.is_empty() {
            return Ok(());
        }
        let rows = records
            .into_iter()
            .map(to_row)
            .collect::<Result<Vec<_>, _>>()?;
        let fence = match &self.mode {
            Mode::Plain => None,
            Mode::Fenced(fence) => Some(fence.as_ref()),
            Mode::ReadOnly => {
                return Err(StorageError::Other("a read-only view of the log".into()));
            }
        };
        self.store
            .kt_write(rows, fence)
            .await
            .map_err(|error| match error {
                KtWriteError::Database(error) => db_error(error),
                fenced @ KtWriteError::Fenced(_) => StorageError::Transaction(fenced.to_string()),
            })
    }

    async fn get<St: Storable>(&self, id: &St::StorageKey) -> Result<DbRecord, StorageError> {
        let mut found = self.batch_get::<St>(std::slice::from_ref(id)).await?;
        found.pop().ok_or_else(|| not_found(id))
    }

    async fn batch_get<St: Storable>(
        &self,
        ids: &[St::StorageKey],
    ) -> Result<Vec<DbRecord>, StorageError> {
        match St::data_type() {
            StorageType::Azks => match self.azks().await {
                Ok(azks) if !ids.is_empty() => Ok(vec![azks]),
                Ok(_) | Err(StorageError::NotFound(_)) => Ok(Vec::new()),
                Err(error) => Err(error),
            },
            StorageType::TreeNode => {
                let keys = binary_ids::<St>(ids)
                    .iter()
                    .map(|id| TreeNodeWithPreviousValue::key_from_full_binary(id))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(StorageError::Other)?;
                self.nodes(&keys).await
            }
            StorageType::ValueState => {
                let mut found = Vec::with_capacity(ids.len());
                for id in binary_ids::<St>(ids) {
                    let key = ValueState::key_from_full_binary(&id).map_err(StorageError::Other)?;
                    match self.value(&key.0, KtValueAt::Epoch(to_i64(key.1)?)).await {
                        Ok(state) => found.push(DbRecord::ValueState(state)),
                        Err(StorageError::NotFound(_)) => {}
                        Err(error) => return Err(error),
                    }
                }
                Ok(found)
            }
        }
    }

    async fn get_user_data(&self, username: &AkdLabel) -> Result<KeyData, StorageError> {
        let values = self.store.kt_values(username).await.map_err(db_error)?;
        if values.is_empty() {
            return Err(not_found(username));
        }
        Ok(KeyData {
            states: values.into_iter().map(to_state).collect::<Result<_, _>>()?,
        })
    }

    async fn get_user_state(
        &self,
        username: &AkdLabel,
        flag: ValueStateRetrievalFlag,
    ) -> Result<ValueState, StorageError> {
        self.value(username, value_at(flag)?).await
    }

    async fn get_user_state_versions(
        &self,
        usernames: &[AkdLabel],
        flag: ValueStateRetrievalFlag,
    ) -> Result<HashMap<AkdLabel, (u64, AkdValue)>, StorageError> {
        let mut found = HashMap::with_capacity(usernames.len());
        if let ValueStateRetrievalFlag::LeqEpoch(epoch) = flag {
            // The flag publishing asks with, for every label at once.
            let labels: Vec<Vec<u8>> = usernames.iter().map(|l| l.0.clone()).collect();
            let values = self
                .store
                .kt_values_at_or_before(&labels, to_i64(epoch)?)
                .await
                .map_err(db_error)?;
            for value in values {
                let state = to_state(value)?;
                found.insert(state.username, (state.version, state.value));
            }
            return Ok(found);
        }
        let at = value_at(flag)?;
        for username in usernames {
            match self.value(username, at).await {
                Ok(state) => {
                    found.insert(state.username, (state.version, state.value));
                }
                Err(StorageError::NotFound(_)) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(found)
    }
}
