//! The phone's display module: what the user sees and how keys reach the
//! phone. Two faces over one event stream:
//!
//! - [`LogDisplay`]: plain lines, one per event, for pipes, logs and
//!   scripts (and stdin lines as commands: `call N`, `answer`, `hangup`,
//!   `dtmf 5`, `quit`);
//! - [`TerminalDisplay`]: a full-screen view redrawn in place (number,
//!   registration, what is being dialed, the caller, call state and timer)
//!   with single keys to dial, answer and hang up. It uses only cursor
//!   movement and plain text, so it works in any terminal (and in tmux).

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::Command;

#[derive(Debug, Clone)]
pub struct CallView {
    pub peer: String,
    pub state: String,
    pub since: Instant,
    pub incoming: bool,
    /// Incoming: whether the caller's identity verified (None: not yet).
    pub verified: Option<bool>,
    /// The other side's greeting picture as half-block lines (empty: none).
    pub picture: Vec<String>,
}

impl Default for CallView {
    fn default() -> Self {
        CallView {
            peer: String::new(),
            state: String::new(),
            since: Instant::now(),
            incoming: false,
            verified: None,
            picture: Vec::new(),
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
    /// Digits typed so far on the keypad.
    pub input: String,
}

impl Default for Snapshot {
    fn default() -> Self {
        Snapshot {
            number: String::new(),
            sip: SocketAddr::from(([0, 0, 0, 0], 0)),
            registered: None,
            dialing: None,
            call: None,
            input: String::new(),
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
    /// Calling someone in a meeting or on dnd: asks first.
    Confirm {
        number: String,
        state: String,
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
            UiEvent::Confirm { number, state } => format!("{number} is {state}: call anyway? (yes/no)"),
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

/// One line per event on stdout.
pub struct LogDisplay;

impl Display for LogDisplay {
    fn event(&mut self, e: &UiEvent, _s: &Snapshot) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", e.line());
        let _ = out.flush();
    }
}

/// Parses a command line typed on stdin (log mode).
pub fn parse_command(line: &str) -> Option<Command> {
    let mut it = line.split_whitespace();
    Some(match (it.next()?, it.next()) {
        ("call" | "dial", Some(n)) => Command::Dial(n.to_string()),
        ("answer", None) => Command::Answer,
        ("hangup" | "bye", None) => Command::Hangup,
        ("dtmf", Some(k)) => Command::Dtmf(k.chars().next()?),
        ("quit" | "exit", None) => Command::Quit,
        ("status", Some(s)) => Command::Status(crate::presence::parse_status(s)?),
        ("watch", Some(n)) => Command::Watch(n.to_string()),
        ("pair", None) => Command::Pair,
        ("yes" | "y", None) => Command::Confirm(true),
        ("no" | "n", None) => Command::Confirm(false),
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
                    "unknown command {:?}; try: call N, answer, hangup, dtmf K, status meeting|dnd|available, watch N, pair, yes, no, quit",
                    line.trim()
                ),
            }
            line.clear();
        }
    });
}

/// A full-screen view, redrawn in place.
pub struct TerminalDisplay {
    log: Vec<String>,
    last_draw: Instant,
    raw: bool,
}

impl TerminalDisplay {
    pub fn new() -> TerminalDisplay {
        let raw = crossterm::terminal::enable_raw_mode().is_ok();
        let mut out = std::io::stdout();
        let _ = crossterm::execute!(out, crossterm::terminal::EnterAlternateScreen, crossterm::cursor::Hide);
        TerminalDisplay {
            log: Vec::new(),
            last_draw: Instant::now() - Duration::from_secs(10),
            raw,
        }
    }

    fn draw(&mut self, s: &Snapshot) {
        use crossterm::{cursor, queue, terminal};
        self.last_draw = Instant::now();
        let reg = match s.registered {
            None => "registering…",
            Some(true) => "registered",
            Some(false) => "not registered",
        };
        let mut lines = vec![
            "peerdial phone".to_string(),
            "──────────────────────────────────────────".to_string(),
            format!(" Number   {}", s.number),
            format!(" Status   {reg}  (SIP {})", s.sip),
            format!(" Dial     {}_", s.input),
        ];
        match &s.call {
            Some(c) => {
                let secs = c.since.elapsed().as_secs();
                let who = if c.incoming {
                    format!("from {}", c.peer)
                } else {
                    format!("to {}", c.peer)
                };
                let id = match (c.incoming, c.verified) {
                    (true, Some(true)) => "  ✔ verified",
                    (true, Some(false)) => "  ✘ unverified",
                    (true, None) => "  checking caller…",
                    (false, _) => "",
                };
                // The picture stands in for the bare number, which stays
                // below it, smaller (one plain line).
                for l in &c.picture {
                    lines.push(format!("   {l}"));
                }
                lines.push(format!(" Call     {} {who}  {:02}:{:02}{id}", c.state, secs / 60, secs % 60));
            }
            None => match &s.dialing {
                Some(d) => lines.push(format!(" Call     looking up {d}")),
                None => lines.push(" Call     idle".to_string()),
            },
        }
        lines.push("──────────────────────────────────────────".into());
        lines.extend(self.log.iter().rev().take(6).rev().cloned());
        lines.push("──────────────────────────────────────────".into());
        lines.push(" 0-9 dial · Enter call · a answer · h hang up · q quit".into());
        lines.push(" m meeting · d do not disturb · v available · y/n call anyway".into());
        let mut out = std::io::stdout().lock();
        let _ = queue!(out, cursor::MoveTo(0, 0), terminal::Clear(terminal::ClearType::All));
        for (i, l) in lines.iter().enumerate() {
            let _ = queue!(out, cursor::MoveTo(0, i as u16));
            let _ = write!(out, "{l}");
        }
        let _ = out.flush();
    }
}

impl Default for TerminalDisplay {
    fn default() -> Self {
        Self::new()
    }
}

impl Display for TerminalDisplay {
    fn event(&mut self, e: &UiEvent, s: &Snapshot) {
        if !matches!(e, UiEvent::Ready { .. }) {
            self.log.push(e.line());
            if self.log.len() > 100 {
                self.log.remove(0);
            }
        }
        self.draw(s);
    }

    fn redraw(&mut self, s: &Snapshot) {
        self.draw(s);
    }

    fn tick(&mut self, s: &Snapshot) {
        if self.last_draw.elapsed() >= Duration::from_millis(500) {
            self.draw(s);
        }
    }

    fn close(&mut self) {
        let mut out = std::io::stdout();
        let _ = crossterm::execute!(out, crossterm::cursor::Show, crossterm::terminal::LeaveAlternateScreen);
        if self.raw {
            let _ = crossterm::terminal::disable_raw_mode();
        }
        // What happened stays on the screen after the phone exits.
        for l in &self.log {
            println!("{l}");
        }
    }
}

/// Reads keys: digits and separators edit the number, Enter dials,
/// `a` answers, `h`/Esc hangs up, `q`/Ctrl-C quits; during a call digits
/// also go out as DTMF.
pub fn spawn_keys(tx: mpsc::Sender<Command>) {
    use crossterm::event::{read, Event, KeyCode, KeyEventKind, KeyModifiers};
    std::thread::spawn(move || {
        let mut input = String::new();
        while let Ok(ev) = read() {
            let Event::Key(k) = ev else { continue };
            if k.kind == KeyEventKind::Release {
                continue;
            }
            let cmd = match k.code {
                KeyCode::Char('c') if k.modifiers.contains(KeyModifiers::CONTROL) => Some(Command::Quit),
                KeyCode::Char(c @ ('0'..='9' | '*' | '#' | '+')) => {
                    input.push(c);
                    let _ = tx.blocking_send(Command::Dtmf(c));
                    Some(Command::Input(input.clone()))
                }
                KeyCode::Char('-' | ' ') => {
                    input.push('-');
                    Some(Command::Input(input.clone()))
                }
                KeyCode::Backspace => {
                    input.pop();
                    Some(Command::Input(input.clone()))
                }
                KeyCode::Enter if !input.is_empty() => {
                    let n = std::mem::take(&mut input);
                    let _ = tx.blocking_send(Command::Input(String::new()));
                    Some(Command::Dial(n))
                }
                KeyCode::Char('a') => Some(Command::Answer),
                KeyCode::Char('m') => Some(Command::Status(peerdial_presence::State::Meeting)),
                KeyCode::Char('d') => Some(Command::Status(peerdial_presence::State::Dnd)),
                KeyCode::Char('v') => Some(Command::Status(peerdial_presence::State::Online)),
                KeyCode::Char('y') => Some(Command::Confirm(true)),
                KeyCode::Char('n') => Some(Command::Confirm(false)),
                KeyCode::Char('h') | KeyCode::Esc => Some(Command::Hangup),
                KeyCode::Char('q') => Some(Command::Quit),
                _ => None,
            };
            if let Some(c) = cmd {
                let quit = matches!(c, Command::Quit);
                if tx.blocking_send(c).is_err() || quit {
                    break;
                }
            }
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
        assert!(parse_command("make coffee").is_none());
        assert!(matches!(
            parse_command("status dnd"),
            Some(Command::Status(peerdial_presence::State::Dnd))
        ));
        assert!(parse_command("status sleeping").is_none());
        assert!(matches!(parse_command("watch 12345678"), Some(Command::Watch(n)) if n == "12345678"));
        assert!(matches!(parse_command("yes"), Some(Command::Confirm(true))));
    }
}
