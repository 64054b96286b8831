//! Broadcasts, channels, private channels and the marquee (issue 11), free
//! of I/O.
//!
//! - [`text`]: cleaning every item before any display shows it (no escape
//!   sequences, no control characters), and the size rules for posts;
//! - [`marquee`]: channels, publishers, items with an expiry, subscriptions
//!   and the rotation that hands a phone exactly one item per request
//!   (private before public, unseen first, fair over subscriptions);
//! - [`fanout`]: delivering one text to many phones as SIP MESSAGE (RFC
//!   3428) with a bounded window and retransmissions, reporting who
//!   answered and who did not (the liveness signal of design §9);
//! - [`schedule`]: broadcasts that repeat every N minutes until a time;
//! - [`limit`]: posts per poster per minute.
//!
//! Every machine here is fed the clock in milliseconds (and parsed SIP
//! responses) and yields datagrams from `poll_transmit`, deadlines from
//! `poll_timeout` and what happened from `poll_event`. It holds no sockets,
//! no storage and decides nothing about who someone is: the region checks
//! credentials, signed identities and friends lists, stores items first,
//! then tells these machines.

pub mod fanout;
pub mod limit;
pub mod marquee;
pub mod schedule;
pub mod text;

pub use fanout::{Delivery, DeliveryEvent, Fanout, FanoutConfig, Target};
pub use marquee::{Channel, Item, Marquee, Pick, Scope, Source};
pub use schedule::{Broadcast, Schedule};

/// A datagram or stream frame to send, and over which transport.
pub use peerdial_sip::Outbound as Transmit;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    #[error("the text is empty (after removing control characters)")]
    Empty,
    #[error("the text is {len} bytes; at most {max} are allowed")]
    TooLong { len: usize, max: usize },
    #[error("no channel named {0:?}")]
    UnknownChannel(String),
    #[error("a channel named {0:?} exists already")]
    Exists(String),
    #[error("invalid channel name {0:?}: 1–32 lowercase letters, digits and '-'")]
    BadName(String),
    #[error("{0} may not post to channel {1:?}")]
    NotPublisher(peerdial_number::Number, String),
    #[error("the expiry must be between 1 minute and 30 days")]
    BadExpiry,
    #[error("channel {0:?} is global: its items are posted on the top, and regions relay them")]
    Relayed(String),
    #[error("channel {0:?} has ended: it takes no more posts")]
    Ended(String),
    #[error("the item has expired already")]
    Expired,
    #[error("too many posts; try again in {0} s")]
    RateLimited(u64),
    #[error("invalid schedule: {0}")]
    BadSchedule(String),
}

impl ChannelError {
    /// The HTTP status that says this refusal on every API that posts
    /// (a region's and the top's), so both answer alike.
    pub fn http_status(&self) -> u16 {
        match self {
            ChannelError::Empty
            | ChannelError::BadName(_)
            | ChannelError::BadExpiry
            | ChannelError::BadSchedule(_)
            | ChannelError::Relayed(_) => 400,
            ChannelError::NotPublisher(..) => 403,
            ChannelError::UnknownChannel(_) => 404,
            ChannelError::Exists(_) => 409,
            ChannelError::Expired | ChannelError::Ended(_) => 410,
            ChannelError::TooLong { .. } => 413,
            ChannelError::RateLimited(_) => 429,
        }
    }
}
