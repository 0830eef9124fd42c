//! Trust in contacts: `safety-number`, `verify`, `reset-session` and
//! `warnings`; trust in the server's transparency log: `audit-log`.

use starling_client::api::Api;
use starling_client::audit_log;
use starling_client::{Client, SafetyNumberView};

use crate::error::{CliError, Result};
use crate::output::Output;

/// `starling audit-log`: walks the server's transparency log and checks
/// every epoch only added to the one before. Needs no account.
pub(crate) async fn audit_log(
    server: &str,
    ca_fingerprint: Option<&str>,
    from: u64,
    log_key: Option<String>,
    out: Output,
) -> Result<()> {
    let api = Api::new(server, ca_fingerprint)?;
    let pins = match log_key {
        Some(key) => {
            let named = api.transparency_root().await?.log;
            let pin = starling_protocol::api::LogPin {
                log_key: key,
                vrf_public_key: named.vrf_public_key,
            };
            Some(starling_client::api::transparency::pins(&pin)?)
        }
        None => None,
    };
    let quiet = out.json;
    let report = audit_log::audit_log(&api, from, pins, |epoch| {
        if !quiet && epoch % 1000 == 0 {
            eprintln!("epoch {epoch} verified");
        }
    })
    .await?;
    if report.keys_from_server && !quiet {
        eprintln!(
            "note: checked under the log key the server names; pass --log-key (from your organisation) to check it is the one your members pinned"
        );
    }
    if !report.verified {
        return Err(CliError::AuditFailed(Box::new(report)));
    }
    out.print(&report, || {
        format!(
            "the log only added to itself from epoch {} to epoch {} ({} epochs checked); root at {}: {}",
            report.from,
            report.epoch,
            report.epochs_checked,
            report.epoch,
            report.root.as_deref().unwrap_or("")
        )
    });
    Ok(())
}

/// `starling safety-number`: the number to compare in person, and
/// whether it is verified or changed.
pub(crate) async fn safety_number(client: &mut Client, user: &str, out: Output) -> Result<()> {
    let number = client.safety_number(user).await?;
    out.print(&number, || {
        safety_number_text(&number, &format!("starling verify {}", number.username))
    });
    Ok(())
}

/// The safety number with a hint that fits its state: nothing to do once
/// verified, compare (again) and then `verify_with` otherwise.
pub(crate) fn safety_number_text(number: &SafetyNumberView, verify_with: &str) -> String {
    let name = &number.username;
    let state = if number.verified && !number.identity_changed {
        "verified: nothing to do".to_owned()
    } else if number.identity_changed {
        format!(
            "CHANGED since you last compared; compare it with {name} in person, then run `{verify_with}`"
        )
    } else {
        format!("not verified; compare it with {name} in person, then run `{verify_with}`")
    };
    format!("Safety number with {name}:\n{}\n({state})", number.display)
}

/// `starling verify`, checking the digits read out when given.
pub(crate) async fn verify(
    client: &mut Client,
    user: &str,
    digits: Option<&str>,
    out: Output,
) -> Result<()> {
    client.verify(user, digits).await?;
    out.print(&serde_json::json!({ "verified": user }), || {
        format!("{user} is verified")
    });
    Ok(())
}

/// `starling reset-session [--ask]`: fresh sessions with a contact.
pub(crate) async fn reset_session(
    client: &mut Client,
    user: &str,
    ask: bool,
    out: Output,
) -> Result<()> {
    client.reset_session(user, ask).await?;
    out.print(
        &serde_json::json!({ "reset_session": user, "asked": ask }),
        || {
            if ask {
                format!("asked {user}'s devices to start a new session with this one")
            } else {
                format!("started new sessions with {user}'s devices")
            }
        },
    );
    Ok(())
}

/// `starling warnings`: the outstanding identity warnings.
pub(crate) async fn warnings(client: &Client, out: Output) -> Result<()> {
    for (username, text) in client.warnings().await? {
        out.print(
            &serde_json::json!({ "username": username, "warning": text }),
            || text.clone(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn number(verified: bool, identity_changed: bool) -> SafetyNumberView {
        SafetyNumberView {
            username: "bob".into(),
            display: "12345".into(),
            scannable_hex: String::new(),
            verified,
            identity_changed,
        }
    }

    #[test]
    fn a_verified_contact_gets_no_hint_to_verify() {
        let verified = safety_number_text(&number(true, false), "starling verify bob");
        assert!(!verified.contains("starling verify"), "{verified}");
        assert!(verified.contains("verified: nothing to do"), "{verified}");
        let unverified = safety_number_text(&number(false, false), "starling verify bob");
        assert!(unverified.contains("then run `starling verify bob`"));
        let changed = safety_number_text(&number(true, true), "starling verify bob");
        assert!(changed.contains("CHANGED") && changed.contains("starling verify bob"));
    }
}
