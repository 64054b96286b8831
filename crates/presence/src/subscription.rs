//! Subscriptions of the presence server: SUBSCRIBE (initial, refresh,
//! fetch, unsubscribe), the NOTIFY client transaction with its UDP timers,
//! fan-out, expiry, and the limits against subscription floods.

use std::net::SocketAddr;

use peerdial_number::Number;
use peerdial_sip::call::{T1, T2};
use peerdial_sip::message::{response, NameAddr, Via};
use peerdial_sip::{Message, Transport};

use crate::pidf;
use crate::server::{view, Bucket, PresenceServer, Timer, WatcherAuth};
use crate::sip_util::{branch, cseq_of, seconds, status, tag_of, token};
use crate::state::Presence;
use crate::Transmit;

/// Timer F: a NOTIFY unanswered this long ends the subscription.
const NOTIFY_TIMEOUT: u64 = 64 * T1;
/// Most token buckets kept before idle (full) ones are forgotten.
const MAX_BUCKETS: usize = 65_536;

/// One subscription: a dialog created by a SUBSCRIBE, from our side.
pub(crate) struct Sub {
    pub presentity: Number,
    pub call_id: String,
    pub remote_tag: String,
    pub local_tag: String,
    /// The SUBSCRIBE's From: the To of our NOTIFYs.
    pub remote_hdr: String,
    /// The SUBSCRIBE's To with our tag: the From of our NOTIFYs.
    pub local_hdr: String,
    /// The subscriber's Contact URI: the Request-URI of our NOTIFYs.
    pub target: String,
    /// Where NOTIFYs go: where the SUBSCRIBE came from (NAT-safe).
    pub dest: SocketAddr,
    /// The address counted against the per-IP limit (the first source).
    pub counted_ip: std::net::IpAddr,
    pub transport: Transport,
    pub event_id: Option<String>,
    pub watcher: WatcherAuth,
    pub expires_at: u64,
    pub remote_cseq: u32,
    pub cseq: u32,
    /// The NOTIFY in flight: one at a time (RFC 6665 4.2.2), later
    /// changes wait in `dirty`.
    pub pending: Option<Pending>,
    pub dirty: bool,
    /// Set when the subscription ends: the reason of the final NOTIFY.
    pub terminating: Option<&'static str>,
    /// The state and note the watcher last saw, so an unchanged view sends
    /// nothing.
    pub last: Option<Presence>,
}

pub(crate) struct Pending {
    pub data: Vec<u8>,
    pub cseq: u32,
    pub next: u64,
    pub interval: u64,
    pub deadline: u64,
}

impl PresenceServer {
    pub(crate) fn subscribe(
        &mut self,
        msg: &Message,
        via: &Via,
        source: SocketAddr,
        transport: Transport,
        watcher: WatcherAuth,
        now: u64,
    ) -> Message {
        let call_id = msg.header("Call-ID").unwrap_or_default().to_string();
        let remote_tag = tag_of(msg.header("From")).unwrap_or_default();
        let to_tag = tag_of(msg.header("To"));
        let cseq = cseq_of(msg).map_or(0, |c| c.0);
        let plain = |code: u16, reason: &str| response(msg, via, source, code, reason, &token(10));

        if let Some(accept) = msg.header("Accept") {
            let ok = accept.split(',').any(|a| {
                let t = a.split(';').next().unwrap_or_default().trim();
                t.eq_ignore_ascii_case(pidf::CONTENT_TYPE) || t == "*/*" || t.eq_ignore_ascii_case("application/*")
            });
            if !ok && !accept.trim().is_empty() {
                let mut r = plain(406, "Not Acceptable");
                r.push("Accept", pidf::CONTENT_TYPE);
                return r;
            }
        }
        let expires = match seconds(msg, "Expires") {
            None => self.cfg.default_expires,
            Some(Ok(0)) => 0,
            Some(Ok(e)) => e.clamp(self.cfg.min_expires, self.cfg.max_expires),
            Some(Err(())) => return plain(400, "Bad Expires"),
        };

        let existing = self.dialogs.get(&(call_id.clone(), remote_tag.clone())).copied();
        if let Some(id) = existing {
            let contact = self
                .subs
                .get(&id)
                .map(|s| self.contact(s.presentity, s.transport))
                .unwrap_or_default();
            let sub = self.subs.get_mut(&id).expect("dialog index points at a live subscription");
            if to_tag.as_ref().is_some_and(|t| *t != sub.local_tag) {
                return plain(481, "Subscription Does Not Exist");
            }
            let mut ok = response(msg, via, source, 200, "OK", &sub.local_tag);
            ok.push("Contact", contact);
            if cseq <= sub.remote_cseq || sub.terminating.is_some() {
                // A retransmission (or a request racing the end): same answer, nothing new.
                let left = sub.expires_at.saturating_sub(now).div_ceil(1000);
                ok.push("Expires", left.to_string());
                return ok;
            }
            sub.remote_cseq = cseq;
            sub.dest = source;
            if let Some(c) = contact_uri(msg) {
                sub.target = c;
            }
            ok.push("Expires", expires.to_string());
            if expires == 0 {
                self.terminate(id, "timeout", now);
            } else {
                sub.expires_at = now + expires as u64 * 1000;
                let at = sub.expires_at;
                self.schedule(at, Timer::SubExpiry(id));
                // RFC 6665 4.2.1.2: a refresh is answered with a NOTIFY too.
                self.notify(id, now, true);
            }
            return ok;
        }
        if to_tag.is_some() {
            return plain(481, "Subscription Does Not Exist");
        }

        // A new subscription.
        let Some(number) = PresenceServer::presentity(msg) else {
            return plain(404, "Not Found");
        };
        if !self.entries.contains_key(&number) {
            return plain(404, "Not Found");
        }
        let Some(target) = contact_uri(msg) else {
            return plain(400, "Missing Contact");
        };
        if let Some(why) = self.admit(source, number, now) {
            tracing::debug!(%source, %number, why, "subscription refused");
            let mut r = plain(503, "Service Unavailable");
            r.push("Retry-After", self.cfg.retry_after.to_string());
            return r;
        }
        let id = self.next_id;
        self.next_id += 1;
        let local_tag = token(10);
        let mut ok = response(msg, via, source, 200, "OK", &local_tag);
        let local_hdr = ok.header("To").unwrap_or_default().to_string();
        ok.push("Expires", expires.to_string());
        ok.push("Contact", self.contact(number, transport));
        let sub = Sub {
            presentity: number,
            call_id: call_id.clone(),
            remote_tag: remote_tag.clone(),
            local_tag,
            remote_hdr: msg.header("From").unwrap_or_default().to_string(),
            local_hdr,
            target,
            dest: source,
            counted_ip: source.ip(),
            transport,
            event_id: msg
                .header("Event")
                .and_then(|e| peerdial_sip::message::param(e, "id").flatten())
                .map(str::to_string),
            watcher,
            expires_at: now + expires as u64 * 1000,
            remote_cseq: cseq,
            cseq: 0,
            pending: None,
            dirty: false,
            terminating: None,
            last: None,
        };
        self.subs.insert(id, sub);
        self.dialogs.insert((call_id, remote_tag), id);
        *self.per_ip.entry(source.ip()).or_insert(0) += 1;
        if let Some(e) = self.entries.get_mut(&number) {
            e.watchers.insert(id);
        }
        if expires == 0 {
            // A fetch: one NOTIFY with the state, and the subscription ends.
            self.terminate(id, "timeout", now);
        } else {
            self.schedule(now + expires as u64 * 1000, Timer::SubExpiry(id));
            self.notify(id, now, true);
        }
        ok
    }

    fn contact(&self, number: Number, transport: Transport) -> String {
        match transport {
            Transport::Udp => format!("<sip:{}@{}>", number.digits(), self.cfg.local),
            Transport::Tcp => format!("<sip:{}@{};transport=tcp>", number.digits(), self.cfg.local),
        }
    }

    /// Why a new subscription from `source` to `number` is refused, if it is.
    fn admit(&mut self, source: SocketAddr, number: Number, now: u64) -> Option<&'static str> {
        let ip = source.ip();
        if self.subs.len() >= self.cfg.max_subscriptions {
            return Some("too many subscriptions in all");
        }
        if self.per_ip.get(&ip).copied().unwrap_or(0) >= self.cfg.max_subscriptions_per_ip {
            return Some("too many subscriptions from this address");
        }
        if self.entries.get(&number).map_or(0, |e| e.watchers.len()) >= self.cfg.max_subscriptions_per_presentity {
            return Some("too many subscriptions to this number");
        }
        let cap = self.cfg.subscribe_burst_per_ip.max(1) as u64 * 1000;
        let rate = self.cfg.subscribe_rate_per_ip as u64;
        if self.buckets.len() >= MAX_BUCKETS && !self.buckets.contains_key(&ip) {
            // Forget addresses whose allowance has refilled: same as new.
            self.buckets
                .retain(|_, b| b.milli + now.saturating_sub(b.at).saturating_mul(rate) < cap);
        }
        let b = self.buckets.entry(ip).or_insert(Bucket { milli: cap, at: now });
        b.milli = (b.milli + now.saturating_sub(b.at).saturating_mul(rate)).min(cap);
        b.at = now.max(b.at);
        if b.milli < 1000 {
            return Some("subscribing too fast");
        }
        b.milli -= 1000;
        None
    }

    /// Ends a subscription: a final NOTIFY (terminated;reason=…), after
    /// whose answer it is forgotten.
    pub(crate) fn terminate(&mut self, id: u64, reason: &'static str, now: u64) {
        let Some(sub) = self.subs.get_mut(&id) else { return };
        if sub.terminating.is_none() {
            sub.terminating = Some(reason);
            self.notify(id, now, true);
        }
    }

    /// Notifies every watcher of `number` whose view changed. The two
    /// possible bodies (the real state, "offline") are encoded once.
    pub(crate) fn notify_watchers(&mut self, number: Number, now: u64) {
        let Some(e) = self.entries.get(&number) else { return };
        let ids: Vec<u64> = e.watchers.iter().copied().collect();
        let mut cache: [Option<(Presence, Vec<u8>)>; 2] = [None, None];
        for id in ids {
            self.notify_with(id, now, false, &mut cache);
        }
    }

    pub(crate) fn notify(&mut self, id: u64, now: u64, force: bool) {
        self.notify_with(id, now, force, &mut [None, None]);
    }

    /// Sends the subscription's NOTIFY if its view changed (or `force`),
    /// or marks it dirty while another NOTIFY is in flight.
    fn notify_with(&mut self, id: u64, now: u64, force: bool, cache: &mut [Option<(Presence, Vec<u8>)>; 2]) {
        let Some(sub) = self.subs.get(&id) else { return };
        let entity = self.entity(sub.presentity);
        let (p, allowed) = match self.entries.get(&sub.presentity) {
            Some(e) => (view(sub.presentity, e, sub.watcher), e.policy.allows(sub.presentity, sub.watcher)),
            None => (Presence::offline(now / 1000), false),
        };
        let sub = self.subs.get_mut(&id).expect("looked up above");
        if sub.pending.is_some() {
            sub.dirty |= force || sub.last.as_ref() != Some(&p);
            return;
        }
        if !force && sub.terminating.is_none() && sub.last.as_ref() == Some(&p) {
            return;
        }
        let slot = &mut cache[usize::from(allowed)];
        let body = match slot {
            Some((cached, body)) if *cached == p => body.clone(),
            _ => {
                let body = pidf::encode(&entity, &p);
                *slot = Some((p.clone(), body.clone()));
                body
            }
        };
        sub.dirty = false;
        sub.cseq += 1;
        let state = match sub.terminating {
            Some(reason) => format!("terminated;reason={reason}"),
            None => format!("active;expires={}", sub.expires_at.saturating_sub(now).div_ceil(1000)),
        };
        let mut m = crate::sip_util::request("NOTIFY", &sub.target);
        let proto = if sub.transport == Transport::Tcp { "TCP" } else { "UDP" };
        m.push("Via", format!("SIP/2.0/{proto} {};branch={};rport", self.cfg.local, branch()));
        m.push("Max-Forwards", "70");
        m.push("From", sub.local_hdr.clone());
        m.push("To", sub.remote_hdr.clone());
        m.push("Call-ID", sub.call_id.clone());
        m.push("CSeq", format!("{} NOTIFY", sub.cseq));
        let contact = match sub.transport {
            Transport::Udp => format!("<sip:{}@{}>", sub.presentity.digits(), self.cfg.local),
            Transport::Tcp => format!("<sip:{}@{};transport=tcp>", sub.presentity.digits(), self.cfg.local),
        };
        m.push("Contact", contact);
        m.push(
            "Event",
            match &sub.event_id {
                Some(i) => format!("presence;id={i}"),
                None => "presence".into(),
            },
        );
        m.push("Subscription-State", state);
        m.push("Content-Type", pidf::CONTENT_TYPE);
        m.push("Server", self.cfg.server_name.clone());
        m.body = body;
        let data = m.to_bytes();
        sub.last = Some(p);
        self.out.push_back(Transmit {
            to: sub.dest,
            transport: sub.transport,
            data: data.clone(),
        });
        // Over TCP the transport retransmits: only Timer F runs.
        let next = if sub.transport == Transport::Udp { now + T1 } else { u64::MAX };
        let deadline = now + NOTIFY_TIMEOUT;
        let cseq = sub.cseq;
        sub.pending = Some(Pending {
            data,
            cseq,
            next,
            interval: T1,
            deadline,
        });
        self.schedule(next.min(deadline), Timer::Notify(id, cseq));
    }

    /// A response to one of our NOTIFYs. Returns whether it was ours.
    pub fn handle_response(&mut self, msg: &Message, now_ms: u64) -> bool {
        let Some(code) = status(msg) else { return false };
        let Some((cseq, "NOTIFY")) = cseq_of(msg) else { return false };
        let key = (
            msg.header("Call-ID").unwrap_or_default().to_string(),
            tag_of(msg.header("To")).unwrap_or_default(),
        );
        let Some(&id) = self.dialogs.get(&key) else { return false };
        let sub = self.subs.get_mut(&id).expect("dialog index points at a live subscription");
        if sub.pending.as_ref().is_none_or(|p| p.cseq != cseq) || tag_of(msg.header("From")).as_deref() != Some(&sub.local_tag) {
            return false;
        }
        if code < 200 {
            return true;
        }
        sub.pending = None;
        if !(200..300).contains(&code) {
            // RFC 6665 4.2.2: 481 (and any other failure) ends the subscription.
            tracing::debug!(code, call_id = %sub.call_id, "NOTIFY refused; subscription dropped");
            self.remove_sub(id);
            return true;
        }
        if sub.terminating.is_some() && !sub.dirty {
            self.remove_sub(id);
        } else if sub.dirty {
            self.notify(id, now_ms, true);
        }
        true
    }

    pub(crate) fn notify_timer(&mut self, id: u64, cseq: u32, now: u64) {
        let Some(sub) = self.subs.get_mut(&id) else { return };
        let Some(p) = sub.pending.as_mut().filter(|p| p.cseq == cseq) else {
            return;
        };
        if p.deadline <= now {
            tracing::debug!(call_id = %sub.call_id, "NOTIFY unanswered (Timer F); subscription dropped");
            self.remove_sub(id);
            return;
        }
        if p.next <= now {
            self.out.push_back(Transmit {
                to: sub.dest,
                transport: sub.transport,
                data: p.data.clone(),
            });
            p.interval = (p.interval * 2).min(T2);
            p.next = now + p.interval;
        }
        let at = p.next.min(p.deadline);
        self.schedule(at, Timer::Notify(id, cseq));
    }

    pub(crate) fn sub_expiry(&mut self, id: u64, now: u64) {
        if self.subs.get(&id).is_some_and(|s| s.expires_at <= now) {
            self.terminate(id, "timeout", now);
        }
    }

    pub(crate) fn remove_sub(&mut self, id: u64) {
        let Some(sub) = self.subs.remove(&id) else { return };
        self.dialogs.remove(&(sub.call_id, sub.remote_tag));
        let ip = sub.counted_ip;
        if let Some(n) = self.per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&ip);
            }
        }
        if let Some(e) = self.entries.get_mut(&sub.presentity) {
            e.watchers.remove(&id);
        }
    }
}

fn contact_uri(msg: &Message) -> Option<String> {
    let c = msg.header_values("Contact").into_iter().next()?;
    let uri = NameAddr::parse(c).ok()?.uri;
    (uri.starts_with("sip:") || uri.starts_with("sips:")).then(|| uri.to_string())
}
