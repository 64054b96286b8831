//! Dialing: from a typed number to the INVITE. The lookup (the resolver,
//! or the tree's directory with `--top`), the cloud's designation of the
//! route and waiting for a pushed callee (issue 15), the caller's
//! PASSporT and the callee's presence, gathered in one task that answers
//! with `Command::Resolved`; then the INVITE itself ([`Phone::place_call`])
//! with its headers (identity, greeting, switch key, wake token). A
//! switch's device skips all of it: its switch does the routing.
//! Not here: the call once placed ([`crate::calls`]).

use std::time::Instant;

use peerdial_media::sdp;
use peerdial_number::Number;
use peerdial_sip::call::{uri_addr, Call};

use crate::calls::media_pair;
use crate::display::{self, UiEvent};
use crate::{caller_id, exit, greetings, resolve, Command, Phone, PhoneError};

/// A lookup's answer with no identity, presence or switch to go with it.
fn unsigned(dialed: Number, result: Result<resolve::Lookup, PhoneError>) -> Command {
    Command::Resolved {
        dialed,
        result,
        identity: None,
        presence: None,
        via: None,
    }
}

impl Phone {
    pub(crate) fn dial(&mut self, dialed: &str) {
        match Number::dial(dialed, self.area) {
            Ok(n) => self.dial_number(n),
            Err(e) => {
                self.emit(UiEvent::Error(format!("cannot dial {dialed:?}: {e}")));
                self.finish_dial(exit::FAILED);
            }
        }
    }

    /// Finds `number`'s contact through the resolver (or the tree's
    /// directory with `--top`).
    pub(crate) fn lookup(&self, number: Number) -> impl std::future::Future<Output = Result<resolve::Lookup, PhoneError>> {
        let (resolver, top, root) = (self.resolver, self.cfg.top.clone(), self.root.clone());
        async move { Ok(resolve::lookup_either(resolver, top.as_deref(), number, &root).await?) }
    }

    /// Looks `number` up and calls it; during a call only for a transfer
    /// the other side asked for.
    pub(crate) fn dial_number(&mut self, number: Number) {
        let for_transfer = self.transfers.dialing.as_ref().is_some_and(|(n, _)| *n == number);
        if self.busy() && !for_transfer {
            // A refused `voicemail N` leaves no mark that would send the
            // next `call N` to the mailbox unasked.
            self.to_mailbox = None;
            self.emit(UiEvent::Error("already in a call".into()));
            return;
        }
        // A new dial replaces a question left unanswered.
        self.presence.pending = None;
        self.snapshot.dialing = Some(number.to_string());
        self.emit(UiEvent::Dialing {
            number: number.to_string(),
        });
        let (root, tx) = (self.root.clone(), self.cmd_tx.clone());
        if let Some(s) = &self.cfg.switch {
            // A switch's device: every call goes through the switch.
            let result = Ok(resolve::Lookup::Found {
                uri: s.uri_for(number),
                then: Vec::new(),
            });
            tokio::spawn(async move { tx.send(unsigned(number, result)).await });
            return;
        }
        let id = self.id.clone();
        let presence_dns = self.dns.clone();
        let lookup = self.lookup(number);
        // With --top, the cloud designates the route first (issue 15).
        let designate = (!for_transfer && self.to_mailbox != Some(number))
            .then(|| self.cfg.top.clone())
            .flatten()
            .map(|top| (top, self.id.clone(), self.own));
        let push_wait = self.push_wait(number);
        tokio::spawn(async move {
            let designated = match designate {
                Some((top, id, own)) => Some(crate::designate::ask(&top, &id, own, number).await),
                None => None,
            };
            let via = match designated {
                Some(crate::designate::Designated::Switch { addr, key, queue }) => Some((addr, key, queue)),
                Some(crate::designate::Designated::Refused { status, why }) => {
                    let result = match status {
                        404 => Ok(resolve::Lookup::NoSuchNumber),
                        _ => Err(PhoneError::Http(format!("the cloud: {why}"))),
                    };
                    let _ = tx.send(unsigned(number, result)).await;
                    return;
                }
                Some(crate::designate::Designated::Unavailable(why)) => {
                    tracing::info!("calling {number} without designation: {why}");
                    None
                }
                Some(crate::designate::Designated::Push { token }) => {
                    if let Some(w) = push_wait {
                        w.run(token).await;
                    }
                    None
                }
                Some(crate::designate::Designated::Direct) | None => None,
            };
            let lookup = async {
                match &via {
                    Some((addr, _, _)) => Ok(resolve::Lookup::Found {
                        uri: format!("sip:{}@{addr}", number.digits()),
                        then: Vec::new(),
                    }),
                    None => lookup.await,
                }
            };
            let presence = async {
                match presence_dns {
                    Some(dns) => crate::presence::lookup(dns, number, root.clone())
                        .await
                        .map_err(|e| tracing::debug!("presence of {number}: {e}"))
                        .ok(),
                    None => None,
                }
            };
            let (result, identity, presence) = tokio::join!(lookup, caller_id::passport(&id, number), presence);
            let identity = identity.map_err(|e| tracing::warn!("calling without caller identity: {e}")).ok();
            let _ = tx
                .send(Command::Resolved {
                    dialed: number,
                    result,
                    identity,
                    presence,
                    via,
                })
                .await;
        });
    }

    /// In `call N` mode, the phone exits once the call is over.
    pub(crate) fn finish_dial(&mut self, code: i32) {
        if self.cfg.dial.is_some() {
            self.exit.get_or_insert(code);
            if !self.quitting {
                self.quit();
            }
        }
    }

    /// Calls `number` at `uri`; `transfer_for`: for the REFER received in
    /// that call.
    pub(crate) fn place_call(
        &mut self,
        number: Number,
        uri: String,
        identity: Option<String>,
        transfer_for: Option<String>,
    ) -> Result<String, PhoneError> {
        let addr = uri_addr(&uri).ok_or_else(|| PhoneError::Resolve(format!("{uri} has no IP address and port")))?;
        let (rtp, rtcp) = media_pair(self.local_ip)?;
        let port = rtp.local_addr()?.port();
        let offer = sdp::offer(rand::random::<u32>() as u64, self.local_ip, port, &self.cfg.codecs);
        let now = self.now();
        let mut headers: Vec<(String, String)> = identity.into_iter().map(|i| ("Identity".to_string(), i)).collect();
        if self.cfg.switch.is_none() {
            headers.push((
                "Call-Info".into(),
                greetings::call_info(&self.id.region_http, self.own, peerdial_greetings::Kind::Caller),
            ));
        }
        headers.extend(self.mobile.invite_header());
        if let Some(key) = self.switch_key.take() {
            headers.push((peerdial_directory::designation::SWITCH_KEY_HEADER.to_string(), key));
        }
        let wake = self.wake_invite_header(number);
        let woke = wake.is_some();
        headers.extend(wake);
        let mut call = Call::outgoing_with(
            self.local(),
            &uri,
            addr,
            offer.to_text(self.local_ip).into_bytes(),
            headers,
            self.cfg.ring_timeout_ms,
            now,
        );
        call.set_response_timeout(self.cfg.unreachable_ms, now);
        if let Some(s) = &self.cfg.switch {
            call.set_credentials(&s.number.digits(), &s.password);
        }
        let cid = call.call_id().to_string();
        if woke {
            self.wake_expect_answer(&cid, number);
        }
        let mut slot = self.slot(call, number.to_string(), rtp, rtcp, Some(offer));
        slot.transfer_for = transfer_for.clone();
        self.calls.insert(cid.clone(), slot);
        self.take_line(
            &cid,
            display::CallView {
                peer: number.to_string(),
                state: "calling".into(),
                since: Instant::now(),
                incoming: false,
                ..display::CallView::default()
            },
        );
        if transfer_for.is_some() && self.lines.second.as_ref() == Some(&cid) {
            // The transferee talks on the new call; the old one is leaving.
            self.swap_lines();
        }
        self.emit(UiEvent::Calling {
            number: number.to_string(),
            uri,
        });
        Ok(cid)
    }
}
