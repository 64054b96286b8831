//! What the user (keys, stdin lines) and the phone's own lookups ask for,
//! dispatched to the module that does it: calls, hold, history, presence,
//! channels, greetings, the mobile side.
//!
//! What this is not: parsing command lines (`display::parse_command`) or
//! the work itself (each concern's module).

use crate::display::UiEvent;
use crate::{account, exit, presence, resolve, Command, Phone};
use peerdial_number::Number;

impl Phone {
    pub(crate) fn on_command(&mut self, c: Command) {
        match c {
            Command::Dial(d) => self.dial(&d),
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
                if let Some((dialed, uri, identity)) = self.presence.pending.take() {
                    if yes {
                        self.on_command(Command::Resolved {
                            dialed,
                            result: Ok(resolve::Lookup::Found(uri)),
                            identity,
                            presence: None,
                        });
                    } else {
                        self.snapshot.dialing = None;
                        self.emit(UiEvent::Error(format!("not calling {dialed}")));
                    }
                }
            }
            Command::Resolved {
                dialed,
                result,
                identity,
                presence,
            } => {
                let found = matches!(result, Ok(resolve::Lookup::Found(_)));
                let transfer_for = self.transfer_dial_for(dialed, found);
                self.on_resolved(dialed, result, identity, presence, transfer_for)
            }
        }
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
        match result {
            Ok(resolve::Lookup::Found(uri)) => {
                if let Some(state) = presence {
                    self.emit(UiEvent::Presence {
                        number: dialed.to_string(),
                        state: state.as_str().into(),
                    });
                    // Asked only where someone can answer (not `call N`).
                    let ask = transfer_for.is_none() && !self.cfg.yes && self.cfg.dial.is_none();
                    if presence::needs_confirmation(state) && ask {
                        self.presence.pending = Some((dialed, uri, identity));
                        self.emit(UiEvent::Confirm {
                            number: dialed.to_string(),
                            state: state.as_str().into(),
                        });
                        return;
                    }
                }
                if let Err(e) = self.place_call(dialed, uri, identity, transfer_for.clone()) {
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
