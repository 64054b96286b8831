//! The mailbox of every number of a region (issue 12, design §10), free of
//! I/O.
//!
//! - [`book`]: the in-memory index of stored messages per number, with
//!   quotas (count and bytes), a retention period, and per-device delivery
//!   state: a message is offered to each device of its number until that
//!   device confirms it, and never again afterwards;
//! - [`intake`]: a message posted over HTTP (multipart/form-data) split
//!   and checked against the type it claims;
//! - [`summary`]: the `message-summary` body of RFC 3842 (MWI), an encoder
//!   and a strict parser;
//! - the record types the region stores: [`CallRecord`] (the patent's
//!   `user_call`: who called whom, when, and whether the caller's identity
//!   verified) and [`Message`].
//!
//! It holds no sockets, no clock and no storage: the region commits a
//! message to its database first, then tells the [`book::Book`]; times
//! are passed in as Unix milliseconds.

pub mod book;
pub mod intake;
pub mod summary;

pub use book::{Book, Limits, Reservation, Stored};
pub use summary::{Class, Counts, Summary};

use peerdial_number::Number;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MailboxError {
    #[error("the mailbox of {number} is full: it keeps {count} of at most {max} messages, and this needs room for {needed}")]
    TooManyMessages { number: Number, count: u32, needed: u32, max: u32 },
    #[error("the mailbox of {number} is full: {used} of {max} bytes used, the message needs {size} more")]
    TooManyBytes { number: Number, used: u64, size: u64, max: u64 },
    #[error("the message is {size} bytes; at most {max} are allowed in one message")]
    TooLarge { size: u64, max: u64 },
    #[error("the message is empty")]
    Empty,
    #[error("unknown message kind {0:?} (voice, text, image, video or audio)")]
    UnknownKind(String),
    #[error("no message {0} in this mailbox")]
    NoSuchMessage(i64),
    #[error("malformed message-summary: {0}")]
    BadSummary(String),
    #[error("malformed multipart/form-data: {0}")]
    Malformed(String),
    #[error("files of type {0:?} are not taken: an image, WAV audio, MP4 or WebM video, or plain text")]
    UnsupportedType(String),
    #[error("the file is not {claimed}: {why}")]
    NotWhatItClaims { claimed: &'static str, why: String },
}

/// What a stored message holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Voice,
    Text,
    Image,
    Video,
    Audio,
}

impl Kind {
    pub const ALL: [Kind; 5] = [Kind::Voice, Kind::Text, Kind::Image, Kind::Video, Kind::Audio];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Voice => "voice",
            Kind::Text => "text",
            Kind::Image => "image",
            Kind::Video => "video",
            Kind::Audio => "audio",
        }
    }

    pub fn parse(s: &str) -> Result<Kind, MailboxError> {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| MailboxError::UnknownKind(s.chars().take(32).collect()))
    }

    /// The RFC 3458 message-context class MWI counts this kind under.
    pub fn class(self) -> Class {
        match self {
            Kind::Voice => Class::Voice,
            Kind::Text => Class::Text,
            Kind::Image | Kind::Video | Kind::Audio => Class::Multimedia,
        }
    }
}

/// One call attempt that reached the mailbox (the patent's `user_call`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRecord {
    pub id: i64,
    /// The caller as it presented itself: a number's digits or a SIP URI.
    pub caller: String,
    pub callee: Number,
    pub at_ms: u64,
    /// Whether the caller's `Identity` PASSporT verified against its
    /// region's key; an unverified caller is shown as such.
    pub verified: bool,
}

/// Where a message's content lives: in the database row, or in a file
/// beside it (large media).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    Bytes(Vec<u8>),
    File(String),
}

/// A stored message (its body kept apart from the index in [`book`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub id: i64,
    pub number: Number,
    pub kind: Kind,
    /// The MIME type of the body (e.g. `text/plain`, `audio/wav`).
    pub content_type: String,
    pub sender: String,
    pub verified: bool,
    pub at_ms: u64,
    pub size: u64,
    /// When the owner marked it read (`None`: new).
    pub read_ms: Option<u64>,
    pub body: Body,
}
