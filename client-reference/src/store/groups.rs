//! Groups: name, members and revision (learned only from encrypted control
//! messages), our outbound Sender Key session and who holds it, and the
//! inbound sessions of the other members' devices.

use std::collections::BTreeSet;

use sqlx::Row;
use starling_crypto::group::{InboundGroupSession, OutboundGroupSession};
use zeroize::Zeroizing;

use super::Store;
use crate::error::{ClientError, Result};
use starling_client_core::records::GroupRecord;

fn group_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<GroupRecord> {
    let members: String = row.try_get("members")?;
    let member_changes: String = row.try_get("member_changes")?;
    Ok(GroupRecord {
        group_id: row.try_get("group_id")?,
        name: row.try_get("name")?,
        members: serde_json::from_str(&members).map_err(ClientError::protocol)?,
        revision: u64::try_from(row.try_get::<i64, _>("revision")?).unwrap_or(0),
        active: row.try_get::<i64, _>("active")? != 0,
        expire_seconds: u32::try_from(row.try_get::<i64, _>("expire_seconds")?).unwrap_or(0),
        member_changes: serde_json::from_str(&member_changes).map_err(ClientError::protocol)?,
    })
}

const GROUP_COLUMNS: &str =
    "group_id, name, members, revision, active, expire_seconds, member_changes";

impl Store {
    /// Inserts or replaces a group's public state.
    pub async fn save_group(&self, group: &GroupRecord) -> Result<()> {
        let members = serde_json::to_string(&group.members).map_err(ClientError::protocol)?;
        let changes =
            serde_json::to_string(&group.member_changes).map_err(ClientError::protocol)?;
        sqlx::query(
            "INSERT INTO groups (group_id, name, members, revision, active, expire_seconds, member_changes) \
             VALUES (?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (group_id) DO UPDATE SET name = excluded.name, members = excluded.members, \
             revision = excluded.revision, active = excluded.active, expire_seconds = excluded.expire_seconds, \
             member_changes = excluded.member_changes",
        )
        .bind(&group.group_id)
        .bind(&group.name)
        .bind(members)
        .bind(i64::try_from(group.revision).unwrap_or(i64::MAX))
        .bind(i64::from(group.active))
        .bind(i64::from(group.expire_seconds))
        .bind(changes)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A group by id.
    pub async fn group(&self, group_id: &[u8]) -> Result<Option<GroupRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {GROUP_COLUMNS} FROM groups WHERE group_id = ?"
        ))
        .bind(group_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(group_from_row).transpose()
    }

    /// All groups, active first, by name.
    pub async fn groups(&self) -> Result<Vec<GroupRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {GROUP_COLUMNS} FROM groups ORDER BY active DESC, name"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(group_from_row).collect()
    }

    /// Finds a group by exact name, or by a prefix of its hex id.
    pub async fn find_group(&self, name_or_id: &str) -> Result<GroupRecord> {
        let groups = self.groups().await?;
        let matches: Vec<&GroupRecord> = groups
            .iter()
            .filter(|g| {
                g.name == name_or_id
                    || (name_or_id.len() >= 4 && hex::encode(&g.group_id).starts_with(name_or_id))
            })
            .collect();
        match matches.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(ClientError::UnknownGroup(name_or_id.to_owned())),
            several => {
                // Prefer the single active one when names repeat.
                let active: Vec<_> = several.iter().filter(|g| g.active).collect();
                match active.as_slice() {
                    [one] => Ok((**one).clone()),
                    _ => Err(ClientError::AmbiguousGroup(name_or_id.to_owned())),
                }
            }
        }
    }

    /// Our outbound Sender Key session for a group and the devices
    /// ("user.device") that hold its current key.
    pub async fn outbound_group_session(
        &self,
        group_id: &[u8],
    ) -> Result<Option<(OutboundGroupSession, BTreeSet<String>)>> {
        let row = sqlx::query("SELECT outbound, distributed FROM groups WHERE group_id = ?")
            .bind(group_id)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let Some(bytes) = row.try_get::<Option<Vec<u8>>, _>("outbound")? else {
            return Ok(None);
        };
        let bytes = Zeroizing::new(bytes);
        let distributed: String = row.try_get("distributed")?;
        Ok(Some((
            OutboundGroupSession::from_bytes(&bytes)?,
            serde_json::from_str(&distributed).map_err(ClientError::protocol)?,
        )))
    }

    /// Saves our outbound session and who holds its key.
    pub async fn save_outbound_group_session(
        &self,
        group_id: &[u8],
        session: &OutboundGroupSession,
        distributed: &BTreeSet<String>,
    ) -> Result<()> {
        let distributed = serde_json::to_string(distributed).map_err(ClientError::protocol)?;
        sqlx::query("UPDATE groups SET outbound = ?, distributed = ? WHERE group_id = ?")
            .bind(&session.to_bytes()[..])
            .bind(distributed)
            .bind(group_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Forgets our outbound session and who holds it, so the next message
    /// starts a fresh sender key and gives it to every member device then.
    pub async fn reset_outbound_group_session(&self, group_id: &[u8]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE groups SET outbound = NULL, distributed = '[]' WHERE group_id = ?")
            .bind(group_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM group_given_keys WHERE group_id = ?")
            .bind(group_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The inbound session for one member device's sender key.
    pub async fn inbound_group_session(
        &self,
        group_id: &[u8],
        username: &str,
        device_id: u32,
    ) -> Result<Option<InboundGroupSession>> {
        let bytes: Option<Vec<u8>> = sqlx::query_scalar(
            "SELECT state FROM group_inbound WHERE group_id = ? AND username = ? AND device_id = ?",
        )
        .bind(group_id)
        .bind(username)
        .bind(i64::from(device_id))
        .fetch_optional(&self.pool)
        .await?;
        bytes
            .map(|b| {
                let b = Zeroizing::new(b);
                Ok(InboundGroupSession::from_bytes(&b)?)
            })
            .transpose()
    }

    /// Saves an inbound session.
    pub async fn save_inbound_group_session(
        &self,
        group_id: &[u8],
        username: &str,
        device_id: u32,
        session: &InboundGroupSession,
    ) -> Result<()> {
        self.save_inbound_group_session_with_inbox(group_id, username, device_id, session, None)
            .await
    }

    /// Saves an inbound session and stages what it decrypted, together.
    pub async fn save_inbound_group_session_with_inbox(
        &self,
        group_id: &[u8],
        username: &str,
        device_id: u32,
        session: &InboundGroupSession,
        inbox: Option<&super::InboxItem>,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        if let Some(item) = inbox {
            super::sessions::insert_inbox(&mut tx, item).await?;
            // A held message, now decrypted: staged, so no longer held.
            sqlx::query("DELETE FROM held_group_messages WHERE envelope_id = ?")
                .bind(&item.envelope_id)
                .execute(&mut *tx)
                .await?;
        }
        let signing_keys: Vec<u8> = session.signing_keys().concat();
        sqlx::query(
            "INSERT INTO group_inbound (group_id, username, device_id, state, signing_keys) \
             VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (group_id, username, device_id) DO UPDATE SET state = excluded.state, \
             signing_keys = excluded.signing_keys",
        )
        .bind(group_id)
        .bind(username)
        .bind(i64::from(device_id))
        .bind(&session.to_bytes()[..])
        .bind(signing_keys)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The member devices whose inbound session of a group holds the chain
    /// signing key `signing_key`.
    pub async fn group_signing_key_holders(
        &self,
        group_id: &[u8],
        signing_key: &[u8; 32],
    ) -> Result<Vec<(String, u32)>> {
        let rows: Vec<(String, i64, Vec<u8>)> = sqlx::query_as(
            "SELECT username, device_id, signing_keys FROM group_inbound WHERE group_id = ?",
        )
        .bind(group_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .filter(|(_, _, keys)| keys.chunks_exact(32).any(|key| key == signing_key))
            .map(|(user, device, _)| (user, u32::try_from(device).unwrap_or(0)))
            .collect())
    }

    /// Drops the inbound sessions of a member who left or was removed, or
    /// (with `username = None`) all of a group's, when we leave.
    pub async fn drop_inbound_group_sessions(
        &self,
        group_id: &[u8],
        username: Option<&str>,
    ) -> Result<()> {
        match username {
            Some(user) => {
                sqlx::query("DELETE FROM group_inbound WHERE group_id = ? AND username = ?")
                    .bind(group_id)
                    .bind(user)
                    .execute(&self.pool)
                    .await?
            }
            None => {
                sqlx::query("DELETE FROM group_inbound WHERE group_id = ?")
                    .bind(group_id)
                    .execute(&self.pool)
                    .await?
            }
        };
        Ok(())
    }

    /// Forgets that a member device holds our sender keys (it lost its
    /// session), so the next group message re-sends them.
    pub async fn forget_distribution(&self, username: &str, device_id: u32) -> Result<()> {
        let holder = format!("{username}.{device_id}");
        let rows: Vec<(Vec<u8>, String)> =
            sqlx::query_as("SELECT group_id, distributed FROM groups WHERE outbound IS NOT NULL")
                .fetch_all(&self.pool)
                .await?;
        for (group_id, distributed) in rows {
            let mut set: BTreeSet<String> = serde_json::from_str(&distributed).unwrap_or_default();
            if set.remove(&holder) {
                sqlx::query("UPDATE groups SET distributed = ? WHERE group_id = ?")
                    .bind(serde_json::to_string(&set).map_err(ClientError::protocol)?)
                    .bind(&group_id)
                    .execute(&self.pool)
                    .await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use starling_crypto::IdentityKeyPair;

    use super::*;
    use crate::store::StoreKey;

    #[tokio::test]
    async fn a_signing_key_is_found_with_the_devices_that_hold_it() {
        let home = tempfile::tempdir().unwrap();
        let store = Store::open(home.path(), &StoreKey::from_bytes([3; 32]))
            .await
            .unwrap();
        let group = GroupRecord {
            group_id: vec![4; 16],
            name: "crew".into(),
            members: vec!["alice".into(), "bob".into()],
            revision: 1,
            active: true,
            expire_seconds: 0,
            member_changes: Default::default(),
        };
        store.save_group(&group).await.unwrap();
        let rng = &mut rand::rngs::OsRng;
        let alice = IdentityKeyPair::generate(rng);
        let mut outbound = OutboundGroupSession::new(alice.public(), &group.group_id, rng).unwrap();
        let first = outbound.distribution(&alice).unwrap();
        let mut session = InboundGroupSession::new(&first, alice.public()).unwrap();
        let id = &group.group_id;
        store
            .save_inbound_group_session(id, "alice", 1, &session)
            .await
            .unwrap();
        let key = first.signing_key_bytes();
        let held = store.group_signing_key_holders(id, &key).await.unwrap();
        assert_eq!(held, [("alice".to_owned(), 1)]);

        // A rotation adds a key; both are found until the chains go.
        let rotated = outbound.rotate(&alice, rng).unwrap();
        session.add_distribution(&rotated, alice.public()).unwrap();
        store
            .save_inbound_group_session(id, "alice", 1, &session)
            .await
            .unwrap();
        for key in [key, rotated.signing_key_bytes()] {
            let held = store.group_signing_key_holders(id, &key).await.unwrap();
            assert_eq!(held, [("alice".to_owned(), 1)]);
        }
        let other = store.group_signing_key_holders(&[5; 16], &key).await;
        assert!(other.unwrap().is_empty());
        store.drop_inbound_group_sessions(id, None).await.unwrap();
        let held = store.group_signing_key_holders(id, &key).await.unwrap();
        assert!(held.is_empty());
    }
}
