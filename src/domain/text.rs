//! Free text that a person types and the server stores and shows again (auditor and third-party
//! names, URLs): the one rule every adapter applies before such text is stored.
//!
//! Control characters are refused: a stored `ESC [31m` would repaint the terminal of whoever
//! lists it later (the CLI prints names as stored), and a newline would break one-line logs. The
//! length is counted in characters, not bytes, so a name in any script has the same room.

use crate::error::ApiError;

/// Longest name a person types (auditor, third party), in characters.
pub const MAX_NAME_CHARS: usize = 1024;

/// Longest URL, in characters.
pub const MAX_URL_CHARS: usize = 2048;

/// `text` as a field named `field` may hold it: no control character, at most `max` characters.
pub fn check_free_text(field: &str, text: &str, max: usize) -> Result<(), ApiError> {
    if let Some(c) = text.chars().find(|c| c.is_control()) {
        return Err(ApiError::field(field, format!("contains the control character U+{:04X}", c as u32)));
    }
    // Counting stops at the first character past the limit: a huge value
    // costs no more than a legal one.
    if text.chars().nth(max).is_some() {
        return Err(ApiError::field(field, format!("is longer than {max} characters")));
    }
    Ok(())
}

/// A name as it is stored: trimmed, not empty, free text of at most [`MAX_NAME_CHARS`].
pub fn name(field: &str, text: &str) -> Result<String, ApiError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(ApiError::field(field, "must not be empty"));
    }
    check_free_text(field, text, MAX_NAME_CHARS)?;
    Ok(text.to_owned())
}
