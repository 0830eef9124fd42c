//! `starling group`: create, change, leave, list and write to groups.

use starling_client::Client;
use starling_client::store::GroupRecord;

use crate::GroupCommand;
use crate::error::Result;
use crate::messages::sent;
use crate::output::{Output, clean, clean_list};

/// Runs one `starling group` subcommand.
pub(crate) async fn run(client: &mut Client, command: GroupCommand, out: Output) -> Result<()> {
    match command {
        GroupCommand::Create { name, members } => {
            show(out, &client.create_group(&name, &members).await?);
        }
        GroupCommand::Add { group, users } => {
            show(out, &client.add_members(&group, &users).await?);
        }
        GroupCommand::Remove { group, users } => {
            show(out, &client.remove_members(&group, &users).await?);
        }
        GroupCommand::Rename { group, name } => {
            show(out, &client.rename_group(&group, &name).await?);
        }
        GroupCommand::Leave { group } => {
            client.leave_group(&group).await?;
            out.print(&serde_json::json!({ "left": group }), || {
                format!("left {group}")
            });
        }
        GroupCommand::List => {
            for group in client.groups().await? {
                show(out, &group);
            }
        }
        GroupCommand::Send { group, text } => {
            let conversation = client.resolve(&format!("#{group}")).await?;
            let id = client.send_text(&conversation, &text).await?;
            sent(out, &group, &id);
        }
    }
    Ok(())
}

/// One group: its id, name, members and whether we are still one.
fn show(out: Output, group: &GroupRecord) {
    out.print(
        &serde_json::json!({
            "group_id": hex::encode(&group.group_id),
            "name": group.name,
            "members": group.members,
            "active": group.active,
        }),
        || {
            format!(
                "{} ({}){}: {}",
                clean(&group.name),
                hex::encode(&group.group_id).get(..8).unwrap_or_default(),
                if group.active { "" } else { " [left]" },
                clean_list(&group.members)
            )
        },
    );
}
