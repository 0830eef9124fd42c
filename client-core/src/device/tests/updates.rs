//! Changes to messages already shown: only the author edits or deletes,
//! reactions and read receipts come back as updates, a reply shows what
//! it quotes from our own history, and a timer set by one side applies to
//! both.

use super::*;
use crate::storage::Storage;

fn edit(message_id: &[u8], body: &str) -> Body {
    Body::Edit(content::Edit {
        message_id: message_id.to_vec(),
        body: body.to_owned(),
    })
}

fn delete(message_id: &[u8]) -> Body {
    Body::Delete(content::Delete {
        message_id: message_id.to_vec(),
    })
}

fn reaction(message_id: &[u8], emoji: &str, remove: bool) -> Body {
    Body::Reaction(content::Reaction {
        message_id: message_id.to_vec(),
        emoji: emoji.to_owned(),
        remove,
    })
}

/// Sends a body that changes an earlier message.
fn change(device: &mut TestDevice, to: &str, body: Body) {
    run(device.send(&direct(to), body, None)).unwrap();
}

#[test]
fn only_the_author_edits_or_deletes_a_message() {
    let mut world = World::new();
    let mut alice = world.device("alice", 1);
    let mut bob = world.device("bob", 1);
    let mut carol = world.device("carol", 1);
    let id = say(&mut bob, &direct("alice"), "original");
    receive(&mut alice);
    say(&mut alice, &direct("bob"), "hi");
    receive(&mut bob);

    // Someone else's conversation: carol cannot reach bob's message.
    change(&mut carol, "alice", edit(&id, "forged by carol"));
    change(&mut carol, "alice", delete(&id));
    assert!(receive(&mut alice).is_empty());
    // The same conversation, another author: alice cannot edit what bob
    // wrote, on his side.
    change(&mut alice, "bob", edit(&id, "forged by alice"));
    change(&mut alice, "bob", delete(&id));
    assert!(receive(&mut bob).is_empty());
    let kept = alice.storage().message(&id).unwrap();
    assert_eq!(kept.message.body, "original");
    assert!(!kept.edited && !kept.deleted);
    assert_eq!(bob.storage().bodies(&direct("alice")), ["original", "hi"]);

    change(&mut bob, "alice", edit(&id, "changed"));
    assert_eq!(summary(&receive(&mut alice)), ["updated edited"]);
    let edited = alice.storage().message(&id).unwrap();
    assert_eq!(edited.message.body, "changed");
    assert!(edited.edited);

    change(&mut bob, "alice", delete(&id));
    let events = receive(&mut alice);
    assert!(
        matches!(
            events.as_slice(),
            [Event::Updated { conversation, message_id, change: crate::UpdateKind::Deleted }]
                if *conversation == direct("bob") && *message_id == hex::encode(&id)
        ),
        "{:?}",
        summary(&events)
    );
    let deleted = alice.storage().message(&id).unwrap();
    assert!(deleted.deleted && deleted.message.body.is_empty());
    assert!(deleted.message.content.is_empty());
    // Gone is gone: no edit brings it back.
    change(&mut bob, "alice", edit(&id, "back again"));
    assert!(receive(&mut alice).is_empty());
    assert_eq!(alice.storage().bodies(&direct("bob")), ["hi"]);
}

#[test]
fn reactions_and_read_receipts_come_back_as_updates() {
    let mut world = World::new();
    let mut alice = world.device("alice", 1);
    let mut bob = world.device("bob", 1);
    let id = say(&mut alice, &direct("bob"), "hi");
    let events = receive(&mut bob);
    let entry = only_message(&events).clone();

    change(&mut bob, "alice", reaction(&id, "👍", false));
    assert_eq!(summary(&receive(&mut alice)), ["updated reaction"]);
    let reactions = alice.storage().message(&id).unwrap().reactions;
    assert_eq!(reactions.get("bob").map(String::as_str), Some("👍"));

    run(bob.send_read_receipts(&[entry])).unwrap();
    assert_eq!(summary(&receive(&mut alice)), ["updated read"]);
    assert!(alice.storage().message(&id).unwrap().read);

    // A receipt only marks our own messages.
    let theirs = say(&mut bob, &direct("alice"), "mine");
    receive(&mut alice);
    let receipt = Body::ReadReceipt(content::ReadReceipt {
        message_ids: vec![theirs.clone()],
    });
    change(&mut bob, "alice", receipt);
    assert!(receive(&mut alice).is_empty());
    assert!(!alice.storage().message(&theirs).unwrap().read);

    change(&mut bob, "alice", reaction(&id, "👍", true));
    assert_eq!(summary(&receive(&mut alice)), ["updated reaction"]);
    assert!(alice.storage().message(&id).unwrap().reactions.is_empty());
    // Nothing to react to: no update.
    change(&mut bob, "alice", reaction(&[9; 16], "👍", false));
    assert!(receive(&mut alice).is_empty());
}

#[test]
fn a_reply_shows_what_it_quotes_from_our_own_history() {
    let mut world = World::new();
    let mut alice = world.device("alice", 1);
    let mut bob = world.device("bob", 1);
    let question = say(&mut bob, &direct("alice"), "lunch?");
    receive(&mut alice);

    // What the sender claims the quote says is not what is shown.
    let quote = |message_id: Vec<u8>| content::Quote {
        message_id,
        author: "mallory".into(),
        text: "forged".into(),
    };
    run(alice.send(&direct("bob"), text("yes"), Some(quote(question)))).unwrap();
    let events = receive(&mut bob);
    assert_eq!(only_message(&events).body, "[reply to bob: \"lunch?\"] yes");

    run(alice.send(&direct("bob"), text("and?"), Some(quote(vec![9; 16])))).unwrap();
    let events = receive(&mut bob);
    assert_eq!(
        only_message(&events).body,
        "[reply to (unknown message)] and?"
    );
}

#[test]
fn a_timer_set_by_one_side_applies_to_both() {
    let mut world = World::new();
    let mut alice = world.device("alice", 1);
    let mut bob = world.device("bob", 1);
    run(alice.set_timer(&direct("bob"), 60)).unwrap();
    assert_eq!(
        run(alice.storage().contact("bob")).unwrap().expire_seconds,
        60
    );

    let events = receive(&mut bob);
    assert_eq!(
        summary(&events),
        ["message alice: disappearing messages: 60 s"]
    );
    assert_eq!(
        run(bob.storage().contact("alice")).unwrap().expire_seconds,
        60
    );

    let id = say(&mut bob, &direct("alice"), "gone soon");
    let expires = Some(NOW + 60_000);
    assert_eq!(
        bob.storage().message(&id).unwrap().message.expires_at,
        expires
    );
    receive(&mut alice);
    assert_eq!(
        alice.storage().message(&id).unwrap().message.expires_at,
        expires
    );

    run(bob.set_timer(&direct("alice"), 0)).unwrap();
    receive(&mut alice);
    assert_eq!(
        run(alice.storage().contact("bob")).unwrap().expire_seconds,
        0
    );
    let id = say(&mut alice, &direct("bob"), "kept");
    assert_eq!(
        alice.storage().message(&id).unwrap().message.expires_at,
        None
    );
}
