//! Sending many UDP datagrams at once. A forwarded packet fans out to
//! every other participant of a call, each at its own address, so the
//! datagrams of one engine turn go to many destinations: on Linux they
//! leave in one `sendmmsg(2)` per batch (GSO would need one destination);
//! elsewhere one `send_to` each.

use std::io;
use std::net::SocketAddr;

/// Datagrams handed to the kernel in one call at most.
pub const MAX_BATCH: usize = 64;

/// Sends the first datagrams of `datagrams` (at most [`MAX_BATCH`]) on a
/// non-blocking UDP `socket` in one system call; returns how many left,
/// in order (the kernel sends at least one or fails). An error means the
/// first one did not leave (`WouldBlock`: the socket buffer is full).
#[cfg(target_os = "linux")]
pub fn sendmmsg_some(
    socket: impl std::os::fd::AsFd,
    datagrams: &[(SocketAddr, &[u8])],
) -> io::Result<usize> {
    use rustix::net::addr::SocketAddrArg;
    use rustix::net::{MMsgHdr, SendAncillaryBuffer, SendFlags, sendmmsg};

    let batch = datagrams.get(..MAX_BATCH).unwrap_or(datagrams);
    let addrs: Vec<_> = batch.iter().map(|(to, _)| to.as_any()).collect();
    let iovs: Vec<[io::IoSlice<'_>; 1]> = batch
        .iter()
        .map(|(_, bytes)| [io::IoSlice::new(bytes)])
        .collect();
    let mut controls: Vec<SendAncillaryBuffer<'_, '_, '_>> = batch
        .iter()
        .map(|_| SendAncillaryBuffer::default())
        .collect();
    let mut messages: Vec<MMsgHdr<'_>> = addrs
        .iter()
        .zip(&iovs)
        .zip(&mut controls)
        .map(|((addr, iov), control)| MMsgHdr::new_with_addr(addr, iov, control))
        .collect();
    Ok(sendmmsg(socket, &mut messages, SendFlags::DONTWAIT)?)
}

/// Sends the first datagrams of `datagrams` on the relay's socket without
/// waiting: a batch on Linux, one elsewhere. As [`sendmmsg_some`].
pub(crate) fn try_send_some(
    socket: &tokio::net::UdpSocket,
    datagrams: &[(SocketAddr, &[u8])],
) -> io::Result<usize> {
    #[cfg(target_os = "linux")]
    {
        socket.try_io(tokio::io::Interest::WRITABLE, || {
            sendmmsg_some(socket, datagrams)
        })
    }
    #[cfg(not(target_os = "linux"))]
    {
        match datagrams.first() {
            Some((to, bytes)) => socket.try_send_to(bytes, *to).map(|_| 1),
            None => Ok(0),
        }
    }
}

/// Sends every datagram it can, in order; returns how many were dropped
/// (a full socket buffer drops the rest, as a lossy link would; a
/// datagram the kernel refuses is dropped alone).
pub fn send_all(
    mut send: impl FnMut(&[(SocketAddr, &[u8])]) -> io::Result<usize>,
    datagrams: &[(SocketAddr, &[u8])],
) -> usize {
    let mut rest = datagrams;
    let mut dropped = 0;
    while !rest.is_empty() {
        match send(rest) {
            Ok(n) if n > 0 => rest = rest.get(n..).unwrap_or_default(),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return dropped + rest.len(),
            _ => {
                dropped += 1;
                rest = rest.get(1..).unwrap_or_default();
            }
        }
    }
    dropped
}

#[cfg(test)]
mod tests {
    use std::net::UdpSocket;
    use std::time::Duration;

    use super::*;

    #[cfg(target_os = "linux")]
    fn receivers(n: usize) -> Vec<UdpSocket> {
        (0..n)
            .map(|_| {
                let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
                socket
                    .set_read_timeout(Some(Duration::from_secs(5)))
                    .unwrap();
                socket
            })
            .collect()
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn every_datagram_reaches_its_own_destination() {
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        sender.set_nonblocking(true).unwrap();
        let receivers = receivers(MAX_BATCH + 6);
        let payloads: Vec<Vec<u8>> = (0..receivers.len())
            .map(|i| vec![u8::try_from(i).unwrap(); 100 + i])
            .collect();
        let datagrams: Vec<(SocketAddr, &[u8])> = receivers
            .iter()
            .zip(&payloads)
            .map(|(r, p)| (r.local_addr().unwrap(), p.as_slice()))
            .collect();
        let dropped = send_all(|rest| sendmmsg_some(&sender, rest), &datagrams);
        assert_eq!(dropped, 0);
        for (receiver, payload) in receivers.iter().zip(&payloads) {
            let mut buf = [0u8; 512];
            let (n, from) = receiver.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], payload.as_slice());
            assert_eq!(from, sender.local_addr().unwrap());
        }
    }

    #[test]
    fn a_full_buffer_drops_the_rest_and_a_refused_datagram_drops_alone() {
        let to: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let datagrams = [(to, &b"a"[..]), (to, b"b"), (to, b"c"), (to, b"d")];
        let mut calls = 0;
        let dropped = send_all(
            |rest| {
                calls += 1;
                match rest.len() {
                    4 => Ok(1),
                    3 => Err(io::ErrorKind::InvalidInput.into()),
                    _ => Err(io::ErrorKind::WouldBlock.into()),
                }
            },
            &datagrams,
        );
        assert_eq!((dropped, calls), (3, 3));
    }
}
