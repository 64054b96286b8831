//! `peerdial phone`: the softphone. It provisions itself with its region,
//! keeps its registration and address current, dials by number, finds the
//! callee through an ordinary DNS resolver, and calls the callee directly
//! with RTP audio from and to WAV files, or through the sound device
//! (feature `sound`, module `sound`).
//!
//! This crate is the I/O edge: sockets, clock, files, terminal. The
//! protocol work is in `peerdial-sip` (dialogs, registration) and
//! `peerdial-media` (SDP, RTP, codecs, jitter buffer). It is not a server:
//! no region or proxy sits in its calls.

pub mod account;
pub mod caller_id;
mod calls;
pub mod channels;
pub mod commands;
mod config;
mod designate;
mod dialer;
mod dialing;
pub mod display;
pub mod fallback;
mod flow;
pub mod greetings;
pub mod history;
pub mod http;
mod inbound;
pub mod incall;
mod incoming;
mod lines;
pub mod mailbox;
pub mod mobile;
mod mwi;
pub mod presence;
pub mod provision;
pub mod resolve;
mod sound;
pub mod switch;
pub mod transfer;
pub mod wake;
mod wake_cloud;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use peerdial_media::audio;
use peerdial_number::{Area, Number};
use peerdial_sip::call::{Local, State};
use peerdial_sip::client::{RegEvent, RegState, RegisterClient};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use calls::{MediaIn, Slot};
pub use commands::Command;
pub use config::PhoneConfig;
pub use display::{Display, Snapshot, UiEvent};
pub use provision::Identity;

#[derive(Debug, thiserror::Error)]
pub enum PhoneError {
    #[error("provisioning: {0}")]
    Provision(String),
    #[error("provisioning: the region answered {status}: {reason}")]
    Refused { status: u16, reason: String },
    #[error("phone state: {0}")]
    State(String),
    #[error("DNS: {0}")]
    Resolve(String),
    #[error("DNS: {0}")]
    Lookup(#[from] peerdial_resolve::ResolveError),
    #[error("HTTP: {0}")]
    Http(String),
    #[error("{0}")]
    Config(String),
    #[error("network: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Media(#[from] peerdial_media::MediaError),
    #[error(transparent)]
    Number(#[from] peerdial_number::NumberError),
}

/// Exit status of `peerdial phone … call N`.
pub mod exit {
    pub const ANSWERED: i32 = 0;
    pub const FAILED: i32 = 1;
    pub const NO_SUCH_NUMBER: i32 = 3;
    pub const BUSY: i32 = 4;
    pub const NO_ANSWER: i32 = 5;
    pub const UNREACHABLE: i32 = 6;
}

pub struct Phone {
    cfg: PhoneConfig,
    id: Identity,
    own: Number,
    area: Area,
    root: String,
    resolver: Option<SocketAddr>,
    sip: Arc<UdpSocket>,
    local_ip: IpAddr,
    reg: RegisterClient,
    calls: HashMap<String, Slot>,
    display: Box<dyn Display>,
    snapshot: Snapshot,
    clock: Instant,
    media_tx: mpsc::Sender<MediaIn>,
    media_rx: mpsc::Receiver<MediaIn>,
    cmd_tx: mpsc::Sender<Command>,
    cmd_rx: mpsc::Receiver<Command>,
    next_address_check: u64,
    exit: Option<i32>,
    quitting: bool,
    play: Option<Vec<i16>>,
    /// Where callers' keys and regions are looked up.
    dns: Option<resolve::Dns>,
    keys: peerdial_resolve::keys::Keys,
    verifier: peerdial_identity::Verifier,
    pictures: greetings::SharedCache,
    next_greeting_poll: u64,
    presence: presence::PresenceSide,
    marquee: channels::MarqueeSide,
    /// No re-provisioning before this time (see [`account`]).
    reclaim_after: u64,
    mobile: mobile::MobileSide,
    /// The key for the INVITE the cloud designated a switch for.
    switch_key: Option<String>,
    history: history::History,
    sound: sound::SoundSide,
    lines: lines::Lines,
    transfers: transfer::Transfers,
    /// `voicemail N` was asked for this number.
    to_mailbox: Option<Number>,
    /// Calls to a mailbox waiting for their PASSporT (see [`fallback`]).
    fallbacks_pending: usize,
    mailbox: mailbox::MailboxSide,
    flow: flow::FlowSide,
    wake: wake::WakeSide,
}

/// Calls the display's history pane shows.
const HISTORY_PANE: usize = 8;

/// The methods the phone answers outside a call, for Allow headers.
const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, MESSAGE, REFER, NOTIFY";

/// The IP this host uses to reach `peer` (no packet is sent).
fn route_ip(peer: SocketAddr) -> Option<IpAddr> {
    let bind: SocketAddr = if peer.is_ipv4() {
        "0.0.0.0:0".parse().ok()?
    } else {
        "[::]:0".parse().ok()?
    };
    let s = std::net::UdpSocket::bind(bind).ok()?;
    s.connect(peer).ok()?;
    s.local_addr().ok().map(|a| a.ip())
}

/// The root domain under a zone name: the area zone minus its five digit labels.
fn root_of(zone: &str) -> String {
    zone.trim_end_matches('.')
        .splitn(6, '.')
        .nth(5)
        .unwrap_or("peerdial.internal")
        .to_string()
}

impl Phone {
    /// Provisions (first start) or loads the identity, and binds the SIP
    /// socket. Nothing is sent to the region's registrar yet.
    pub async fn start(cfg: PhoneConfig, display: Box<dyn Display>) -> Result<Phone, PhoneError> {
        let id = match (&cfg.switch, provision::load(&cfg.data)?) {
            (Some(s), _) => s.identity(),
            (None, Some(id)) => id,
            (None, None) => {
                let region = cfg
                    .region
                    .clone()
                    .ok_or_else(|| PhoneError::Config("first start: --region http://HOST:PORT is needed to get a number".into()))?;
                let mac = match &cfg.mac {
                    Some(m) => m.clone(),
                    None => {
                        provision::machine_mac().ok_or_else(|| PhoneError::Config("no MAC address found; give one with --mac".into()))?
                    }
                };
                let authority = peerdial_net::http_client::http_authority(&region).map_err(|e| PhoneError::Provision(e.to_string()))?;
                let region_addr = tokio::net::lookup_host(authority).await?.next();
                let ip = region_addr
                    .and_then(route_ip)
                    .map(|i| i.to_string())
                    .unwrap_or_else(|| "0.0.0.0".into());
                let id = match provision::provision(&region, &mac, &ip, None).await {
                    // Without an identity we sent no secret, so 403 can only
                    // mean the MAC already has a number: say what to do.
                    Err(PhoneError::Refused { status: 403, .. }) => {
                        return Err(PhoneError::Provision(provision::mac_taken_help(&mac, &region, &cfg.data)))
                    }
                    r => r?,
                };
                provision::save(&cfg.data, &id)?;
                id
            }
        };
        let own = Number::parse(&id.number)?;
        let area: Area = id.area.parse()?;
        let resolver = match (cfg.resolver, &cfg.top) {
            (Some(r), _) => Some(r),
            (None, Some(_)) => None,
            (None, None) => Some(resolve::system_resolver()?),
        };
        let sip = UdpSocket::bind(cfg.sip)
            .await
            .map_err(|e| PhoneError::Config(format!("cannot listen for SIP on {}: {e}", cfg.sip)))?;
        let bound = sip.local_addr()?;
        let local_ip = if bound.ip().is_unspecified() {
            route_ip(id.registrar).unwrap_or(bound.ip())
        } else {
            bound.ip()
        };
        let mut reg = account::register_client(&id, SocketAddr::new(local_ip, bound.port()));
        let (wake, contact_params) = wake::WakeSide::open(cfg.push.clone(), &cfg.data)?;
        if let Some(p) = &contact_params {
            reg.set_contact_params(p);
        }
        let play = match &cfg.play {
            // Checked now so a bad file is reported before any call.
            Some(p) => Some(audio::read_wav(p, 48_000)?),
            None => None,
        };
        let dns = match (resolver, &cfg.top) {
            (Some(r), _) => Some(resolve::Dns::Resolver(r)),
            (None, Some(t)) => Some(resolve::Dns::Top(t.clone())),
            (None, None) => None,
        };
        let pictures = match peerdial_greetings::DiskCache::open(cfg.data.join("greetings"), greetings::CACHE_BYTES) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!("greeting cache unusable, pictures are not kept: {e}");
                None
            }
        };
        let (media_tx, media_rx) = mpsc::channel(1024);
        let (cmd_tx, cmd_rx) = mpsc::channel(64);
        let snapshot = Snapshot {
            number: own.to_string(),
            sip: SocketAddr::new(local_ip, bound.port()),
            ..Snapshot::default()
        };
        let keys = peerdial_resolve::keys::Keys::new(&root_of(&id.sip_realm));
        let mobile = mobile::MobileSide::new(cfg.mobile.clone());
        let history = history::History::open(&cfg.data);
        let snapshot = Snapshot {
            history: history.short_lines(HISTORY_PANE),
            ..snapshot
        };
        let sound = sound::SoundSide::open(cfg.sound.as_ref());
        let cfg_tcp_flow = cfg.tcp_flow && cfg.register;
        Ok(Phone {
            root: root_of(&id.sip_realm),
            cfg,
            own,
            area,
            resolver,
            sip: Arc::new(sip),
            local_ip,
            reg,
            calls: HashMap::new(),
            display,
            snapshot,
            clock: Instant::now(),
            media_tx,
            media_rx,
            cmd_tx,
            cmd_rx,
            next_address_check: 0,
            exit: None,
            quitting: false,
            play,
            id,
            dns,
            keys,
            verifier: peerdial_identity::Verifier::default(),
            pictures: Arc::new(Mutex::new(pictures)),
            next_greeting_poll: 0,
            presence: presence::PresenceSide::new(),
            marquee: channels::MarqueeSide::default(),
            reclaim_after: 0,
            mobile,
            switch_key: None,
            history,
            sound,
            lines: Default::default(),
            transfers: Default::default(),
            to_mailbox: None,
            fallbacks_pending: 0,
            mailbox: Default::default(),
            flow: flow::FlowSide::new(cfg_tcp_flow),
            wake,
        })
    }

    pub fn identity(&self) -> &Identity {
        &self.id
    }

    pub fn sip_addr(&self) -> SocketAddr {
        self.snapshot.sip
    }

    /// A sender for commands (keys, stdin lines, tests).
    pub fn commands(&self) -> mpsc::Sender<Command> {
        self.cmd_tx.clone()
    }

    fn now(&self) -> u64 {
        self.clock.elapsed().as_millis() as u64
    }

    fn emit(&mut self, e: UiEvent) {
        self.snapshot.apply(&e);
        self.display.event(&e, &self.snapshot);
    }

    /// Runs until Quit (or, with `dial`, until that call ends). Returns the
    /// exit status.
    pub async fn run(mut self) -> Result<i32, PhoneError> {
        self.emit(UiEvent::Ready {
            number: self.own.to_string(),
            sip: self.snapshot.sip,
        });
        // With a TCP flow the first REGISTER waits for it (or for its
        // failure, then over UDP).
        if self.cfg.register && !self.flow.enabled {
            let now = self.now();
            self.reg.start(now);
        }
        self.load_contacts();
        self.mobile_start();
        self.wake_start();
        match self.cfg.dial.clone() {
            Some(d) if self.cfg.voicemail => self.voicemail(&d),
            Some(d) => self.dial(&d),
            None => {}
        }
        let sip = self.sip.clone();
        let mut buf = vec![0u8; 65_536];
        let mut quit_deadline: Option<u64> = None;
        let mic = self.sound.mic();
        loop {
            self.flush().await;
            if self.quitting {
                let done =
                    self.calls.values().all(|s| s.call.state() == State::Ended) && !matches!(self.reg.state(), RegState::Unregistering);
                if done || quit_deadline.is_some_and(|d| self.now() >= d) {
                    break;
                }
                quit_deadline.get_or_insert(self.now() + 2_000);
            }
            let wake = self.next_wake().min(quit_deadline.unwrap_or(u64::MAX)).min(self.now() + 1_000);
            // Until that millisecond of the phone's clock, not for a count
            // of whole milliseconds from now (which wakes up to a
            // millisecond early, to find nothing due and sleep again).
            let until = tokio::time::Instant::from_std(self.clock + std::time::Duration::from_millis(wake));
            tokio::select! {
                r = sip.recv_from(&mut buf) => match r {
                    // Asleep: no SIP at all until a push wakes us.
                    Ok((n, from)) if !self.wake.sleeping => {
                        let data = buf[..n].to_vec();
                        self.on_sip(&data, from);
                    }
                    Ok(_) => {}
                    Err(e) => tracing::debug!("SIP socket: {e}"),
                },
                Some(m) = self.media_rx.recv() => self.on_media(m),
                Some(c) = self.cmd_rx.recv() => self.on_command(c),
                Some(f) = self.flow.events_rx.recv() => self.on_flow(f),
                // The microphone captured a frame: send it now.
                _ = mic.notified() => {}
                _ = tokio::time::sleep_until(until) => {}
            }
            self.on_time();
            self.display.tick(&self.snapshot);
        }
        self.display.close();
        Ok(self.exit.unwrap_or(exit::ANSWERED))
    }

    fn next_wake(&self) -> u64 {
        let mut t = self.next_address_check.min(self.next_greeting_poll).min(self.sound_wake());
        t = t.min(self.presence.poll_timeout()).min(self.marquee_wake());
        t = t.min(self.reg.poll_timeout().unwrap_or(u64::MAX)).min(self.mailbox.poll_timeout());
        t = t.min(self.flow.poll_timeout()).min(self.mailbox_wake());
        for s in self.calls.values() {
            t = t.min(s.call.poll_timeout().unwrap_or(u64::MAX));
            t = t.min(s.media.as_ref().map(|m| m.poll_timeout()).unwrap_or(u64::MAX));
            t = t.min(s.answer_at.unwrap_or(u64::MAX)).min(s.hangup_at.unwrap_or(u64::MAX));
        }
        t
    }

    fn quit(&mut self) {
        self.quitting = true;
        let now = self.now();
        for s in self.calls.values_mut() {
            s.call.hangup(now);
        }
        if self.reg.state() == RegState::Registered {
            self.reg.unregister(now);
        }
        self.presence_quit();
        self.stop_mwi();
    }

    fn on_time(&mut self) {
        let now = self.now();
        if now >= self.next_address_check {
            self.next_address_check = now + self.cfg.address_check_ms;
            self.check_address(now);
        }
        self.poll_marquee(now);
        if now >= self.next_greeting_poll {
            self.next_greeting_poll = now + self.cfg.greeting_poll_ms.max(1_000);
            self.poll_own_greetings();
        }
        self.presence_timeouts(now);
        self.mailbox_timeouts(now);
        self.flow_tick(now);
        self.mobile_tick();
        if self.reg.poll_timeout().is_some_and(|t| t <= now) && !self.wake.sleeping {
            self.reg.handle_timeout(now);
        }
        let mut failures = Vec::new();
        self.pump_capture();
        for (cid, s) in self.calls.iter_mut() {
            if s.call.poll_timeout().is_some_and(|t| t <= now) {
                s.call.handle_timeout(now);
            }
            if let Some(m) = &mut s.media {
                if m.poll_timeout() <= now {
                    if let Err(e) = m.handle_timeout(now) {
                        failures.push(format!("media: {e}"));
                    }
                }
            }
            if s.hangup_at.is_some_and(|t| t <= now) {
                s.hangup_at = None;
                s.call.hangup(now);
            }
            if s.answer_at.is_some_and(|t| t <= now) {
                s.answer_at = None;
                failures.extend(
                    Self::answer_slot(cid, s, &self.cfg, self.play.as_deref(), self.sound.live(), now)
                        .err()
                        .map(|e| e.to_string()),
                );
            }
        }
        for f in failures {
            self.emit(UiEvent::Error(f));
        }
        self.pump_sound(now);
    }

    /// A new local address (a new DHCP lease, another network): register it.
    fn check_address(&mut self, now: u64) {
        if !self.cfg.sip.ip().is_unspecified() {
            return;
        }
        let Some(ip) = route_ip(self.id.registrar) else { return };
        if ip != self.local_ip {
            let old = self.local_ip;
            self.local_ip = ip;
            let addr = SocketAddr::new(ip, self.snapshot.sip.port());
            self.snapshot.sip = addr;
            self.emit(UiEvent::AddressChanged { old, new: ip });
            if self.cfg.register {
                self.flow_restart(now);
                self.reg.set_local_addr(addr, now);
            }
        }
    }

    fn local(&self) -> Local {
        Local {
            uri: format!("sip:{}@{}", self.own.digits(), self.snapshot.sip),
            addr: self.snapshot.sip,
            user_agent: format!("peerdial-phone/{}", env!("CARGO_PKG_VERSION")),
        }
    }

    /// Sends what the state machines queued and reports their events.
    async fn flush(&mut self) {
        let now = self.now();
        while let Some(t) = self.reg.poll_transmit() {
            match &self.flow.tx {
                Some(flow) if t.to == self.id.registrar => {
                    let _ = flow.send(t.data).await;
                }
                _ => {
                    let _ = self.sip.send_to(&t.data, t.to).await;
                }
            }
        }
        while let Some(e) = self.reg.poll_event() {
            match e {
                RegEvent::Registered { expires } => {
                    let first = self.snapshot.registered.is_none();
                    if self.snapshot.registered != Some(true) {
                        // Back online: what did we miss?
                        self.mailbox.next_poll = 0;
                    }
                    if let Some(t) = self.reg.flow_timer() {
                        self.flow.set_flow_timer(t);
                    }
                    self.snapshot.registered = Some(true);
                    self.start_mwi();
                    self.emit(UiEvent::Registered {
                        number: self.own.to_string(),
                        contact: self.snapshot.sip,
                        expires,
                        first,
                    });
                    self.wake_registered(first);
                }
                RegEvent::Failed { reason } => {
                    self.snapshot.registered = Some(false);
                    if account::credentials_refused(&reason) && now >= self.reclaim_after {
                        self.reclaim(now);
                    }
                    self.emit(UiEvent::RegistrationFailed { reason });
                }
                RegEvent::Unregistered => {
                    self.snapshot.registered = Some(false);
                    self.emit(UiEvent::Unregistered);
                }
            }
        }
        self.flush_calls(now).await;
        self.flush_presence().await;
        self.flush_mailbox().await;
    }
}

impl Phone {
    /// The registrar refused our credentials: provision again (our number
    /// may have moved to a vanity number).
    fn reclaim(&mut self, now: u64) {
        self.reclaim_after = now + account::RECLAIM_EVERY_MS;
        let (data, id, ip, tx) = (self.cfg.data.clone(), self.id.clone(), self.local_ip, self.cmd_tx.clone());
        tokio::spawn(async move {
            let r = account::reclaim(&data, &id, ip).await.map_err(|e| e.to_string());
            let _ = tx.send(Command::Reclaimed(r)).await;
        });
    }

    fn on_reclaimed(&mut self, r: Result<Identity, String>) {
        let id = match r {
            Ok(id) => id,
            Err(e) => return self.emit(UiEvent::Error(format!("could not provision again: {e}"))),
        };
        let new = match Number::parse(&id.number) {
            Ok(n) => n,
            Err(e) => return self.emit(UiEvent::Error(format!("the region gave an invalid number: {e}"))),
        };
        if new != self.own {
            let line = format!("number changed from {} to {new}", self.own);
            self.own = new;
            self.snapshot.number = new.to_string();
            self.emit(UiEvent::Info(line));
        }
        let params = self.reg.contact_params().to_string();
        self.reg = account::register_client(&id, self.reg.local_addr());
        self.reg.set_contact_params(&params);
        self.reg.set_flow(self.flow.local);
        self.forget_mwi();
        self.id = id;
        let now = self.now();
        self.reg.start(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_of_a_zone() {
        assert_eq!(root_of("2.0.6.8.8.peerdial.internal."), "peerdial.internal");
        assert_eq!(root_of("2.0.6.8.8.example.net"), "example.net");
    }
}
