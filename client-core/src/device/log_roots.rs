//! Roots compared inside sessions (`crypto/SPEC.md` §16.7): the root a
//! contact's content carries is compared with this device's view of the
//! transparency log ([`crate::transparency::compare_peer_root`]); a
//! conflict is a warning for the person, an event for the app, and an
//! answer carrying this device's root of the same epoch, so that the
//! contact holds the proof and warns too. An answer is never answered.

use rand_core::CryptoRngCore;

use super::{Device, Result};
use crate::clock::Clock;
use crate::content::{self, Body, Content};
use crate::error::DeviceError;
use crate::events::Event;
use crate::storage::Storage;
use crate::transparency::{LogError, PeerRoot, compare_peer_root};
use crate::transport::Transport;

impl<S, T, C, R> Device<S, T, C, R>
where
    S: Storage,
    T: Transport,
    C: Clock,
    R: CryptoRngCore,
{
    /// Compares the root `content` from `sender`'s `device` carried with
    /// ours. The server out of reach leaves it for the next content.
    pub(super) async fn compare_log_root(
        &mut self,
        sender: &str,
        device: u32,
        content: &Content,
    ) -> Result<Vec<Event>, S, T> {
        if content.log_root.is_empty() {
            return Ok(Vec::new());
        }
        let compared = compare_peer_root(&self.storage, &self.transport, &content.log_root).await;
        let (epoch, ours) = match compared {
            Ok(PeerRoot::Consistent) => return Ok(Vec::new()),
            Ok(PeerRoot::Conflict { epoch, ours }) => (Some(epoch), ours),
            Ok(PeerRoot::OtherLog) => (None, None),
            Err(LogError::Storage(e)) => return Err(DeviceError::Storage(e)),
            Err(error) => {
                tracing::info!(%error, "a contact's log root could not be compared");
                return Ok(Vec::new());
            }
        };
        tracing::warn!(?epoch, "a contact was shown another transparency log");
        let warning = split_view_warning(sender, device, epoch);
        let added = self.storage.add_warning(sender, &warning).await;
        let new = added.map_err(DeviceError::Storage)?;
        // Answered once per contact device and epoch (the warning names
        // both), and never to an answer: a contact cannot make this
        // device send without bound.
        let answer = new && !matches!(content.body, Some(Body::LogRootAnswer(_)));
        if let (true, Some(ours)) = (answer, ours) {
            let mut answer = self.new_content(Body::LogRootAnswer(content::LogRootAnswer {}));
            answer.log_root = ours.to_bytes();
            if let Err(error) = self.send_pairwise(&[sender.to_owned()], &answer).await {
                match error {
                    DeviceError::Storage(e) => return Err(DeviceError::Storage(e)),
                    other => tracing::info!(error = %other, "the log root answer was not sent"),
                }
            }
        }
        Ok(vec![Event::SplitView {
            sender: sender.to_owned(),
            device,
            epoch,
        }])
    }
}

/// The warning a person sees when `sender`'s `device` was shown another
/// log (two roots for `epoch`, or another log altogether).
fn split_view_warning(sender: &str, device: u32, epoch: Option<u64>) -> String {
    match epoch {
        Some(epoch) => format!(
            "SPLIT VIEW: {sender}'s device {device} was shown another root of the transparency \
             log for epoch {epoch} than this device: the server shows you and {sender} \
             different logs, so the keys it serves either of you may not be the ones the other \
             sees; tell your administrator, and compare safety numbers with {sender} in person"
        ),
        None => format!(
            "{sender}'s device {device} sent a transparency log root this device cannot check \
             (not signed by the log key it pinned): the server gave {sender} another log, or \
             {sender}'s app is faulty; compare safety numbers with {sender} in person"
        ),
    }
}
