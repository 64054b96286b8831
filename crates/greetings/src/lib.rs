//! Greeting pictures: the picture a phone shows in place of a bare number.
//!
//! Every number has two greetings ([`Kind::Caller`], [`Kind::Callee`]). The
//! region takes uploads, turns each into a normalised PNG with
//! [`normalize`] (format sniffed from the content, size and header checked
//! before decoding, decoded under limits, scaled into a 480×480 box,
//! re-encoded with no metadata) and serves it with its update code, a strong
//! ETag ([`etag_of`], [`if_none_match`]). Users with no picture at hand get a
//! card rendered from text ([`render_card`], with an embedded Noto Sans font,
//! no system font). Phones keep fetched pictures in a bounded
//! [`DiskCache`], decode them for drawing with [`decode_picture`] and, on
//! plain terminals, may draw them with [`half_blocks`].
//!
//! What this crate is not: it does no network I/O and knows nothing of HTTP
//! routes, the store or authentication (the region does); only
//! [`cache`] touches the file system. It does not decide which URLs a phone
//! may fetch (a phone must only fetch from the caller's own region).

pub mod cache;
mod card;
mod error;
mod etag;
mod kind;
mod normalize;
mod terminal;

pub use cache::DiskCache;
pub use card::{render_card, Card, Colour, Layout, MAX_CARD_CHARS};
pub use error::GreetingError;
pub use etag::{etag_of, if_none_match};
pub use kind::Kind;
pub use normalize::{fit_within, normalize, Greeting, UploadLimits, GREETING_BOX, MAX_ALLOC, MAX_DIMENSION, MAX_UPLOAD_BYTES};
pub use terminal::{decode_picture, half_blocks, kitty_without_placeholders};
