//! The `starling` command's errors: the client library's, and those of
//! arguments only the command line has (passphrase prompts, message id
//! prefixes, numbers of seconds). Each prints as one line saying what to
//! do next.

use starling_client::ClientError;
use thiserror::Error;

/// Everything a `starling` command can fail with.
#[derive(Debug, Error)]
pub(crate) enum CliError {
    /// The client library failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// No `--home` and no data folder to put one in.
    #[error("no data folder on this system: pass --home DIR")]
    NoDataFolder,
    /// The passphrase was typed differently the second time.
    #[error("the passphrases differ; try again")]
    PassphrasesDiffer,
    /// An empty passphrase.
    #[error("an empty passphrase is not allowed")]
    EmptyPassphrase,
    /// The passphrase agent did not start.
    #[error("the passphrase agent did not start ({0}); commands will ask for the passphrase")]
    AgentFailed(String),
    /// `unlock --for` out of range.
    #[error("--for is in minutes: more than 0 and at most 1440 (a day)")]
    BadUnlockTime,
    /// A location outside the globe.
    #[error("latitude is -90..90 and longitude -180..180")]
    BadLocation,
    /// A number of seconds that is negative, too large or not a number.
    #[error("{flag} takes a number of seconds, at most 86400")]
    BadSeconds {
        /// The option, e.g. `--wait`.
        flag: &'static str,
    },
    /// A message id prefix that is too short or not hex.
    #[error("give a message id (at least 4 hex characters, from `starling history`)")]
    BadMessageId,
    /// No message id starts with the prefix.
    #[error("no message `{0}` (see `starling history`)")]
    NoSuchMessage(String),
    /// Several message ids start with the prefix.
    #[error("`{0}` matches several messages; give more characters")]
    AmbiguousMessageId(String),
    /// Editing or deleting someone else's message, or one of another
    /// conversation.
    #[error("you can only {0} your own messages of this conversation")]
    NotYourMessage(&'static str),
    /// `--server` without a scheme.
    #[error("--server needs the address as https://HOST:PORT: try --server https://{0}")]
    ServerWithoutScheme(String),
    /// `--server http://…`: the command talks to servers over TLS only.
    #[error(
        "--server must be https://: starling talks to servers over TLS only (try --server https://{0}; with the server's own certificate add --ca-fingerprint, which the server prints at start)"
    )]
    ServerNotTls(String),
    /// `--server` with a scheme other than https.
    #[error("--server must start with https:// (the address the server prints at start)")]
    ServerScheme,
    /// An epoch of the transparency log failed its audit.
    #[error("epoch {} of the log fails its audit", .0.epoch)]
    AuditFailed(Box<starling_client::audit_log::AuditReport>),
}

impl From<std::io::Error> for CliError {
    fn from(error: std::io::Error) -> Self {
        Self::Client(error.into())
    }
}

/// Shorthand.
pub(crate) type Result<T, E = CliError> = std::result::Result<T, E>;

/// A `--server` as typed, checked for what the library would take in a
/// way no person could make sense of (`host:port` parses as a scheme).
pub(crate) fn server_url(typed: &str) -> Result<String> {
    let typed = typed.trim();
    match typed.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") && !rest.is_empty() => {
            Ok(typed.to_owned())
        }
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => {
            Err(CliError::ServerNotTls(rest.to_owned()))
        }
        Some(_) => Err(CliError::ServerScheme),
        None => Err(CliError::ServerWithoutScheme(typed.to_owned())),
    }
}

/// Seconds as typed on the command line, checked.
pub(crate) fn seconds(flag: &'static str, value: f64) -> Result<std::time::Duration> {
    if value.is_finite() && (0.0..=86_400.0).contains(&value) {
        Ok(std::time::Duration::from_secs_f64(value))
    } else {
        Err(CliError::BadSeconds { flag })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_url_must_be_https() {
        assert_eq!(
            server_url(" https://chat.example.org:8443 ").unwrap(),
            "https://chat.example.org:8443"
        );
        let without = server_url("localhost:8443").unwrap_err().to_string();
        assert!(
            without.contains("--server https://localhost:8443"),
            "{without}"
        );
        let plain = server_url("http://10.0.0.5:8443").unwrap_err().to_string();
        assert!(
            plain.contains("https://10.0.0.5:8443") && plain.contains("TLS"),
            "{plain}"
        );
        assert!(matches!(
            server_url("ftp://host"),
            Err(CliError::ServerScheme)
        ));
        assert!(matches!(
            server_url("https://"),
            Err(CliError::ServerScheme)
        ));
    }
}
