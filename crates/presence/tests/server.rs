//! The presence server against hand-made SIP, with simulated time.

use std::net::SocketAddr;

use peerdial_number::Number;
use peerdial_presence::server::{Policy, PresenceServer, ServerConfig, WatcherAuth};
use peerdial_presence::{pidf, State, Transmit};
use peerdial_sip::message::{response, top_via, NameAddr};
use peerdial_sip::{Message, Transport};

const T0: u64 = 1_700_000_000_000;
const DOMAIN: &str = "2.0.6.8.8.peerdial.internal";

fn num(s: &str) -> Number {
    Number::parse(s).unwrap()
}

fn alice() -> Number {
    num("886-02-10000001")
}

fn server() -> PresenceServer {
    let mut s = PresenceServer::new(ServerConfig::new(DOMAIN, "127.0.0.1:5060".parse().unwrap()));
    s.add_number(alice(), T0);
    s.add_number(num("886-02-10000002"), T0);
    s
}

/// A watcher's side of one subscription, built by hand.
struct Sub {
    addr: SocketAddr,
    call_id: String,
    tag: String,
    to_tag: Option<String>,
    cseq: u32,
    target: Number,
}

impl Sub {
    fn new(port: u16, target: Number) -> Sub {
        Sub {
            addr: format!("127.0.0.1:{port}").parse().unwrap(),
            call_id: format!("call-{port}-{}", target.as_u64()),
            tag: format!("tag{port}"),
            to_tag: None,
            cseq: 0,
            target,
        }
    }

    fn request(&mut self, expires: Option<u32>, event: &str) -> Message {
        self.cseq += 1;
        let to_tag = self.to_tag.as_ref().map(|t| format!(";tag={t}")).unwrap_or_default();
        let expires = expires.map(|e| format!("Expires: {e}\r\n")).unwrap_or_default();
        let text = format!(
            "SUBSCRIBE sip:{d}@{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP {a};branch=z9hG4bK{c}{n};rport\r\nMax-Forwards: 70\r\n\
From: <sip:watcher@{a}>;tag={t}\r\nTo: <sip:{d}@{DOMAIN}>{to_tag}\r\nCall-ID: {c}\r\nCSeq: {n} SUBSCRIBE\r\n\
Contact: <sip:watcher@{a}>\r\nEvent: {event}\r\nAccept: application/pidf+xml\r\n{expires}Content-Length: 0\r\n\r\n",
            d = self.target.digits(),
            a = self.addr,
            c = self.call_id,
            t = self.tag,
            n = self.cseq,
        );
        Message::parse(text.as_bytes()).unwrap()
    }

    /// Sends a SUBSCRIBE and returns the answer; learns the To tag.
    fn send(&mut self, s: &mut PresenceServer, expires: Option<u32>, who: WatcherAuth, now: u64) -> Message {
        let req = self.request(expires, "presence");
        let t = s.handle_request(&req, self.addr, Transport::Udp, who, now).unwrap();
        assert_eq!(t.to, self.addr);
        let r = Message::parse(&t.data).unwrap();
        if code(&r) == 200 {
            self.to_tag = tag(r.header("To"));
        }
        r
    }
}

fn code(m: &Message) -> u16 {
    match &m.start {
        peerdial_sip::message::StartLine::Response { code, .. } => *code,
        _ => 0,
    }
}

fn tag(h: Option<&str>) -> Option<String> {
    NameAddr::parse(h?).ok()?.param("tag").flatten().map(str::to_string)
}

fn drain(s: &mut PresenceServer) -> Vec<Transmit> {
    std::iter::from_fn(|| s.poll_transmit()).collect()
}

/// The NOTIFYs in `out`, parsed, with their presence state.
fn notifies(out: &[Transmit]) -> Vec<(SocketAddr, Message, State)> {
    out.iter()
        .map(|t| {
            let m = Message::parse(&t.data).unwrap();
            assert_eq!(m.method(), Some("NOTIFY"));
            let st = pidf::decode(&m.body).unwrap().state;
            (t.to, m, st)
        })
        .collect()
}

/// Answers a NOTIFY as the watcher would.
fn answer(s: &mut PresenceServer, notify: &Message, from: SocketAddr, code: u16, now: u64) -> bool {
    let via = top_via(notify).unwrap();
    let r = response(notify, &via, from, code, "X", "watcher-tag-unused");
    s.handle_response(&Message::parse(&r.to_bytes()).unwrap(), now)
}

fn answer_all(s: &mut PresenceServer, now: u64) -> usize {
    let out = notifies(&drain(s));
    for (to, m, _) in &out {
        assert!(answer(s, m, *to, 200, now));
    }
    out.len()
}

#[test]
fn subscribe_gets_200_then_an_immediate_notify_and_changes_reach_every_watcher() {
    let mut s = server();
    let mut subs: Vec<Sub> = (0..3).map(|i| Sub::new(6000 + i, alice())).collect();
    let mut other = Sub::new(6100, num("886-02-10000002"));
    for sub in &mut subs {
        let r = sub.send(&mut s, Some(600), WatcherAuth::Anonymous, T0);
        assert_eq!(code(&r), 200);
        assert_eq!(r.header("Expires"), Some("600"));
        assert!(sub.to_tag.is_some());
        assert!(r.header("Contact").is_some());
        let n = notifies(&drain(&mut s));
        assert_eq!(n.len(), 1);
        let (to, m, st) = &n[0];
        assert_eq!((*to, *st), (sub.addr, State::Offline));
        assert_eq!(m.header("Subscription-State"), Some("active;expires=600"));
        assert_eq!(m.header("Event"), Some("presence"));
        assert_eq!(tag(m.header("From")), sub.to_tag);
        assert_eq!(tag(m.header("To")).as_deref(), Some(sub.tag.as_str()));
        assert_eq!(m.header("Content-Type"), Some("application/pidf+xml"));
        assert!(answer(&mut s, m, *to, 200, T0));
    }
    other.send(&mut s, None, WatcherAuth::Anonymous, T0);
    answer_all(&mut s, T0);
    assert_eq!(s.subscription_count(), 4);

    s.set_reachable(alice(), true, T0 + 1000);
    let ev = s.poll_event().unwrap();
    assert_eq!(
        (ev.number, ev.presence.state, ev.presence.since),
        (alice(), State::Online, (T0 + 1000) / 1000)
    );
    let n = notifies(&drain(&mut s));
    let mut to: Vec<_> = n.iter().map(|(a, _, st)| (a.port(), st.as_str())).collect();
    to.sort();
    assert_eq!(to, vec![(6000, "online"), (6001, "online"), (6002, "online")]);
    for (a, m, _) in &n {
        assert!(answer(&mut s, m, *a, 200, T0 + 1000));
    }
    // The same state again changes nothing and sends nothing.
    s.set_reachable(alice(), true, T0 + 2000);
    assert!(drain(&mut s).is_empty() && s.poll_event().is_none());
    // In a call → on the phone, for every watcher.
    s.set_in_call(alice(), true, T0 + 3000);
    let n = notifies(&drain(&mut s));
    assert_eq!(n.len(), 3);
    assert!(n.iter().all(|(_, _, st)| *st == State::OnThePhone));
    assert_eq!(s.presence(alice()).unwrap().state, State::OnThePhone);
}

#[test]
fn unknown_event_unknown_number_and_unknown_dialog() {
    let mut s = server();
    let mut sub = Sub::new(6000, alice());
    let req = sub.request(None, "dialog");
    let r = Message::parse(
        &s.handle_request(&req, sub.addr, Transport::Udp, WatcherAuth::Anonymous, T0)
            .unwrap()
            .data,
    )
    .unwrap();
    assert_eq!(code(&r), 489);
    assert_eq!(r.header("Allow-Events"), Some("presence"));

    let mut nobody = Sub::new(6001, num("886-02-99999999"));
    assert_eq!(code(&nobody.send(&mut s, None, WatcherAuth::Anonymous, T0)), 404);

    let mut stale = Sub::new(6002, alice());
    stale.to_tag = Some("nosuchtag".into());
    assert_eq!(code(&stale.send(&mut s, None, WatcherAuth::Anonymous, T0)), 481);
    assert_eq!(s.subscription_count(), 0);
    assert!(drain(&mut s).is_empty());
}

#[test]
fn expires_is_clamped() {
    let mut s = server();
    for (asked, granted) in [(Some(1), "60"), (Some(4_000_000_000), "3600"), (None, "3600"), (Some(1800), "1800")] {
        let mut sub = Sub::new(6000, alice());
        sub.call_id = format!("c{asked:?}");
        let r = sub.send(&mut s, asked, WatcherAuth::Anonymous, T0);
        assert_eq!(r.header("Expires"), Some(granted));
    }
    let mut huge = Sub::new(6001, alice());
    let req = huge.request(None, "presence");
    let text = String::from_utf8(req.to_bytes())
        .unwrap()
        .replace("Event: presence", "Event: presence\r\nExpires: 99999999999999999999999");
    let r = s
        .handle(text.as_bytes(), huge.addr, Transport::Udp, WatcherAuth::Anonymous, T0)
        .unwrap();
    assert_eq!(Message::parse(&r.data).unwrap().header("Expires"), Some("3600"));
}

#[test]
fn refresh_extends_and_expiry_terminates() {
    let mut s = server();
    let mut sub = Sub::new(6000, alice());
    sub.send(&mut s, Some(100), WatcherAuth::Anonymous, T0);
    answer_all(&mut s, T0);
    // Refresh within the dialog at 90 s: 200 and a NOTIFY.
    let r = sub.send(&mut s, Some(100), WatcherAuth::Anonymous, T0 + 90_000);
    assert_eq!((code(&r), r.header("Expires")), (200, Some("100")));
    let n = notifies(&drain(&mut s));
    assert_eq!(n[0].1.header("Subscription-State"), Some("active;expires=100"));
    answer(&mut s, &n[0].1, sub.addr, 200, T0 + 90_000);
    // The first expiry passes unnoticed.
    s.handle_timeout(T0 + 100_000);
    assert!(drain(&mut s).is_empty());
    // The refreshed one ends it.
    let mut now = T0 + 90_000;
    while now < T0 + 190_000 {
        now = s.poll_timeout().unwrap();
        s.handle_timeout(now);
    }
    let n = notifies(&drain(&mut s));
    assert_eq!(n.len(), 1);
    assert_eq!(n[0].1.header("Subscription-State"), Some("terminated;reason=timeout"));
    assert_eq!(s.subscription_count(), 1, "kept until the final NOTIFY is answered");
    answer(&mut s, &n[0].1, sub.addr, 200, now);
    assert_eq!(s.subscription_count(), 0);
    // A refresh after the end is refused.
    assert_eq!(code(&sub.send(&mut s, Some(100), WatcherAuth::Anonymous, now)), 481);
}

#[test]
fn unsubscribe_and_fetch() {
    let mut s = server();
    let mut sub = Sub::new(6000, alice());
    sub.send(&mut s, None, WatcherAuth::Anonymous, T0);
    answer_all(&mut s, T0);
    let r = sub.send(&mut s, Some(0), WatcherAuth::Anonymous, T0 + 5);
    assert_eq!((code(&r), r.header("Expires")), (200, Some("0")));
    let n = notifies(&drain(&mut s));
    assert_eq!(n[0].1.header("Subscription-State"), Some("terminated;reason=timeout"));
    answer(&mut s, &n[0].1, sub.addr, 200, T0 + 5);
    assert_eq!((s.subscription_count(), s.watcher_count(alice())), (0, 0));

    // A fetch: Expires 0 on a new subscription gives the state once.
    s.set_reachable(alice(), true, T0 + 10);
    let mut fetch = Sub::new(6001, alice());
    let r = fetch.send(&mut s, Some(0), WatcherAuth::Anonymous, T0 + 20);
    assert_eq!(code(&r), 200);
    let n = notifies(&drain(&mut s));
    assert_eq!((n.len(), n[0].2), (1, State::Online));
    assert_eq!(n[0].1.header("Subscription-State"), Some("terminated;reason=timeout"));
    answer(&mut s, &n[0].1, fetch.addr, 200, T0 + 20);
    assert_eq!(s.subscription_count(), 0);
}

#[test]
fn a_retransmitted_subscribe_creates_nothing_new() {
    let mut s = server();
    let mut sub = Sub::new(6000, alice());
    let req = sub.request(None, "presence");
    let a = s
        .handle_request(&req, sub.addr, Transport::Udp, WatcherAuth::Anonymous, T0)
        .unwrap();
    let b = s
        .handle_request(&req, sub.addr, Transport::Udp, WatcherAuth::Anonymous, T0 + 500)
        .unwrap();
    let tag_a = tag(Message::parse(&a.data).unwrap().header("To"));
    assert_eq!(tag_a, tag(Message::parse(&b.data).unwrap().header("To")));
    assert_eq!(s.subscription_count(), 1);
    assert_eq!(notifies(&drain(&mut s)).len(), 1);
}

#[test]
fn notify_is_retransmitted_on_udp_then_the_subscription_is_dropped() {
    let mut s = server();
    let mut sub = Sub::new(6000, alice());
    sub.send(&mut s, None, WatcherAuth::Anonymous, T0);
    assert_eq!(drain(&mut s).len(), 1);
    let mut times = Vec::new();
    while s.subscription_count() == 1 {
        let t = s.poll_timeout().unwrap();
        s.handle_timeout(t);
        for _ in drain(&mut s) {
            times.push(t - T0);
        }
    }
    // Timer E: 500 ms doubling to 4 s; Timer F: given up at 32 s.
    assert_eq!(&times[..5], &[500, 1500, 3500, 7500, 11_500]);
    assert!(times.iter().all(|t| *t < 32_000));
    assert_eq!(s.watcher_count(alice()), 0);
}

#[test]
fn notify_over_tcp_is_not_retransmitted() {
    let mut s = server();
    let mut sub = Sub::new(6000, alice());
    let req = sub.request(None, "presence");
    s.handle_request(&req, sub.addr, Transport::Tcp, WatcherAuth::Anonymous, T0)
        .unwrap();
    let out = drain(&mut s);
    assert_eq!(out[0].transport, Transport::Tcp);
    assert!(String::from_utf8_lossy(&out[0].data).contains("SIP/2.0/TCP"));
    s.handle_timeout(T0 + 31_000);
    assert!(drain(&mut s).is_empty());
    s.handle_timeout(T0 + 32_000);
    assert_eq!(s.subscription_count(), 0);
}

#[test]
fn a_481_to_notify_drops_the_subscription() {
    let mut s = server();
    let mut sub = Sub::new(6000, alice());
    sub.send(&mut s, None, WatcherAuth::Anonymous, T0);
    let n = notifies(&drain(&mut s));
    assert!(answer(&mut s, &n[0].1, sub.addr, 481, T0));
    assert_eq!(s.subscription_count(), 0);
    s.set_reachable(alice(), true, T0 + 1);
    assert!(drain(&mut s).is_empty());
}

#[test]
fn one_notify_in_flight_and_the_latest_state_follows() {
    let mut s = server();
    let mut sub = Sub::new(6000, alice());
    sub.send(&mut s, None, WatcherAuth::Anonymous, T0);
    let first = notifies(&drain(&mut s));
    s.set_reachable(alice(), true, T0 + 10);
    s.set_in_call(alice(), true, T0 + 20);
    assert!(drain(&mut s).is_empty(), "waits for the answer to the first NOTIFY");
    answer(&mut s, &first[0].1, sub.addr, 200, T0 + 30);
    let n = notifies(&drain(&mut s));
    assert_eq!((n.len(), n[0].2), (1, State::OnThePhone));
    // CSeq grows within the dialog.
    assert_eq!(n[0].1.header("CSeq"), Some("2 NOTIFY"));
}

fn publish(
    s: &mut PresenceServer,
    who: WatcherAuth,
    body: Option<&[u8]>,
    if_match: Option<&str>,
    expires: Option<u32>,
    now: u64,
) -> Message {
    let addr: SocketAddr = "127.0.0.1:7000".parse().unwrap();
    let mut text = format!(
        "PUBLISH sip:{d}@{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP {addr};branch=z9hG4bKp{now}\r\nMax-Forwards: 70\r\n\
From: <sip:{d}@{DOMAIN}>;tag=p\r\nTo: <sip:{d}@{DOMAIN}>\r\nCall-ID: pub{now}\r\nCSeq: 1 PUBLISH\r\nEvent: presence\r\n",
        d = alice().digits()
    );
    if let Some(e) = expires {
        text.push_str(&format!("Expires: {e}\r\n"));
    }
    if let Some(m) = if_match {
        text.push_str(&format!("SIP-If-Match: {m}\r\n"));
    }
    let mut data = text.into_bytes();
    match body {
        Some(b) => {
            data.extend_from_slice(format!("Content-Type: application/pidf+xml\r\nContent-Length: {}\r\n\r\n", b.len()).as_bytes());
            data.extend_from_slice(b);
        }
        None => data.extend_from_slice(b"Content-Length: 0\r\n\r\n"),
    }
    Message::parse(&s.handle(&data, addr, Transport::Udp, who, now).unwrap().data).unwrap()
}

fn pidf_of(state: State) -> Vec<u8> {
    pidf::encode(
        "sip:x@y",
        &peerdial_presence::Presence {
            state,
            since: 0,
            note: Some("at lunch".into()),
        },
    )
}

#[test]
fn publish_refresh_modify_412_expiry_and_removal() {
    let mut s = server();
    let me = WatcherAuth::Authenticated(alice());
    s.set_reachable(alice(), true, T0);
    let _ = s.poll_event();
    let meeting = pidf_of(State::Meeting);
    // Only the number itself may publish.
    assert_eq!(code(&publish(&mut s, WatcherAuth::Anonymous, Some(&meeting), None, None, T0)), 403);
    let other = WatcherAuth::Authenticated(num("886-02-10000002"));
    assert_eq!(code(&publish(&mut s, other, Some(&meeting), None, None, T0)), 403);
    assert_eq!(s.presence(alice()).unwrap().state, State::Online);

    let r = publish(&mut s, me, Some(&meeting), None, Some(120), T0);
    assert_eq!((code(&r), r.header("Expires")), (200, Some("120")));
    let etag = r.header("SIP-ETag").unwrap().to_string();
    let p = s.presence(alice()).unwrap();
    assert_eq!((p.state, p.note.as_deref()), (State::Meeting, Some("at lunch")));
    assert_eq!(s.poll_event().unwrap().presence.state, State::Meeting);

    // Refresh: no body, the entity tag; a new tag comes back.
    let r = publish(&mut s, me, None, Some(&etag), Some(120), T0 + 100_000);
    assert_eq!(code(&r), 200);
    let etag2 = r.header("SIP-ETag").unwrap().to_string();
    assert_ne!(etag, etag2);
    assert_eq!(code(&publish(&mut s, me, None, Some(&etag), Some(120), T0 + 100_000)), 412);
    assert_eq!(code(&publish(&mut s, me, None, None, Some(120), T0 + 100_000)), 400);
    // Malformed PIDF: 400, and nothing changes.
    assert_eq!(
        code(&publish(&mut s, me, Some(b"<presence><tuple>"), Some(&etag2), None, T0 + 100_000)),
        400
    );
    assert_eq!(s.presence(alice()).unwrap().state, State::Meeting);
    // The old expiry passes; the refreshed one ends the publication.
    s.handle_timeout(T0 + 130_000);
    assert_eq!(s.presence(alice()).unwrap().state, State::Meeting);
    s.handle_timeout(T0 + 220_000);
    assert_eq!(s.presence(alice()).unwrap().state, State::Online);
    assert_eq!(s.published(alice()), None);

    // Modify, then remove with Expires 0.
    let r = publish(&mut s, me, Some(&pidf_of(State::Dnd)), None, None, T0 + 300_000);
    assert_eq!(r.header("Expires"), Some("3600"));
    let etag = r.header("SIP-ETag").unwrap().to_string();
    assert_eq!(s.presence(alice()).unwrap().state, State::Dnd);
    let r = publish(&mut s, me, Some(&pidf_of(State::OnThePhone)), Some(&etag), None, T0 + 301_000);
    let etag = r.header("SIP-ETag").unwrap().to_string();
    assert_eq!(s.presence(alice()).unwrap().state, State::OnThePhone);
    let r = publish(&mut s, me, None, Some(&etag), Some(0), T0 + 302_000);
    assert_eq!(code(&r), 200);
    assert_eq!(s.presence(alice()).unwrap().state, State::Online);
    // A published state shows only while the phone is reachable.
    publish(&mut s, me, Some(&meeting), None, None, T0 + 303_000);
    s.set_reachable(alice(), false, T0 + 304_000);
    assert_eq!(
        s.presence(alice()).unwrap(),
        peerdial_presence::Presence::offline((T0 + 304_000) / 1000)
    );
}

#[test]
fn friends_only_shows_offline_to_others_and_a_policy_change_renotifies() {
    let mut s = server();
    let friend = num("886-02-10000002");
    s.set_reachable(alice(), true, T0);
    let mut anon = Sub::new(6000, alice());
    let mut pal = Sub::new(6001, alice());
    anon.send(&mut s, None, WatcherAuth::Anonymous, T0);
    pal.send(&mut s, None, WatcherAuth::Authenticated(friend), T0);
    answer_all(&mut s, T0);

    s.set_policy(alice(), Policy::FriendsOnly([friend].into()), T0 + 1000);
    let n = notifies(&drain(&mut s));
    assert_eq!(n.len(), 1, "only the anonymous watcher's view changed");
    assert_eq!((n[0].0, n[0].2), (anon.addr, State::Offline));
    answer(&mut s, &n[0].1, anon.addr, 200, T0 + 1000);

    // A change: the friend sees it, the stranger still sees offline (no NOTIFY).
    s.set_in_call(alice(), true, T0 + 2000);
    let n = notifies(&drain(&mut s));
    assert_eq!(n.len(), 1);
    assert_eq!((n[0].0, n[0].2), (pal.addr, State::OnThePhone));
    assert_eq!(s.presence_for(alice(), WatcherAuth::Anonymous).unwrap().state, State::Offline);
    assert_eq!(
        s.presence_for(alice(), WatcherAuth::Authenticated(friend)).unwrap().state,
        State::OnThePhone
    );
    assert_eq!(
        s.presence_for(alice(), WatcherAuth::Authenticated(alice())).unwrap().state,
        State::OnThePhone
    );
    // What an unauthorised watcher sees does not even reveal when things change.
    let hidden = s.presence_for(alice(), WatcherAuth::Anonymous).unwrap();
    assert_eq!(hidden.since, T0 / 1000);

    s.set_policy(alice(), Policy::Everyone, T0 + 3000);
    let n = notifies(&drain(&mut s));
    assert!(n.iter().any(|(a, _, st)| *a == anon.addr && *st == State::OnThePhone));
}

#[test]
fn subscription_floods_are_refused_with_503() {
    let mut cfg = ServerConfig::new(DOMAIN, "127.0.0.1:5060".parse().unwrap());
    cfg.max_subscriptions_per_ip = 5;
    cfg.subscribe_burst_per_ip = 1000;
    let mut s = PresenceServer::new(cfg);
    s.add_number(alice(), T0);
    let mut codes = Vec::new();
    for i in 0..7 {
        let mut sub = Sub::new(6000 + i, alice());
        let r = sub.send(&mut s, None, WatcherAuth::Anonymous, T0);
        codes.push(code(&r));
        if code(&r) == 503 {
            assert_eq!(r.header("Retry-After"), Some("30"));
        }
    }
    assert_eq!(codes, vec![200, 200, 200, 200, 200, 503, 503]);
    assert_eq!(s.subscription_count(), 5);

    // The rate of new SUBSCRIBEs from one address: a burst, then the rate.
    let mut cfg = ServerConfig::new(DOMAIN, "127.0.0.1:5060".parse().unwrap());
    cfg.subscribe_burst_per_ip = 3;
    cfg.subscribe_rate_per_ip = 2;
    let mut s = PresenceServer::new(cfg);
    s.add_number(alice(), T0);
    let ok = |s: &mut PresenceServer, i: u16, now| code(&Sub::new(7000 + i, alice()).send(s, None, WatcherAuth::Anonymous, now)) == 200;
    assert!((0..3).all(|i| ok(&mut s, i, T0)));
    assert!(!ok(&mut s, 3, T0));
    assert!(ok(&mut s, 4, T0 + 500), "one more after half a second at 2/s");
    assert!(!ok(&mut s, 5, T0 + 500));

    // And the number of subscriptions in all.
    let mut cfg = ServerConfig::new(DOMAIN, "127.0.0.1:5060".parse().unwrap());
    cfg.max_subscriptions = 2;
    let mut s = PresenceServer::new(cfg);
    s.add_number(alice(), T0);
    s.add_number(num("886-02-10000002"), T0);
    let mut subs = [
        Sub::new(9000, alice()),
        Sub::new(9001, num("886-02-10000002")),
        Sub::new(9002, alice()),
    ];
    let codes: Vec<u16> = subs
        .iter_mut()
        .map(|x| code(&x.send(&mut s, None, WatcherAuth::Anonymous, T0)))
        .collect();
    assert_eq!(codes, vec![200, 200, 503]);

    // And the number of watchers of one number.
    let mut cfg = ServerConfig::new(DOMAIN, "127.0.0.1:5060".parse().unwrap());
    cfg.max_subscriptions_per_presentity = 2;
    let mut s = PresenceServer::new(cfg);
    s.add_number(alice(), T0);
    let codes: Vec<u16> = (0..3)
        .map(|i| code(&Sub::new(8000 + i, alice()).send(&mut s, None, WatcherAuth::Anonymous, T0)))
        .collect();
    assert_eq!(codes, vec![200, 200, 503]);
}

#[test]
fn removing_a_number_ends_its_subscriptions() {
    let mut s = server();
    let mut sub = Sub::new(6000, alice());
    sub.send(&mut s, None, WatcherAuth::Anonymous, T0);
    answer_all(&mut s, T0);
    s.remove_number(alice(), T0 + 1);
    let n = notifies(&drain(&mut s));
    assert_eq!(n[0].1.header("Subscription-State"), Some("terminated;reason=noresource"));
    answer(&mut s, &n[0].1, sub.addr, 200, T0 + 2);
    assert_eq!(s.subscription_count(), 0);
    assert!(s.presence(alice()).is_none());
}

#[test]
fn other_methods_and_bad_requests() {
    let mut s = server();
    let src: SocketAddr = "127.0.0.1:6000".parse().unwrap();
    let opt = b"OPTIONS sip:x@y SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:6000;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:x@y>\r\nCall-ID: 1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    let r = Message::parse(&s.handle(opt, src, Transport::Udp, WatcherAuth::Anonymous, T0).unwrap().data).unwrap();
    assert_eq!(code(&r), 405);
    let bad = b"SUBSCRIBE sip:x@y SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:6000;branch=z9hG4bK1\r\nContent-Length: 0\r\n\r\n";
    let r = Message::parse(&s.handle(bad, src, Transport::Udp, WatcherAuth::Anonymous, T0).unwrap().data).unwrap();
    assert_eq!(code(&r), 400);
    assert!(s.handle(b"garbage", src, Transport::Udp, WatcherAuth::Anonymous, T0).is_none());
    assert_eq!(s.subscription_count(), 0);
}
