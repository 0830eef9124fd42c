//! What the listener accepts: at most `max_connections` connections at
//! once, and at most `max_connections_per_ip` from one address (an IPv6
//! address counts by its /64, which one host can fill; IPv4-mapped
//! addresses as IPv4; loopback is excepted: a TLS proxy on the same host,
//! or a load test, connects from there, and such a proxy must enforce
//! per-client limits itself). A connection over either cap is closed at once; every accepted
//! one holds a [`Slot`] that frees itself when the connection ends. The
//! TLS handshake and the reading of request headers have their own
//! deadlines (`main.rs` sets them), so a silent connection holds its slot
//! only that long.

use std::collections::HashMap;
use std::future::{Ready, ready};
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use axum_server::accept::Accept;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::config::ConnectionsConfig;

/// Open connections, in all and per address.
#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// Accepts connections within the caps, with `TCP_NODELAY` set (frames are
/// written as soon as they are ready; Nagle's algorithm would hold a small
/// one back until the previous one is acknowledged).
#[derive(Debug, Clone)]
pub struct CappedAcceptor {
    counts: Arc<Mutex<Counts>>,
    max_total: usize,
    max_per_ip: usize,
}

impl CappedAcceptor {
    /// An acceptor with the configured caps.
    pub fn new(config: &ConnectionsConfig) -> Self {
        Self {
            counts: Arc::default(),
            max_total: config.max_connections.max(1),
            max_per_ip: config.max_connections_per_ip.max(1),
        }
    }

    /// Takes a slot for a connection from `ip`, or `None` when a cap is
    /// reached.
    fn take(&self, ip: IpAddr) -> Option<Slot> {
        let ip = address_block(ip);
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if counts.total >= self.max_total {
            return None;
        }
        let limited = !ip.is_loopback();
        if limited {
            let from_ip = counts.per_ip.entry(ip).or_default();
            if *from_ip >= self.max_per_ip {
                return None;
            }
            *from_ip += 1;
        }
        counts.total += 1;
        Some(Slot {
            counts: self.counts.clone(),
            ip: limited.then_some(ip),
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .total
    }
}

/// What the per-address cap counts `ip` as: IPv4 (mapped or not) by
/// address, IPv6 by its /64.
fn address_block(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

/// One accepted connection's place within the caps; freed on drop.
#[derive(Debug)]
pub struct Slot {
    counts: Arc<Mutex<Counts>>,
    ip: Option<IpAddr>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        counts.total = counts.total.saturating_sub(1);
        if let Some(ip) = self.ip
            && let Some(from_ip) = counts.per_ip.get_mut(&ip)
        {
            *from_ip = from_ip.saturating_sub(1);
            if *from_ip == 0 {
                counts.per_ip.remove(&ip);
            }
        }
    }
}

/// A TCP stream holding its slot.
#[derive(Debug)]
pub struct CappedStream {
    inner: TcpStream,
    _slot: Slot,
}

impl AsyncRead for CappedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

/// `AsyncWrite` for a wrapper that writes through its `inner` stream
/// unchanged (the wrappers here only watch reads or the connection count).
macro_rules! write_through {
    ($($generics:ident)? ; $wrapper:ty) => {
        impl$(<$generics: AsyncWrite + Unpin>)? AsyncWrite for $wrapper {
            fn poll_write(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                Pin::new(&mut self.inner).poll_write(cx, buf)
            }

            fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Pin::new(&mut self.inner).poll_flush(cx)
            }

            fn poll_shutdown(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
            ) -> Poll<io::Result<()>> {
                Pin::new(&mut self.inner).poll_shutdown(cx)
            }

            fn poll_write_vectored(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[io::IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
            }

            fn is_write_vectored(&self) -> bool {
                self.inner.is_write_vectored()
            }
        }
    };
}

write_through!(; CappedStream);

impl<S> Accept<TcpStream, S> for CappedAcceptor {
    type Stream = CappedStream;
    type Service = S;
    type Future = Ready<io::Result<(CappedStream, S)>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        let accepted = (|| {
            let ip = stream.peer_addr()?.ip();
            let slot = self
                .take(ip)
                .ok_or_else(|| io::Error::other("connection cap reached"))?;
            stream.set_nodelay(true)?;
            Ok((
                CappedStream {
                    inner: stream,
                    _slot: slot,
                },
                service,
            ))
        })();
        ready(accepted)
    }
}

/// The HTTP/2 connection preface: until a connection's first bytes differ
/// from it, or all of it arrived, the server cannot tell HTTP/1 from
/// HTTP/2 and no request deadline runs yet.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Wraps an acceptor's streams in [`FirstBytes`].
#[derive(Debug, Clone)]
pub struct FirstBytesDeadline<A> {
    inner: A,
    deadline: std::time::Duration,
}

impl<A> FirstBytesDeadline<A> {
    /// `inner`'s streams, each closed unless its first bytes tell its
    /// protocol within `deadline`.
    pub fn new(inner: A, deadline: std::time::Duration) -> Self {
        Self { inner, deadline }
    }
}

impl<A, I, S> Accept<I, S> for FirstBytesDeadline<A>
where
    A: Accept<I, S>,
    A::Future: Send + 'static,
    A::Stream: Send + 'static,
    A::Service: Send + 'static,
{
    type Stream = FirstBytes<A::Stream>;
    type Service = A::Service;
    type Future = Pin<Box<dyn Future<Output = io::Result<(Self::Stream, Self::Service)>> + Send>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let accepting = self.inner.accept(stream, service);
        let deadline = self.deadline;
        Box::pin(async move {
            let (stream, service) = accepting.await?;
            Ok((
                FirstBytes {
                    inner: stream,
                    matched: 0,
                    sleep: Some(Box::pin(tokio::time::sleep(deadline))),
                },
                service,
            ))
        })
    }
}

/// A stream that fails its reads once its deadline passes before its
/// first bytes tell HTTP/1 from HTTP/2.
#[derive(Debug)]
pub struct FirstBytes<S> {
    inner: S,
    matched: usize,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S: AsyncRead + Unpin> AsyncRead for FirstBytes<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let Some(sleep) = this.sleep.as_mut() else {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        };
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                for byte in &buf.filled()[before..] {
                    if H2_PREFACE.get(this.matched) == Some(byte) {
                        this.matched += 1;
                    } else {
                        this.sleep = None;
                        break;
                    }
                }
                if this.matched >= H2_PREFACE.len() {
                    this.sleep = None;
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => match sleep.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(io::ErrorKind::TimedOut.into())),
                Poll::Pending => Poll::Pending,
            },
            other => other,
        }
    }
}

write_through!(S; FirstBytes<S>);

#[cfg(test)]
mod tests {
    use super::*;

    fn acceptor(total: usize, per_ip: usize) -> CappedAcceptor {
        CappedAcceptor::new(&ConnectionsConfig {
            max_connections: total,
            max_connections_per_ip: per_ip,
            ..ConnectionsConfig::default()
        })
    }

    #[test]
    fn caps_hold_per_address_and_in_all_and_free_on_drop() {
        let caps = acceptor(4, 2);
        let a: IpAddr = "203.0.113.1".parse().unwrap();
        let b: IpAddr = "203.0.113.2".parse().unwrap();
        let first = caps.take(a).unwrap();
        let _second = caps.take(a).unwrap();
        assert!(caps.take(a).is_none(), "a third from one address");
        let _third = caps.take(b).unwrap();
        let _fourth = caps.take(b).unwrap();
        assert!(caps.take("203.0.113.3".parse().unwrap()).is_none());
        drop(first);
        assert_eq!(caps.open(), 3);
        assert!(caps.take(a).is_some());
    }

    #[test]
    fn an_ipv6_block_counts_as_one_address_and_mapped_ipv4_as_ipv4() {
        let caps = acceptor(10, 2);
        let _one = caps.take("2001:db8:1:2::1".parse().unwrap()).unwrap();
        let _two = caps.take("2001:db8:1:2::ffff".parse().unwrap()).unwrap();
        assert!(caps.take("2001:db8:1:2:abcd::9".parse().unwrap()).is_none());
        assert!(caps.take("2001:db8:1:3::1".parse().unwrap()).is_some());
        let _v4 = caps.take("203.0.113.9".parse().unwrap()).unwrap();
        let _mapped = caps.take("::ffff:203.0.113.9".parse().unwrap()).unwrap();
        assert!(caps.take("203.0.113.9".parse().unwrap()).is_none());
        // Mapped loopback is loopback.
        for _ in 0..3 {
            assert!(caps.take("::ffff:127.0.0.1".parse().unwrap()).is_some());
        }
    }

    #[test]
    fn loopback_counts_only_toward_the_total() {
        let caps = acceptor(3, 1);
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let slots: Vec<Slot> = (0..3).filter_map(|_| caps.take(local)).collect();
        assert_eq!(slots.len(), 3);
        assert!(caps.take(local).is_none());
    }
}
