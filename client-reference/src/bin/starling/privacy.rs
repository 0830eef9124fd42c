//! `starling privacy`: the account's privacy settings, kept by the server
//! for every device of the account. Today one: whether strangers may send
//! the account sealed messages without a credential
//! (`sealed-from-strangers on|off`).

use starling_client::Client;

use crate::error::Result;
use crate::output::Output;
use crate::{OnOff, PrivacyCommand};

/// Runs one `starling privacy` subcommand (showing the settings when none
/// is given).
pub(crate) async fn run(
    client: &mut Client,
    command: Option<PrivacyCommand>,
    out: Output,
) -> Result<()> {
    if let Some(PrivacyCommand::SealedFromStrangers { state }) = command {
        client
            .set_sealed_from_strangers(matches!(state, OnOff::On))
            .await?;
    }
    let allowed = client.sealed_from_strangers().await?;
    out.print(
        &serde_json::json!({ "sealed_from_strangers": allowed }),
        || {
            if allowed {
                "sealed-from-strangers: on (anyone on the server may send you sealed messages without saying who they are)".to_owned()
            } else {
                "sealed-from-strangers: off (only contacts who have your profile key may send without saying who they are; others send with their credential, still sealed)".to_owned()
            }
        },
    );
    Ok(())
}
