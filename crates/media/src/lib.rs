//! peerdial's media, free of I/O: SDP offer/answer ([`sdp`]), RTP and RTCP
//! packets ([`rtp`]), G.711 and Opus ([`codec`]), a jitter buffer
//! ([`jitter`]), WAV files and signal measurements ([`audio`]), offers
//! inside a call for hold and resume ([`reoffer`]), one call's audio
//! stream as a state machine ([`session`]) and the queues between it and
//! a sound device ([`live`]), and the conference mixer ([`mixer`]).
//!
//! It holds no sockets and reads no clock: the phone feeds it datagrams and
//! milliseconds. The one exception is [`room`] (feature `room`), the tokio
//! edge that runs a mixer over UDP sockets for a server hosting
//! conferences.

pub mod audio;
pub mod codec;
pub mod g711;
pub mod jitter;
pub mod live;
pub mod mixer;
pub mod reoffer;
#[cfg(feature = "room")]
pub mod room;
pub mod rtp;
pub mod sdp;
pub mod session;

pub use sdp::{CodecKind, Negotiated, Sdp};
pub use session::{Channel, MediaEvent, MediaSession, Transmit};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaError {
    #[error("malformed RTP: {0}")]
    Rtp(&'static str),
    #[error("malformed RTCP: {0}")]
    Rtcp(&'static str),
    #[error("malformed SDP: {0}")]
    Sdp(String),
    #[error("no codec in common")]
    NoCommonCodec,
    #[error("codec: {0}")]
    Codec(&'static str),
    #[error("conference: {0}")]
    Conference(&'static str),
    #[error("I/O: {0}")]
    Io(String),
    #[error("WAV: {0}")]
    Wav(String),
}
