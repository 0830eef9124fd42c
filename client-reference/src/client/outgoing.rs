//! Outgoing messages: the conversation a caller names, resolved here, and
//! the send itself, which is the client core's (what the content carries,
//! the pairwise or Sender Key path, the history entry).

use super::Client;
use crate::content;
use crate::conversation::ConversationRef;
use crate::error::Result;
use crate::store::HistoryEntry;

impl Client {
    /// Sends `content` pairwise to every device of each recipient (the
    /// call signals' path).
    pub(super) async fn send_pairwise(
        &mut self,
        recipients: &[String],
        content: &content::Content,
    ) -> Result<()> {
        Ok(self.core.send_pairwise(recipients, content).await?)
    }

    /// Sends a content body to a conversation (`@user`, a username, a
    /// group, or a [`Conversation`](crate::conversation::Conversation)) and
    /// records it in our history. Returns the message id.
    pub async fn send_body<'a>(
        &mut self,
        conversation: impl Into<ConversationRef<'a>>,
        body: content::Body,
    ) -> Result<Vec<u8>> {
        self.send_with_quote(conversation, body, None).await
    }

    /// Like [`Self::send_body`], quoting an earlier message.
    pub async fn send_with_quote<'a>(
        &mut self,
        conversation: impl Into<ConversationRef<'a>>,
        body: content::Body,
        quote: Option<content::Quote>,
    ) -> Result<Vec<u8>> {
        let conversation = self.conversation(conversation.into()).await?;
        Ok(self.core.send(&conversation, body, quote).await?)
    }

    /// Sends a text message.
    pub async fn send_text<'a>(
        &mut self,
        conversation: impl Into<ConversationRef<'a>>,
        text: &str,
    ) -> Result<Vec<u8>> {
        self.send_body(
            conversation,
            content::Body::Text(content::Text {
                body: text.to_owned(),
            }),
        )
        .await
    }

    /// Tells the senders of these direct messages that they were read.
    pub async fn send_read_receipts(&mut self, entries: &[HistoryEntry]) -> Result<()> {
        Ok(self.core.send_read_receipts(entries).await?)
    }

    /// Sets a conversation's disappearing-message timer, for both sides.
    pub async fn set_timer<'a>(
        &mut self,
        conversation: impl Into<ConversationRef<'a>>,
        seconds: u32,
    ) -> Result<()> {
        let conversation = self.conversation(conversation.into()).await?;
        Ok(self.core.set_timer(&conversation, seconds).await?)
    }
}
