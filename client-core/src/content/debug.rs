//! `Debug` for the content messages that carry plaintext or keys (prost
//! derives none for them, see `build.rs`): ids, kinds, sizes and usernames
//! show; text, file names, captions, places and keys never do. Each impl
//! destructures the message, so a new field is a compile error here rather
//! than a silent leak.

use std::fmt;

use super::{
    Attachment, CallKey, CallMediaKey, CodeSnippet, Edit, GroupControl, Location, Quote, Reaction,
    SenderKey, Text,
};

/// A message id as hex.
struct Id<'a>(&'a [u8]);

impl fmt::Debug for Id<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Quote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            message_id,
            author,
            text: _,
        } = self;
        f.debug_struct("Quote")
            .field("message_id", &Id(message_id))
            .field("author", author)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self { body: _ } = self;
        f.debug_struct("Text").finish_non_exhaustive()
    }
}

impl fmt::Debug for Reaction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            message_id,
            emoji: _,
            remove,
        } = self;
        f.debug_struct("Reaction")
            .field("message_id", &Id(message_id))
            .field("remove", remove)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Edit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            message_id,
            body: _,
        } = self;
        f.debug_struct("Edit")
            .field("message_id", &Id(message_id))
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Attachment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            kind,
            server_id: _,
            key: _,
            digest: _,
            plaintext_len,
            ciphertext_len,
            file_name: _,
            media_type: _,
            caption: _,
            duration_ms: _,
            width: _,
            height: _,
        } = self;
        f.debug_struct("Attachment")
            .field("kind", &super::attachment_kind_name(*kind))
            .field("plaintext_len", plaintext_len)
            .field("ciphertext_len", ciphertext_len)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            latitude: _,
            longitude: _,
            label: _,
        } = self;
        f.debug_struct("Location").finish_non_exhaustive()
    }
}

impl fmt::Debug for CodeSnippet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self { language, code: _ } = self;
        f.debug_struct("CodeSnippet")
            .field("language", language)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for GroupControl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            action,
            name: _,
            members,
            revision,
            added,
            removed,
        } = self;
        f.debug_struct("GroupControl")
            .field("action", action)
            .field("members", members)
            .field("revision", revision)
            .field("added", added)
            .field("removed", removed)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for SenderKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            distribution: _,
            group,
        } = self;
        f.debug_struct("SenderKey")
            .field("group", group)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for CallKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            epoch,
            secret: _,
            participants,
            version,
        } = self;
        f.debug_struct("CallKey")
            .field("version", version)
            .field("epoch", epoch)
            .field("participants", participants)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for CallMediaKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            version,
            epoch,
            secret: _,
        } = self;
        f.debug_struct("CallMediaKey")
            .field("version", version)
            .field("epoch", epoch)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Content, content::Body, content_at};
    use super::*;

    const MARKER: &str = "zq-secret-marker";

    fn new_content(body: Body) -> Content {
        content_at(body, 0, &mut rand::rngs::OsRng)
    }

    fn assert_redacted(content: &Content) {
        let shown = format!("{content:?} {content:#?}");
        assert!(!shown.contains(MARKER), "{shown}");
        assert!(shown.contains("message_id"), "{shown}");
    }

    #[test]
    fn bodies_and_keys_do_not_show() {
        let secret = MARKER.to_owned();
        let key_bytes = MARKER.as_bytes().to_vec();
        let bodies = [
            Body::Text(Text {
                body: secret.clone(),
            }),
            Body::Reaction(Reaction {
                message_id: vec![1; 16],
                emoji: secret.clone(),
                remove: false,
            }),
            Body::Edit(Edit {
                message_id: vec![1; 16],
                body: secret.clone(),
            }),
            Body::Attachment(Attachment {
                server_id: secret.clone(),
                key: key_bytes.clone(),
                digest: key_bytes.clone(),
                file_name: secret.clone(),
                media_type: secret.clone(),
                caption: secret.clone(),
                ..Attachment::default()
            }),
            Body::Location(Location {
                latitude: 51.123_456,
                longitude: 4.987_654,
                label: secret.clone(),
            }),
            Body::Code(CodeSnippet {
                language: "rust".into(),
                code: secret.clone(),
            }),
            Body::GroupControl(GroupControl {
                name: secret.clone(),
                members: vec!["alice".into()],
                ..GroupControl::default()
            }),
            Body::SenderKey(SenderKey {
                distribution: key_bytes.clone(),
                group: Some(GroupControl {
                    name: secret.clone(),
                    ..GroupControl::default()
                }),
            }),
            Body::Call(super::super::CallSignal {
                call_id: vec![3; 16],
                kind: Some(super::super::call_signal::Kind::Key(CallKey {
                    version: 2,
                    epoch: 1,
                    secret: key_bytes.clone(),
                    participants: Vec::new(),
                })),
            }),
            Body::Call(super::super::CallSignal {
                call_id: vec![3; 16],
                kind: Some(super::super::call_signal::Kind::MediaKey(CallMediaKey {
                    version: 2,
                    epoch: 1,
                    secret: key_bytes,
                })),
            }),
        ];
        for body in bodies {
            let mut content = new_content(body);
            content.quote = Some(Quote {
                message_id: vec![2; 16],
                author: "bob".into(),
                text: secret.clone(),
            });
            assert_redacted(&content);
        }
        let location = format!(
            "{:?}",
            new_content(Body::Location(Location {
                latitude: 51.123_456,
                longitude: 4.987_654,
                label: String::new(),
            }))
        );
        assert!(!location.contains("51.12") && !location.contains("4.98"));
    }

    #[test]
    fn ids_kinds_and_names_show() {
        let mut content = new_content(Body::Text(Text {
            body: MARKER.into(),
        }));
        content.quote = Some(Quote {
            message_id: vec![0xab; 16],
            author: "bob".into(),
            text: MARKER.into(),
        });
        let shown = format!("{content:?}");
        assert!(shown.contains(&"ab".repeat(16)), "{shown}");
        assert!(shown.contains("bob") && shown.contains("Text"));
    }
}
