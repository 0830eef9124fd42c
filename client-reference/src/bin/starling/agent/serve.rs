//! `starling agent`, the process `starling unlock` starts: it reads the
//! key on stdin, says `ready` on stdout (or `error: …`), and serves the key
//! on the home's socket until `lock`, the end of its time (by the monotonic
//! clock and by the wall clock, so a machine's sleep counts), or a signal
//! to stop. One agent per home: it holds an exclusive lock on
//! `agent.lock` while it runs, and removes the socket only if it is still
//! the one it bound.

use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::signal::unix::{SignalKind, signal};
use zeroize::Zeroizing;

use super::{KEY_LINE, LONGEST, REQUEST_TIMEOUT, SOCKET, key_line, read_key};
use crate::error::{CliError, Result};

/// The file whose exclusive lock the running agent holds.
const LOCK: &str = "agent.lock";

/// How long a new agent waits for the one it replaces to end.
const TAKE_OVER: Duration = Duration::from_secs(3);

/// How often the agent wakes to check the wall clock.
const CHECK_EVERY: Duration = Duration::from_secs(5);

/// Runs the agent of `home` for `seconds`.
pub(crate) async fn serve(home: &Path, seconds: u64) -> Result<()> {
    match start(home).await {
        Ok((listener, key, _exclusive)) => {
            // The one who started the agent may be gone: nothing to tell.
            let _ = writeln!(std::io::stdout(), "ready");
            let path = home.join(SOCKET);
            let bound = identity(&path);
            run(&listener, key.as_slice(), Deadline::after(seconds)).await;
            if bound.is_some() && identity(&path) == bound {
                let _ = std::fs::remove_file(&path);
            }
            Ok(())
        }
        Err(error) => {
            let _ = writeln!(std::io::stdout(), "error: {error}");
            Err(error)
        }
    }
}

/// The key read, the agent made the home's only one, its socket bound.
async fn start(
    home: &Path,
) -> Result<(
    tokio::net::UnixListener,
    Zeroizing<[u8; KEY_LINE]>,
    std::fs::File,
)> {
    harden();
    // Standard input without std's buffer, which would keep a copy.
    let mut stdin = std::fs::File::from(std::io::stdin().as_fd().try_clone_to_owned()?);
    let key = read_key(&mut stdin)
        .map_err(|_| CliError::AgentFailed("no key was handed to it".into()))?;
    let line = key_line(&key);
    drop(key);
    let exclusive = exclusive(home).await?;
    let path = home.join(SOCKET);
    // With the lock held, no other agent serves a socket left here.
    if std::fs::symlink_metadata(&path).is_ok() {
        std::fs::remove_file(&path)?;
    }
    let listener = tokio::net::UnixListener::bind(&path)
        .map_err(|e| CliError::AgentFailed(format!("cannot listen on {}: {e}", path.display())))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok((listener, line, exclusive))
}

/// Serves until told to lock, the deadline, or a signal to stop.
async fn run(listener: &tokio::net::UnixListener, key: &[u8], deadline: Deadline) {
    let (Ok(mut term), Ok(mut hangup), Ok(mut interrupt)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
        signal(SignalKind::interrupt()),
    ) else {
        return;
    };
    let me = nix::unistd::geteuid().as_raw();
    loop {
        let wait = deadline.remaining();
        if wait.is_zero() {
            return;
        }
        tokio::select! {
            accepted = tokio::time::timeout(wait.min(CHECK_EVERY), listener.accept()) => {
                match accepted {
                    Err(_) => {}
                    Ok(Err(_)) => tokio::time::sleep(Duration::from_millis(100)).await,
                    Ok(Ok((stream, _))) => {
                        if stream.peer_cred().is_ok_and(|peer| peer.uid() == me)
                            && answer(stream, key).await == Some(Request::Lock)
                        {
                            return;
                        }
                    }
                }
            }
            _ = term.recv() => return,
            _ = hangup.recv() => return,
            _ = interrupt.recv() => return,
        }
    }
}

/// What a client asked for.
#[derive(Debug, PartialEq, Eq)]
enum Request {
    Key,
    Lock,
    Other,
}

/// Reads one request and answers it. A `lock` ends the agent whether or
/// not the answer reaches the asker.
async fn answer(stream: tokio::net::UnixStream, key: &[u8]) -> Option<Request> {
    let (reader, mut writer) = stream.into_split();
    let mut line = String::new();
    let mut reader = tokio::io::BufReader::new(tokio::io::AsyncReadExt::take(reader, 16));
    tokio::time::timeout(REQUEST_TIMEOUT, reader.read_line(&mut line))
        .await
        .ok()?
        .ok()?;
    let request = match line.trim() {
        "key" => Request::Key,
        "lock" => Request::Lock,
        _ => Request::Other,
    };
    let reply: &[u8] = match request {
        Request::Key => key,
        Request::Lock => b"locked\n",
        Request::Other => b"unknown request\n",
    };
    let _ = tokio::time::timeout(REQUEST_TIMEOUT, writer.write_all(reply)).await;
    Some(request)
}

/// The home's agent lock, taken exclusively; waits a little for an agent
/// that is ending.
async fn exclusive(home: &Path) -> Result<std::fs::File> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(home.join(LOCK))?;
    let until = tokio::time::Instant::now() + TAKE_OVER;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if tokio::time::Instant::now() < until => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(_) => {
                return Err(CliError::AgentFailed(
                    "another agent of this home is still running; try `starling lock`".into(),
                ));
            }
        }
    }
}

/// The socket file's identity (device, inode), to remove only our own.
fn identity(path: &Path) -> Option<(u64, u64)> {
    std::fs::symlink_metadata(path)
        .ok()
        .map(|m| (m.dev(), m.ino()))
}

/// No core dump or debugger attach by another process of the user's
/// (Linux), where the key could be read from.
fn harden() {
    #[cfg(target_os = "linux")]
    let _ = nix::sys::prctl::set_dumpable(false);
}

/// When the agent ends: by the monotonic clock, and by the wall clock,
/// which keeps running while the machine sleeps.
struct Deadline {
    monotonic: tokio::time::Instant,
    wall: SystemTime,
}

impl Deadline {
    fn after(seconds: u64) -> Self {
        let lasting = Duration::from_secs(seconds).min(LONGEST);
        Self {
            monotonic: tokio::time::Instant::now() + lasting,
            wall: SystemTime::now() + lasting,
        }
    }

    fn remaining(&self) -> Duration {
        let by_wall = self
            .wall
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        let by_monotonic = self
            .monotonic
            .saturating_duration_since(tokio::time::Instant::now());
        by_wall.min(by_monotonic)
    }
}
