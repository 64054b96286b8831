//! Pictures for terminals: a fetched greeting decoded under the upload
//! limits (for a terminal widget to draw), and the plain fallback, Unicode
//! half blocks in 24-bit colour, for terminals without sixel or kitty
//! graphics.

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
