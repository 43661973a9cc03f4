//! The rules a client's input must follow, the same on the server and in
//! the clients: nicknames, media key fingerprints, chat lines and report
//! reasons. A client checks before asking; the server checks again.

/// Shortest allowed nickname, in characters.
pub const NAME_MIN_LEN: usize = 3;
/// Longest allowed nickname, in characters.
pub const NAME_MAX_LEN: usize = 32;
/// The nickname rule, as shown to users in error messages.
pub const NAME_RULE: &str =
    "a name is 3 to 32 characters: an ASCII letter first, then ASCII letters, digits, '_' or '-'";

/// Why a nickname was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Fewer than [`NAME_MIN_LEN`] characters.
    #[error("name is too short: {NAME_RULE}")]
    TooShort,
    /// More than [`NAME_MAX_LEN`] characters.
    #[error("name is too long: {NAME_RULE}")]
    TooLong,
    /// The first character is not an ASCII letter.
    #[error("name must start with an ASCII letter: {NAME_RULE}")]
    BadFirst,
    /// A character outside `[A-Za-z0-9_-]`.
    #[error("name contains a character that is not allowed: {NAME_RULE}")]
    BadChar,
    /// A name the PBX config reserves for itself (`general`, …).
    #[error("that name is reserved; pick another one")]
    Reserved,
}

/// Names that are section names with a special meaning in Asterisk's
/// config (`[general]` in sip.conf, `[globals]` in extensions.conf, …), so a
/// peer section of that name would change PBX-wide settings. Compared
/// case-insensitively.
pub const RESERVED_NAMES: &[&str] = &[
    "general",
    "authentication",
    "globals",
    "global",
    "system",
    "default",
    // Lobby lines from admins are signed "moderator".
    "moderator",
    "admin",
];

/// Checks a nickname against the rule: an ASCII letter first, then ASCII
/// letters, digits, `_` or `-`, 3 to 32 characters in all.
///
/// Names are *rejected*, never escaped: a name that passes this check is safe
/// to write verbatim into Asterisk's `sip.conf`, `pjsip.conf` and
/// `extensions.conf`, into SIP URIs and into log lines.
pub fn validate_name(name: &str) -> Result<(), NameError> {
    let bytes = name.as_bytes();
    // Length is checked on bytes; any non-ASCII byte fails the charset check
    // below anyway, so counting bytes and characters agree for valid names.
    if bytes.len() > NAME_MAX_LEN {
        return Err(NameError::TooLong);
    }
    let Some((&first, rest)) = bytes.split_first() else {
        return Err(NameError::TooShort);
    };
    if !first.is_ascii_alphabetic() {
        return Err(NameError::BadFirst);
    }
    if !rest
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-')
    {
        return Err(NameError::BadChar);
    }
    if bytes.len() < NAME_MIN_LEN {
        return Err(NameError::TooShort);
    }
    if RESERVED_NAMES.iter().any(|r| r.eq_ignore_ascii_case(name)) {
        return Err(NameError::Reserved);
    }
    Ok(())
}

/// Length of a media key fingerprint: base64url of 32 bytes, no padding.
pub const MEDIA_KEY_LEN: usize = 43;

/// Checks a media key fingerprint's shape: 43 base64url characters.
pub fn validate_media_key(key: &str) -> Result<(), String> {
    if key.len() == MEDIA_KEY_LEN
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Ok(())
    } else {
        Err(format!(
            "media_key must be the base64url (no padding) SHA-256 of the media public key: {MEDIA_KEY_LEN} characters of A-Z a-z 0-9 - _"
        ))
    }
}

/// Longest lobby chat message, in bytes of UTF-8.
pub const LOBBY_MAX_LEN: usize = 500;
/// Longest report reason, in bytes of UTF-8.
pub const REPORT_MAX_LEN: usize = 500;

/// Why a chat line or report text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    /// Empty or only whitespace.
    #[error("the text is empty")]
    Empty,
    /// Over the limit.
    #[error("the text is longer than {0} bytes")]
    TooLong(usize),
    /// Holds a control character (newline, escape, NUL, bidi override…).
    #[error("the text contains a control character; send one line of plain text")]
    Control,
}

/// Checks a chat line or report reason: non-empty, at most `max` bytes,
/// one line of text with no control characters (C0, DEL, C1, and the
/// Unicode bidi overrides that can disguise what a line says).
pub fn validate_text(text: &str, max: usize) -> Result<(), TextError> {
    if text.len() > max {
        return Err(TextError::TooLong(max));
    }
    if text.trim().is_empty() {
        return Err(TextError::Empty);
    }
    let bad = |c: char| {
        c.is_control()
            || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{2028}' | '\u{2029}')
    };
    if text.chars().any(bad) {
        return Err(TextError::Control);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_rule() {
        for ok in ["abc", "Alice", "a-b", "a_b", "x12", &"a".repeat(32)] {
            assert_eq!(validate_name(ok), Ok(()), "{ok}");
        }
        let cases: &[(&str, NameError)] = &[
            ("", NameError::TooShort),
            ("ab", NameError::TooShort),
            ("_abc", NameError::BadFirst),
            ("1abc", NameError::BadFirst),
            ("-abc", NameError::BadFirst),
            ("ab c", NameError::BadChar),
            ("abc\n", NameError::BadChar),
            ("zoë", NameError::BadChar),
            ("ﬁle", NameError::BadFirst),
        ];
        for (name, err) in cases {
            assert_eq!(validate_name(name).as_ref(), Err(err), "{name:?}");
        }
        assert_eq!(validate_name(&"a".repeat(33)), Err(NameError::TooLong));
        assert_eq!(validate_name("General"), Err(NameError::Reserved));
        assert_eq!(validate_name("authentication"), Err(NameError::Reserved));
        assert_eq!(validate_name("generals"), Ok(()));
        assert_eq!(validate_name("Moderator"), Err(NameError::Reserved));
        for c in "[]();,=>&/${}#'\"\\.@:<*!?".chars() {
            let name = format!("ab{c}c");
            assert_eq!(validate_name(&name), Err(NameError::BadChar), "{name:?}");
        }
    }

    #[test]
    fn the_message_states_the_rule() {
        let msg = NameError::BadChar.to_string();
        assert!(msg.contains("ASCII letter first"), "{msg}");
        assert!(msg.contains("3 to 32"), "{msg}");
    }

    #[test]
    fn text_rules() {
        assert_eq!(validate_text("hi there", 10), Ok(()));
        assert_eq!(validate_text("zażółć 👋", 100), Ok(()));
        assert_eq!(validate_text("   ", 10), Err(TextError::Empty));
        assert_eq!(
            validate_text("0123456789x", 10),
            Err(TextError::TooLong(10))
        );
        for bad in [
            "a\nb",
            "a\rb",
            "a\u{1b}[31mb",
            "a\0b",
            "a\u{7f}",
            "a\u{85}b",
            "a\u{202e}b",
            "a\u{2028}b",
        ] {
            assert_eq!(validate_text(bad, 100), Err(TextError::Control), "{bad:?}");
        }
    }
}
