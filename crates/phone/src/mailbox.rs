//! Messages, the phone's side (issue 12):
//! - out: `message NUMBER TEXT` (a SIP MESSAGE to the number's phone while
//!   it is online, else, or when it does not take it, to its mailbox: the
//!   NAPTR targets in order) and `send NUMBER FILE` (a picture, WAV, video
//!   or text file posted to the number's region, found through DNS, signed
//!   with our region's PASSporT);
//! - in: our own mailbox on our region (missed calls, voice messages,
//!   pictures, videos, texts), fetched when we register, at once when the
//!   region says it changed (we SUBSCRIBE to our own `message-summary`,
//!   RFC 3842, and each NOTIFY fetches the list), and every [`POLL_MS`]
//!   in case a NOTIFY was lost: a summary line, each missed call and
//!   message shown once, bodies saved under `<data>/messages/`; `messages`
//!   lists them again, `read ID` and `delete ID` change them on the region
//!   (so every device of the number sees it), `play ID` plays a voice
//!   message on the sound device or names its WAV file.
//!
//! What this is not: the mailbox (the region's), nor the MESSAGE
//! transaction (`peerdial_sip::request`).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use peerdial_number::Number;
use peerdial_presence::client::Watcher;
use peerdial_sip::request::{ClientRequest, Outcome};
use serde_json::Value;

use crate::display::UiEvent;
use crate::{account, caller_id, resolve, Command, Identity, Phone, PhoneError};

/// How often the phone asks its region for its mailbox while registered,
/// besides each message-waiting NOTIFY.
pub const POLL_MS: u64 = 300_000;

/// Largest file `send` posts (the region's default message cap).
const MAX_SEND: u64 = 16 << 20;

#[derive(Debug)]
pub enum MailboxCommand {
    /// `message NUMBER TEXT`.
    Message {
        to: String,
        text: String,
    },
    /// `send NUMBER FILE`.
    Send {
        to: String,
        path: PathBuf,
    },
    /// `messages`: the mailbox again, all of it.
    List,
    /// `read ID`, `delete ID`, `play ID`.
    Read(i64),
    Delete(i64),
    Play(i64),
    /// The MESSAGE's targets were looked up.
    Targets {
        number: Number,
        text: String,
        targets: Result<Vec<String>, String>,
        identity: Option<String>,
    },
    /// The region's answer to the list request (`all`: show everything).
    Listed {
        listing: Result<Listing, String>,
        all: bool,
    },
}

/// Our mailbox as the region lists it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Listing {
    pub calls: Vec<MissedCall>,
    pub messages: Vec<Stored>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissedCall {
    pub id: i64,
    pub caller: String,
    pub verified: bool,
    pub at_ms: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub id: i64,
    pub kind: String,
    pub content_type: String,
    pub sender: String,
    pub verified: bool,
    pub at_ms: u64,
    pub read: bool,
    /// Where the body was saved (not for text), or the text itself.
    pub saved: Option<PathBuf>,
    pub text: Option<String>,
}

/// One MESSAGE on its way, with the targets left to try.
struct Outgoing {
    number: Number,
    text: String,
    identity: Option<String>,
    then: Vec<String>,
    req: ClientRequest,
}

#[derive(Default)]
pub(crate) struct MailboxSide {
    outgoing: HashMap<String, Outgoing>,
    /// Missed calls and messages already shown (ids), so each shows once.
    shown_calls: HashSet<i64>,
    shown_messages: HashSet<i64>,
    /// Delivered MESSAGEs seen (Call-ID, CSeq): a retransmission after our
    /// 200 was lost is answered again but not shown twice.
    delivered: HashSet<(String, String)>,
    pub(crate) next_poll: u64,
    in_flight: bool,
    /// Asked again while a fetch was on its way (`true`: show it all):
    /// that fetch may predate the change, so another follows it.
    again: Option<bool>,
    listing: Listing,
    /// Our subscription to our own message-summary (RFC 3842; `mwi.rs`).
    pub(crate) mwi: Option<Watcher>,
}

impl MailboxSide {
    pub(crate) fn poll_timeout(&self) -> u64 {
        self.outgoing
            .values()
            .filter_map(|o| o.req.poll_timeout())
            .chain(self.mwi.as_ref().and_then(|w| w.poll_timeout()))
            .min()
            .unwrap_or(u64::MAX)
    }

    /// Whether a delivered MESSAGE is new (false: shown already).
    pub(crate) fn first_delivery(&mut self, msg: &peerdial_sip::Message) -> bool {
        let key = (
            msg.header("Call-ID").unwrap_or_default().to_string(),
            msg.header("CSeq").unwrap_or_default().to_string(),
        );
        if self.delivered.len() > 4096 {
            self.delivered.clear();
        }
        self.delivered.insert(key)
    }
}

/// A file's MIME type from its name, for what the mailbox takes.
pub fn content_type(path: &Path) -> Option<&'static str> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    Some(match ext.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "wav" => "audio/wav",
        "mp4" | "m4v" => "video/mp4",
        "webm" => "video/webm",
        "txt" => "text/plain",
        _ => return None,
    })
}

/// The file extension a stored body is saved with.
fn extension(content_type: &str) -> &'static str {
    match content_type.split(';').next().unwrap_or_default().trim() {
        "image/png" => "png",
        "image/jpeg" => "jpg",
        "audio/wav" | "audio/x-wav" | "audio/wave" => "wav",
        "video/mp4" => "mp4",
        "video/webm" => "webm",
        "text/plain" => "txt",
        _ => "bin",
    }
}

/// A `multipart/form-data` body with one file part; its boundary.
pub fn multipart(file_name: &str, content_type: &str, data: &[u8]) -> (String, Vec<u8>) {
    let boundary = format!("peerdial-{}", peerdial_sip::ids::token(24));
    // The name is ours to send: keep it to safe characters.
    let name: String = file_name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || ".-_".contains(c) { c } else { '_' })
        .collect();
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"{}\"; filename=\"{name}\"\r\nContent-Type: {content_type}\r\n\r\n",
        peerdial_mailbox::intake::FILE_FIELD
    )
    .into_bytes();
    body.extend_from_slice(data);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (boundary, body)
}

/// Posts `path` to `number`'s region, found through DNS; the line to show.
async fn send_file(id: Identity, dns: Option<resolve::Dns>, root: String, number: Number, path: PathBuf) -> Result<String, PhoneError> {
    let ctype = content_type(&path).ok_or_else(|| {
        PhoneError::Config(format!(
            "{} is not a file the mailbox takes (png, jpg, gif, webp, wav, mp4, webm, txt)",
            path.display()
        ))
    })?;
    let size = std::fs::metadata(&path)
        .map_err(|e| PhoneError::Config(format!("{}: {e}", path.display())))?
        .len();
    if size > MAX_SEND {
        return Err(PhoneError::Config(format!(
            "{} is larger than {} MiB",
            path.display(),
            MAX_SEND >> 20
        )));
    }
    let data = std::fs::read(&path).map_err(|e| PhoneError::Config(format!("{}: {e}", path.display())))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let (boundary, body) = multipart(name, ctype, &data);
    let ct = format!("multipart/form-data; boundary={boundary}");
    let path = format!("/api/v1/messages/{}", number.digits());
    let r = caller_id::signed_post(&id, dns, &root, number, &path, (&ct, &body), Duration::from_secs(30)).await?;
    if r.status != 201 {
        let why = crate::channels::refusal(&r);
        return Err(PhoneError::Http(format!("{number}'s region answered {}: {why}", r.status)));
    }
    Ok(format!("sent {name} to {number}'s mailbox"))
}

/// Our mailbox from our region; bodies of new messages saved under `dir`.
async fn fetch_listing(id: Identity, dir: PathBuf) -> Result<Listing, PhoneError> {
    let t = Duration::from_secs(10);
    let r = account::to_region(&id, "GET", &format!("/api/v1/messages/{}", digits(&id)), None, t).await?;
    if r.status != 200 {
        return Err(PhoneError::Http(format!("the region answered {} for our mailbox", r.status)));
    }
    let v: Value = serde_json::from_slice(&r.body).map_err(|e| PhoneError::Http(format!("mailbox list: {e}")))?;
    let clean = |s: &Value| peerdial_channels::text::clean(s.as_str().unwrap_or_default());
    // A number is shown as people write it (886-02-…).
    let who = |s: &Value| match Number::parse(s.as_str().unwrap_or_default()) {
        Ok(n) => n.to_string(),
        Err(_) => clean(s),
    };
    let calls = v["calls"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| {
            Some(MissedCall {
                id: c["id"].as_i64()?,
                caller: who(&c["caller"]),
                verified: c["verified"].as_bool().unwrap_or(false),
                at_ms: c["at_ms"].as_u64().unwrap_or(0),
            })
        })
        .collect();
    let mut messages = Vec::new();
    for m in v["messages"].as_array().into_iter().flatten() {
        let Some(mid) = m["id"].as_i64() else { continue };
        let mut s = Stored {
            id: mid,
            kind: clean(&m["kind"]),
            content_type: clean(&m["content_type"]),
            sender: who(&m["sender"]),
            verified: m["verified"].as_bool().unwrap_or(false),
            at_ms: m["at_ms"].as_u64().unwrap_or(0),
            read: m["read"].as_bool().unwrap_or(false),
            saved: None,
            text: None,
        };
        let path = dir.join(format!("{mid}.{}", extension(&s.content_type)));
        let is_text = s.content_type.starts_with("text/");
        // Texts are small: fetched each time; files once, kept on disk.
        if is_text || !path.exists() {
            let r = account::to_region(&id, "GET", &format!("/api/v1/messages/{}/{mid}", digits(&id)), None, t).await?;
            if r.status == 200 {
                if is_text {
                    s.text = Some(peerdial_channels::text::clean(&String::from_utf8_lossy(&r.body)));
                } else {
                    std::fs::create_dir_all(&dir)?;
                    std::fs::write(&path, &r.body)?;
                }
            }
        }
        if !is_text && path.exists() {
            s.saved = Some(path);
        }
        messages.push(s);
    }
    Ok(Listing { calls, messages })
}

fn digits(id: &Identity) -> String {
    Number::parse(&id.number).map(|n| n.digits()).unwrap_or_default()
}

fn when(at_ms: u64) -> String {
    crate::history::utc(at_ms / 1000)
}

fn verified(v: bool) -> &'static str {
    if v {
        " (verified)"
    } else {
        ""
    }
}

/// The line for a missed call.
pub fn call_line(c: &MissedCall) -> String {
    format!("missed call from {} at {}{}", c.caller, when(c.at_ms), verified(c.verified))
}

/// The line for a message.
pub fn message_line(m: &Stored) -> String {
    let what = match (&m.text, &m.saved) {
        (Some(t), _) => format!(": {t}"),
        (None, Some(p)) => format!(", saved to {}", p.display()),
        (None, None) => String::new(),
    };
    format!(
        "message {} ({}{}) from {} at {}{}{what}",
        m.id,
        m.kind,
        if m.read { ", read" } else { "" },
        m.sender,
        when(m.at_ms),
        verified(m.verified)
    )
}

/// "2 missed calls, 3 messages (1 new)".
pub fn summary(l: &Listing) -> String {
    let new = l.messages.iter().filter(|m| !m.read).count();
    let plural = |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
    format!(
        "mailbox: {}, {} ({new} new)",
        plural(l.calls.len(), "missed call"),
        plural(l.messages.len(), "message")
    )
}

impl Phone {
    pub(crate) fn on_mailbox(&mut self, c: MailboxCommand) {
        match c {
            MailboxCommand::Message { to, text } => self.message(&to, text),
            MailboxCommand::Send { to, path } => match Number::dial(&to, self.area) {
                Ok(number) => {
                    let (id, dns, root, tx) = (self.id.clone(), self.dns.clone(), self.root.clone(), self.cmd_tx.clone());
                    tokio::spawn(async move {
                        let line = send_file(id, dns, root, number, path)
                            .await
                            .unwrap_or_else(|e| format!("not sent: {e}"));
                        let _ = tx.send(Command::Notice(line)).await;
                    });
                }
                Err(e) => self.emit(UiEvent::Error(format!("cannot send to {to:?}: {e}"))),
            },
            MailboxCommand::List => self.fetch_mailbox(true),
            MailboxCommand::Read(mid) => self.change_message(mid, "POST", "read"),
            MailboxCommand::Delete(mid) => self.change_message(mid, "DELETE", "deleted"),
            MailboxCommand::Play(mid) => self.play_message(mid),
            MailboxCommand::Targets {
                number,
                text,
                targets,
                identity,
            } => match targets {
                Ok(t) if !t.is_empty() => self.send_message(number, text, identity, t),
                Ok(_) => self.emit(UiEvent::NoSuchNumber {
                    number: number.to_string(),
                }),
                Err(e) => self.emit(UiEvent::Error(format!("message to {number} not sent: {e}"))),
            },
            MailboxCommand::Listed { listing, all } => self.on_listing(listing, all),
        }
    }

    /// `message NUMBER TEXT`: look the number up, then MESSAGE its targets.
    fn message(&mut self, to: &str, text: String) {
        let number = match Number::dial(to, self.area) {
            Ok(n) => n,
            Err(e) => return self.emit(UiEvent::Error(format!("cannot message {to:?}: {e}"))),
        };
        let (lookup, id, tx) = (self.lookup(number), self.id.clone(), self.cmd_tx.clone());
        tokio::spawn(async move {
            let (found, identity) = tokio::join!(lookup, caller_id::passport(&id, number));
            let targets = match found {
                Ok(resolve::Lookup::Found { uri, then }) => Ok(std::iter::once(uri).chain(then).collect()),
                Ok(resolve::Lookup::NoSuchNumber) => Ok(Vec::new()),
                Err(e) => Err(e.to_string()),
            };
            let identity = identity.ok();
            let _ = tx
                .send(Command::Mailbox(MailboxCommand::Targets {
                    number,
                    text,
                    targets,
                    identity,
                }))
                .await;
        });
    }

    fn send_message(&mut self, number: Number, text: String, identity: Option<String>, mut targets: Vec<String>) {
        let uri = targets.remove(0);
        let Some(addr) = peerdial_sip::call::uri_addr(&uri) else {
            return self.emit(UiEvent::Error(format!("message to {number} not sent: {uri} has no address")));
        };
        let headers: Vec<(String, String)> = identity.iter().map(|i| ("Identity".to_string(), i.clone())).collect();
        let local = self.local();
        let req = ClientRequest::new(
            "MESSAGE",
            &uri,
            addr,
            &local,
            &headers,
            Some(("text/plain;charset=UTF-8", text.as_bytes())),
            self.now(),
        );
        let cid = req.call_id().to_string();
        self.mailbox.outgoing.insert(
            cid,
            Outgoing {
                number,
                text,
                identity,
                then: targets,
                req,
            },
        );
    }

    /// A response to one of our MESSAGEs (true: it was one).
    pub(crate) fn on_message_response(&mut self, msg: &peerdial_sip::Message) -> bool {
        let Some(cid) = msg.header("Call-ID") else { return false };
        let Some(o) = self.mailbox.outgoing.get_mut(cid) else {
            return false;
        };
        if let Some(outcome) = o.req.handle_response(msg) {
            let cid = cid.to_string();
            self.message_done(&cid, outcome);
        }
        true
    }

    pub(crate) fn mailbox_timeouts(&mut self, now: u64) {
        let mut done: Vec<(String, Outcome)> = Vec::new();
        for (cid, o) in self.mailbox.outgoing.iter_mut() {
            if o.req.poll_timeout().is_some_and(|t| t <= now) {
                done.extend(o.req.handle_timeout(now).map(|x| (cid.clone(), x)));
            }
        }
        for (cid, outcome) in done {
            self.message_done(&cid, outcome);
        }
        if let Some(w) = self.mailbox.mwi.as_mut().filter(|w| w.poll_timeout().is_some_and(|t| t <= now)) {
            w.handle_timeout(now);
        }
        if self.mailbox_wake() <= now {
            self.fetch_mailbox(false);
        }
    }

    /// When the mailbox is next asked for: never by a `call N` phone (it is
    /// gone before anything arrives), a switch's device or a phone not
    /// registered. The event loop sleeps until then, so a poll that will
    /// not happen must not be due (it was, for a `call N` phone: a wake-up
    /// every millisecond for the whole call).
    pub(crate) fn mailbox_wake(&self) -> u64 {
        if self.snapshot.registered == Some(true) && self.cfg.dial.is_none() && self.cfg.switch.is_none() {
            self.mailbox.next_poll
        } else {
            u64::MAX
        }
    }

    pub(crate) async fn flush_mailbox(&mut self) {
        let mut out = Vec::new();
        for o in self.mailbox.outgoing.values_mut() {
            out.extend(std::iter::from_fn(|| o.req.poll_transmit()).map(|t| (t.data, t.to)));
        }
        let changed = self.poll_mwi(&mut out);
        for (data, to) in out {
            let _ = self.sip.send_to(&data, to).await;
        }
        if changed {
            self.fetch_mailbox(false);
        }
    }

    fn message_done(&mut self, cid: &str, outcome: Outcome) {
        let Some(o) = self.mailbox.outgoing.remove(cid) else { return };
        let why = match &outcome {
            Outcome::Answered { code, reason } => format!("{code} {}", peerdial_channels::text::clean(reason)),
            Outcome::TimedOut => "no answer".into(),
        };
        if outcome.is_success() {
            // The last target is the mailbox (NAPTR order 20).
            let kept = o.then.is_empty();
            let line = format!("message to {} {}", o.number, if kept { "kept by its mailbox" } else { "delivered" });
            return self.emit(UiEvent::Info(line));
        }
        // 415 and 413 are about the message, not the phone: the mailbox
        // would say the same.
        let about_the_text = matches!(outcome, Outcome::Answered { code: 413 | 415, .. });
        if o.then.is_empty() || about_the_text {
            return self.emit(UiEvent::Error(format!("message to {} not delivered: {why}", o.number)));
        }
        self.emit(UiEvent::Info(format!("message to {}: {why}; leaving it at its mailbox", o.number)));
        self.send_message(o.number, o.text, o.identity, o.then);
    }

    /// Asks the region for our mailbox; `all`: show it whole (`messages`).
    pub(crate) fn fetch_mailbox(&mut self, all: bool) {
        self.mailbox.next_poll = self.now() + POLL_MS;
        if self.mailbox.in_flight {
            self.mailbox.again = Some(self.mailbox.again.unwrap_or(false) || all);
            return;
        }
        self.mailbox.in_flight = true;
        let (id, dir, tx) = (self.id.clone(), self.cfg.data.join("messages"), self.cmd_tx.clone());
        tokio::spawn(async move {
            let listing = fetch_listing(id, dir).await.map_err(|e| e.to_string());
            let _ = tx.send(Command::Mailbox(MailboxCommand::Listed { listing, all })).await;
        });
    }

    fn on_listing(&mut self, listing: Result<Listing, String>, all: bool) {
        self.mailbox.in_flight = false;
        if let Some(all) = self.mailbox.again.take() {
            self.fetch_mailbox(all);
        }
        let l = match listing {
            Ok(l) => l,
            Err(e) => {
                if all {
                    self.emit(UiEvent::Error(format!("mailbox not fetched: {e}")));
                }
                return;
            }
        };
        let new_calls: Vec<&MissedCall> = l
            .calls
            .iter()
            .filter(|c| all || !self.mailbox.shown_calls.contains(&c.id))
            .collect();
        let new_messages: Vec<&Stored> = l
            .messages
            .iter()
            .filter(|m| all || (!m.read && !self.mailbox.shown_messages.contains(&m.id)))
            .collect();
        let changed = l != self.mailbox.listing;
        let mut lines = Vec::new();
        if all || !new_calls.is_empty() || !new_messages.is_empty() || (changed && self.mailbox.listing == Listing::default()) {
            lines.push(summary(&l));
        }
        lines.extend(new_calls.iter().map(|c| call_line(c)));
        lines.extend(new_messages.iter().map(|m| message_line(m)));
        self.mailbox.shown_calls.extend(l.calls.iter().map(|c| c.id));
        self.mailbox.shown_messages.extend(l.messages.iter().map(|m| m.id));
        self.snapshot.mailbox = Some(summary(&l));
        self.mailbox.listing = l;
        for line in lines {
            self.emit(UiEvent::Info(line));
        }
        self.display.redraw(&self.snapshot);
    }

    fn change_message(&mut self, mid: i64, method: &'static str, done: &'static str) {
        let (id, tx) = (self.id.clone(), self.cmd_tx.clone());
        let path = match method {
            "POST" => format!("/api/v1/messages/{}/{mid}/read", digits(&id)),
            _ => format!("/api/v1/messages/{}/{mid}", digits(&id)),
        };
        tokio::spawn(async move {
            let line = match account::to_region(&id, method, &path, None, Duration::from_secs(5)).await {
                Ok(r) if r.status < 300 => format!("message {mid} {done}"),
                Ok(r) if r.status == 404 => format!("no message {mid}"),
                Ok(r) => format!("message {mid} not {done}: the region answered {}", r.status),
                Err(e) => format!("message {mid} not {done}: {e}"),
            };
            let _ = tx.send(Command::Notice(line)).await;
            let _ = tx.send(Command::Mailbox(MailboxCommand::List)).await;
        });
    }

    /// `play ID`: a saved voice message on the sound device, or its file.
    fn play_message(&mut self, mid: i64) {
        let saved = self
            .mailbox
            .listing
            .messages
            .iter()
            .find(|m| m.id == mid)
            .and_then(|m| m.saved.clone().filter(|_| m.content_type.starts_with("audio/")));
        let Some(path) = saved else {
            return self.emit(UiEvent::Error(format!("no voice message {mid} (try `messages`)")));
        };
        if self.play_on_device(&path) {
            self.emit(UiEvent::Info(format!("playing message {mid}")));
        } else {
            self.emit(UiEvent::Info(format!("message {mid} is the WAV file {}", path.display())));
        }
    }
}
