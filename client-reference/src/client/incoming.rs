//! Incoming envelopes: the WebSocket feeds them to the client core, which
//! decrypts, stages and applies each ([`starling_client_core::device`]);
//! only then is the envelope acknowledged to the server.

use std::time::Duration;

use super::Client;
use crate::connection::{Connection, ServerEvent};
use crate::error::{ClientError, Result};
use crate::frames::Envelope;
use starling_client_core::Event;

impl Client {
    /// Opens the WebSocket and tops up prekeys if needed (a failed top-up
    /// is logged, not fatal).
    pub async fn connect(&mut self) -> Result<Connection> {
        let connection = Connection::open(self.api()).await?;
        self.maintain_prekeys_or_log().await;
        self.core.forget_own_devices();
        Ok(connection)
    }

    /// Waits for the next server event and processes it. Returns the
    /// events it produced (possibly none), or `None` once the server
    /// closed the connection. `drained` is set when the queue of envelopes
    /// waiting at connect time has been delivered.
    pub async fn next_events(
        &mut self,
        connection: &mut Connection,
        drained: &mut bool,
    ) -> Result<Option<Vec<Event>>> {
        let Some(event) = connection.next_event().await? else {
            return Ok(None);
        };
        self.handle_server_event(connection, event, drained)
            .await
            .map(Some)
    }

    /// Processes one event read from the connection with
    /// [`Connection::next_event`]. Reading is cancel safe; this is not: run
    /// it to completion (outside a `select!`).
    pub async fn handle_server_event(
        &mut self,
        connection: &mut Connection,
        event: ServerEvent,
        drained: &mut bool,
    ) -> Result<Vec<Event>> {
        match event {
            ServerEvent::Envelope(envelope) => {
                let id = envelope.id.clone();
                let events = self.process_envelope(envelope).await?;
                connection.acknowledge(vec![id]).await?;
                // A connection may stay open for weeks: rotation is due by
                // the clock, not only when the server reports low stock.
                if self.core.prekey_rotation_due() {
                    self.maintain_prekeys_or_log().await;
                }
                Ok(events)
            }
            ServerEvent::QueueDrained => {
                *drained = true;
                Ok(Vec::new())
            }
            ServerEvent::PrekeysLow => {
                self.maintain_prekeys_or_log().await;
                Ok(Vec::new())
            }
            ServerEvent::Error(reason) => Err(ClientError::Protocol(reason)),
        }
    }

    /// The events arriving for this device, as a stream that runs until the
    /// server closes the connection (or an error, which ends it). Staged
    /// envelopes from before a crash come first. Each envelope is stored
    /// before it is acknowledged.
    pub async fn events(&mut self) -> Result<impl futures_util::Stream<Item = Result<Event>> + '_> {
        let pending: std::collections::VecDeque<Event> = self.apply_pending().await?.into();
        let connection = self.connect().await?;
        let state = (self, Some(connection), pending);
        Ok(futures_util::stream::unfold(
            state,
            |(client, mut connection, mut pending)| async move {
                loop {
                    if let Some(event) = pending.pop_front() {
                        return Some((Ok(event), (client, connection, pending)));
                    }
                    let conn = connection.as_mut()?;
                    let mut drained = false;
                    match client.next_events(conn, &mut drained).await {
                        Ok(Some(events)) => pending.extend(events),
                        Ok(None) => return None,
                        Err(e) => return Some((Err(e), (client, None, pending))),
                    }
                }
            },
        ))
    }

    /// Receives what is queued; when `wait` is given, keeps listening until
    /// something arrives or the time is up. Returns everything that happened.
    ///
    /// Everything returned is already stored. When an error cuts the
    /// exchange short after something arrived, what arrived is returned
    /// (the error is logged, and the next call meets it again if it lasts).
    pub async fn receive(&mut self, wait: Option<Duration>) -> Result<Vec<Event>> {
        let mut events = self.apply_pending().await?;
        let mut connection = self.connect().await?;
        let deadline = tokio::time::Instant::now() + wait.unwrap_or_default();
        let mut drained = false;
        loop {
            let done = drained && (wait.is_none() || !events.is_empty());
            if done {
                break;
            }
            let next = if drained {
                match tokio::time::timeout_at(
                    deadline,
                    self.next_events(&mut connection, &mut drained),
                )
                .await
                {
                    Ok(next) => next,
                    Err(_) => break,
                }
            } else {
                self.next_events(&mut connection, &mut drained).await
            };
            match next {
                Ok(Some(new)) => events.extend(new),
                Ok(None) => break,
                Err(error) if !events.is_empty() => {
                    tracing::warn!(%error, "receiving stopped early");
                    break;
                }
                Err(error) => return Err(error),
            }
        }
        connection.close().await;
        self.delete_expired().await?;
        Ok(events)
    }

    /// Decrypts and applies one envelope (the core's
    /// [`Device::process_envelope`](starling_client_core::Device::process_envelope)).
    /// Store and network failures are returned (the envelope stays on the
    /// server); unreadable envelopes become a [`Event::DecryptionFailed`].
    pub async fn process_envelope(&mut self, envelope: Envelope) -> Result<Vec<Event>> {
        Ok(self.core.process_envelope(&envelope).await?)
    }

    /// Applies envelopes that were decrypted but not applied when the
    /// client last stopped (a crash); their envelopes may already be gone
    /// from the server.
    pub async fn apply_pending(&mut self) -> Result<Vec<Event>> {
        Ok(self.core.apply_pending().await?)
    }
}
