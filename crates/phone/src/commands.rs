//! What the user (keys, stdin lines) and the phone's own lookups ask for,
//! dispatched to the module that does it: calls, hold, history, presence,
//! channels, greetings, the mobile side.
//!
//! What this is not: parsing command lines (`display::parse_command`) or
//! the work itself (each concern's module).

use std::net::SocketAddr;

use crate::display::UiEvent;
use crate::{account, channels, exit, greetings, incall, mobile, presence, resolve, Identity, Phone, PhoneError};
use peerdial_number::Number;

/// What the user (keys, stdin lines) or a finished lookup asks for.
#[derive(Debug)]
pub enum Command {
    Dial(String),
    /// `dial --talker NAME NUMBER`: ask the top to connect our owner's
    /// talker NAME with NUMBER (see [`crate::dialer`]).
    DialFor {
        talker: String,
        number: String,
    },
    /// `voicemail NUMBER`: straight to the number's mailbox.
    Voicemail(String),
    /// An unanswered call goes on to the next NAPTR target (see [`crate::fallback`]).
    Fallback {
        number: Number,
        uri: String,
        then: Vec<String>,
        identity: Option<String>,
    },
    /// Messages out and our mailbox (see [`crate::mailbox`]).
    Mailbox(crate::mailbox::MailboxCommand),
    Answer,
    Hangup,
    Dtmf(char),
    Quit,
    /// The digits on the keypad changed (for the display).
    Input(String),
    Resolved {
        dialed: Number,
        result: Result<resolve::Lookup, PhoneError>,
        /// Our region's PASSporT for the call (None: not to be had).
        identity: Option<String>,
        /// The callee's presence, if its region told.
        presence: Option<peerdial_presence::State>,
        /// The cloud designated a switch: its address, the key, the queue place.
        via: Option<(SocketAddr, String, u32)>,
    },
    /// The presence of the whole number typed on the keypad.
    TypedPresence {
        number: Number,
        state: Result<peerdial_presence::State, String>,
    },
    /// `status meeting|dnd|available`.
    Status(peerdial_presence::State),
    /// `watch NUMBER`.
    Watch(String),
    /// `subscribe`, `unsubscribe`, `channels`, `post`.
    Channel(channels::ChannelCommand),
    /// The region's answer for the marquee.
    Marquee(Result<Option<channels::MarqueeItem>, String>),
    /// The watched number's region SIP address was looked up.
    WatchReady {
        number: Number,
        server: Result<SocketAddr, String>,
    },
    /// A token for watching a number in another region (None: none).
    WatchIdentity {
        number: Number,
        identity: Option<String>,
    },
    /// The user's answer to "call anyway?".
    Confirm(bool),
    /// The other answer to it: leave a message instead (the mailbox).
    LeaveMessage,
    /// The caller region's keys for an incoming call.
    CallerKeys {
        call_id: String,
        keys: Result<Vec<peerdial_identity::PublicKey>, String>,
    },
    /// The other side's greeting picture for a call.
    Greeting {
        call_id: String,
        number: Number,
        result: Result<greetings::Picture, String>,
    },
    /// One of our own greetings changed on the region.
    OwnGreeting {
        kind: peerdial_greetings::Kind,
        picture: greetings::Picture,
    },
    /// `pair`: ask the region for a one-time portal sign-in code.
    Pair,
    /// A line for the user (a pairing code, a new number).
    Notice(String),
    /// Provisioned again after the registrar refused us (see [`account`]).
    Reclaimed(Result<Identity, String>),
    /// The phone as a mobile (see [`mobile`]).
    Mobile(mobile::MobileCommand),
    /// Push wake-up (see [`crate::wake`]).
    Wake(crate::wake::WakeCommand),
    /// `hold`, `resume`, `mute`, `unmute`, `volume N` (see [`incall`]).
    InCall(incall::InCallCommand),
    /// `history`: the last calls.
    History,
    /// `redial [N]`: call the Nth latest call's other side again.
    Redial(usize),
    /// `swap`: turn to the call on hold, holding the one talked on.
    Swap,
    /// `reject`: refuse the ringing (or waiting) call.
    Reject,
    /// `transfer NUMBER`: hand the call in progress to NUMBER (REFER).
    Transfer(String),
    /// The transfer target of call `cid` was looked up.
    TransferTarget {
        cid: String,
        number: Number,
        result: Result<resolve::Lookup, PhoneError>,
    },
}

impl Phone {
    pub(crate) fn on_command(&mut self, c: Command) {
        match c {
            Command::Dial(d) => self.dial(&d),
            Command::DialFor { talker, number } => self.dial_for(talker, &number),
            Command::Voicemail(d) => self.voicemail(&d),
            Command::Fallback {
                number,
                uri,
                then,
                identity,
            } => self.on_fallback(number, uri, then, identity),
            Command::Mailbox(m) => self.on_mailbox(m),
            Command::Quit => self.quit(),
            Command::Input(s) => {
                self.snapshot.input = s;
                self.typed_presence();
                self.display.redraw(&self.snapshot);
            }
            Command::TypedPresence { number, state } => self.on_typed_presence(number, state),
            Command::Hangup => self.hangup(),
            Command::Answer => self.answer(),
            Command::Swap => self.swap(),
            Command::Reject => self.reject(),
            Command::Transfer(n) => self.transfer(&n),
            Command::TransferTarget { cid, number, result } => self.on_transfer_target(&cid, number, result),
            Command::Dtmf(k) => {
                let focused = self.focused();
                let err = focused
                    .and_then(|cid| self.calls.get_mut(&cid))
                    .and_then(|s| s.media.as_mut())
                    .and_then(|m| m.send_dtmf(k).err());
                if let Some(e) = err {
                    self.emit(UiEvent::Error(e.to_string()));
                }
            }
            Command::CallerKeys { call_id, keys } => self.on_caller_keys(&call_id, keys),
            Command::Greeting { call_id, number, result } => self.on_greeting(&call_id, number, result),
            Command::OwnGreeting { kind, picture } => self.emit(UiEvent::OwnGreeting {
                kind: kind.as_str(),
                url: picture.url,
                etag: picture.etag,
            }),
            Command::Pair => {
                let (id, tx) = (self.id.clone(), self.cmd_tx.clone());
                tokio::spawn(async move {
                    let line = account::pairing_code(&id).await.unwrap_or_else(|e| format!("no pairing code: {e}"));
                    let _ = tx.send(Command::Notice(line)).await;
                });
            }
            Command::Notice(line) => self.emit(UiEvent::Info(line)),
            Command::Reclaimed(r) => self.on_reclaimed(r),
            Command::Status(state) => self.presence.chosen = state,
            Command::Watch(n) => self.watch(&n),
            Command::Channel(c) => self.on_channel_command(c),
            Command::Marquee(r) => self.on_marquee(r),
            Command::WatchReady { number, server } => self.on_watch_ready(number, server),
            Command::WatchIdentity { number, identity } => self.on_watch_identity(number, identity),
            Command::Mobile(m) => self.on_mobile(m),
            Command::Wake(w) => self.on_wake(w),
            Command::InCall(c) => self.on_in_call(c),
            Command::History => {
                let lines = self.history.lines();
                if lines.is_empty() {
                    self.emit(UiEvent::Info("history: no calls yet".into()));
                }
                for l in lines {
                    self.emit(UiEvent::Info(l));
                }
            }
            Command::Redial(n) => match self.history.nth_latest(n).map(|e| e.peer.clone()) {
                Some(peer) if Number::parse(&peer).is_ok() => self.dial(&peer),
                Some(peer) => self.emit(UiEvent::Error(format!(
                    "call {n} was with {}, which is not a number",
                    peerdial_channels::text::clean(&peer)
                ))),
                None => self.emit(UiEvent::Error(format!("no call {n} in the history"))),
            },
            Command::Confirm(yes) => {
                if self.answer_refer(yes) {
                    return;
                }
                let Some(p) = self.answerable() else { return };
                if yes {
                    self.on_command(Command::Resolved {
                        dialed: p.dialed,
                        result: Ok(p.found),
                        identity: p.identity,
                        presence: None,
                        via: None,
                    });
                } else {
                    self.snapshot.dialing = None;
                    self.emit(UiEvent::Error(format!("not calling {}", p.dialed)));
                }
            }
            Command::LeaveMessage => {
                // Looked up again: a fresh PASSporT, and no switch route.
                if let Some(p) = self.answerable() {
                    self.to_mailbox = Some(p.dialed);
                    self.dial_number(p.dialed);
                }
            }
            Command::Resolved {
                dialed,
                result,
                identity,
                presence,
                via,
            } => {
                self.switch_key = None;
                if let Some((addr, key, queue)) = via {
                    let place = match queue {
                        0 => String::new(),
                        n => format!(", place {n} in queue"),
                    };
                    self.emit(UiEvent::Info(format!("{dialed}: via switch {addr}{place}")));
                    self.switch_key = Some(key);
                }
                let found = matches!(result, Ok(resolve::Lookup::Found { .. }));
                let transfer_for = self.transfer_dial_for(dialed, found);
                self.on_resolved(dialed, result, identity, presence, transfer_for)
            }
        }
    }

    /// The call waiting for an answer, if it can still be placed (not in a
    /// call, not asked too long ago); or says why not.
    fn answerable(&mut self) -> Option<presence::Pending> {
        let Some(p) = self.presence.pending.take() else {
            self.emit(UiEvent::Error("no call waits for an answer".into()));
            return None;
        };
        if self.busy() {
            self.emit(UiEvent::Error("already in a call".into()));
        } else if self.now().saturating_sub(p.asked_ms) > presence::PENDING_MS {
            self.snapshot.dialing = None;
            self.emit(UiEvent::Error(format!("the question about {} has expired; dial again", p.dialed)));
        } else {
            return Some(p);
        }
        None
    }

    /// A dialed number was looked up: call it (asking first when its
    /// presence says so, except for a transfer), or say why not.
    fn on_resolved(
        &mut self,
        dialed: Number,
        result: Result<resolve::Lookup, crate::PhoneError>,
        identity: Option<String>,
        presence: Option<peerdial_presence::State>,
        transfer_for: Option<String>,
    ) {
        // `voicemail N`: the last target only, whoever is online.
        let to_mailbox = self.to_mailbox.take_if(|n| *n == dialed).is_some();
        let result = match result {
            Ok(found) if to_mailbox => Ok(resolve::Lookup::Found {
                uri: found.mailbox().unwrap_or_default().to_string(),
                then: Vec::new(),
            }),
            r => r,
        };
        match result {
            Ok(found @ resolve::Lookup::Found { .. }) => {
                // "Offline" with a phone in DNS is a friends-only number
                // shown to a stranger (the question is asked anonymously):
                // not known, so neither shown nor asked about.
                let phone_in_dns = matches!(&found, resolve::Lookup::Found { then, .. } if !then.is_empty());
                let presence = presence.filter(|s| *s != peerdial_presence::State::Offline || !phone_in_dns);
                if let (Some(state), false) = (presence, to_mailbox) {
                    self.emit(UiEvent::Presence {
                        number: dialed.to_string(),
                        state: state.as_str().into(),
                    });
                    // Asked only where someone can answer (not `call N`).
                    let ask = transfer_for.is_none() && !self.cfg.yes && self.cfg.dial.is_none();
                    if presence::needs_confirmation(state) && ask {
                        self.presence.pending = Some(presence::Pending {
                            dialed,
                            found,
                            identity,
                            asked_ms: self.now(),
                        });
                        self.emit(UiEvent::Confirm {
                            number: dialed.to_string(),
                            state: state.as_str().into(),
                        });
                        return;
                    }
                }
                let resolve::Lookup::Found { uri, then } = found else { return };
                let placed = self.place_call(dialed, uri, identity, transfer_for.clone());
                if let (Ok(cid), true) = (&placed, self.cfg.mailbox_fallback) {
                    if let Some(s) = self.calls.get_mut(cid) {
                        s.then = then;
                    }
                }
                if let Err(e) = placed {
                    if let Some(orig) = transfer_for {
                        self.transfer_progress(&orig, Err(&peerdial_sip::call::End::NoResponse));
                    }
                    self.snapshot.dialing = None;
                    self.emit(UiEvent::Error(format!("cannot call {dialed}: {e}")));
                    self.finish_dial(exit::FAILED);
                }
            }
            Ok(resolve::Lookup::NoSuchNumber) => {
                self.snapshot.dialing = None;
                self.emit(UiEvent::NoSuchNumber {
                    number: dialed.to_string(),
                });
                self.finish_dial(exit::NO_SUCH_NUMBER);
            }
            Err(e) => {
                self.snapshot.dialing = None;
                self.emit(UiEvent::Error(format!("cannot look up {dialed}: {e}")));
                self.finish_dial(exit::FAILED);
            }
        }
    }
}
