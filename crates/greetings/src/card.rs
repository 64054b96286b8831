//! Greeting cards rendered from text, for users with no picture at hand.
//!
//! The font is Noto Sans Regular, embedded in the binary (the `ttf-noto-sans`
//! crate), so no system font is looked for at run time. It covers Latin,
//! Greek and Cyrillic; it has no CJK, Arabic or emoji glyphs, and text with a
//! character it cannot draw is refused with [`GreetingError::UncoveredCharacter`]
//! rather than drawn as empty boxes.
//!
//! The text is only ever drawn as pixels, so markup in it (`<script>`) is
//! harmless here; control and invisible formatting characters are refused all
//! the same, since the same text may be shown or logged elsewhere.

use ab_glyph::{point, Font, FontRef, GlyphId, PxScale, ScaleFont};
use image::{DynamicImage, Rgba, RgbaImage};

use crate::normalize::{finish, GREETING_BOX};
use crate::{Greeting, GreetingError};

/// The longest card text taken, in characters.
pub const MAX_CARD_CHARS: usize = 200;
/// The most explicit lines (`\n`-separated) a card text may have.
const MAX_CARD_LINES: usize = 12;
/// Below this font size (pixels) text is too small to read on a phone.
const MIN_FONT_PX: f32 = 14.0;

/// An sRGB colour written `#rrggbb`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Colour {
    /// Red.
    pub r: u8,
    /// Green.
    pub g: u8,
    /// Blue.
    pub b: u8,
}

impl Colour {
    /// Parses exactly `#` and six hex digits (either case); nothing else: no
    /// names, no short form, no white space, no alpha.
    pub fn parse(s: &str) -> Option<Colour> {
        let hex = s.strip_prefix('#')?.as_bytes();
        if hex.len() != 6 || !hex.iter().all(u8::is_ascii_hexdigit) {
            return None;
        }
        let byte = |i: usize| {
            let digit = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
            Some(digit(hex[i])? * 16 + digit(hex[i + 1])?)
        };
        Some(Colour {
            r: byte(0)?,
            g: byte(2)?,
            b: byte(4)?,
        })
    }
}

/// Where the text goes, and the card's shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// A 480×480 square, each line centred, the block centred vertically.
    Centered,
    /// A 480×160 strip, each line centred: for short names.
    Banner,
    /// A 480×480 square, lines flush left from the top, like a note.
    TopLeft,
}

impl Layout {
    /// `"centered"`, `"banner"` or `"top-left"`.
    pub fn parse(s: &str) -> Option<Layout> {
        match s {
            "centered" => Some(Layout::Centered),
            "banner" => Some(Layout::Banner),
            "top-left" => Some(Layout::TopLeft),
            _ => None,
        }
    }

    /// The name [`Layout::parse`] takes.
    pub fn as_str(self) -> &'static str {
        match self {
            Layout::Centered => "centered",
            Layout::Banner => "banner",
            Layout::TopLeft => "top-left",
        }
    }

    /// (width, height, margin, largest font size)
    fn geometry(self) -> (u32, u32, u32, f32) {
        match self {
            Layout::Centered => (GREETING_BOX, GREETING_BOX, 32, 96.0),
            Layout::Banner => (GREETING_BOX, GREETING_BOX / 3, 16, 72.0),
            Layout::TopLeft => (GREETING_BOX, GREETING_BOX, 32, 56.0),
        }
    }
}

/// A greeting card: text in one colour on another.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Card {
    /// At most [`MAX_CARD_CHARS`] characters; `\n` breaks a line, other
    /// control characters are refused; long lines are word-wrapped.
    pub text: String,
    /// The text's colour, `#rrggbb`.
    pub foreground: String,
    /// The card's colour, `#rrggbb`.
    pub background: String,
    /// Shape and alignment.
    pub layout: Layout,
}

/// Renders a card into a greeting (same PNG path, size bounds and ETag as an
/// upload). The largest font size at which the wrapped text fits is used.
pub fn render_card(card: &Card) -> Result<Greeting, GreetingError> {
    check_text(&card.text)?;
    let fg = Colour::parse(&card.foreground).ok_or(GreetingError::BadColour { field: "foreground" })?;
    let bg = Colour::parse(&card.background).ok_or(GreetingError::BadColour { field: "background" })?;
    let font = FontRef::try_from_slice(ttf_noto_sans::REGULAR).map_err(|_| GreetingError::Font)?;
    if let Some(c) = card.text.chars().find(|&c| !c.is_whitespace() && font.glyph_id(c) == GlyphId(0)) {
        return Err(GreetingError::UncoveredCharacter { code: c as u32 });
    }

    let (width, height, margin, max_px) = card.layout.geometry();
    let (inner_w, inner_h) = ((width - 2 * margin) as f32, (height - 2 * margin) as f32);
    let mut px = max_px;
    let (scale, lines) = loop {
        let scale = PxScale::from(px);
        let sf = font.as_scaled(scale);
        let lines = wrap(&sf, &card.text, inner_w);
        if lines.len() as f32 * line_height(&sf) <= inner_h {
            break (scale, lines);
        }
        px *= 0.9;
        if px < MIN_FONT_PX {
            return Err(GreetingError::TextDoesNotFit);
        }
    };

    let sf = font.as_scaled(scale);
    let mut coverage = vec![0f32; (width * height) as usize];
    let block_h = lines.len() as f32 * line_height(&sf);
    let top = match card.layout {
        Layout::TopLeft => margin as f32,
        Layout::Centered | Layout::Banner => (height as f32 - block_h) / 2.0,
    };
    for (i, line) in lines.iter().enumerate() {
        let x0 = match card.layout {
            Layout::TopLeft => margin as f32,
            Layout::Centered | Layout::Banner => (width as f32 - text_width(&sf, line)) / 2.0,
        };
        let baseline = top + i as f32 * line_height(&sf) + sf.ascent();
        draw_line(&font, scale, line, x0, baseline, width, height, &mut coverage);
    }

    let mut image = RgbaImage::new(width, height);
    for (i, p) in image.pixels_mut().enumerate() {
        let c = coverage[i].clamp(0.0, 1.0);
        let mix = |f: u8, b: u8| (b as f32 + (f as f32 - b as f32) * c).round() as u8;
        *p = Rgba([mix(fg.r, bg.r), mix(fg.g, bg.g), mix(fg.b, bg.b), u8::MAX]);
    }
    finish(DynamicImage::ImageRgba8(image), GREETING_BOX, GREETING_BOX)
}

/// Refuses empty, over-long and control-bearing text.
fn check_text(text: &str) -> Result<(), GreetingError> {
    if let Some((position, c)) = text.chars().enumerate().find(|&(_, c)| is_refused(c)) {
        return Err(GreetingError::ControlCharacter { position, code: c as u32 });
    }
    let chars = text.chars().count();
    if chars > MAX_CARD_CHARS {
        return Err(GreetingError::TextTooLong {
            chars,
            max: MAX_CARD_CHARS,
        });
    }
    if text.split('\n').count() > MAX_CARD_LINES {
        return Err(GreetingError::TextDoesNotFit);
    }
    if text.trim().is_empty() {
        return Err(GreetingError::EmptyText);
    }
    Ok(())
}

/// Control characters (C0, DEL, C1) other than `\n`, and the invisible
/// formatting characters that can reorder or hide text (bidirectional
/// overrides and isolates, zero-width characters, line/paragraph
/// separators, the byte-order mark, interlinear annotations).
fn is_refused(c: char) -> bool {
    (c.is_control() && c != '\n')
        || matches!(c,
            '\u{200B}'..='\u{200F}'
            | '\u{2028}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}')
}

fn line_height<F: Font>(sf: &ab_glyph::PxScaleFont<&F>) -> f32 {
    sf.height() + sf.line_gap()
}

fn text_width<F: Font>(sf: &ab_glyph::PxScaleFont<&F>, text: &str) -> f32 {
    let mut width = 0.0;
    let mut prev: Option<GlyphId> = None;
    for c in text.chars() {
        let id = sf.glyph_id(c);
        if let Some(p) = prev {
            width += sf.kern(p, id);
        }
        width += sf.h_advance(id);
        prev = Some(id);
    }
    width
}

/// Greedy word wrap: each `\n` starts a line; words longer than a line are
/// broken between characters.
fn wrap<F: Font>(sf: &ab_glyph::PxScaleFont<&F>, text: &str, max_w: f32) -> Vec<String> {
    let mut lines = Vec::new();
    for paragraph in text.split('\n') {
        let mut current = String::new();
        for word in paragraph.split_whitespace() {
            let candidate = if current.is_empty() {
                word.to_string()
            } else {
                format!("{current} {word}")
            };
            if text_width(sf, &candidate) <= max_w {
                current = candidate;
                continue;
            }
            if !current.is_empty() {
                lines.push(std::mem::take(&mut current));
            }
            for c in word.chars() {
                current.push(c);
                if text_width(sf, &current) > max_w && current.chars().count() > 1 {
                    current.pop();
                    lines.push(std::mem::take(&mut current));
                    current.push(c);
                }
            }
        }
        lines.push(current);
    }
    // Blank lines at either end only shrink the text.
    while lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    let leading = lines.iter().take_while(|l| l.is_empty()).count();
    lines.drain(..leading);
    lines
}

/// Rasterises one line into the coverage map (max, not sum, where glyphs
/// overlap, so kerned pairs do not darken).
#[allow(clippy::too_many_arguments)]
fn draw_line<F: Font>(font: &F, scale: PxScale, line: &str, x0: f32, baseline: f32, width: u32, height: u32, coverage: &mut [f32]) {
    let sf = font.as_scaled(scale);
    let mut x = x0;
    let mut prev: Option<GlyphId> = None;
    for c in line.chars() {
        let id = sf.glyph_id(c);
        if let Some(p) = prev {
            x += sf.kern(p, id);
        }
        let glyph = id.with_scale_and_position(scale, point(x, baseline));
        x += sf.h_advance(id);
        prev = Some(id);
        let Some(outlined) = font.outline_glyph(glyph) else {
            continue; // white space has no outline
        };
        let bounds = outlined.px_bounds();
        outlined.draw(|gx, gy, cov| {
            let px = bounds.min.x as i64 + gx as i64;
            let py = bounds.min.y as i64 + gy as i64;
            if (0..width as i64).contains(&px) && (0..height as i64).contains(&py) {
                let cell = &mut coverage[(py as u32 * width + px as u32) as usize];
                *cell = cell.max(cov);
            }
        });
    }
}
