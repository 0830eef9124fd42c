//! The content types carried inside the encryption
//! (`proto/starling/client/v1/content.proto`), and how each reads in the
//! history. Unknown types from a newer client decode with no body and are
//! kept as "unsupported", not dropped.

#[allow(missing_docs, unreachable_pub, clippy::all)]
mod generated {
    include!(concat!(env!("OUT_DIR"), "/starling.client.v1.rs"));
}
mod debug;

pub use generated::content::Body;
pub use generated::*;

use rand_core::CryptoRngCore;

/// A fresh random 16-byte message id.
pub fn random_message_id(rng: &mut impl CryptoRngCore) -> Vec<u8> {
    let mut id = vec![0u8; 16];
    rng.fill_bytes(&mut id);
    id
}

/// Content with a fresh id, sent at `sent_at` (ms since the Unix epoch).
pub fn content_at(body: content::Body, sent_at: i64, rng: &mut impl CryptoRngCore) -> Content {
    Content {
        message_id: random_message_id(rng),
        sent_at,
        body: Some(body),
        ..Content::default()
    }
}

/// The attachment kind's name.
pub fn attachment_kind_name(kind: i32) -> &'static str {
    match AttachmentKind::try_from(kind) {
        Ok(AttachmentKind::Image) => "image",
        Ok(AttachmentKind::VoiceNote) => "voice note",
        Ok(AttachmentKind::Video) => "video",
        Ok(AttachmentKind::File) | Err(_) => "file",
    }
}

/// How a content shows in the history: (kind, readable text). `None` for
/// contents that change other messages or state rather than adding one.
/// A quote is not part of it: what a reply quotes is shown from our own
/// history, never from the author and text the sender put in the quote.
pub fn describe(content: &Content) -> Option<(&'static str, String)> {
    use content::Body;
    let described = match &content.body {
        Some(Body::Text(text)) => ("text", text.body.clone()),
        Some(Body::Attachment(a)) => {
            let kind = attachment_kind_name(a.kind);
            let caption = if a.caption.is_empty() {
                String::new()
            } else {
                format!(" — {}", a.caption)
            };
            let kind_tag = match AttachmentKind::try_from(a.kind) {
                Ok(AttachmentKind::Image) => "image",
                Ok(AttachmentKind::VoiceNote) => "voice",
                Ok(AttachmentKind::Video) => "video",
                _ => "file",
            };
            (
                kind_tag,
                format!(
                    "[{kind}] {} ({} bytes){caption}",
                    a.file_name, a.plaintext_len
                ),
            )
        }
        Some(Body::Location(l)) => (
            "location",
            format!(
                "[location] {:.6}, {:.6} {}",
                l.latitude, l.longitude, l.label
            )
            .trim_end()
            .to_owned(),
        ),
        Some(Body::Code(c)) => ("code", format!("[code: {}]\n{}", c.language, c.code)),
        Some(Body::ExpirationTimer(t)) => (
            "timer",
            if t.seconds == 0 {
                "disappearing messages turned off".to_owned()
            } else {
                format!("disappearing messages: {} s", t.seconds)
            },
        ),
        Some(Body::GroupControl(g)) => (
            "group",
            match generated::group_control::Action::try_from(g.action) {
                Ok(generated::group_control::Action::Leave) => "left the group".to_owned(),
                _ => format!("group \"{}\": {}", g.name, g.members.join(", ")),
            },
        ),
        Some(Body::Call(call)) => match &call.kind {
            Some(generated::call_signal::Kind::Offer(offer)) => (
                "call",
                if offer.video {
                    "incoming video call"
                } else {
                    "incoming call"
                }
                .to_owned(),
            ),
            Some(generated::call_signal::Kind::Hangup(_)) => ("call", "missed call".to_owned()),
            // Answers, leaves, keys: call state, never history.
            _ => return None,
        },
        None => (
            "unsupported",
            "[unsupported message type: update Starling to see it]".to_owned(),
        ),
        Some(
            Body::Reaction(_)
            | Body::Edit(_)
            | Body::Delete(_)
            | Body::ReadReceipt(_)
            | Body::SenderKey(_)
            | Body::SessionReset(_)
            | Body::RepairRequest(_)
            | Body::LogRootAnswer(_)
            | Body::SenderKeyRequest(_),
        ) => return None,
    };
    Some(described)
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    fn new_content(body: content::Body) -> Content {
        content_at(body, 0, &mut rand::rngs::OsRng)
    }

    #[test]
    fn unknown_types_decode_as_unsupported() {
        // A newer client's content: field 99 is unknown to this version.
        let mut bytes = Content {
            message_id: vec![1; 16],
            ..Content::default()
        }
        .encode_to_vec();
        bytes.extend_from_slice(&[0x9a, 0x06, 0x02, 0x08, 0x01]); // field 99, 2 bytes
        let decoded = Content::decode(bytes.as_slice()).unwrap();
        assert_eq!(decoded.message_id, vec![1; 16]);
        assert_eq!(describe(&decoded).unwrap().0, "unsupported");
    }

    #[test]
    fn every_shown_kind_has_text() {
        let text = new_content(content::Body::Text(Text { body: "hi".into() }));
        assert_eq!(describe(&text), Some(("text", "hi".to_owned())));
        let code = new_content(content::Body::Code(CodeSnippet {
            language: "rust".into(),
            code: "fn main() {}".into(),
        }));
        assert_eq!(describe(&code).unwrap().0, "code");
        let receipt = new_content(content::Body::ReadReceipt(ReadReceipt::default()));
        assert_eq!(describe(&receipt), None);
        let mut reply = new_content(content::Body::Text(Text { body: "yes".into() }));
        reply.quote = Some(Quote {
            message_id: vec![1; 16],
            author: "someone".into(),
            text: "forged".into(),
        });
        assert_eq!(describe(&reply), Some(("text", "yes".to_owned())));
    }
}
