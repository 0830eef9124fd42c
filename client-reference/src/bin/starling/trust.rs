//! Trust in contacts: `safety-number`, `verify`, `reset-session` and
//! `warnings`.

use starling_client::Client;

use crate::error::Result;
use crate::output::Output;

/// `starling safety-number`: the number to compare in person, and
/// whether it is verified or changed.
pub(crate) async fn safety_number(client: &mut Client, user: &str, out: Output) -> Result<()> {
    let number = client.safety_number(user).await?;
    out.print(&number, || {
        let state = if number.verified && !number.identity_changed {
            "verified"
        } else if number.identity_changed {
            "CHANGED since you last compared"
        } else {
            "not verified"
        };
        format!(
            "Safety number with {}:\n{}\n({state}; compare it with {} in person, then run `starling verify {}`)",
            number.username, number.display, number.username, number.username
        )
    });
    Ok(())
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
