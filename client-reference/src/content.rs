//! The content types carried inside the encryption, from the client core
//! (`starling-client-core`), re-exported under the paths this crate has
//! always offered, with constructors that draw the id from the OS random
//! source and the time from the system clock.

pub use starling_client_core::content::*;

/// A fresh 16-byte message id.
pub fn new_message_id() -> Vec<u8> {
    random_message_id(&mut rand::rngs::OsRng)
}

/// Content with a fresh id and the current time.
pub fn new_content(body: content::Body) -> Content {
    content_at(body, crate::store::now_millis(), &mut rand::rngs::OsRng)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_content_has_a_fresh_id_and_the_current_time() {
        let before = crate::store::now_millis();
        let a = new_content(content::Body::Text(Text { body: "hi".into() }));
        let b = new_content(content::Body::Text(Text { body: "hi".into() }));
        assert_eq!(a.message_id.len(), 16);
        assert_ne!(a.message_id, b.message_id);
        assert!(a.sent_at >= before);
        assert_eq!(describe(&a), Some(("text", "hi".to_owned())));
    }
}
