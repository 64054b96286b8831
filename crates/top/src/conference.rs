//! Conferences hosted by the top (issue 13, first version; see
//! docs/decisions.md): a dialer asks `POST /api/v1/calls` with
//! `"callees": [..]` (two or more) or adds someone to a running
//! conference with `POST /api/v1/calls/{id}/participants` — a connected
//! two-party call too: its two legs move into a new room by re-INVITE
//! (`Conference::adopt`) and the newcomer is called. The top's
//! controller calls each talker with an offer naming its own port on a
//! `peerdial_media::room::Room` (Opus, PCMU, PCMA and telephone-event;
//! the talker picks), adds it to the mixer when it answers, and removes it
//! when it leaves; `peerdial_sip::conference::Conference` decides when it
//! is over. Audio only.
//!
//! It is not the mixer (`peerdial_media::mixer`) nor the matching
//! (`peerdial_directory`): each callee's talker is matched as for a call.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use peerdial_directory::{match_pair, Wanted};
use peerdial_media::mixer::{MixerConfig, ParticipantConfig, ParticipantId};
use peerdial_media::room::{Room, RoomConfig, Seat};
use peerdial_media::sdp::{self, CodecKind, Sdp};
use peerdial_net::http_server::error;
use peerdial_number::Number;
use peerdial_sip::call::{Call, Local, Transmit};
use peerdial_sip::conference::{ConfEvent, ConfProgress, Conference, LegId};
use peerdial_sip::pairing::Leg;
use peerdial_sip::Message;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::calls::{admitted, callee_of, leg_of, refusal, CallBook, Growable};
use crate::controller::Command;
use crate::talkers::talkers_of;
use crate::TopShared;

/// Talkers in one conference, the dialer's own included.
pub const MAX_TALKERS: usize = 8;
/// How long each talker may ring.
const RING_MS: u64 = 30_000;
/// What the mixer offers each talker, in order of preference.
const CODECS: [CodecKind; 3] = [CodecKind::Opus, CodecKind::Pcmu, CodecKind::Pcma];

/// One conference inside the controller's task: the legs, the room, and
/// for each leg its seat (before it answers) or its participant.
pub(crate) struct Hosted {
    core: Conference,
    room: Room,
    ip: IpAddr,
    offers: HashMap<LegId, (Seat, Sdp)>,
    members: HashMap<LegId, ParticipantId>,
}

impl Hosted {
    pub(crate) fn start(local: &Local, legs: Vec<(String, Leg)>, now: u64) -> Result<Hosted, String> {
        let ip = local.addr.ip();
        let room = Room::create(RoomConfig {
            ip,
            mixer: MixerConfig::default(),
        })
        .map_err(|e| e.to_string())?;
        let mut h = Hosted {
            core: Conference::new(local.clone(), RING_MS),
            room,
            ip,
            offers: HashMap::new(),
            members: HashMap::new(),
        };
        for (who, leg) in legs {
            h.add(&who, &leg, now)?;
        }
        Ok(h)
    }

    /// An empty room with two seats ready for a connected two-party
    /// call's legs (see [`Hosted::adopt`]); nothing of the call is touched
    /// until both seats exist.
    pub(crate) fn for_growth(local: &Local, now: u64) -> Result<(Hosted, [(Seat, Sdp); 2]), String> {
        let mut h = Hosted::start(local, Vec::new(), now)?;
        let seats = [h.offer()?, h.offer()?];
        Ok((h, seats))
    }

    /// Moves an established call into its seat: a re-INVITE with the
    /// seat's offer; it joins the mixer with the answer.
    pub(crate) fn adopt(&mut self, who: &str, call: Call, (seat, offer): (Seat, Sdp), now: u64) {
        let body = offer.to_text(self.ip).into_bytes();
        if let Some(id) = self.core.adopt(who, call, body, now) {
            self.offers.insert(id, (seat, offer));
        }
    }

    /// A new seat in the room and the offer that names it.
    fn offer(&mut self) -> Result<(Seat, Sdp), String> {
        let seat = self.room.seat().map_err(|e| e.to_string())?;
        let offer = sdp::offer(rand::random::<u32>() as u64, self.ip, seat.port(), &CODECS);
        Ok((seat, offer))
    }

    /// Calls one more talker with an offer for a new seat in the room.
    pub(crate) fn add(&mut self, who: &str, leg: &Leg, now: u64) -> Result<(), String> {
        let (seat, offer) = self.offer()?;
        let id = self
            .core
            .add(who, leg, offer.to_text(self.ip).into_bytes(), now)
            .ok_or("the conference is over")?;
        self.offers.insert(id, (seat, offer));
        Ok(())
    }

    pub(crate) fn core(&mut self) -> &mut Conference {
        &mut self.core
    }

    pub(crate) fn handle(&mut self, msg: &Message, from: std::net::SocketAddr, now: u64) {
        self.core.handle(msg, from, now);
        self.apply(now);
    }

    pub(crate) fn handle_timeout(&mut self, now: u64) {
        self.core.handle_timeout(now);
        self.apply(now);
    }

    pub(crate) fn cancel(&mut self, now: u64) {
        self.core.cancel(now);
        self.apply(now);
    }

    pub(crate) fn poll_transmit(&mut self) -> Option<Transmit> {
        self.core.poll_transmit()
    }

    /// Takes the core's events into the room: a talker who answered joins
    /// the mixer with the codec it chose; one who left is removed.
    fn apply(&mut self, now: u64) {
        while let Some(ev) = self.core.poll_event() {
            match ev {
                ConfEvent::Joined { leg, sdp: body } => {
                    let Some((seat, offer)) = self.offers.remove(&leg) else { continue };
                    let joined = Sdp::parse(&String::from_utf8_lossy(&body))
                        .and_then(|a| sdp::accept_answer(&offer, &a))
                        .and_then(|neg| {
                            let cfg = ParticipantConfig {
                                codec: neg.codec,
                                payload_type: neg.pt,
                                dtmf_payload_type: neg.dtmf_pt,
                            };
                            self.room.add_seated(seat, neg.remote_rtp, cfg)
                        });
                    match joined {
                        Ok(p) => {
                            self.members.insert(leg, p);
                        }
                        Err(e) => self.core.drop_leg(leg, format!("unusable answer: {e}"), now),
                    }
                }
                ConfEvent::Left { leg } => {
                    self.offers.remove(&leg);
                    if let Some(p) = self.members.remove(&leg) {
                        self.room.remove(p);
                    }
                }
            }
        }
    }
}

/// One progress line as a dialer shows it.
pub fn describe(p: &ConfProgress) -> String {
    match p {
        ConfProgress::Calling { who } => format!("calling {who}"),
        ConfProgress::Ringing { who } => format!("{who}: ringing"),
        ConfProgress::Joined { who } => format!("{who} joined"),
        ConfProgress::Failed { who, reason } => format!("{who} failed: {reason}"),
        ConfProgress::Left { who } => format!("{who} left"),
        ConfProgress::Ended { reason } => format!("ended: {reason}"),
    }
}

/// Writes one conference event into the book.
pub(crate) fn record(book: &CallBook, id: u64, p: &ConfProgress) {
    let over = matches!(p, ConfProgress::Ended { .. });
    let mut ev = serde_json::to_value(p).unwrap_or(Value::Null);
    ev["text"] = Value::String(describe(p));
    book.push_value(id, ev, over);
}

/// `POST /api/v1/calls` with `callees`: matches a talker of each callee,
/// then opens the conference. The dialer's talker is the one matched for
/// the first callee.
pub(crate) async fn place(shared: &Arc<TopShared>, me: Number, wanted: &Wanted, callees: &[String]) -> Response {
    if callees.len() < 2 || callees.len() + 1 > MAX_TALKERS {
        return error(
            StatusCode::BAD_REQUEST,
            format!("a conference has 2 to {} callees besides your talker", MAX_TALKERS - 1),
        );
    }
    let mine = match talkers_of(shared, me).await {
        Ok(t) => t,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, format!("the top's database: {e}")),
    };
    let mut legs = Vec::new();
    let mut shown = Vec::new();
    for c in callees {
        let theirs = match callee_of(shared, c).await {
            Ok(t) => t,
            Err(r) => return r,
        };
        let pair = match match_pair(&mine, wanted, &theirs) {
            Ok(p) => p,
            Err(r) => return refusal(&r),
        };
        if legs.is_empty() {
            match leg_of(shared, &pair.caller.account).await {
                Ok(l) => legs.push((pair.caller.name.clone(), l)),
                Err(e) => return error(StatusCode::CONFLICT, format!("your talker {:?}: {e}", pair.caller.name)),
            }
        }
        match leg_of(shared, &pair.callee.account).await {
            Ok(l) => legs.push((format!("{c} ({})", pair.callee.name), l)),
            Err(e) => return error(StatusCode::CONFLICT, format!("{c}'s talker {:?}: {e}", pair.callee.name)),
        }
        shown.push(json!({"callee": c, "talker": pair.callee.name}));
    }
    let summary = json!({
        "conference": true,
        "talker": legs[0].0,
        "callees": shown,
    });
    let id = shared.dialing.book.open(me, summary.clone());
    shared.dialing.controller.send(Command::Conference { id, legs });
    crate::calls::created(id, summary)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JoinRequest {
    callee: String,
}

/// `POST /api/v1/calls/{id}/participants {"callee": …}`: one more talker
/// in a running conference of the dialer's, or in a connected two-party
/// call, which becomes a conference.
pub(crate) async fn join(
    State(shared): State<Arc<TopShared>>,
    Path(id): Path<u64>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (me, req): (Number, JoinRequest) = match admitted(&shared, &headers, body, CallBook::admit_join).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let grow = match shared.dialing.book.growable(id, me) {
        None => return error(StatusCode::NOT_FOUND, format!("you have no call {id}")),
        Some(Growable::No) => {
            return error(
                StatusCode::CONFLICT,
                format!("call {id} is not running: only a connected call or a running conference takes someone more"),
            )
        }
        Some(Growable::Conference) => None,
        Some(Growable::TwoParty(labels)) => Some(labels),
    };
    let mine = match talkers_of(&shared, me).await {
        Ok(t) => t,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, format!("the top's database: {e}")),
    };
    let theirs = match callee_of(&shared, &req.callee).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let pair = match match_pair(&mine, &Wanted::Any, &theirs) {
        Ok(p) => p,
        Err(r) => return refusal(&r),
    };
    let leg = match leg_of(&shared, &pair.callee.account).await {
        Ok(l) => l,
        Err(e) => return error(StatusCode::CONFLICT, format!("{}'s talker {:?}: {e}", req.callee, pair.callee.name)),
    };
    let who = format!("{} ({})", req.callee, pair.callee.name);
    match grow {
        Some(labels) => shared.dialing.controller.send(Command::Grow {
            id,
            labels,
            who: who.clone(),
            leg,
        }),
        None => shared.dialing.controller.send(Command::Join { id, who: who.clone(), leg }),
    }
    (StatusCode::ACCEPTED, Json(json!({"id": id, "calling": who}))).into_response()
}
