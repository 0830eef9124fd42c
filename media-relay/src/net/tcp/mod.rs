//! ICE-TCP (RFC 6544), passive side: clients that cannot use UDP connect
//! to the relay's TCP candidate and carry the same STUN, DTLS and SRTP
//! datagrams over the stream, each framed by a 16-bit length (RFC 4571).
//!
//! Each connection has a reader task (frames in, to the engine task) and a
//! writer task (frames out, from a bounded queue); the engine task keeps
//! the table of open connections (`table`, [`TcpConnections`]) and closes
//! those no participant claims. Nothing here looks inside a frame.

mod table;

pub(crate) use table::TcpConnections;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::metrics::{Metrics, TcpCloseReason};

/// Longest frame taken or sent: above any WebRTC datagram (the UDP path
/// reads the same). A longer one is not ICE traffic and ends the stream.
const MAX_FRAME: usize = 2048;

/// Frames waiting to be written to one connection. A full queue drops
/// like a full UDP socket buffer.
const WRITE_QUEUE: usize = 256;

/// Events from all connections waiting for the engine task.
pub(crate) const EVENT_QUEUE: usize = 1024;

/// Pause after a failed accept (e.g. out of file descriptors), so the
/// loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// What a connection reports to the engine task.
#[derive(Debug)]
pub(crate) enum TcpEvent {
    /// A connection was accepted; frames for it go to `frames`, and
    /// dropping `close` ends it.
    Opened {
        id: u64,
        peer: SocketAddr,
        frames: mpsc::Sender<Vec<u8>>,
        close: oneshot::Sender<()>,
    },
    /// One framed datagram arrived.
    Frame {
        id: u64,
        peer: SocketAddr,
        bytes: Vec<u8>,
    },
    /// The peer closed the connection, or it failed.
    Closed {
        id: u64,
        peer: SocketAddr,
        reason: TcpCloseReason,
    },
}

/// Accepts connections until the engine task is gone, at most
/// `max_connections` open at once (the rest are closed on accept).
pub(crate) async fn accept(
    listener: TcpListener,
    events: mpsc::Sender<TcpEvent>,
    max_connections: usize,
    metrics: Metrics,
) {
    let permits = Arc::new(Semaphore::new(max_connections));
    let mut next_id = 0u64;
    while !events.is_closed() {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::debug!(error = %e.kind(), "tcp accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            metrics.close_tcp(TcpCloseReason::Limit);
            continue;
        };
        next_id += 1;
        tokio::spawn(serve(next_id, stream, events.clone(), permit));
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One connection: announces it, then reads frames until the peer or the
/// engine task closes it. Its writer dies with it.
async fn serve(
    id: u64,
    stream: TcpStream,
    events: mpsc::Sender<TcpEvent>,
    _permit: OwnedSemaphorePermit,
) {
    let Ok(peer) = stream.peer_addr() else {
        return;
    };
    // Media is latency-bound; every frame is a whole datagram.
    let _ = stream.set_nodelay(true);
    let (read, write) = stream.into_split();
    let (frames, queued) = mpsc::channel(WRITE_QUEUE);
    let (close, closed) = oneshot::channel();
    let _writer = AbortOnDrop(tokio::spawn(write_frames(write, queued)));
    let opened = TcpEvent::Opened {
        id,
        peer,
        frames,
        close,
    };
    if events.send(opened).await.is_err() {
        return;
    }
    tokio::select! {
        reason = read_frames(id, peer, read, &events) => {
            let _ = events.send(TcpEvent::Closed { id, peer, reason }).await;
        }
        // The engine task dropped the connection: nothing to report.
        _ = closed => {}
    }
}

/// Reads frames and hands them on; returns why it stopped.
async fn read_frames(
    id: u64,
    peer: SocketAddr,
    read: OwnedReadHalf,
    events: &mpsc::Sender<TcpEvent>,
) -> TcpCloseReason {
    let mut read = BufReader::new(read);
    loop {
        let Ok(len) = read.read_u16().await else {
            return TcpCloseReason::Peer;
        };
        let len = usize::from(len);
        if len == 0 || len > MAX_FRAME {
            return TcpCloseReason::BadFrame;
        }
        let mut bytes = vec![0; len];
        if read.read_exact(&mut bytes).await.is_err() {
            return TcpCloseReason::Peer;
        }
        // Waiting here when the engine task is busy pushes back on the
        // peer through TCP's own flow control.
        if events
            .send(TcpEvent::Frame { id, peer, bytes })
            .await
            .is_err()
        {
            return TcpCloseReason::Peer;
        }
    }
}

/// Writes queued frames, flushing whenever the queue runs dry.
async fn write_frames(write: OwnedWriteHalf, mut queued: mpsc::Receiver<Vec<u8>>) {
    let mut write = BufWriter::new(write);
    while let Some(frame) = queued.recv().await {
        if write.write_all(&frame).await.is_err() {
            return;
        }
        while let Ok(frame) = queued.try_recv() {
            if write.write_all(&frame).await.is_err() {
                return;
            }
        }
        if write.flush().await.is_err() {
            return;
        }
    }
}

/// `contents` with its RFC 4571 length prefix, or `None` if empty or
/// longer than [`MAX_FRAME`].
pub(crate) fn frame(contents: &[u8]) -> Option<Vec<u8>> {
    if contents.is_empty() || contents.len() > MAX_FRAME {
        return None;
    }
    let len = u16::try_from(contents.len()).ok()?;
    let mut framed = Vec::with_capacity(2 + contents.len());
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(contents);
    Some(framed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_a_big_endian_length() {
        assert_eq!(frame(&[7, 8, 9]), Some(vec![0, 3, 7, 8, 9]));
        assert_eq!(frame(&[]), None);
        assert_eq!(frame(&[0; MAX_FRAME + 1]), None);
        assert_eq!(frame(&[1; MAX_FRAME]).map(|f| f.len()), Some(MAX_FRAME + 2));
    }
}
