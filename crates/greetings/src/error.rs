//! The crate's one error type.

/// Why an upload, a card or a cache operation was refused.
///
/// Messages never repeat text from the input (the bytes of an upload, a
/// card's text or colour): they are safe to put in a JSON error answer or a
/// log line as they are.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GreetingError {
    /// The upload had no bytes at all.
    #[error("the upload is empty")]
    Empty,
    /// The upload is bigger than the limit; nothing was decoded.
    #[error("the upload has {bytes} bytes; at most {max} are taken")]
    TooLarge {
        /// Its size.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// The content is not an image format we know of (sniffed from the bytes,
    /// never from a name or a Content-Type).
    #[error("not an image: PNG, JPEG, GIF or WebP expected")]
    NotAnImage,
    /// An image, but of a format we do not take (BMP, TIFF, AVIF …).
    #[error("{0} images are not taken: PNG, JPEG, GIF or WebP expected")]
    Unsupported(&'static str),
    /// The header declares more pixels than allowed (checked before decoding).
    #[error("the image declares {w}x{h} pixels; at most {max_w}x{max_h} are taken")]
    TooManyPixels {
        /// Declared width.
        w: u32,
        /// Declared height.
        h: u32,
        /// Width limit.
        max_w: u32,
        /// Height limit.
        max_h: u32,
    },
    /// The header declares a width or height of zero.
    #[error("the image declares no pixels ({w}x{h})")]
    ZeroSized {
        /// Declared width.
        w: u32,
        /// Declared height.
        h: u32,
    },
    /// The data ends before the image does.
    #[error("the {0} image is truncated")]
    Truncated(&'static str),
    /// The data is not a valid image of the format it claims.
    #[error("the {0} image is corrupt")]
    Corrupt(&'static str),
    /// Decoding would need more memory than the limit allows.
    #[error("decoding the image needs more memory than allowed")]
    TooMuchMemory,
    /// The card's text is empty or only white space.
    #[error("the card has no text")]
    EmptyText,
    /// The card's text is longer than allowed.
    #[error("the card's text has {chars} characters; at most {max} are taken")]
    TextTooLong {
        /// Its length in characters.
        chars: usize,
        /// The limit.
        max: usize,
    },
    /// The card's text contains a control or invisible formatting character
    /// (terminal escapes, bidirectional overrides, zero-width characters).
    #[error("the card's text contains the control character U+{code:04X} at character {position}")]
    ControlCharacter {
        /// Its index in characters.
        position: usize,
        /// Its code point.
        code: u32,
    },
    /// The embedded font has no glyph for a character of the card's text.
    #[error("the card's font has no glyph for U+{code:04X} (Latin, Greek and Cyrillic are covered)")]
    UncoveredCharacter {
        /// Its code point.
        code: u32,
    },
    /// The text does not fit on the card even at the smallest font size.
    #[error("the card's text does not fit on the card")]
    TextDoesNotFit,
    /// A colour is not of the form `#rrggbb`.
    #[error("the {field} colour must be written #rrggbb")]
    BadColour {
        /// `"foreground"` or `"background"`.
        field: &'static str,
    },
    /// The layout name is not one we know.
    #[error("unknown card layout: centered, banner or top-left expected")]
    UnknownLayout,
    /// The embedded font could not be read (a build problem, not an input one).
    #[error("the embedded font could not be read")]
    Font,
    /// Encoding the PNG failed.
    #[error("encoding the PNG failed")]
    Encode,
    /// The on-disk cache could not be read or written.
    #[error("greeting cache: {0}")]
    Cache(#[from] std::io::Error),
}
