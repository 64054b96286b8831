//! Pictures for terminals: a fetched greeting decoded under the upload
//! limits (for a terminal widget to draw), and the plain fallback, Unicode
//! half blocks in 24-bit colour, for terminals without sixel or kitty
//! graphics; and which kitty cannot draw the pictures a terminal widget
//! sends it (its version answer).

use image::imageops::FilterType;
use image::DynamicImage;

use crate::normalize::{decode, fit_within, UploadLimits};
use crate::GreetingError;

/// Decodes a fetched picture for drawing. The bytes are untrusted (fetched
/// from a region), so they are decoded with the upload limits.
pub fn decode_picture(bytes: &[u8]) -> Result<DynamicImage, GreetingError> {
    decode(bytes, &UploadLimits::default())
}

/// Draws a picture in at most `cols` × `rows` terminal cells.
///
/// Each cell is an upper half block `▀` whose foreground is the upper pixel
/// and whose background the lower one, so the picture is sampled at `cols`
/// × `2 rows` pixels (aspect kept, never enlarged). Transparent halves show
/// the terminal's own background. Every line ends with a colour reset.
///
/// The bytes are untrusted (fetched from a region), so they are decoded with
/// the upload limits; the output is made only of escape sequences built from
/// numbers and block characters, never of text from the picture's metadata.
pub fn half_blocks(bytes: &[u8], cols: u16, rows: u16) -> Result<Vec<String>, GreetingError> {
    if cols == 0 || rows == 0 {
        return Ok(Vec::new());
    }
    let image = decode(bytes, &UploadLimits::default())?;
    let (w, h) = fit_within(image.width(), image.height(), cols as u32, 2 * rows as u32);
    let small = if (w, h) == (image.width(), image.height()) {
        image.into_rgba8()
    } else {
        image.resize_exact(w, h, FilterType::Triangle).into_rgba8()
    };

    let mut lines = Vec::with_capacity(h.div_ceil(2) as usize);
    for y in (0..h).step_by(2) {
        let mut line = String::new();
        for x in 0..w {
            let top = small.get_pixel(x, y).0;
            let bottom = if y + 1 < h { small.get_pixel(x, y + 1).0 } else { [0, 0, 0, 0] };
            push_cell(&mut line, visible(top), visible(bottom));
        }
        line.push_str("\x1b[0m");
        lines.push(line);
    }
    Ok(lines)
}

/// The colour of a pixel that is drawn, or `None` for one mostly transparent.
fn visible(p: [u8; 4]) -> Option<[u8; 3]> {
    (p[3] >= 128).then_some([p[0], p[1], p[2]])
}

fn push_cell(line: &mut String, top: Option<[u8; 3]>, bottom: Option<[u8; 3]>) {
    use std::fmt::Write;
    // Writing into a String cannot fail.
    let _ = match (top, bottom) {
        (Some(t), Some(b)) => write!(
            line,
            "\x1b[38;2;{};{};{};48;2;{};{};{}m\u{2580}",
            t[0], t[1], t[2], b[0], b[1], b[2]
        ),
        (Some(t), None) => write!(line, "\x1b[49;38;2;{};{};{}m\u{2580}", t[0], t[1], t[2]),
        (None, Some(b)) => write!(line, "\x1b[49;38;2;{};{};{}m\u{2584}", b[0], b[1], b[2]),
        (None, None) => write!(line, "\x1b[0m "),
    };
}

/// The first kitty that draws Unicode placeholders.
const KITTY_PLACEHOLDERS: (u32, u32) = (0, 28);

/// kitty's version when a terminal's XTVERSION answer (`DCS >|kitty(0.26.5)
/// ST`) names a kitty older than 0.28, the first to draw Unicode
/// placeholders (how ratatui-image places kitty pictures); None for any
/// other answer. The answer is whatever the terminal sent.
pub fn kitty_without_placeholders(answer: &str) -> Option<&str> {
    let version = answer.split("kitty(").nth(1)?.split(')').next()?;
    let mut parts = version.split('.').map(|p| p.parse::<u32>().ok());
    let (major, minor) = (parts.next()??, parts.next()??);
    ((major, minor) < KITTY_PLACEHOLDERS).then_some(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_kitty_older_than_placeholders_is_named() {
        assert_eq!(kitty_without_placeholders("\x1bP>|kitty(0.26.5)\x1b\\\x1b[0n"), Some("0.26.5"));
        assert_eq!(kitty_without_placeholders("\x1bP>|kitty(0.28.0)\x1b\\\x1b[0n"), None);
        assert_eq!(kitty_without_placeholders("\x1bP>|kitty(0.41.1)\x1b\\"), None);
        assert_eq!(kitty_without_placeholders("\x1bP>|kitty(1.0)\x1b\\"), None);
        // Other terminals, no answer, garbage.
        assert_eq!(kitty_without_placeholders("\x1bP>|XTerm(379)\x1b\\\x1b[0n"), None);
        assert_eq!(kitty_without_placeholders("\x1b[0n"), None);
        assert_eq!(kitty_without_placeholders("kitty(x.y)"), None);
        assert_eq!(kitty_without_placeholders("kitty(0"), None);
        assert_eq!(kitty_without_placeholders("kitty()"), None);
    }
}
