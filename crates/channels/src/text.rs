//! Cleaning text before any display shows it.
//!
//! A broadcast, a channel item or a private post ends up on a phone's
//! terminal. Nothing in it may move the cursor, change colours, retitle
//! the terminal or reorder what is shown, so every escape sequence is
//! removed whole (CSI `ESC [ … final`, OSC `ESC ] … BEL|ST`, DCS, SOS, PM
//! and APC strings up to ST, two-byte `ESC x`), as are their 8-bit C1
//! forms, every other control character and the Unicode bidirectional
//! overrides. Tabs and line breaks become spaces (a marquee is one line);
//! runs of spaces become one.

use crate::ChannelError;

/// The largest post, in bytes after cleaning: a marquee line or a short
/// SIP MESSAGE, not a document.
pub const MAX_TEXT: usize = 1024;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Text,
    /// After ESC.
    Escape,
    /// Inside a CSI sequence: until a final byte 0x40–0x7E.
    Csi,
    /// Inside an OSC/DCS/SOS/PM/APC string: until BEL or ST.
    Str,
    /// Inside a string, just after ESC (a `\` ends it).
    StrEscape,
}

/// `text` with every control sequence removed (see the module docs).
pub fn clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut mode = Mode::Text;
    let mut space = true; // drops leading spaces
    for c in text.chars() {
        match mode {
            Mode::Text => {}
            Mode::Escape => {
                mode = match c {
                    '[' => Mode::Csi,
                    ']' | 'P' | 'X' | '^' | '_' => Mode::Str,
                    // ESC followed by intermediates (ESC ( B): skip them
                    // and the final byte.
                    ' '..='/' => Mode::Escape,
                    _ => Mode::Text,
                };
                continue;
            }
            Mode::Csi => {
                if ('\u{40}'..='\u{7e}').contains(&c) {
                    mode = Mode::Text;
                }
                continue;
            }
            Mode::Str => {
                match c {
                    '\u{07}' | '\u{9c}' => mode = Mode::Text,
                    '\u{1b}' => mode = Mode::StrEscape,
                    _ => {}
                }
                continue;
            }
            Mode::StrEscape => {
                mode = if c == '\\' { Mode::Text } else { Mode::Str };
                continue;
            }
        }
        match c {
            '\u{1b}' => mode = Mode::Escape,
            '\u{9b}' => mode = Mode::Csi,
            '\u{90}' | '\u{98}' | '\u{9d}' | '\u{9e}' | '\u{9f}' => mode = Mode::Str,
            '\t' | '\n' | '\r' | '\u{0b}' | '\u{0c}' | '\u{85}' | '\u{2028}' | '\u{2029}' => {
                if !space {
                    out.push(' ');
                    space = true;
                }
            }
            c if c.is_control() || is_bidi_control(c) => {}
            ' ' => {
                if !space {
                    out.push(' ');
                    space = true;
                }
            }
            c => {
                out.push(c);
                space = false;
            }
        }
    }
    if out.ends_with(' ') {
        out.pop();
    }
    out
}

/// Marks that reorder text on screen (they could make a post look like
/// another number or hide part of it).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{061c}')
}

/// A post's text, cleaned and checked: not empty, not over [`MAX_TEXT`].
pub fn post_text(text: &str) -> Result<String, ChannelError> {
    // Bound the work before cleaning: a huge body is refused unread.
    if text.len() > MAX_TEXT * 4 {
        return Err(ChannelError::TooLong {
            len: text.len(),
            max: MAX_TEXT,
        });
    }
    let t = clean(text);
    if t.is_empty() {
        return Err(ChannelError::Empty);
    }
    if t.len() > MAX_TEXT {
        return Err(ChannelError::TooLong {
            len: t.len(),
            max: MAX_TEXT,
        });
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn escape_sequences_are_removed_whole() {
        let cases = [
            ("\x1b[2J\x1b[1;1Hhello", "hello"),
            ("\x1b[31mred\x1b[0m text", "red text"),
            ("\x1b]0;pwned\x07title", "title"),
            ("\x1b]2;pwned\x1b\\title", "title"),
            ("\x1b]8;;http://evil\x1b\\link\x1b]8;;\x1b\\", "link"),
            ("\x1bP1$r\x1b\\dcs", "dcs"),
            ("\u{9b}31mc1\u{9d}0;t\u{9c}", "c1"),
            ("\x1b(Bcharset", "charset"),
            ("\x1b7save\x1b8", "save"),
            ("a\u{202e}evil\u{2066}b", "aevilb"),
            ("bell\x07 back\x08space\x7f", "bell backspace"),
            ("  two\n\nlines\r\n\tand  tabs  ", "two lines and tabs"),
            ("台北 天氣 ☀", "台北 天氣 ☀"),
            ("unterminated \x1b]0;title", "unterminated"),
        ];
        for (input, want) in cases {
            assert_eq!(clean(input), want, "{input:?}");
        }
    }

    #[test]
    fn posts_are_checked_for_size_and_content() {
        assert_eq!(post_text("  news  ").unwrap(), "news");
        assert!(matches!(post_text(""), Err(ChannelError::Empty)));
        assert!(matches!(post_text("\x1b[2J\x07 \n"), Err(ChannelError::Empty)));
        assert!(matches!(post_text(&"x".repeat(MAX_TEXT + 1)), Err(ChannelError::TooLong { .. })));
        assert!(matches!(post_text(&"\x1b".repeat(MAX_TEXT * 5)), Err(ChannelError::TooLong { .. })));
        assert_eq!(post_text(&"x".repeat(MAX_TEXT)).unwrap().len(), MAX_TEXT);
    }

    proptest! {
        #[test]
        fn nothing_a_terminal_acts_on_survives(s in "(\\PC|[\\x00-\\x1f\\x7f\\u{80}-\\u{9f}\\u{202a}-\\u{202e}]){0,200}") {
            let c = clean(&s);
            prop_assert!(!c.chars().any(|c| c.is_control() || is_bidi_control(c)));
            prop_assert!(!c.contains("  "));
            prop_assert_eq!(clean(&c), c.clone(), "cleaning is idempotent");
        }
    }
}
