//! Uploads: sniff, check the header, decode with limits, scale into the
//! greeting box, re-encode as a PNG with no metadata.

use std::io::{Cursor, ErrorKind};

use image::codecs::png::{CompressionType, FilterType as PngFilter, PngEncoder};
use image::error::LimitErrorKind;
use image::imageops::FilterType;
use image::metadata::Orientation;
use image::{DynamicImage, ExtendedColorType, ImageDecoder, ImageEncoder, ImageError, ImageFormat, ImageReader, Limits, RgbaImage};

use crate::{etag_of, GreetingError};

/// The largest upload taken: 1 MiB.
pub const MAX_UPLOAD_BYTES: usize = 1024 * 1024;
/// The largest width or height an upload may declare.
pub const MAX_DIMENSION: u32 = 4096;
/// The most a single decode may allocate: a 4096×4096 image with four 16-bit
/// channels (the worst a PNG can declare within [`MAX_DIMENSION`]).
pub const MAX_ALLOC: u64 = 4096 * 4096 * 8;
/// Stored greetings fit in a box this wide and tall (aspect kept).
pub const GREETING_BOX: u32 = 480;

/// What an upload may be, and the box its normalised picture must fit in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UploadLimits {
    /// The most bytes of input; checked before anything else.
    pub max_bytes: usize,
    /// The widest declared image; checked from the header, before decoding.
    pub max_width: u32,
    /// The tallest declared image; checked from the header, before decoding.
    pub max_height: u32,
    /// The most memory the decoder may allocate.
    pub max_alloc: u64,
    /// The normalised picture is at most this wide (never upscaled).
    pub fit_width: u32,
    /// The normalised picture is at most this tall (never upscaled).
    pub fit_height: u32,
}

impl Default for UploadLimits {
    /// The production limits (1 MiB, 4096×4096, into 480×480).
    fn default() -> Self {
        UploadLimits {
            max_bytes: MAX_UPLOAD_BYTES,
            max_width: MAX_DIMENSION,
            max_height: MAX_DIMENSION,
            max_alloc: MAX_ALLOC,
            fit_width: GREETING_BOX,
            fit_height: GREETING_BOX,
        }
    }
}

/// A normalised greeting picture, ready to store and serve.
#[derive(Clone, PartialEq, Eq)]
pub struct Greeting {
    /// The PNG: 8-bit RGB or RGBA, no ancillary chunks but what the encoder
    /// needs (no text, no EXIF, no ICC profile, no time).
    pub png: Vec<u8>,
    /// Its width in pixels.
    pub width: u32,
    /// Its height in pixels.
    pub height: u32,
    /// Its update code, [`etag_of`] the PNG.
    pub etag: String,
}

impl std::fmt::Debug for Greeting {
    // The PNG bytes themselves would flood a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Greeting")
            .field("png_bytes", &self.png.len())
            .field("width", &self.width)
            .field("height", &self.height)
            .field("etag", &self.etag)
            .finish()
    }
}

/// Validates an upload and turns it into a stored greeting.
///
/// The format is sniffed from the content (PNG, JPEG, GIF — its first frame —
/// or WebP); the size and the header's dimensions are checked before any
/// pixel is decoded, and the decode itself runs under [`image::Limits`], so a
/// decompression bomb fails cleanly. The EXIF orientation is applied, then
/// the picture is scaled to fit the box and encoded as a fresh PNG, which
/// carries none of the upload's metadata.
pub fn normalize(bytes: &[u8], limits: &UploadLimits) -> Result<Greeting, GreetingError> {
    let image = decode(bytes, limits)?;
    finish(image, limits.fit_width, limits.fit_height)
}

/// Sniffs and decodes untrusted bytes under `limits`; the first frame of an
/// animation; EXIF orientation applied.
pub(crate) fn decode(bytes: &[u8], limits: &UploadLimits) -> Result<DynamicImage, GreetingError> {
    if bytes.len() > limits.max_bytes {
        return Err(GreetingError::TooLarge {
            bytes: bytes.len(),
            max: limits.max_bytes,
        });
    }
    if bytes.is_empty() {
        return Err(GreetingError::Empty);
    }
    let format = sniff(bytes)?;
    let name = format_name(format);

    // Read the header with only the allocation limit, so that too-large
    // dimensions are reported with their values; nothing is decoded yet.
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    reader.limits(alloc_limits(limits.max_alloc));
    let mut decoder = reader.into_decoder().map_err(|e| map_error(e, name))?;
    let (w, h) = decoder.dimensions();
    if w == 0 || h == 0 {
        return Err(GreetingError::ZeroSized { w, h });
    }
    if w > limits.max_width || h > limits.max_height {
        return Err(GreetingError::TooManyPixels {
            w,
            h,
            max_w: limits.max_width,
            max_h: limits.max_height,
        });
    }
    if decoder.total_bytes() > limits.max_alloc {
        return Err(GreetingError::TooMuchMemory);
    }
    let mut full = alloc_limits(limits.max_alloc);
    full.max_image_width = Some(limits.max_width);
    full.max_image_height = Some(limits.max_height);
    decoder.set_limits(full).map_err(|e| map_error(e, name))?;
    // A broken EXIF block costs the orientation, not the picture.
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(|e| map_error(e, name))?;
    image.apply_orientation(orientation);
    Ok(image)
}

fn alloc_limits(max_alloc: u64) -> Limits {
    let mut l = Limits::default();
    l.max_image_width = None;
    l.max_image_height = None;
    l.max_alloc = Some(max_alloc);
    l
}

/// The format, from the magic bytes only.
fn sniff(bytes: &[u8]) -> Result<ImageFormat, GreetingError> {
    match image::guess_format(bytes) {
        Ok(f @ (ImageFormat::Png | ImageFormat::Jpeg | ImageFormat::Gif | ImageFormat::WebP)) => Ok(f),
        Ok(other) => Err(GreetingError::Unsupported(other.to_mime_type())),
        Err(_) => Err(GreetingError::NotAnImage),
    }
}

fn format_name(format: ImageFormat) -> &'static str {
    match format {
        ImageFormat::Png => "PNG",
        ImageFormat::Jpeg => "JPEG",
        ImageFormat::Gif => "GIF",
        ImageFormat::WebP => "WebP",
        other => other.to_mime_type(),
    }
}

/// Maps a decoder's error to ours; the decoder's own text goes to the debug
/// log only (it can quote bytes of the input).
fn map_error(e: ImageError, name: &'static str) -> GreetingError {
    tracing::debug!(format = name, error = %e, "greeting upload refused by the decoder");
    match e {
        ImageError::Limits(l) => match l.kind() {
            LimitErrorKind::InsufficientMemory => GreetingError::TooMuchMemory,
            _ => GreetingError::Corrupt(name),
        },
        ImageError::IoError(io) if io.kind() == ErrorKind::UnexpectedEof => GreetingError::Truncated(name),
        ImageError::Unsupported(_) => GreetingError::Unsupported(name),
        other if looks_truncated(&other) => GreetingError::Truncated(name),
        _ => GreetingError::Corrupt(name),
    }
}

/// Some decoders wrap an early end of data in a format error rather than an
/// I/O error; their messages say so.
fn looks_truncated(e: &ImageError) -> bool {
    let text = e.to_string().to_ascii_lowercase();
    ["unexpected eof", "end of file", "unexpected end", "truncated", "no more data"]
        .iter()
        .any(|needle| text.contains(needle))
}

/// The size that fits `(w, h)` into `(max_w, max_h)` keeping the aspect
/// ratio; never larger than the input, never zero.
pub fn fit_within(w: u32, h: u32, max_w: u32, max_h: u32) -> (u32, u32) {
    if w <= max_w && h <= max_h {
        return (w, h);
    }
    // Compare w/max_w with h/max_h in integers: the tighter side sets the scale.
    let (w64, h64, mw, mh) = (w as u64, h as u64, max_w.max(1) as u64, max_h.max(1) as u64);
    let (nw, nh) = if w64 * mh >= h64 * mw {
        (mw, (h64 * mw + w64 / 2) / w64)
    } else {
        ((w64 * mh + h64 / 2) / h64, mh)
    };
    (nw.clamp(1, mw) as u32, nh.clamp(1, mh) as u32)
}

/// Scales a picture into the box and encodes it: the one path every stored
/// greeting (upload or card) takes.
pub(crate) fn finish(image: DynamicImage, fit_width: u32, fit_height: u32) -> Result<Greeting, GreetingError> {
    let (w, h) = fit_within(image.width(), image.height(), fit_width, fit_height);
    let image = if (w, h) == (image.width(), image.height()) {
        image.into_rgba8()
    } else if image.color().has_alpha() && !is_opaque(&image) {
        resize_with_alpha(image.into_rgba8(), w, h)
    } else {
        // DynamicImage's resize (not the generic imageops one) is compiled in
        // the image crate, so it is fast in our debug builds too.
        image.resize_exact(w, h, FilterType::CatmullRom).into_rgba8()
    };
    let png = encode_png(&image)?;
    Ok(Greeting {
        etag: etag_of(&png),
        png,
        width: w,
        height: h,
    })
}

/// Whether every pixel is fully opaque (many PNGs and every GIF carry an
/// alpha channel they do not use; those skip the alpha-weighted resize).
fn is_opaque(image: &DynamicImage) -> bool {
    match image {
        DynamicImage::ImageRgba8(rgba) => rgba.as_raw().chunks_exact(4).all(|p| p[3] == u8::MAX),
        DynamicImage::ImageLumaA8(la) => la.as_raw().chunks_exact(2).all(|p| p[1] == u8::MAX),
        other => !other.color().has_alpha(),
    }
}

/// Resizes with the colour weighted by alpha, so transparent pixels' colours
/// do not bleed into the edges of what is visible.
fn resize_with_alpha(mut image: RgbaImage, w: u32, h: u32) -> RgbaImage {
    for p in image.pixels_mut() {
        let a = p[3] as u32;
        for c in 0..3 {
            p[c] = ((p[c] as u32 * a + 127) / 255) as u8;
        }
    }
    let mut out = DynamicImage::ImageRgba8(image)
        .resize_exact(w, h, FilterType::CatmullRom)
        .into_rgba8();
    for p in out.pixels_mut() {
        let a = p[3] as u32;
        for c in 0..3 {
            p[c] = (p[c] as u32 * 255 + a / 2).checked_div(a).map_or(0, |v| v.min(255) as u8);
        }
    }
    out
}

/// Encodes as PNG: RGB when every pixel is opaque (smaller), RGBA otherwise.
/// The encoder writes only IHDR, IDAT and IEND here: no metadata can pass.
fn encode_png(image: &RgbaImage) -> Result<Vec<u8>, GreetingError> {
    let (w, h) = image.dimensions();
    let mut out = Vec::new();
    let encoder = PngEncoder::new_with_quality(&mut out, CompressionType::Best, PngFilter::Adaptive);
    let result = if image.pixels().all(|p| p[3] == u8::MAX) {
        let rgb: Vec<u8> = image.pixels().flat_map(|p| [p[0], p[1], p[2]]).collect();
        encoder.write_image(&rgb, w, h, ExtendedColorType::Rgb8)
    } else {
        encoder.write_image(image.as_raw(), w, h, ExtendedColorType::Rgba8)
    };
    result.map_err(|e| {
        tracing::warn!(error = %e, "PNG encoding failed");
        GreetingError::Encode
    })?;
    Ok(out)
}
