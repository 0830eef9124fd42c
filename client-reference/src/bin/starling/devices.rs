//! `starling devices`: list our devices, remove one, or issue a code to
//! link a new one.

use starling_client::Client;

use crate::DeviceCommand;
use crate::error::Result;
use crate::output::Output;

/// Runs one `starling devices` subcommand (listing when none is given).
pub(crate) async fn run(
    client: &mut Client,
    command: Option<DeviceCommand>,
    out: Output,
) -> Result<()> {
    match command.unwrap_or(DeviceCommand::List) {
        DeviceCommand::List => list(client, out).await,
        DeviceCommand::Remove { id } => {
            client.remove_device(id).await?;
            out.print(&serde_json::json!({ "removed": id }), || {
                format!("removed device {id}")
            });
            Ok(())
        }
        DeviceCommand::LinkCode { manager } => {
            let code = if manager {
                client.manager_link_code().await?
            } else {
                client.link_code().await?
            };
            let code: &str = &code;
            let server = client.server().await?;
            let pin = server
                .ca_fingerprint
                .as_deref()
                .map(|fp| format!(" --ca-fingerprint {fp}"))
                .unwrap_or_default();
            out.print(
                &serde_json::json!({
                    "link_code": code,
                    "server": server.url,
                    "ca_fingerprint": server.ca_fingerprint,
                }),
                || {
                    format!(
                        "link code (valid 10 minutes, once): {code}\non the new device: starling link --server {} --code {code}{pin}",
                        server.url
                    )
                },
            );
            Ok(())
        }
    }
}

async fn list(client: &Client, out: Output) -> Result<()> {
    let this = client.device_id();
    for device in client.devices().await? {
        out.print(
            &serde_json::json!({ "device_id": device, "this_device": device == this }),
            || {
                let marker = if device == this { " (this one)" } else { "" };
                format!("device {device}{marker}")
            },
        );
    }
    Ok(())
}
