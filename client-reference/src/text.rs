//! Text that other people chose (messages, names, file names) and the
//! characters in it that must not reach a terminal, a file name or a
//! name shown beside a username as they are.

/// Characters that reorder text or break lines without showing: the bidi
/// marks, embeddings, overrides and isolates, and the Unicode line and
/// paragraph separators. (Control characters are `char::is_control`.)
pub fn invisible_control(c: char) -> bool {
    matches!(
        c,
        '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
            | '\u{2028}' | '\u{2029}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bidi_controls_and_separators_are_invisible_controls() {
        for c in ['\u{202e}', '\u{2067}', '\u{200f}', '\u{2028}'] {
            assert!(invisible_control(c), "{c:?}");
        }
        for c in ['a', 'é', '李', ' '] {
            assert!(!invisible_control(c), "{c:?}");
        }
    }
}
