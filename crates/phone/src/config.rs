//! What a phone is started with ([`PhoneConfig`]): the command line's
//! options as one value, with the defaults a bare `peerdial phone` uses.
//! Not here: parsing the command line (the binary) or acting on it.

use std::net::SocketAddr;
use std::path::PathBuf;

use peerdial_media::sdp::CodecKind;

use crate::{mobile, switch, transfer, wake};

/// A phone's settings; see the module docs.
#[derive(Debug, Clone)]
pub struct PhoneConfig {
    /// The region's HTTP API, needed on first start.
    pub region: Option<String>,
    pub data: PathBuf,
    pub mac: Option<String>,
    /// Where the SIP socket listens (UDP).
    pub sip: SocketAddr,
    /// The DNS resolver to ask (default: the system's).
    pub resolver: Option<SocketAddr>,
    /// Find numbers through the tree's directory at this URL instead of a
    /// resolver (`peerdial up` on high ports).
    pub top: Option<String>,
    pub auto_answer: bool,
    /// Ring this long before auto-answering.
    pub answer_after_ms: u64,
    pub play: Option<PathBuf>,
    pub record: Option<PathBuf>,
    pub codecs: Vec<CodecKind>,
    /// End answered calls after this long.
    pub duration_ms: Option<u64>,
    /// Give up on an unanswered call after this long.
    pub ring_timeout_ms: u64,
    /// A callee that answers nothing at all in this long is unreachable.
    pub unreachable_ms: u64,
    /// How often to check whether the local address changed.
    pub address_check_ms: u64,
    /// Dial this number at start and exit when the call ends.
    pub dial: Option<String>,
    pub register: bool,
    /// Refuse callers whose identity does not verify (438).
    pub reject_unverified: bool,
    /// How often to ask the region whether our greetings changed.
    pub greeting_poll_ms: u64,
    /// Numbers to watch (one a line, optional name).
    pub contacts: Option<PathBuf>,
    /// Call someone offline, in a meeting or on dnd without asking.
    pub yes: bool,
    /// The phone as a mobile with the identity rendezvous (issue 14).
    pub mobile: Option<mobile::MobileConfig>,
    /// How often to ask the region for a marquee item (0: never).
    pub marquee_interval_ms: u64,
    /// Talk through the sound device instead of WAV files (`--audio device`).
    pub sound: Option<peerdial_sound::SoundConfig>,
    /// What to do when the other side asks us to transfer (`--on-refer`).
    pub on_refer: transfer::ReferPolicy,
    /// A second call rings during a call (off: it gets 486 Busy Here).
    pub call_waiting: bool,
    /// An unanswered call goes on to the callee's mailbox (`--no-mailbox`: not).
    pub mailbox_fallback: bool,
    /// `dial` goes straight to the number's mailbox (`voicemail N`).
    pub voicemail: bool,
    /// Register over a TCP flow kept open to the region (RFC 5626), the
    /// default; false: over UDP only (`--sip-transport udp`).
    pub tcp_flow: bool,
    /// A Web Push subscription for wake-up, and whether to sleep (issue 15).
    pub push: Option<wake::PushConfig>,
    /// A device of a `peerdial switch` instead of a region's phone (`--switch`).
    pub switch: Option<switch::SwitchAccount>,
}

impl PhoneConfig {
    pub fn new(data: PathBuf) -> PhoneConfig {
        PhoneConfig {
            region: None,
            data,
            mac: None,
            sip: "0.0.0.0:5060".parse().expect("literal"),
            resolver: None,
            top: None,
            auto_answer: false,
            answer_after_ms: 500,
            play: None,
            record: None,
            codecs: vec![CodecKind::Opus, CodecKind::Pcmu, CodecKind::Pcma],
            duration_ms: None,
            ring_timeout_ms: 60_000,
            unreachable_ms: 8_000,
            address_check_ms: 1_000,
            dial: None,
            register: true,
            reject_unverified: false,
            greeting_poll_ms: 300_000,
            contacts: None,
            yes: false,
            mobile: None,
            marquee_interval_ms: 10_000,
            sound: None,
            on_refer: transfer::ReferPolicy::Ask,
            call_waiting: true,
            mailbox_fallback: true,
            voicemail: false,
            tcp_flow: true,
            push: None,
            switch: None,
        }
    }
}
