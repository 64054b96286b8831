//! Intake of a message posted over HTTP (`multipart/form-data`): one
//! `file` part (picture, WAV audio, MP4/WebM video or text) and an
//! optional `text` part. [`intake`] is a pure function of the body and
//! its Content-Type: it splits the parts (with `multer`), checks each
//! file against the type it claims, and returns what to store. Pictures
//! are decoded and re-encoded as PNG without metadata
//! (`peerdial_greetings::normalize`); video is checked by its container
//! (an `ftyp` box first and well-formed top-level boxes for MP4; an EBML
//! header with DocType `webm` followed by a Segment for WebM), not
//! decoded; WAV by its RIFF chunks.
//!
//! Not here: authentication, quotas and storage (the region's).

use futures_util::FutureExt;

use crate::{Kind, MailboxError};

/// The form fields a post may have.
pub const FILE_FIELD: &str = "file";
pub const TEXT_FIELD: &str = "text";

/// What a post may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntakeLimits {
    /// The largest body (all parts and framing).
    pub max_body: u64,
    /// The largest picture before normalisation.
    pub max_image: usize,
    /// Normalised pictures fit in a box this wide and tall.
    pub image_box: u32,
    /// The longest text part, in bytes.
    pub max_text: usize,
}

impl Default for IntakeLimits {
    fn default() -> IntakeLimits {
        IntakeLimits {
            max_body: 16 << 20,
            max_image: 8 << 20,
            image_box: 2048,
            max_text: 8 << 10,
        }
    }
}

/// One thing to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub kind: Kind,
    /// The MIME type of `body` as stored (a picture is always `image/png`).
    pub content_type: String,
    pub body: Vec<u8>,
}

/// A checked post: the file (or the text alone), and the text that came
/// with a file, stored as a text message beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intake {
    pub main: Item,
    pub caption: Option<Item>,
}

impl Intake {
    pub fn items(&self) -> impl Iterator<Item = &Item> {
        std::iter::once(&self.main).chain(self.caption.as_ref())
    }
}

fn malformed(why: impl std::fmt::Display) -> MailboxError {
    MailboxError::Malformed(why.to_string())
}

/// Splits and checks a posted message; see the module docs.
pub fn intake(body: &[u8], content_type: &str, limits: &IntakeLimits) -> Result<Intake, MailboxError> {
    if body.len() as u64 > limits.max_body {
        return Err(MailboxError::TooLarge {
            size: body.len() as u64,
            max: limits.max_body,
        });
    }
    let boundary = multer::parse_boundary(content_type).map_err(|_| malformed("multipart/form-data with a boundary expected"))?;
    let (file, text) = split(body, boundary, limits)?;
    let text = match text {
        Some(t) if t.len() > limits.max_text => {
            return Err(MailboxError::TooLarge {
                size: t.len() as u64,
                max: limits.max_text as u64,
            })
        }
        Some(t) => Some(String::from_utf8(t).map_err(|_| malformed("the text part is not UTF-8"))?),
        None => None,
    };
    let text_item = |t: String| Item {
        kind: Kind::Text,
        content_type: "text/plain; charset=utf-8".into(),
        body: t.into_bytes(),
    };
    let text = text.filter(|t| !t.trim().is_empty());
    match file {
        Some((declared, data)) => Ok(Intake {
            main: check_file(&declared, data, limits)?,
            caption: text.map(text_item),
        }),
        None => match text {
            Some(t) => Ok(Intake {
                main: text_item(t),
                caption: None,
            }),
            None => Err(MailboxError::Empty),
        },
    }
}

type Parts = (Option<(String, Vec<u8>)>, Option<Vec<u8>>);

/// The `file` part (its declared type, its bytes) and the `text` part.
fn split(body: &[u8], boundary: String, limits: &IntakeLimits) -> Result<Parts, MailboxError> {
    let constraints = multer::Constraints::new()
        .allowed_fields(vec![FILE_FIELD, TEXT_FIELD])
        .size_limit(multer::SizeLimit::new().whole_stream(limits.max_body));
    let chunk: Result<Vec<u8>, std::io::Error> = Ok(body.to_vec());
    let mut form = multer::Multipart::with_constraints(futures_util::stream::iter([chunk]), boundary, constraints);
    let (mut file, mut text) = (None, None);
    // The whole body is in memory, so every step is ready at once.
    let mut step = || {
        async {
            let Some(field) = form.next_field().await? else {
                return Ok(None);
            };
            let name = field.name().unwrap_or_default().to_string();
            let declared = field.content_type().map(|m| m.essence_str().to_ascii_lowercase());
            let data = field.bytes().await?;
            Ok::<_, multer::Error>(Some((name, declared, data.to_vec())))
        }
        .now_or_never()
        .unwrap_or_else(|| Err(multer::Error::IncompleteStream))
    };
    while let Some((name, declared, data)) = step().map_err(malformed)? {
        match name.as_str() {
            FILE_FIELD if file.is_none() => file = Some((declared.unwrap_or_default(), data)),
            TEXT_FIELD if text.is_none() => text = Some(data),
            _ => return Err(malformed(format!("more than one {name:?} part"))),
        }
    }
    Ok((file, text))
}

/// Checks a file against its declared type; what to store.
fn check_file(declared: &str, data: Vec<u8>, limits: &IntakeLimits) -> Result<Item, MailboxError> {
    if data.is_empty() {
        return Err(MailboxError::Empty);
    }
    let not = |kind: &'static str, why: &str| MailboxError::NotWhatItClaims {
        claimed: kind,
        why: why.to_string(),
    };
    let item = |kind, content_type: &str, body| Item {
        kind,
        content_type: content_type.into(),
        body,
    };
    match declared {
        t if t.starts_with("image/") => {
            let l = peerdial_greetings::UploadLimits {
                max_bytes: limits.max_image,
                fit_width: limits.image_box,
                fit_height: limits.image_box,
                ..Default::default()
            };
            match peerdial_greetings::normalize(&data, &l) {
                Ok(g) => Ok(item(Kind::Image, "image/png", g.png)),
                Err(peerdial_greetings::GreetingError::TooLarge { bytes, max }) => Err(MailboxError::TooLarge {
                    size: bytes as u64,
                    max: max as u64,
                }),
                Err(e) => Err(not("image", &e.to_string())),
            }
        }
        "audio/wav" | "audio/x-wav" | "audio/wave" | "audio/vnd.wave" => {
            check_wav(&data).map_err(|w| not("WAV audio", w))?;
            Ok(item(Kind::Audio, "audio/wav", data))
        }
        "video/mp4" => {
            check_mp4(&data).map_err(|w| not("MP4 video", w))?;
            Ok(item(Kind::Video, "video/mp4", data))
        }
        "video/webm" => {
            check_webm(&data).map_err(|w| not("WebM video", w))?;
            Ok(item(Kind::Video, "video/webm", data))
        }
        "text/plain" => {
            let t = String::from_utf8(data).map_err(|_| not("text", "not UTF-8"))?;
            Ok(item(Kind::Text, "text/plain; charset=utf-8", t.into_bytes()))
        }
        "" => Err(MailboxError::UnsupportedType("(none given)".into())),
        other => Err(MailboxError::UnsupportedType(other.chars().take(64).collect())),
    }
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// ISO BMFF: an `ftyp` box first, then boxes that exactly cover the file
/// (a size of 0, "to the end", only for the last one).
pub fn check_mp4(b: &[u8]) -> Result<(), &'static str> {
    if b.get(4..8) != Some(b"ftyp") {
        return Err("no ftyp box at the start");
    }
    let mut at = 0usize;
    let mut first = true;
    while at < b.len() {
        let size = be32(b, at).ok_or("truncated box header")? as u64;
        let kind = b.get(at + 4..at + 8).ok_or("truncated box header")?;
        if !kind.iter().all(|c| c.is_ascii_graphic() || *c == b' ') {
            return Err("a box type is not a four-character code");
        }
        let (size, header) = match size {
            0 => ((b.len() - at) as u64, 8),
            1 => {
                let hi = be32(b, at + 8).ok_or("truncated box header")? as u64;
                let lo = be32(b, at + 12).ok_or("truncated box header")? as u64;
                (hi << 32 | lo, 16)
            }
            s => (s, 8),
        };
        if size < header || (first && size < 16) {
            return Err("a box is smaller than its header");
        }
        if size > (b.len() - at) as u64 {
            return Err("a box runs past the end of the file");
        }
        first = false;
        at += size as usize;
    }
    Ok(())
}

/// An EBML variable-size integer at `at`: (value, length); `marker`:
/// keep the length marker bit (element IDs) or not (sizes).
fn vint(b: &[u8], at: usize, marker: bool) -> Option<(u64, usize)> {
    let first = *b.get(at)?;
    let len = first.leading_zeros() as usize + 1;
    if len > 8 {
        return None;
    }
    // In u64: an eight-byte size shifts the mask by 8.
    let mut v = if marker { first as u64 } else { first as u64 & (0xFF >> len) };
    for i in 1..len {
        v = v << 8 | *b.get(at + i)? as u64;
    }
    Some((v, len))
}

/// WebM: the EBML header (with DocType `webm`), then a Segment.
pub fn check_webm(b: &[u8]) -> Result<(), &'static str> {
    const EBML: u64 = 0x1A45_DFA3;
    const DOCTYPE: u64 = 0x4282;
    const SEGMENT: u64 = 0x1853_8067;
    match vint(b, 0, true) {
        Some((EBML, n)) => {
            let (size, m) = vint(b, n, false).ok_or("truncated EBML header")?;
            let start = n + m;
            let end = start
                .checked_add(size as usize)
                .filter(|e| *e <= b.len())
                .ok_or("truncated EBML header")?;
            let mut at = start;
            let mut doctype = None;
            while at < end {
                let (id, n) = vint(b, at, true).ok_or("bad element in the EBML header")?;
                let (size, m) = vint(b, at + n, false).ok_or("bad element in the EBML header")?;
                let body = at + n + m;
                let next = body
                    .checked_add(size as usize)
                    .filter(|e| *e <= end)
                    .ok_or("bad element in the EBML header")?;
                if id == DOCTYPE {
                    doctype = Some(&b[body..next]);
                }
                at = next;
            }
            if doctype.map(|d| d.split(|c| *c == 0).next().unwrap_or_default()) != Some(b"webm") {
                return Err("the EBML DocType is not webm");
            }
            match vint(b, end, true) {
                Some((SEGMENT, _)) => Ok(()),
                _ => Err("no Segment after the EBML header"),
            }
        }
        _ => Err("no EBML header at the start"),
    }
}

/// RIFF/WAVE with a PCM or float `fmt ` chunk and a non-empty `data`
/// chunk, chunks within the file.
pub fn check_wav(b: &[u8]) -> Result<(), &'static str> {
    if b.get(0..4) != Some(b"RIFF") || b.get(8..12) != Some(b"WAVE") {
        return Err("no RIFF/WAVE header");
    }
    let (mut at, mut fmt, mut data) = (12usize, false, false);
    while at + 8 <= b.len() {
        let size = le32(b, at + 4).ok_or("truncated chunk")? as usize;
        let body = b.get(at + 8..).ok_or("truncated chunk")?;
        match &b[at..at + 4] {
            b"fmt " => {
                let format = body.get(0..2).ok_or("truncated fmt chunk")?;
                let channels = body.get(2..4).ok_or("truncated fmt chunk")?;
                // 1: PCM, 3: float, 0xFFFE: extensible.
                if ![[1, 0], [3, 0], [0xFE, 0xFF]].contains(&[format[0], format[1]]) || channels == [0, 0] {
                    return Err("not PCM or float audio");
                }
                fmt = true;
            }
            b"data" => data = size > 0 && body.len() >= size.min(body.len()) && !body.is_empty(),
            _ => {}
        }
        if size > body.len() && &b[at..at + 4] != b"data" {
            return Err("a chunk runs past the end of the file");
        }
        at = at.saturating_add(8).saturating_add(size).saturating_add(size & 1);
    }
    match (fmt, data) {
        (true, true) => Ok(()),
        (false, _) => Err("no fmt chunk"),
        (_, false) => Err("no audio data"),
    }
}

#[cfg(test)]
#[path = "intake_tests.rs"]
mod tests;
