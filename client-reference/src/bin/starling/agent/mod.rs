//! The passphrase agent: `starling unlock` asks for the passphrase once,
//! derives the store key and leaves it with a small process of its own
//! (`starling agent`, started by `unlock`, in [`serve`]) for a while;
//! commands run meanwhile take the key from it instead of asking.
//! `starling lock`, or the end of the time given, ends the agent and the
//! key with it.
//!
//! The agent listens on a Unix socket in the home, `agent.sock`, mode
//! 0600, and answers only processes of its own user (checked with the
//! peer's credentials on every connection); a command uses the socket only
//! if it and the home belong to the command's own user. The agent holds
//! the derived key, not the passphrase. What it is trusted with is what
//! the home's owner already has: the same user can read the store's files
//! and watch the processes that open it.
//!
//! `STARLING_PASSPHRASE`, when set, is used as before and the agent is not
//! asked.

pub(crate) mod serve;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::time::Duration;

use starling_client::StoreKey;
use zeroize::Zeroizing;

use crate::error::{CliError, Result};
use crate::output::Output;

/// The agent's socket, in the home.
pub(crate) const SOCKET: &str = "agent.sock";

/// The longest an agent may hold a key: a day.
const LONGEST: Duration = Duration::from_secs(24 * 60 * 60);

/// A key as it travels: 64 hex digits and a newline.
const KEY_LINE: usize = 65;

/// How long one request to the agent may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// The key from a running agent of this home, if there is one.
pub(crate) fn key_from_agent(home: &Path) -> Option<StoreKey> {
    let mut stream = connect(home)?;
    stream.write_all(b"key\n").ok()?;
    read_key(&mut stream).ok()
}

/// `starling unlock`: starts an agent holding `key` for `minutes`
/// (replacing one already running).
pub(crate) async fn unlock(home: &Path, key: &StoreKey, minutes: f64, out: Output) -> Result<()> {
    let lasting = duration(minutes)?;
    let _ = ask_to_lock(home);
    let mut agent = std::process::Command::new(std::env::current_exe()?)
        .arg("--home")
        .arg(home)
        .arg("agent")
        .arg("--seconds")
        .arg(lasting.as_secs().to_string())
        .env_remove("STARLING_PASSPHRASE")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let said = match (agent.stdin.take(), agent.stdout.take()) {
        (Some(mut stdin), Some(stdout)) => {
            stdin.write_all(&*key_line(key))?;
            drop(stdin);
            let mut line = String::new();
            BufReader::new(stdout.take(1024)).read_line(&mut line)?;
            line
        }
        _ => String::new(),
    };
    if said.trim() != "ready" {
        let _ = agent.kill();
        let _ = agent.wait();
        let reason = said
            .trim()
            .strip_prefix("error: ")
            .unwrap_or("it ended at once");
        return Err(CliError::AgentFailed(crate::output::clean(reason)));
    }
    let minutes_shown = (lasting.as_secs_f64() / 60.0 * 10.0).round() / 10.0;
    out.print(
        &serde_json::json!({ "unlocked": true, "seconds": lasting.as_secs() }),
        || format!("unlocked for {minutes_shown} minutes: commands here will not ask for the passphrase; `starling lock` locks now"),
    );
    Ok(())
}

/// `starling lock`: ends the agent, if one runs.
pub(crate) fn lock(home: &Path, out: Output) {
    let outcome = ask_to_lock(home);
    out.print(
        &serde_json::json!({ "locked": outcome != LockOutcome::NotAnswering, "agent_was_running": outcome != LockOutcome::NoAgent }),
        || match outcome {
            LockOutcome::Ended => "locked: the next command asks for the passphrase".to_owned(),
            LockOutcome::NoAgent => "no agent was running: commands already ask for the passphrase".to_owned(),
            LockOutcome::NotAnswering => "the agent did not answer; it ends by itself when its time is up".to_owned(),
        },
    );
}

/// What asking the agent to end came to.
#[derive(Debug, PartialEq, Eq)]
enum LockOutcome {
    Ended,
    NoAgent,
    NotAnswering,
}

fn ask_to_lock(home: &Path) -> LockOutcome {
    let Some(mut stream) = connect(home) else {
        return LockOutcome::NoAgent;
    };
    let mut reply = String::new();
    let answered = stream.write_all(b"lock\n").is_ok()
        && BufReader::new(stream.take(80))
            .read_line(&mut reply)
            .is_ok()
        && reply.trim() == "locked";
    if answered {
        LockOutcome::Ended
    } else {
        LockOutcome::NotAnswering
    }
}

/// A connection to the home's agent socket, if the home and the socket
/// belong to this process's own user and something listens on it.
fn connect(home: &Path) -> Option<std::os::unix::net::UnixStream> {
    let path = home.join(SOCKET);
    let socket = std::fs::symlink_metadata(&path).ok()?;
    let me = nix::unistd::geteuid().as_raw();
    let home_owner = std::fs::metadata(home).ok()?.uid();
    if !socket.file_type().is_socket() || socket.uid() != me || home_owner != me {
        return None;
    }
    let stream = std::os::unix::net::UnixStream::connect(&path).ok()?;
    stream.set_read_timeout(Some(REQUEST_TIMEOUT)).ok()?;
    stream.set_write_timeout(Some(REQUEST_TIMEOUT)).ok()?;
    Some(stream)
}

/// A key as one line of hex, in memory that is wiped.
fn key_line(key: &StoreKey) -> Zeroizing<[u8; KEY_LINE]> {
    let mut line = Zeroizing::new([b'\n'; KEY_LINE]);
    // 32 bytes always fit 64 hex digits.
    let _ = hex::encode_to_slice(key.as_bytes(), &mut line[..KEY_LINE - 1]);
    line
}

/// Reads a key as one line of hex, unbuffered: no copy of it is left in
/// a buffer that is not wiped.
fn read_key(from: &mut impl Read) -> std::io::Result<StoreKey> {
    let mut line = Zeroizing::new([0u8; KEY_LINE]);
    from.read_exact(&mut *line)?;
    let mut key = Zeroizing::new([0u8; 32]);
    let well_formed = line[KEY_LINE - 1] == b'\n'
        && hex::decode_to_slice(&line[..KEY_LINE - 1], &mut *key).is_ok();
    if !well_formed {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "not a key",
        ));
    }
    Ok(StoreKey::from_bytes(*key))
}

/// `--for MINUTES`, checked: more than nothing, at most a day.
fn duration(minutes: f64) -> Result<Duration> {
    if minutes.is_nan() || minutes <= 0.0 || minutes * 60.0 > LONGEST.as_secs_f64() {
        return Err(CliError::BadUnlockTime);
    }
    Ok(Duration::from_secs_f64((minutes * 60.0).max(1.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_line_is_read_whole_or_refused() {
        let key = StoreKey::from_bytes([7; 32]);
        let line = key_line(&key);
        let read = read_key(&mut line.as_slice()).unwrap();
        assert_eq!(read.as_bytes(), key.as_bytes());
        assert!(read_key(&mut &line[..40]).is_err());
        assert!(read_key(&mut "z".repeat(65).as_bytes()).is_err());
        let no_newline = format!("{}x", hex::encode([7u8; 32]));
        assert!(read_key(&mut no_newline.as_bytes()).is_err());
    }

    #[test]
    fn the_time_given_is_checked() {
        assert_eq!(duration(30.0).unwrap(), Duration::from_secs(1800));
        assert_eq!(duration(0.001).unwrap(), Duration::from_secs(1));
        assert!(duration(0.0).is_err());
        assert!(duration(-1.0).is_err());
        assert!(duration(f64::NAN).is_err());
        assert!(duration(24.0 * 60.0 + 1.0).is_err());
    }
}
