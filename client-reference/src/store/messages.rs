//! Message history: what was sent and received, decrypted, with full-text
//! search (FTS5), edits, deletions, reactions, read receipts and
//! disappearing-message expiry.

use std::collections::BTreeMap;

use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::Store;
use crate::conversation::Conversation;
use crate::error::{ClientError, Result};
pub use starling_client_core::HistoryEntry;
use starling_client_core::records::NewMessage;

/// The rows as history entries. A row whose conversation key this client
/// no longer accepts (an older client stored names it did not check) is
/// left out with a warning, so that one such row cannot make a whole
/// history or search fail.
fn entries_from_rows(rows: &[SqliteRow]) -> Result<Vec<HistoryEntry>> {
    let mut entries = Vec::with_capacity(rows.len());
    for row in rows {
        let key: String = row.try_get("conversation")?;
        match Conversation::parse_key(&key) {
            Ok(conversation) => entries.push(entry_from_row(row, conversation)?),
            Err(_) => tracing::warn!("a stored message names an unreadable conversation; left out"),
        }
    }
    Ok(entries)
}

fn entry_from_row(row: &SqliteRow, conversation: Conversation) -> Result<HistoryEntry> {
    let id: Vec<u8> = row.try_get("message_id")?;
    let reactions: String = row.try_get("reactions")?;
    Ok(HistoryEntry {
        message_id: hex::encode(id),
        conversation,
        conversation_name: row.try_get("conversation_name")?,
        sender: row.try_get("sender")?,
        sender_device: u32::try_from(row.try_get::<i64, _>("sender_device")?).unwrap_or(0),
        outgoing: row.try_get::<i64, _>("outgoing")? != 0,
        kind: row.try_get("kind")?,
        body: row.try_get("body")?,
        sent_at: row.try_get("sent_at")?,
        edited: row.try_get::<i64, _>("edited")? != 0,
        read: row.try_get::<i64, _>("read")? != 0,
        reactions: serde_json::from_str(&reactions).unwrap_or_default(),
        attachment_file: row.try_get("attachment_file")?,
    })
}

const ENTRY_COLUMNS: &str = "m.message_id, m.conversation, \
     COALESCE((SELECT g.name FROM groups g WHERE '#' || lower(hex(g.group_id)) = m.conversation), \
     substr(m.conversation, 2)) AS conversation_name, m.sender, m.sender_device, m.outgoing, m.kind, \
     m.body, m.sent_at, m.edited, m.read, m.reactions, m.attachment_file";

impl Store {
    /// Records a message; false when its id is already in the history
    /// (a duplicate delivery).
    pub async fn insert_message(&self, message: &NewMessage) -> Result<bool> {
        let result = sqlx::query(
            "INSERT OR IGNORE INTO messages (message_id, conversation, sender, sender_device, outgoing, kind, body, \
             content, sent_at, received_at, expires_at, attachment_file) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&message.message_id)
        .bind(message.conversation.to_key())
        .bind(&message.sender)
        .bind(i64::from(message.sender_device))
        .bind(i64::from(message.outgoing))
        .bind(&message.kind)
        .bind(&message.body)
        .bind(&message.content)
        .bind(message.sent_at)
        .bind(message.received_at)
        .bind(message.expires_at)
        .bind(&message.attachment_file)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// The last `limit` messages of a conversation, oldest first.
    pub async fn history(
        &self,
        conversation: &Conversation,
        limit: u32,
    ) -> Result<Vec<HistoryEntry>> {
        let rows = sqlx::query(&format!(
            "SELECT {ENTRY_COLUMNS} FROM (SELECT * FROM messages WHERE conversation = ? AND deleted = 0 \
             ORDER BY id DESC LIMIT ?) m ORDER BY m.id"
        ))
        .bind(conversation.to_key())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        entries_from_rows(&rows)
    }

    /// Full-text search over the history: a message matches when each
    /// word begins one of its words, optionally within one conversation.
    pub async fn search(
        &self,
        words: &str,
        conversation: Option<&Conversation>,
    ) -> Result<Vec<HistoryEntry>> {
        let query = fts_query(words);
        let conversation = conversation.map(Conversation::to_key);
        if query.is_empty() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(&format!(
            "SELECT {ENTRY_COLUMNS} FROM messages_fts f JOIN messages m ON m.id = f.rowid \
             WHERE messages_fts MATCH ? AND m.deleted = 0 AND (? IS NULL OR m.conversation = ?) \
             ORDER BY m.id LIMIT 200"
        ))
        .bind(&query)
        .bind(&conversation)
        .bind(&conversation)
        .fetch_all(&self.pool)
        .await?;
        entries_from_rows(&rows)
    }

    /// Replaces a message's text, if it is in `conversation` and `sender`
    /// wrote it.
    pub async fn edit_message(
        &self,
        message_id: &[u8],
        conversation: &Conversation,
        sender: &str,
        body: &str,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE messages SET body = ?, edited = 1 \
             WHERE message_id = ? AND conversation = ? AND sender = ? AND deleted = 0",
        )
        .bind(body)
        .bind(message_id)
        .bind(conversation.to_key())
        .bind(sender)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Deletes a message for everyone, if it is in `conversation` and
    /// `sender` wrote it: its text and content are wiped, its attachment
    /// file is returned for deletion.
    pub async fn delete_message(
        &self,
        message_id: &[u8],
        conversation: &Conversation,
        sender: &str,
    ) -> Result<Option<Option<String>>> {
        let file: Option<Option<String>> = sqlx::query_scalar(
            "SELECT attachment_file FROM messages WHERE message_id = ? AND conversation = ? AND sender = ?",
        )
        .bind(message_id)
        .bind(conversation.to_key())
        .bind(sender)
        .fetch_optional(&self.pool)
        .await?;
        if file.is_some() {
            sqlx::query(
                "UPDATE messages SET body = '', content = x'', deleted = 1, attachment_file = NULL WHERE message_id = ?",
            )
            .bind(message_id)
            .execute(&self.pool)
            .await?;
        }
        Ok(file)
    }

    /// Records a reaction (or its removal) by `username` to a message of
    /// `conversation`; false when there is no such message there.
    pub async fn react(
        &self,
        message_id: &[u8],
        conversation: &Conversation,
        username: &str,
        emoji: Option<&str>,
    ) -> Result<bool> {
        let current: Option<String> = sqlx::query_scalar(
            "SELECT reactions FROM messages WHERE message_id = ? AND conversation = ? AND deleted = 0",
        )
        .bind(message_id)
        .bind(conversation.to_key())
        .fetch_optional(&self.pool)
        .await?;
        let Some(current) = current else {
            return Ok(false);
        };
        let mut reactions: BTreeMap<String, String> =
            serde_json::from_str(&current).unwrap_or_default();
        match emoji {
            Some(emoji) => reactions.insert(username.to_owned(), emoji.to_owned()),
            None => reactions.remove(username),
        };
        sqlx::query("UPDATE messages SET reactions = ? WHERE message_id = ?")
            .bind(serde_json::to_string(&reactions).map_err(ClientError::protocol)?)
            .bind(message_id)
            .execute(&self.pool)
            .await?;
        Ok(true)
    }

    /// Marks our messages of `conversation` read by their recipient;
    /// returns the ids that are ours there.
    pub async fn mark_read(
        &self,
        conversation: &Conversation,
        message_ids: &[Vec<u8>],
    ) -> Result<Vec<Vec<u8>>> {
        let conversation = conversation.to_key();
        let mut marked = Vec::new();
        for id in message_ids {
            let done = sqlx::query(
                "UPDATE messages SET read = 1 WHERE message_id = ? AND conversation = ? AND outgoing = 1",
            )
            .bind(id)
            .bind(&conversation)
            .execute(&self.pool)
            .await?;
            if done.rows_affected() == 1 {
                marked.push(id.clone());
            }
        }
        Ok(marked)
    }

    /// Deletes every message whose timer ran out; returns their attachment
    /// files for deletion.
    pub async fn delete_expired(&self, now: i64) -> Result<Vec<String>> {
        let files: Vec<Option<String>> = sqlx::query_scalar(
            "DELETE FROM messages WHERE expires_at IS NOT NULL AND expires_at <= ? RETURNING attachment_file",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        Ok(files.into_iter().flatten().collect())
    }

    /// The stored Content and attachment file of one message.
    pub async fn message_content(
        &self,
        message_id: &[u8],
    ) -> Result<Option<(Vec<u8>, Option<String>)>> {
        let row = sqlx::query(
            "SELECT content, attachment_file FROM messages WHERE message_id = ? AND deleted = 0",
        )
        .bind(message_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((r.try_get("content")?, r.try_get("attachment_file")?)))
            .transpose()
    }

    /// The author and text of a message of `conversation`, for showing a
    /// reply that quotes it; `None` when it is not (or no longer) there.
    pub async fn quoted_message(
        &self,
        message_id: &[u8],
        conversation: &Conversation,
    ) -> Result<Option<(String, String)>> {
        Ok(sqlx::query_as(
            "SELECT sender, body FROM messages WHERE message_id = ? AND conversation = ? AND deleted = 0",
        )
        .bind(message_id)
        .bind(conversation.to_key())
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Ids of the messages whose hex id starts with `prefix`.
    pub async fn message_ids_with_prefix(&self, prefix: &str) -> Result<Vec<Vec<u8>>> {
        let pattern = format!("{}%", prefix.replace(['%', '_'], ""));
        Ok(sqlx::query_scalar(
            "SELECT message_id FROM messages WHERE lower(hex(message_id)) LIKE ? LIMIT 2",
        )
        .bind(pattern)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Records where a message's downloaded (still encrypted) blob is.
    pub async fn set_attachment_file(&self, message_id: &[u8], file: &str) -> Result<()> {
        sqlx::query("UPDATE messages SET attachment_file = ? WHERE message_id = ?")
            .bind(file)
            .bind(message_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// Turns what a person typed into an FTS5 query: each word quoted (so
/// punctuation cannot break the syntax), all required.
fn fts_query(words: &str) -> String {
    words
        .split_whitespace()
        .map(|w| format!("\"{}\"*", w.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_text() {
        let entry = HistoryEntry {
            message_id: "00ff".into(),
            conversation: c("#abcd"),
            conversation_name: "zq-marker-group".into(),
            sender: "alice".into(),
            sender_device: 1,
            outgoing: false,
            kind: "file".into(),
            body: "zq-marker-body".into(),
            sent_at: 0,
            edited: false,
            read: false,
            reactions: [("bob".to_owned(), "zq-marker-emoji".to_owned())].into(),
            attachment_file: Some("zq-marker-file".into()),
        };
        let shown = format!("{entry:?} {entry:#?}");
        assert!(!shown.contains("zq-marker"), "{shown}");
        assert!(shown.contains("00ff") && shown.contains("alice") && shown.contains("file"));
        let message = NewMessage {
            message_id: vec![0xee; 16],
            conversation: c("@alice"),
            sender: "alice".into(),
            sender_device: 1,
            outgoing: false,
            kind: "text".into(),
            body: "zq-marker-body".into(),
            content: b"zq-marker-content".to_vec(),
            sent_at: 0,
            received_at: 0,
            expires_at: None,
            attachment_file: None,
        };
        let shown = format!("{message:?}");
        assert!(!shown.contains("zq-marker"), "{shown}");
        assert!(shown.contains(&"ee".repeat(16)) && shown.contains("alice"));
    }

    #[test]
    fn search_words_are_quoted() {
        // Each word matches the words it begins ("meet" finds "meeting").
        assert_eq!(fts_query("hello  wor\"ld"), "\"hello\"* \"wor\"\"ld\"*");
        assert_eq!(fts_query("   "), "");
    }

    fn c(key: &str) -> Conversation {
        Conversation::parse_key(key).unwrap()
    }

    fn message(id: u8, conversation: &str, sender: &str, outgoing: bool) -> NewMessage {
        NewMessage {
            message_id: vec![id; 16],
            conversation: c(conversation),
            sender: sender.into(),
            sender_device: 1,
            outgoing,
            kind: "text".into(),
            body: "original".into(),
            content: Vec::new(),
            sent_at: 0,
            received_at: 0,
            expires_at: None,
            attachment_file: None,
        }
    }

    #[tokio::test]
    async fn a_row_with_an_unreadable_conversation_is_left_out() {
        let home = tempfile::tempdir().unwrap();
        let store = Store::open(home.path(), &crate::StoreKey::from_bytes([4; 32]))
            .await
            .unwrap();
        store
            .insert_message(&message(1, "@bob", "bob", false))
            .await
            .unwrap();
        // What an older client could store for a name it did not check.
        let mut legacy = message(2, "@bob", "Bob Smith", false);
        legacy.body = "original too".into();
        store.insert_message(&legacy).await.unwrap();
        sqlx::query("UPDATE messages SET conversation = '@Bob Smith' WHERE message_id = ?")
            .bind(vec![2u8; 16])
            .execute(&store.pool)
            .await
            .unwrap();
        assert_eq!(store.history(&c("@bob"), 10).await.unwrap().len(), 1);
        let found = store.search("original", None).await.unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].conversation, c("@bob"));
    }

    #[tokio::test]
    async fn changes_apply_only_in_their_conversation() {
        let home = tempfile::tempdir().unwrap();
        let store = Store::open(home.path(), &crate::StoreKey::from_bytes([3; 32]))
            .await
            .unwrap();
        // Ours to bob, and carol's to us.
        store
            .insert_message(&message(1, "@bob", "alice", true))
            .await
            .unwrap();
        store
            .insert_message(&message(2, "@carol", "carol", false))
            .await
            .unwrap();
        let (ours, carols) = (vec![1u8; 16], vec![2u8; 16]);

        assert!(
            !store
                .react(&ours, &c("@mallory"), "mallory", Some("x"))
                .await
                .unwrap()
        );
        assert!(
            store
                .mark_read(&c("@mallory"), std::slice::from_ref(&ours))
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            !store
                .edit_message(&carols, &c("@bob"), "carol", "forged")
                .await
                .unwrap()
        );
        assert!(
            store
                .delete_message(&carols, &c("@bob"), "carol")
                .await
                .unwrap()
                .is_none()
        );
        // In the right conversation, only the author edits or deletes.
        assert!(
            !store
                .edit_message(&carols, &c("@carol"), "bob", "forged")
                .await
                .unwrap()
        );
        assert!(
            store
                .delete_message(&carols, &c("@carol"), "bob")
                .await
                .unwrap()
                .is_none()
        );
        let history = store.history(&c("@bob"), 10).await.unwrap();
        assert!(history[0].reactions.is_empty() && !history[0].read);
        assert_eq!(
            store.history(&c("@carol"), 10).await.unwrap()[0].body,
            "original"
        );

        assert!(
            store
                .react(&ours, &c("@bob"), "bob", Some("👍"))
                .await
                .unwrap()
        );
        assert_eq!(
            store
                .mark_read(&c("@bob"), std::slice::from_ref(&ours))
                .await
                .unwrap(),
            [ours]
        );
        assert!(
            store
                .edit_message(&carols, &c("@carol"), "carol", "new")
                .await
                .unwrap()
        );
        let history = store.history(&c("@bob"), 10).await.unwrap();
        assert_eq!(history[0].reactions["bob"], "👍");
        assert!(history[0].read);
        assert_eq!(
            store.history(&c("@carol"), 10).await.unwrap()[0].body,
            "new"
        );
        assert!(
            store
                .delete_message(&carols, &c("@carol"), "carol")
                .await
                .unwrap()
                .is_some()
        );
        assert!(store.history(&c("@carol"), 10).await.unwrap().is_empty());
    }
}
