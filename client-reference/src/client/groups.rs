//! Groups, as a person names them: the group a name or id prefix means,
//! if we are still a member. What a change does (control messages, Sender
//! Key rotation) is the client core's
//! ([`starling_client_core::device`]).

use super::Client;
use crate::error::{ClientError, Result};
use crate::store::GroupRecord;

impl Client {
    /// Creates a group with `members` (we are added) and tells them.
    pub async fn create_group(&mut self, name: &str, members: &[String]) -> Result<GroupRecord> {
        Ok(self.core.create_group(name, members).await?)
    }

    /// Adds members (explicitly, so this also brings back someone who
    /// was removed).
    pub async fn add_members(&mut self, group: &str, users: &[String]) -> Result<GroupRecord> {
        let record = self.active_group(group).await?;
        Ok(self.core.add_members(&record.id(), users).await?)
    }

    /// Removes members; they are told, and every remaining member rotates
    /// its sender key before its next message.
    pub async fn remove_members(&mut self, group: &str, users: &[String]) -> Result<GroupRecord> {
        let record = self.active_group(group).await?;
        Ok(self.core.remove_members(&record.id(), users).await?)
    }

    /// Renames a group.
    pub async fn rename_group(&mut self, group: &str, name: &str) -> Result<GroupRecord> {
        let record = self.active_group(group).await?;
        Ok(self.core.rename_group(&record.id(), name).await?)
    }

    /// Leaves a group: the others are told, our keys for it are dropped.
    pub async fn leave_group(&mut self, group: &str) -> Result<()> {
        let record = self.active_group(group).await?;
        Ok(self.core.leave_group(&record.id()).await?)
    }

    /// All groups this home knows.
    pub async fn groups(&self) -> Result<Vec<GroupRecord>> {
        self.store().groups().await
    }

    /// The group `name` (its name or an id prefix, with or without `#`),
    /// if we are still a member.
    pub(super) async fn active_group(&self, name: &str) -> Result<GroupRecord> {
        let group = self
            .store()
            .find_group(name.strip_prefix('#').unwrap_or(name))
            .await?;
        if !group.active {
            return Err(ClientError::NotAMember(name.to_owned()));
        }
        Ok(group)
    }
}
