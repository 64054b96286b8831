//! The phone's TCP flow to its region (RFC 5626): by default the phone
//! registers over a TCP connection that it keeps open, so the region knows
//! it is online while the connection is up and offline the moment it
//! closes or goes silent (design §9, issue 12: "online while connected").
//! The phone pings with a double CRLF every `Flow-Timer` seconds (the
//! region's REGISTER answer says how often; 80–100 % of it, RFC 5626
//! §4.4.1) and takes the flow as dead when no CRLF pong comes within
//! [`PONG_WAIT_MS`]. A dead or refused flow is tried again with back-off;
//! meanwhile the phone registers over UDP (the region's keep-alives then
//! say whether it is online), so it is never unreachable for want of TCP.
//!
//! Only the registration and the region's requests to us travel on the
//! flow; calls, messages and presence stay on UDP. What this is not: the
//! registration state machine (`peerdial_sip::client`).

use std::net::SocketAddr;
use std::time::Duration;

use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::display::UiEvent;
use crate::Phone;

/// How long a ping waits for its pong.
pub const PONG_WAIT_MS: u64 = 10_000;
/// Ping interval until the region says its Flow-Timer.
pub const DEFAULT_FLOW_TIMER: u32 = 25;

#[derive(Debug)]
pub enum FlowEvent {
    /// Connected: where to write, and our end's address (for Via).
    Up {
        tx: mpsc::Sender<Vec<u8>>,
        local: SocketAddr,
    },
    /// One SIP message from the region.
    Frame(Vec<u8>),
    Down(String),
}

/// What the phone keeps of its flow.
pub(crate) struct FlowSide {
    pub(crate) enabled: bool,
    pub(crate) tx: Option<mpsc::Sender<Vec<u8>>>,
    /// Our end of the connection while it is up.
    pub(crate) local: Option<SocketAddr>,
    task: Option<tokio::task::JoinHandle<()>>,
    pub(crate) retry_at: Option<u64>,
    backoff: u64,
    events_tx: mpsc::Sender<FlowEvent>,
    pub(crate) events_rx: mpsc::Receiver<FlowEvent>,
    /// The ping interval (ms) the task reads.
    ping: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl FlowSide {
    pub(crate) fn new(enabled: bool) -> FlowSide {
        let (events_tx, events_rx) = mpsc::channel(256);
        FlowSide {
            enabled,
            tx: None,
            local: None,
            task: None,
            retry_at: enabled.then_some(0),
            backoff: 0,
            events_tx,
            events_rx,
            ping: std::sync::Arc::new(std::sync::atomic::AtomicU64::new(DEFAULT_FLOW_TIMER as u64 * 1000)),
        }
    }

    pub(crate) fn poll_timeout(&self) -> u64 {
        self.retry_at.unwrap_or(u64::MAX)
    }

    /// The region's Flow-Timer (seconds): ping at 80–100 % of it.
    pub(crate) fn set_flow_timer(&self, secs: u32) {
        let ms = secs.max(1) as u64 * 1000;
        let at = rand::thread_rng().gen_range(ms * 4 / 5..=ms);
        self.ping.store(at, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Drop for FlowSide {
    fn drop(&mut self) {
        if let Some(t) = &self.task {
            t.abort();
        }
    }
}

/// The connection: frames in, bytes out, pings, until it closes.
async fn run(registrar: SocketAddr, events: mpsc::Sender<FlowEvent>, ping: std::sync::Arc<std::sync::atomic::AtomicU64>) {
    let stream = match tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(registrar)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return drop(events.send(FlowEvent::Down(format!("cannot connect: {e}"))).await),
        Err(_) => return drop(events.send(FlowEvent::Down("no TCP answer in 5 s".into())).await),
    };
    let _ = stream.set_nodelay(true);
    let Ok(local) = stream.local_addr() else { return };
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(64);
    if events.send(FlowEvent::Up { tx, local }).await.is_err() {
        return;
    }
    let mut buf = Vec::with_capacity(8192);
    let mut chunk = vec![0u8; 8192];
    let interval = || Duration::from_millis(ping.load(std::sync::atomic::Ordering::Relaxed));
    let mut next_ping = tokio::time::Instant::now() + interval();
    let mut pong_by: Option<tokio::time::Instant> = None;
    let why = loop {
        let wake = pong_by.map_or(next_ping, |p| p.min(next_ping));
        tokio::select! {
            r = rd.read(&mut chunk) => match r {
                Ok(0) => break "the region closed it".to_string(),
                Err(e) => break e.to_string(),
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    // Any bytes prove the region is there; CRLFs are pongs.
                    pong_by = None;
                    loop {
                        let skip = buf.iter().take_while(|b| matches!(b, b'\r' | b'\n')).count();
                        buf.drain(..skip);
                        match peerdial_sip::message::frame_len(&buf) {
                            Ok(Some(len)) => {
                                let frame: Vec<u8> = buf.drain(..len).collect();
                                if events.send(FlowEvent::Frame(frame)).await.is_err() {
                                    return;
                                }
                            }
                            Ok(None) => break,
                            Err(e) => return drop(events.send(FlowEvent::Down(format!("unframeable SIP: {e}"))).await),
                        }
                    }
                }
            },
            out = rx.recv() => match out {
                Some(b) => if let Err(e) = wr.write_all(&b).await { break e.to_string() },
                None => return,
            },
            _ = tokio::time::sleep_until(wake) => {
                let now = tokio::time::Instant::now();
                if pong_by.is_some_and(|p| p <= now) {
                    break "no pong to our keep-alive".to_string();
                }
                if next_ping <= now {
                    if let Err(e) = wr.write_all(b"\r\n\r\n").await {
                        break e.to_string();
                    }
                    pong_by = Some(now + Duration::from_millis(PONG_WAIT_MS));
                    next_ping = now + interval();
                }
            }
        }
    };
    let _ = events.send(FlowEvent::Down(why)).await;
}

impl Phone {
    /// Connects the flow when it is due.
    pub(crate) fn flow_tick(&mut self, now: u64) {
        if !self.flow.enabled || !self.cfg.register || self.quitting || self.flow.retry_at.is_none_or(|t| t > now) {
            return;
        }
        self.flow.retry_at = None;
        let (events, ping) = (self.flow.events_tx.clone(), self.flow.ping.clone());
        self.flow.task = Some(tokio::spawn(run(self.id.registrar, events, ping)));
    }

    /// Our address changed: the connection is bound to the old one. Drop
    /// it and connect again at once (meanwhile over UDP).
    pub(crate) fn flow_restart(&mut self, now: u64) {
        self.forget_flow();
        if self.flow.enabled {
            self.flow.retry_at = Some(now);
        }
    }

    /// No flow any more (registration back on UDP); whether one was up.
    fn forget_flow(&mut self) -> bool {
        if let Some(t) = self.flow.task.take() {
            t.abort();
        }
        self.flow.local = None;
        self.reg.set_flow(None);
        self.flow.tx.take().is_some()
    }

    pub(crate) fn on_flow(&mut self, e: FlowEvent) {
        let now = self.now();
        match e {
            FlowEvent::Up { tx, local } => {
                self.flow.tx = Some(tx);
                self.flow.local = Some(local);
                self.flow.backoff = 0;
                self.reg.set_flow(Some(local));
                if self.reg.state() != peerdial_sip::client::RegState::Unregistering {
                    self.reg.start(now);
                }
            }
            FlowEvent::Frame(data) => {
                let from = self.id.registrar;
                self.on_sip(&data, from);
            }
            FlowEvent::Down(why) => {
                let was_up = self.forget_flow();
                // 1 s, 2 s, 4 s … up to a minute.
                self.flow.backoff = (self.flow.backoff * 2).clamp(1_000, 60_000);
                self.flow.retry_at = Some(now + self.flow.backoff);
                if was_up {
                    self.emit(UiEvent::Info(format!(
                        "connection to the region lost ({why}); registering over UDP meanwhile"
                    )));
                } else {
                    tracing::debug!("TCP flow to the region: {why}");
                }
                // Over UDP meanwhile, so calls still find us.
                if !self.quitting && self.reg.state() != peerdial_sip::client::RegState::Unregistering {
                    self.reg.start(now);
                }
            }
        }
    }
}
