//! The phone's display: what the user sees and how keys reach the phone.
//! Two faces over one model (a [`Snapshot`] of the phone's state and a
//! stream of [`UiEvent`]s):
//!
//! - [`LogDisplay`] (`log.rs`): plain lines, one per event, for pipes, logs
//!   and scripts — every integration test reads these lines — with stdin
//!   lines as commands ([`parse_command`]: `call N`, `answer`, `hangup`,
//!   `hold`, `resume`, `mute`, `volume 50`, `history`, `redial 2`,
//!   `dtmf 5`, `status meeting`, `quit`, …);
//! - [`TerminalDisplay`] (`terminal.rs`): a full-screen ratatui view split
//!   in panes (`panes/`: the call, the greeting picture, contacts, recent
//!   events, the footer), with single keys (`keys.rs`) that stand for the
//!   same command lines, and pictures in the protocol the terminal speaks
//!   (`picker.rs`).
//!
//! What this is not: the phone's state (lib.rs and its modules own it and
//! only hand a snapshot over), or a source of commands of its own — a key
//! is always one of the stdin commands.

mod keys;
mod log;
pub mod panes;
mod picker;
mod terminal;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;

use crate::Command;

pub use keys::{legend, spawn_keys, Keypad};
pub use log::LogDisplay;
pub use terminal::TerminalDisplay;

#[derive(Debug, Clone)]
pub struct CallView {
    pub peer: String,
    pub state: String,
    pub since: Instant,
    pub incoming: bool,
    /// Incoming: whether the caller's identity verified (None: not yet).
    pub verified: Option<bool>,
    /// The other side's greeting picture, decoded (None: none, or not yet).
    pub picture: Option<Arc<image::DynamicImage>>,
}

impl Default for CallView {
    fn default() -> Self {
        CallView {
            peer: String::new(),
            state: String::new(),
            since: Instant::now(),
            incoming: false,
            verified: None,
            picture: None,
        }
    }
}

/// The state a display shows.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub number: String,
    pub sip: SocketAddr,
    pub registered: Option<bool>,
    pub dialing: Option<String>,
    pub call: Option<CallView>,
    /// The second call: waiting to be answered, or on hold (see `lines.rs`).
    pub other: Option<CallView>,
    /// Digits typed so far on the keypad.
    pub input: String,
    /// Our own presence as the region last confirmed it (None: never
    /// published).
    pub status: Option<String>,
    /// A callee's presence: of the number being typed or dialed.
    pub presence: Option<PresenceView>,
    /// Watched numbers (`--contacts`, `watch N`) in the order added.
    pub contacts: Vec<ContactView>,
    /// What the marquee line scrolls: the latest item or message.
    pub marquee: Option<MarqueeView>,
    /// The latest calls, short, latest first (see `history.rs`).
    pub history: Vec<String>,
    /// Our mailbox in one line: missed calls and messages (see `mailbox.rs`).
    pub mailbox: Option<String>,
}

/// The marquee line's text and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarqueeView {
    /// A channel's name, `private`, or who sent a message.
    pub label: String,
    pub text: String,
    /// When it started scrolling.
    pub since: Instant,
}

/// A number's presence as last heard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceView {
    pub number: String,
    pub state: String,
}

/// A watched contact and its live presence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactView {
    pub number: String,
    pub name: Option<String>,
    /// `online`, `meeting`, …; `unknown` until the first NOTIFY.
    pub state: String,
}

/// What a contact shows before its region has said anything.
pub const NOT_YET: &str = "unknown";

impl Default for Snapshot {
    fn default() -> Self {
        Snapshot {
            number: String::new(),
            sip: SocketAddr::from(([0, 0, 0, 0], 0)),
            registered: None,
            dialing: None,
            call: None,
            other: None,
            input: String::new(),
            status: None,
            presence: None,
            contacts: Vec::new(),
            marquee: None,
            history: Vec::new(),
            mailbox: None,
        }
    }
}

impl Snapshot {
    /// Takes in what an event says about presence (own status, a callee's
    /// state, contacts); the phone calls this before showing the event.
    pub fn apply(&mut self, e: &UiEvent) {
        match e {
            UiEvent::Status { state } => self.status = Some(state.clone()),
            UiEvent::Presence { number, state } | UiEvent::Confirm { number, state } => {
                self.presence = Some(PresenceView {
                    number: number.clone(),
                    state: state.clone(),
                })
            }
            UiEvent::Ended { .. } | UiEvent::NoSuchNumber { .. } => self.presence = None,
            UiEvent::Marquee { channel, text, .. } => {
                self.marquee = Some(MarqueeView {
                    label: channel.clone().unwrap_or_else(|| "private".into()),
                    text: text.clone(),
                    since: Instant::now(),
                })
            }
            UiEvent::Message { from, text, .. } => {
                self.marquee = Some(MarqueeView {
                    label: from.clone(),
                    text: text.clone(),
                    since: Instant::now(),
                })
            }
            UiEvent::Contact { number, name, state } => {
                self.watching(number, name.clone());
                if let Some(c) = self.contacts.iter_mut().find(|c| &c.number == number) {
                    c.state = state.clone();
                }
            }
            _ => {}
        }
    }

    /// Lists a watched number (once), its state not known yet.
    pub fn watching(&mut self, number: &str, name: Option<String>) {
        match self.contacts.iter_mut().find(|c| c.number == number) {
            Some(c) => {
                if name.is_some() {
                    c.name = name;
                }
            }
            None => self.contacts.push(ContactView {
                number: number.to_string(),
                name,
                state: NOT_YET.into(),
            }),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum UiEvent {
    Ready {
        number: String,
        sip: SocketAddr,
    },
    Registered {
        number: String,
        contact: SocketAddr,
        expires: u32,
        first: bool,
    },
    RegistrationFailed {
        reason: String,
    },
    Unregistered,
    AddressChanged {
        old: IpAddr,
        new: IpAddr,
    },
    Dialing {
        number: String,
    },
    NoSuchNumber {
        number: String,
    },
    Calling {
        number: String,
        uri: String,
    },
    Ringing,
    /// A second call rings during a call (call waiting).
    Waiting {
        from: String,
    },
    Incoming {
        from: String,
    },
    /// The caller's identity verdict (None: verified).
    Caller {
        number: String,
        unverified: Option<String>,
    },
    /// The other side's greeting picture was fetched (or revalidated).
    Greeting {
        url: String,
        etag: String,
    },
    /// The other side's picture was not fetched, and why.
    GreetingNotFetched {
        number: String,
        reason: String,
    },
    /// One of our own greetings is new or changed on the region.
    OwnGreeting {
        kind: &'static str,
        url: String,
        etag: String,
    },
    Answered {
        codec: String,
    },
    AudioStarted,
    Dtmf(char),
    Ended {
        peer: String,
        reason: String,
        seconds: Option<f64>,
    },
    Error(String),
    /// A line for the user (a pairing code, a new number).
    Info(String),
    /// Our published status as the region holds it.
    Status {
        state: String,
    },
    StatusFailed {
        reason: String,
    },
    /// A watched contact's presence changed.
    Contact {
        number: String,
        name: Option<String>,
        state: String,
    },
    /// The callee's presence, asked before calling.
    Presence {
        number: String,
        state: String,
    },
    /// Calling someone in a meeting, on dnd or offline: asks first.
    Confirm {
        number: String,
        state: String,
    },
    /// A text MESSAGE (a broadcast, a friend's private post); clean text.
    Message {
        from: String,
        text: String,
        /// It came from our region's address.
        via_region: bool,
    },
    /// A marquee item (channel None: our private channel); clean text.
    Marquee {
        channel: Option<String>,
        poster: Option<String>,
        text: String,
    },
}

impl UiEvent {
    /// The event as one plain line.
    pub fn line(&self) -> String {
        match self {
            UiEvent::Ready { number, sip } => format!("peerdial phone ready: number={number} sip={sip}"),
            UiEvent::Registered {
                number,
                contact,
                expires,
                first,
            } => {
                format!(
                    "{} number={number} contact={contact} expires={expires}",
                    if *first { "registered" } else { "re-registered" }
                )
            }
            UiEvent::RegistrationFailed { reason } => format!("registration failed: {reason}"),
            UiEvent::Unregistered => "unregistered".into(),
            UiEvent::AddressChanged { old, new } => format!("address changed from {old} to {new}"),
            UiEvent::Dialing { number } => format!("dialing {number}"),
            UiEvent::NoSuchNumber { number } => format!("no such number: {number} is not registered anywhere"),
            UiEvent::Calling { number, uri } => format!("calling {number} at {uri}"),
            UiEvent::Ringing => "ringing".into(),
            UiEvent::Incoming { from } => format!("incoming call from {from}"),
            UiEvent::Waiting { from } => format!("call waiting: {from} (answer takes it and holds this call; reject refuses it)"),
            UiEvent::Caller { number, unverified: None } => format!("caller {number} verified"),
            UiEvent::Caller {
                number,
                unverified: Some(why),
            } => format!("caller {number} unverified: {why}"),
            UiEvent::Greeting { url, etag } => format!("greeting {url} etag {etag}"),
            UiEvent::GreetingNotFetched { number, reason } => format!("greeting of {number} not fetched: {reason}"),
            UiEvent::OwnGreeting { kind, url, etag } => format!("own greeting {kind} {url} etag {etag}"),
            UiEvent::Answered { codec } => format!("answered codec={codec}"),
            UiEvent::AudioStarted => "audio started".into(),
            UiEvent::Dtmf(k) => format!("dtmf {k}"),
            UiEvent::Ended { peer, reason, seconds } => match seconds {
                Some(s) => format!("call with {peer} ended: {reason} after {s:.1} s"),
                None => format!("call with {peer} ended: {reason}"),
            },
            UiEvent::Error(e) => format!("error: {e}"),
            UiEvent::Info(s) => s.clone(),
            UiEvent::Status { state } => format!("status {state}"),
            UiEvent::StatusFailed { reason } => format!("status not published: {reason}"),
            UiEvent::Contact {
                number,
                name: Some(n),
                state,
            } => format!("contact {number} {state} ({n})"),
            UiEvent::Contact { number, name: None, state } => format!("contact {number} {state}"),
            UiEvent::Presence { number, state } => format!("presence {number} {state}"),
            UiEvent::Confirm { number, state } => {
                format!("{number} is {state}: call anyway, leave a message, or not? (yes/message/no)")
            }
            UiEvent::Message { from, text, via_region } => {
                format!(
                    "message from {from}{}: {text}",
                    if *via_region { "" } else { " (not via our region)" }
                )
            }
            UiEvent::Marquee {
                channel: Some(c),
                poster,
                text,
            } => match poster {
                Some(p) => format!("marquee [{c}] {p}: {text}"),
                None => format!("marquee [{c}] {text}"),
            },
            UiEvent::Marquee {
                channel: None,
                poster,
                text,
            } => {
                format!("marquee [private] {}: {text}", poster.as_deref().unwrap_or("?"))
            }
        }
    }
}

pub trait Display: Send {
    fn event(&mut self, e: &UiEvent, s: &Snapshot);
    /// Called often; a display that shows a timer redraws when it is due.
    fn tick(&mut self, _s: &Snapshot) {}
    /// The snapshot changed without an event (keys typed).
    fn redraw(&mut self, _s: &Snapshot) {}
    fn close(&mut self) {}
}

/// Parses a command line typed on stdin (log mode).
pub fn parse_command(line: &str) -> Option<Command> {
    use crate::channels::ChannelCommand;
    use crate::incall::InCallCommand;
    use crate::mailbox::MailboxCommand;
    if let Some(rest) = line.strip_prefix("message ") {
        let (to, text) = rest.trim_start().split_once(' ')?;
        let text = text.trim();
        return (!text.is_empty()).then(|| {
            Command::Mailbox(MailboxCommand::Message {
                to: to.to_string(),
                text: text.to_string(),
            })
        });
    }
    for (verb, private) in [("post ", true), ("publish ", false)] {
        if let Some(rest) = line.strip_prefix(verb) {
            let (to, text) = rest.trim_start().split_once(' ')?;
            let (to, text) = (to.to_string(), text.trim().to_string());
            return (!text.is_empty()).then_some(Command::Channel(if private {
                ChannelCommand::Post { to, text }
            } else {
                ChannelCommand::Publish { channel: to, text }
            }));
        }
    }
    if let Some(rest) = line.strip_prefix("dial --talker ") {
        let (talker, number) = rest.trim().rsplit_once(' ')?;
        let talker = talker.trim().trim_matches('"');
        return (!talker.is_empty()).then(|| Command::DialFor {
            talker: talker.to_string(),
            number: number.to_string(),
        });
    }
    let mut it = line.split_whitespace();
    Some(match (it.next()?, it.next()) {
        ("call" | "dial", Some(n)) => Command::Dial(n.to_string()),
        ("answer", None) => Command::Answer,
        ("hangup" | "bye", None) => Command::Hangup,
        ("reject", None) => Command::Reject,
        ("swap", None) => Command::Swap,
        ("transfer", Some(n)) => Command::Transfer(n.to_string()),
        ("dtmf", Some(k)) => Command::Dtmf(k.chars().next()?),
        ("quit" | "exit", None) => Command::Quit,
        ("status", Some(s)) => Command::Status(crate::presence::parse_status(s)?),
        ("watch", Some(n)) => Command::Watch(n.to_string()),
        ("pair", None) => Command::Pair,
        ("cellular-call", Some(n)) => Command::Mobile(crate::mobile::MobileCommand::Call(n.to_string())),
        ("cellular-ring", Some(from)) => Command::Mobile(crate::mobile::MobileCommand::Ring {
            from: from.to_string(),
            call: None,
        }),
        ("subscribe", Some(c)) => Command::Channel(ChannelCommand::Subscribe(c.to_string())),
        ("unsubscribe", Some(c)) => Command::Channel(ChannelCommand::Unsubscribe(c.to_string())),
        ("channels", None) => Command::Channel(ChannelCommand::List),
        ("hold", None) => Command::InCall(InCallCommand::Hold),
        ("resume" | "unhold", None) => Command::InCall(InCallCommand::Resume),
        ("mute", None) => Command::InCall(InCallCommand::Mute(true)),
        ("unmute", None) => Command::InCall(InCallCommand::Mute(false)),
        ("volume", Some(v)) => Command::InCall(InCallCommand::Volume(v.trim_end_matches('%').parse().ok().filter(|v| *v <= 200)?)),
        ("history", None) => Command::History,
        ("voicemail", Some(n)) => Command::Voicemail(n.to_string()),
        ("send", Some(n)) => Command::Mailbox(MailboxCommand::Send {
            to: n.to_string(),
            path: it.next()?.into(),
        }),
        ("messages", None) => Command::Mailbox(MailboxCommand::List),
        ("read", Some(id)) => Command::Mailbox(MailboxCommand::Read(id.parse().ok()?)),
        ("delete", Some(id)) => Command::Mailbox(MailboxCommand::Delete(id.parse().ok()?)),
        ("play", Some(id)) => Command::Mailbox(MailboxCommand::Play(id.parse().ok()?)),
        ("redial", None) => Command::Redial(1),
        ("redial", Some(n)) => Command::Redial(n.parse().ok().filter(|n| *n >= 1)?),
        ("yes" | "y", None) => Command::Confirm(true),
        ("no" | "n", None) => Command::Confirm(false),
        ("message" | "voicemail", None) => Command::LeaveMessage,
        _ => return None,
    })
}

/// Reads commands from stdin lines until EOF.
pub fn spawn_stdin_commands(tx: mpsc::Sender<Command>) {
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let mut line = String::new();
        while stdin.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
            match parse_command(line.trim()) {
                Some(c) => {
                    if tx.blocking_send(c).is_err() {
                        break;
                    }
                }
                None if line.trim().is_empty() => {}
                None => eprintln!(
                    "unknown command {:?}; try: call N, answer, reject, hangup, hold, swap, transfer N, resume, mute, unmute, volume P, history, redial [N], dtmf K, status meeting|dnd|available, watch N, pair, subscribe C, unsubscribe C, channels, post N TEXT, publish C TEXT, message N TEXT, send N FILE, voicemail N, messages, read ID, delete ID, play ID, cellular-call MSISDN, cellular-ring FROM, yes, no, quit",
                    line.trim()
                ),
            }
            line.clear();
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stdin_commands() {
        assert!(matches!(parse_command("call 12345678"), Some(Command::Dial(n)) if n == "12345678"));
        assert!(matches!(parse_command("answer"), Some(Command::Answer)));
        assert!(matches!(parse_command("dtmf 5"), Some(Command::Dtmf('5'))));
        assert!(parse_command("call").is_none());
        assert!(matches!(parse_command("dial --talker desk phone 12345678"),
            Some(Command::DialFor { talker, number }) if talker == "desk phone" && number == "12345678"));
        assert!(parse_command("dial --talker 12345678").is_none());
        assert!(parse_command("make coffee").is_none());
        assert!(matches!(
            parse_command("status dnd"),
            Some(Command::Status(peerdial_presence::State::Dnd))
        ));
        assert!(parse_command("status sleeping").is_none());
        assert!(matches!(parse_command("watch 12345678"), Some(Command::Watch(n)) if n == "12345678"));
        assert!(matches!(parse_command("yes"), Some(Command::Confirm(true))));
        assert!(matches!(parse_command("message"), Some(Command::LeaveMessage)));
        assert!(matches!(parse_command("message 12345678 hi"), Some(Command::Mailbox(_))));
        use crate::channels::ChannelCommand as C;
        assert!(matches!(parse_command("subscribe news"), Some(Command::Channel(C::Subscribe(c))) if c == "news"));
        assert!(matches!(parse_command("channels"), Some(Command::Channel(C::List))));
        assert!(matches!(
            parse_command("post 10000002 see you at 8"),
            Some(Command::Channel(C::Post { to, text })) if to == "10000002" && text == "see you at 8"
        ));
        assert!(parse_command("post 10000002").is_none());
        assert!(parse_command("post 10000002   ").is_none());
        assert!(matches!(
            parse_command("publish dating hello world"),
            Some(Command::Channel(C::Publish { channel, text })) if channel == "dating" && text == "hello world"
        ));
        assert!(parse_command("publish dating").is_none());
        use crate::incall::InCallCommand as I;
        assert!(matches!(parse_command("hold"), Some(Command::InCall(I::Hold))));
        assert!(matches!(parse_command("unhold"), Some(Command::InCall(I::Resume))));
        assert!(matches!(parse_command("mute"), Some(Command::InCall(I::Mute(true)))));
        assert!(matches!(parse_command("volume 50%"), Some(Command::InCall(I::Volume(50)))));
        assert!(parse_command("volume 900").is_none());
        assert!(parse_command("volume loud").is_none());
        assert!(matches!(parse_command("redial"), Some(Command::Redial(1))));
        assert!(matches!(parse_command("redial 3"), Some(Command::Redial(3))));
        assert!(parse_command("redial 0").is_none());
    }
}
