//! A conference hosted by a controller: the legs
//! (`peerdial_sip::conference::Conference`, which decides when it is
//! over) and a `peerdial_media::room::Room` (the mixer on tokio). Each
//! talker is called with an offer naming its own seat in the room (Opus,
//! PCMU, PCMA and telephone-event; the talker picks), joins the mixer when
//! it answers, and is removed when it leaves. Audio only.
//!
//! It is not the mixer (`peerdial_media::mixer`) nor a socket owner for
//! SIP: the controller task feeds it and sends what it queues.

use std::collections::HashMap;
use std::net::IpAddr;

use peerdial_media::mixer::{MixerConfig, ParticipantConfig, ParticipantId};
use peerdial_media::room::{Room, RoomConfig, Seat};
use peerdial_media::sdp::{self, CodecKind, Sdp};
use peerdial_sip::call::{Call, Local, Transmit};
use peerdial_sip::conference::{ConfEvent, Conference, LegId};
use peerdial_sip::pairing::Leg;
use peerdial_sip::Message;

/// How long each talker may ring.
const RING_MS: u64 = 30_000;
/// What the mixer offers each talker, in order of preference.
const CODECS: [CodecKind; 3] = [CodecKind::Opus, CodecKind::Pcmu, CodecKind::Pcma];

/// One conference inside the controller's task: the legs, the room, and
/// for each leg its seat (before it answers) or its participant.
pub struct Hosted {
    core: Conference,
    room: Room,
    ip: IpAddr,
    offers: HashMap<LegId, (Seat, Sdp)>,
    members: HashMap<LegId, ParticipantId>,
}

impl Hosted {
    pub fn start(local: &Local, legs: Vec<(String, Leg)>, now: u64) -> Result<Hosted, String> {
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
    pub fn for_growth(local: &Local, now: u64) -> Result<(Hosted, [(Seat, Sdp); 2]), String> {
        let mut h = Hosted::start(local, Vec::new(), now)?;
        let seats = [h.offer()?, h.offer()?];
        Ok((h, seats))
    }

    /// Moves an established call into its seat: a re-INVITE with the
    /// seat's offer; it joins the mixer with the answer.
    pub fn adopt(&mut self, who: &str, call: Call, (seat, offer): (Seat, Sdp), now: u64) {
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
    pub fn add(&mut self, who: &str, leg: &Leg, now: u64) -> Result<(), String> {
        let (seat, offer) = self.offer()?;
        let id = self
            .core
            .add(who, leg, offer.to_text(self.ip).into_bytes(), now)
            .ok_or("the conference is over")?;
        self.offers.insert(id, (seat, offer));
        Ok(())
    }

    pub fn core(&mut self) -> &mut Conference {
        &mut self.core
    }

    pub fn handle(&mut self, msg: &Message, from: std::net::SocketAddr, now: u64) {
        self.core.handle(msg, from, now);
        self.apply(now);
    }

    pub fn handle_timeout(&mut self, now: u64) {
        self.core.handle_timeout(now);
        self.apply(now);
    }

    pub fn cancel(&mut self, now: u64) {
        self.core.cancel(now);
        self.apply(now);
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
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
