//! A conference room: the tokio edge of a [`Mixer`]. It owns one UDP
//! socket per participant (on the room's address, a port of the system's
//! choosing), sends each participant its mix from the port it listens on
//! (symmetric RTP, as Janus and most SBCs expect), and drives the mixer's
//! 20 ms tick from tokio's clock.
//!
//! Sockets are drained once per tick rather than woken per datagram: the
//! mixer only plays a frame per tick, so a packet read a few milliseconds
//! later changes nothing, and a room of hundreds costs one task and a few
//! system calls per participant per tick. A datagram from any address but
//! the participant's is dropped (and counted as foreign).
//!
//! It is not a SIP agent: the server that hosts a conference answers the
//! INVITEs, puts the room's port in its SDP, and adds and removes
//! participants here. Audio only.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::mixer::{Mixer, MixerConfig, MixerEvent, MixerStats, ParticipantConfig, ParticipantId, ParticipantStats};
use crate::MediaError;

#[derive(Debug, Clone)]
pub struct RoomConfig {
    /// The address participants' sockets bind to (ports are chosen by the
    /// system).
    pub ip: IpAddr,
    pub mixer: MixerConfig,
}

struct Member {
    socket: UdpSocket,
    remote: SocketAddr,
    foreign: u64,
}

struct State {
    mixer: Mixer,
    members: HashMap<ParticipantId, Member>,
    start: Instant,
}

/// A participant's socket, bound before its address is known.
#[derive(Debug)]
pub struct Seat {
    socket: std::net::UdpSocket,
    port: u16,
}

impl Seat {
    pub fn port(&self) -> u16 {
        self.port
    }
}

/// A running conference; dropping it stops the mixer and closes every
/// socket.
pub struct Room {
    ip: IpAddr,
    state: Arc<Mutex<State>>,
    ended: watch::Receiver<bool>,
    task: JoinHandle<()>,
}

impl Room {
    /// Starts an empty room; call inside a tokio runtime.
    pub fn create(config: RoomConfig) -> Result<Room, MediaError> {
        let state = Arc::new(Mutex::new(State {
            mixer: Mixer::new(config.mixer)?,
            members: HashMap::new(),
            start: Instant::now(),
        }));
        let (tx, ended) = watch::channel(false);
        let task = tokio::spawn(drive(state.clone(), tx));
        Ok(Room {
            ip: config.ip,
            state,
            ended,
            task,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a participant whose RTP comes from and goes to `remote`;
    /// returns its id and the local RTP port to put in the SDP.
    pub fn add(&self, remote: SocketAddr, participant: ParticipantConfig) -> Result<(ParticipantId, u16), MediaError> {
        let seat = self.seat()?;
        let port = seat.port();
        Ok((self.add_seated(seat, remote, participant)?, port))
    }

    /// A socket for a participant not known yet: its port goes in the
    /// offer a server sends, and [`Room::add_seated`] takes it once the
    /// answer names the participant's address and codec.
    pub fn seat(&self) -> Result<Seat, MediaError> {
        let io = |e: std::io::Error| MediaError::Io(e.to_string());
        let std_socket = std::net::UdpSocket::bind((self.ip, 0)).map_err(io)?;
        std_socket.set_nonblocking(true).map_err(io)?;
        let port = std_socket.local_addr().map_err(io)?.port();
        Ok(Seat { socket: std_socket, port })
    }

    /// Adds a participant on a socket from [`Room::seat`].
    pub fn add_seated(&self, seat: Seat, remote: SocketAddr, participant: ParticipantConfig) -> Result<ParticipantId, MediaError> {
        let socket = UdpSocket::from_std(seat.socket).map_err(|e| MediaError::Io(e.to_string()))?;
        let mut s = self.lock();
        let now = s.start.elapsed().as_millis() as u64;
        let id = s.mixer.join(participant, now)?;
        s.members.insert(
            id,
            Member {
                socket,
                remote,
                foreign: 0,
            },
        );
        tracing::debug!(id, %remote, port = seat.port, codec = participant.codec.name(), "conference participant added");
        Ok(id)
    }

    /// Removes a participant and closes its socket; false if unknown.
    pub fn remove(&self, id: ParticipantId) -> bool {
        let mut s = self.lock();
        s.members.remove(&id);
        s.mixer.leave(id)
    }

    pub fn set_muted(&self, id: ParticipantId, muted: bool) -> bool {
        self.lock().mixer.set_muted(id, muted)
    }

    pub fn participants(&self) -> Vec<ParticipantId> {
        self.lock().mixer.participants().collect()
    }

    pub fn stats(&self) -> MixerStats {
        self.lock().mixer.stats()
    }

    /// A participant's counters, and datagrams from other addresses.
    pub fn participant_stats(&self, id: ParticipantId) -> Option<(ParticipantStats, u64)> {
        let s = self.lock();
        Some((s.mixer.participant_stats(id)?, s.members.get(&id)?.foreign))
    }

    /// Resolves once fewer than two participants remain (after two had
    /// joined).
    pub async fn ended(&self) {
        let mut rx = self.ended.clone();
        let _ = rx.wait_for(|e| *e).await;
    }

    pub fn is_ended(&self) -> bool {
        *self.ended.borrow()
    }
}

impl Drop for Room {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn drive(state: Arc<Mutex<State>>, ended: watch::Sender<bool>) {
    let mut buf = vec![0u8; 2048];
    let start = state.lock().unwrap_or_else(|e| e.into_inner()).start;
    loop {
        let next = state.lock().unwrap_or_else(|e| e.into_inner()).mixer.poll_timeout();
        let at = next.map_or(Instant::now() + Duration::from_millis(20), |ms| start + Duration::from_millis(ms));
        tokio::time::sleep_until(at.into()).await;
        let mut guard = state.lock().unwrap_or_else(|e| e.into_inner());
        let s = &mut *guard;
        let now = s.start.elapsed().as_millis() as u64;
        for (&id, m) in s.members.iter_mut() {
            // Bounded: a flood cannot keep the tick from running.
            for _ in 0..64 {
                match m.socket.try_recv_from(&mut buf) {
                    Ok((n, from)) if from == m.remote => s.mixer.handle_input(id, &buf[..n], now),
                    Ok(_) => m.foreign += 1,
                    Err(_) => break,
                }
            }
        }
        s.mixer.handle_timeout(now);
        while let Some(t) = s.mixer.poll_transmit() {
            if let Some(m) = s.members.get(&t.participant) {
                // A full socket buffer drops this frame, as the network would.
                let _ = m.socket.try_send_to(&t.data, m.remote);
            }
        }
        while let Some(ev) = s.mixer.poll_event() {
            match ev {
                MixerEvent::Muted { participant, muted } => tracing::info!(participant, muted, "conference mute"),
                MixerEvent::Ended => {
                    tracing::info!("conference ended");
                    let _ = ended.send(true);
                }
            }
        }
        if s.mixer.is_ended() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::{tone, tone_share};
    use crate::codec::{Decoder, Encoder};
    use crate::rtp::{self, RtpHeader};
    use crate::sdp::CodecKind;

    /// Three phones on loopback sockets speak tones to a room; each hears
    /// the other two and not itself; then two leave and the room ends.
    #[tokio::test]
    async fn a_room_over_udp() {
        let room = Room::create(RoomConfig {
            ip: "127.0.0.1".parse().unwrap(),
            mixer: MixerConfig::default(),
        })
        .unwrap();
        let freqs = [400.0, 700.0, 1100.0];
        let codecs = [(CodecKind::Pcmu, 0), (CodecKind::Opus, 111), (CodecKind::Pcma, 8)];
        let mut phones = Vec::new();
        for (codec, pt) in codecs {
            let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let cfg = ParticipantConfig {
                codec,
                payload_type: pt,
                dtmf_payload_type: None,
            };
            let (id, port) = room.add(sock.local_addr().unwrap(), cfg).unwrap();
            sock.connect(("127.0.0.1", port)).await.unwrap();
            phones.push((
                id,
                sock,
                codec,
                pt,
                Encoder::new(codec).unwrap(),
                Decoder::new(codec).unwrap(),
                Vec::new(),
            ));
        }
        let mut buf = [0u8; 2048];
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        for n in 0..40u32 {
            tick.tick().await;
            for (i, (_, sock, codec, pt, enc, dec, heard)) in phones.iter_mut().enumerate() {
                let f = (codec.clock_rate() / 50) as usize;
                let pcm = tone(freqs[i], codec.clock_rate(), f * (n as usize + 1), 6000.0);
                let mut payload = Vec::new();
                enc.encode(&pcm[f * n as usize..], &mut payload).unwrap();
                let h = RtpHeader {
                    marker: false,
                    payload_type: *pt,
                    seq: n as u16,
                    timestamp: n * f as u32,
                    ssrc: i as u32,
                };
                sock.send(&rtp::build(&h, &payload)).await.unwrap();
                while let Ok(k) = sock.try_recv(&mut buf) {
                    let (_, p) = rtp::parse(&buf[..k]).unwrap();
                    dec.decode(Some(p), f, heard).unwrap();
                }
            }
        }
        for (i, (id, _, codec, _, _, _, heard)) in phones.iter().enumerate() {
            let rate = codec.clock_rate();
            assert!(heard.len() >= rate as usize / 2, "{codec:?} heard {} samples", heard.len());
            let tail = &heard[heard.len() - rate as usize / 4..];
            for (j, f) in freqs.iter().enumerate() {
                let share = tone_share(tail, rate, *f);
                if i == j {
                    assert!(share < 0.02, "{codec:?} hears itself: {share}");
                } else {
                    assert!(share > 0.15, "{codec:?} misses {f} Hz: {share}");
                }
            }
            assert_eq!(room.participant_stats(*id).unwrap().1, 0);
        }
        room.add(
            "127.0.0.1:9".parse().unwrap(),
            ParticipantConfig {
                codec: CodecKind::Pcmu,
                payload_type: 0,
                dtmf_payload_type: None,
            },
        )
        .unwrap();
        assert!(room.remove(phones[0].0));
        assert!(!room.is_ended());
        assert!(room.remove(phones[1].0));
        assert!(!room.is_ended(), "two remain");
        assert!(room.remove(phones[2].0));
        tokio::time::timeout(Duration::from_secs(5), room.ended()).await.unwrap();
        assert!(room.is_ended());
    }
}
