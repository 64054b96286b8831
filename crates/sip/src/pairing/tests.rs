use super::*;
use crate::call::CallEvent;

const C: &str = "127.0.0.1:5060";
const TA: &str = "127.0.0.1:5071";
const TB: &str = "127.0.0.1:5072";
const OFFER: &[u8] = b"v=0\r\no=a 1 1 IN IP4 127.0.0.1\r\nm=audio 4000 RTP/AVP 0\r\n";
const ANSWER: &[u8] = b"v=0\r\no=b 1 1 IN IP4 127.0.0.1\r\nm=audio 5000 RTP/AVP 0\r\n";

fn local(addr: &str, user: &str) -> Local {
    Local {
        uri: format!("sip:{user}@{addr}"),
        addr: addr.parse().unwrap(),
        user_agent: "test".into(),
    }
}

/// The controller and the two talkers (each a real callee-side `Call`),
/// with every datagram they send and the ACK bodies the talkers got.
struct World {
    p: Pairing,
    ta: Option<Call>,
    tb: Option<Call>,
    acks_to_a: Vec<Vec<u8>>,
    /// Datagrams to drop (to simulate a silent talker), by destination.
    silent: Vec<SocketAddr>,
}

impl World {
    fn new(now: u64) -> World {
        let p = Pairing::start(
            local(C, "controller"),
            Leg {
                uri: format!("sip:alice@{TA}"),
                next_hop: TA.parse().unwrap(),
            },
            Leg {
                uri: format!("sip:bob@{TB}"),
                next_hop: TB.parse().unwrap(),
            },
            Timeouts::default(),
            now,
        );
        World {
            p,
            ta: None,
            tb: None,
            acks_to_a: Vec::new(),
            silent: Vec::new(),
        }
    }

    /// Delivers everything in flight until nothing moves.
    fn run(&mut self, now: u64) {
        for _ in 0..20 {
            let mut moved = false;
            while let Some(t) = self.p.poll_transmit() {
                moved = true;
                if self.silent.contains(&t.to) {
                    continue;
                }
                let (slot, addr, user) = if t.to == TA.parse().unwrap() {
                    (&mut self.ta, TA, "alice")
                } else {
                    (&mut self.tb, TB, "bob")
                };
                let msg = Message::parse(&t.data).unwrap();
                if addr == TA && msg.method() == Some("ACK") && !msg.body.is_empty() {
                    self.acks_to_a.push(msg.body.clone());
                }
                match slot {
                    Some(c) if c.call_id() == msg.header("Call-ID").unwrap() => c.handle(&msg, C.parse().unwrap(), now),
                    _ if msg.method() == Some("INVITE") => {
                        *slot = Some(Call::incoming(local(addr, user), &t.data, C.parse().unwrap(), now).unwrap())
                    }
                    _ => {}
                }
            }
            for (slot, addr) in [(&mut self.ta, TA), (&mut self.tb, TB)] {
                if let Some(c) = slot.as_mut() {
                    while let Some(t) = c.poll_transmit() {
                        moved = true;
                        self.p.handle(&Message::parse(&t.data).unwrap(), addr.parse().unwrap(), now);
                    }
                }
            }
            if !moved {
                return;
            }
        }
        panic!("messages never settled");
    }

    fn progress(&mut self) -> Vec<Progress> {
        std::iter::from_fn(|| self.p.poll_progress()).collect()
    }

    fn a(&mut self) -> &mut Call {
        self.ta.as_mut().unwrap()
    }

    fn b(&mut self) -> &mut Call {
        self.tb.as_mut().unwrap()
    }

    /// Runs the clock in 500 ms steps up to `until`.
    fn tick(&mut self, from: u64, until: u64) {
        let mut now = from;
        while now <= until {
            if self.p.poll_timeout().is_some_and(|t| t <= now) {
                self.p.handle_timeout(now);
            }
            for c in [self.ta.as_mut(), self.tb.as_mut()].into_iter().flatten() {
                if c.poll_timeout().is_some_and(|t| t <= now) {
                    c.handle_timeout(now);
                }
            }
            self.run(now);
            now += 500;
        }
    }

    fn ended(c: &mut Call) -> bool {
        std::iter::from_fn(|| c.poll_event()).any(|e| matches!(e, CallEvent::Ended(_))) || c.state() == State::Ended
    }
}

/// Both talkers answer; the callee's answer reaches the first talker in
/// its ACK; either hanging up ends the other.
fn connect(w: &mut World) {
    w.run(0);
    assert!(w.a().remote_offer().is_empty(), "the first INVITE carries no offer");
    w.a().ring(0);
    w.a().answer(OFFER.to_vec(), 0);
    w.run(0);
    assert_eq!(w.b().remote_offer(), OFFER, "the callee gets the talker's offer");
    w.b().ring(0);
    w.run(0);
    w.b().answer(ANSWER.to_vec(), 0);
    w.run(0);
    assert_eq!(w.acks_to_a, vec![ANSWER.to_vec()]);
    assert_eq!(
        w.progress(),
        vec![
            Progress::CallingTalker,
            Progress::TalkerAnswered,
            Progress::CallingCallee,
            Progress::Ringing,
            Progress::Connected
        ]
    );
    assert!(w.p.is_connected());
}

#[test]
fn connects_the_two_talkers_and_either_bye_ends_both() {
    for callee_hangs_up in [false, true] {
        let mut w = World::new(0);
        connect(&mut w);
        if callee_hangs_up {
            w.b().hangup(10);
        } else {
            w.a().hangup(10);
        }
        w.run(10);
        let by = if callee_hangs_up { Side::Callee } else { Side::Talker };
        assert_eq!(w.progress(), vec![Progress::Ended { by: Some(by) }]);
        assert_eq!(w.a().state(), State::Ended);
        assert_eq!(w.b().state(), State::Ended);
        assert!(w.p.is_done());
    }
}

#[test]
fn a_failing_first_talker_ends_the_call_before_the_callee_is_called() {
    for (code, text) in [(486, "busy"), (603, "rejected: 603 Decline")] {
        let mut w = World::new(0);
        w.run(0);
        w.a().reject(code, if code == 486 { "Busy Here" } else { "Decline" }, 0);
        w.run(0);
        let p = w.progress();
        assert_eq!(p[0], Progress::CallingTalker);
        assert_eq!(
            p[1],
            Progress::Failed {
                side: Some(Side::Talker),
                reason: format!("your talker: {text}")
            }
        );
        assert!(w.tb.is_none(), "the callee was never called");
        assert!(w.p.poll_transmit().is_none());
    }
    // Rings and never answers: cancelled at the ring limit.
    let mut w = World::new(0);
    w.run(0);
    w.a().ring(0);
    w.run(0);
    w.tick(0, 46_000);
    assert!(w.progress().contains(&Progress::Failed {
        side: Some(Side::Talker),
        reason: "your talker: no answer".into()
    }));
    assert!(World::ended(w.a()), "the talker's ringing was cancelled");
    // Silent: Timer B.
    let mut w = World::new(0);
    w.silent.push(TA.parse().unwrap());
    w.tick(0, 40_000);
    assert!(matches!(
        w.progress().last(),
        Some(Progress::Failed {
            side: Some(Side::Talker),
            ..
        })
    ));
    w.tick(40_000, 80_000);
    assert!(w.p.is_done());
}

#[test]
fn a_failing_callee_releases_the_talker_that_answered() {
    for case in ["busy", "reject", "no-answer", "silent", "sdp"] {
        let mut w = World::new(0);
        w.run(0);
        w.a().answer(OFFER.to_vec(), 0);
        if case == "silent" {
            w.silent.push(TB.parse().unwrap());
        }
        w.run(0);
        match case {
            "busy" => w.b().reject(486, "Busy Here", 0),
            "reject" => w.b().reject(603, "Decline", 0),
            "sdp" => w.b().reject(488, "Not Acceptable Here", 0),
            "no-answer" => w.b().ring(0),
            _ => {}
        }
        w.run(0);
        w.tick(0, 31_000);
        let p = w.progress();
        let Some(Progress::Failed { side, reason }) = p.last() else {
            panic!("{case}: {p:?}")
        };
        assert_eq!(*side, Some(Side::Callee), "{case}");
        let want = match case {
            "busy" => "busy",
            "reject" => "603",
            "sdp" => "could not accept",
            // Silent: the ring limit (25 s) comes before Timer B (32 s).
            _ => "no answer",
        };
        assert!(reason.contains(want), "{case}: {reason}");
        // The talker that answered got its ACK and then a BYE.
        assert!(World::ended(w.a()), "{case}: the talker's leg is still up");
        if case == "no-answer" {
            assert!(World::ended(w.b()), "the callee's ringing was cancelled");
        }
        w.tick(31_000, 70_000);
        assert!(w.p.is_done(), "{case}: legs left hanging");
    }
}

#[test]
fn offers_and_answers_that_are_not_sdp_fail_both_legs() {
    // The talker's 200 has no offer.
    let mut w = World::new(0);
    w.run(0);
    w.a().answer(Vec::new(), 0);
    w.run(0);
    assert!(matches!(
        w.progress().last(),
        Some(Progress::Failed {
            side: Some(Side::Talker),
            ..
        })
    ));
    assert!(World::ended(w.a()));
    assert!(w.tb.is_none());
    // The callee's 200 has no answer.
    let mut w = World::new(0);
    w.run(0);
    w.a().answer(OFFER.to_vec(), 0);
    w.run(0);
    w.b().answer(b"hello".to_vec(), 0);
    w.run(0);
    assert!(matches!(
        w.progress().last(),
        Some(Progress::Failed {
            side: Some(Side::Callee),
            ..
        })
    ));
    assert!(World::ended(w.a()) && World::ended(w.b()));
    assert!(w.acks_to_a.is_empty(), "no answer was passed on");
}

#[test]
fn cancel_at_any_point_ends_every_leg() {
    for at in 0..3 {
        let mut w = World::new(0);
        w.run(0);
        w.a().ring(0);
        w.run(0);
        if at >= 1 {
            w.a().answer(OFFER.to_vec(), 0);
            w.run(0);
            w.b().ring(0);
            w.run(0);
        }
        if at >= 2 {
            w.b().answer(ANSWER.to_vec(), 0);
            w.run(0);
        }
        w.p.cancel(1);
        w.run(1);
        let want = if at == 2 {
            Progress::Ended { by: None }
        } else {
            Progress::Failed {
                side: None,
                reason: "cancelled".into(),
            }
        };
        assert_eq!(w.progress().last(), Some(&want));
        assert!(World::ended(w.a()), "{at}");
        if at >= 1 {
            assert!(World::ended(w.b()), "{at}");
        }
        w.tick(1, 40_000);
        assert!(w.p.is_done(), "{at}");
    }
}

#[test]
fn the_talker_hanging_up_while_the_callee_rings_cancels_the_callee() {
    let mut w = World::new(0);
    w.run(0);
    w.a().answer(OFFER.to_vec(), 0);
    w.run(0);
    w.b().ring(0);
    w.run(0);
    // The talker never got its ACK yet; it hangs up (BYE).
    w.a().hangup(1);
    w.run(1);
    assert_eq!(
        w.progress().last(),
        Some(&Progress::Failed {
            side: Some(Side::Talker),
            reason: "your talker hung up".into()
        })
    );
    assert!(World::ended(w.b()));
}
