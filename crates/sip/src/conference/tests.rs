use super::*;

const C: &str = "127.0.0.1:5060";
const T: [&str; 4] = ["127.0.0.1:5071", "127.0.0.1:5072", "127.0.0.1:5073", "127.0.0.1:5074"];

fn local(addr: &str, user: &str) -> Local {
    Local {
        uri: format!("sip:{user}@{addr}"),
        addr: addr.parse().unwrap(),
        user_agent: "test".into(),
    }
}

/// The conference and its talkers (real callee-side `Call`s).
struct World {
    c: Conference,
    talkers: Vec<Option<Call>>,
}

impl World {
    fn new(n: usize) -> World {
        let mut c = Conference::new(local(C, "mixer"), 30_000);
        for (i, addr) in T.iter().take(n).enumerate() {
            let leg = Leg {
                uri: format!("sip:t{i}@{addr}"),
                next_hop: addr.parse().unwrap(),
            };
            assert_eq!(c.add(&format!("t{i}"), &leg, format!("v=0 offer {i}").into_bytes(), 0), Some(i));
        }
        World {
            c,
            talkers: (0..T.len()).map(|_| None).collect(),
        }
    }

    fn run(&mut self, now: u64) {
        for _ in 0..20 {
            let mut moved = false;
            while let Some(t) = self.c.poll_transmit() {
                moved = true;
                let i = T.iter().position(|a| a.parse::<SocketAddr>().unwrap() == t.to).unwrap();
                let msg = Message::parse(&t.data).unwrap();
                match &mut self.talkers[i] {
                    Some(c) if c.call_id() == msg.header("Call-ID").unwrap() => c.handle(&msg, C.parse().unwrap(), now),
                    slot if msg.method() == Some("INVITE") => {
                        *slot = Some(Call::incoming(local(T[i], "t"), &t.data, C.parse().unwrap(), now).unwrap())
                    }
                    _ => {}
                }
            }
            for (i, slot) in self.talkers.iter_mut().enumerate() {
                if let Some(c) = slot.as_mut() {
                    while let Some(t) = c.poll_transmit() {
                        moved = true;
                        self.c.handle(&Message::parse(&t.data).unwrap(), T[i].parse().unwrap(), now);
                    }
                }
            }
            if !moved {
                return;
            }
        }
        panic!("messages never settled");
    }

    fn t(&mut self, i: usize) -> &mut Call {
        self.talkers[i].as_mut().unwrap()
    }

    fn progress(&mut self) -> Vec<ConfProgress> {
        std::iter::from_fn(|| self.c.poll_progress()).collect()
    }

    fn events(&mut self) -> Vec<ConfEvent> {
        std::iter::from_fn(|| self.c.poll_event()).collect()
    }

    fn answer(&mut self, i: usize) {
        self.t(i).answer(format!("v=0 answer {i}").into_bytes(), 0);
        self.run(0);
    }
}

fn who(i: usize) -> String {
    format!("t{i}")
}

/// Whether talker `i` was reported as never joining, for `reason`.
fn failed(p: &[ConfProgress], i: usize, reason: &str) -> bool {
    p.contains(&ConfProgress::Failed {
        who: who(i),
        reason: reason.into(),
    })
}

#[test]
fn talkers_join_leave_and_join_and_the_last_two_end_it() {
    let mut w = World::new(3);
    w.run(0);
    for i in 0..3 {
        assert_eq!(w.t(i).remote_offer(), format!("v=0 offer {i}").as_bytes(), "each its own port");
        w.t(i).ring(0);
    }
    w.run(0);
    for i in 0..3 {
        w.answer(i);
    }
    let p = w.progress();
    assert_eq!(p.iter().filter(|e| matches!(e, ConfProgress::Joined { .. })).count(), 3, "{p:?}");
    assert_eq!(p.iter().filter(|e| matches!(e, ConfProgress::Ringing { .. })).count(), 3, "{p:?}");
    let ev = w.events();
    assert_eq!(ev.len(), 3);
    assert_eq!(
        ev[1],
        ConfEvent::Joined {
            leg: 1,
            sdp: b"v=0 answer 1".to_vec()
        }
    );
    // One leaves: the two others go on.
    w.t(1).hangup(0);
    w.run(0);
    assert_eq!(w.events(), vec![ConfEvent::Left { leg: 1 }]);
    assert_eq!(w.progress(), vec![ConfProgress::Left { who: who(1) }]);
    assert!(!w.c.is_over());
    // Someone joins while it runs.
    let leg = Leg {
        uri: "sip:t3@127.0.0.1:5074".into(),
        next_hop: T[3].parse().unwrap(),
    };
    assert_eq!(w.c.add("t3", &leg, b"v=0 offer 3".to_vec(), 0), Some(3));
    w.run(0);
    w.answer(3);
    assert_eq!(
        w.progress(),
        vec![ConfProgress::Calling { who: who(3) }, ConfProgress::Joined { who: who(3) }]
    );
    w.events();
    // Two leave: fewer than two remain, the last is hung up on.
    w.t(0).hangup(0);
    w.run(0);
    assert!(!w.c.is_over());
    w.t(3).hangup(0);
    w.run(0);
    assert!(w.c.is_over());
    assert!(w.t(2).state() == State::Ended, "the last talker was left up");
    let p = w.progress();
    assert_eq!(
        p.last(),
        Some(&ConfProgress::Ended {
            reason: "fewer than two talkers remain".into()
        })
    );
    assert_eq!(
        w.events(),
        vec![ConfEvent::Left { leg: 0 }, ConfEvent::Left { leg: 3 }, ConfEvent::Left { leg: 2 }]
    );
    assert_eq!(w.c.add("late", &leg, b"v=0".to_vec(), 0), None);
}

#[test]
fn a_busy_callee_is_reported_and_the_others_go_on_but_a_busy_first_talker_ends_all() {
    let mut w = World::new(3);
    w.run(0);
    w.t(2).reject(486, "Busy Here", 0);
    w.run(0);
    w.answer(0);
    w.answer(1);
    let p = w.progress();
    assert!(failed(&p, 2, "busy"), "{p:?}");
    assert!(!w.c.is_over(), "two remain");

    let mut w = World::new(3);
    w.run(0);
    w.t(1).ring(0);
    w.answer(2);
    w.t(0).reject(603, "Decline", 0);
    w.run(0);
    assert!(w.c.is_over());
    let p = w.progress();
    assert!(failed(&p, 0, "rejected: 603 Decline"), "{p:?}");
    assert_eq!(
        p.last(),
        Some(&ConfProgress::Ended {
            reason: "t0 did not join".into()
        })
    );
    // The ringing one is cancelled, the answered one hung up on.
    assert!(w.t(1).state() == State::Ended && w.t(2).state() == State::Ended);
    for now in (0..40_000).step_by(500) {
        w.c.handle_timeout(now);
        for c in w.talkers.iter_mut().flatten() {
            c.handle_timeout(now);
        }
        w.run(now);
    }
    assert!(w.c.is_done(), "a leg never finished");
}

#[test]
fn unanswered_talkers_time_out_and_the_dialer_can_end_it() {
    let mut w = World::new(3);
    w.run(0);
    w.answer(0);
    w.answer(1);
    w.t(2).ring(0);
    w.run(0);
    for now in (0..31_000).step_by(500) {
        w.c.handle_timeout(now);
        w.run(now);
    }
    let p = w.progress();
    assert!(failed(&p, 2, "no answer"), "{p:?}");
    assert!(!w.c.is_over());
    w.c.cancel(31_000);
    w.run(31_000);
    assert!(w.t(0).state() == State::Ended && w.t(1).state() == State::Ended);
    assert_eq!(
        w.progress().last(),
        Some(&ConfProgress::Ended {
            reason: "ended by the dialer".into()
        })
    );
}

/// An established call of the controller's with talker `i`, as a
/// connected pairing hands it over (`Pairing::into_legs`).
fn established(w: &mut World, i: usize) -> Call {
    let uri = format!("sip:t{i}@{}", T[i]);
    let mut call = Call::outgoing(local(C, "mixer"), &uri, T[i].parse().unwrap(), b"v=0 direct".to_vec(), 30_000, 0);
    let invite = call.poll_transmit().unwrap();
    let mut talker = Call::incoming(local(T[i], "t"), &invite.data, C.parse().unwrap(), 0).unwrap();
    talker.answer(b"v=0 direct answer".to_vec(), 0);
    for _ in 0..10 {
        while let Some(t) = talker.poll_transmit() {
            call.handle(&Message::parse(&t.data).unwrap(), T[i].parse().unwrap(), 0);
        }
        while let Some(t) = call.poll_transmit() {
            talker.handle(&Message::parse(&t.data).unwrap(), C.parse().unwrap(), 0);
        }
    }
    assert_eq!((call.state(), talker.state()), (State::Confirmed, State::Confirmed));
    while call.poll_event().is_some() {}
    while talker.poll_event().is_some() {}
    w.talkers[i] = Some(talker);
    call
}

#[test]
fn a_two_party_calls_legs_move_in_with_a_reinvite_and_a_refusal_is_reported() {
    let mut w = World::new(0);
    let (a, b) = (established(&mut w, 0), established(&mut w, 1));
    assert_eq!(w.c.adopt("t0", a, b"v=0 mixer 0".to_vec(), 0), Some(0));
    assert_eq!(w.c.adopt("t1", b, b"v=0 mixer 1".to_vec(), 0), Some(1));
    let leg = Leg {
        uri: format!("sip:t2@{}", T[2]),
        next_hop: T[2].parse().unwrap(),
    };
    assert_eq!(w.c.add("t2", &leg, b"v=0 offer 2".to_vec(), 0), Some(2));
    w.run(0);
    // Each adopted talker got its re-INVITE with its own mixer offer.
    for i in 0..2 {
        let ev = w.t(i).poll_event();
        assert_eq!(
            ev,
            Some(CallEvent::Reoffer {
                sdp: format!("v=0 mixer {i}").into_bytes()
            })
        );
    }
    w.t(0).answer_reoffer(b"v=0 moved 0".to_vec(), 0);
    w.t(1).reject_reoffer(488, "Not Acceptable Here", 0);
    w.run(0);
    w.answer(2);
    assert_eq!(
        w.events(),
        vec![
            ConfEvent::Joined {
                leg: 0,
                sdp: b"v=0 moved 0".to_vec()
            },
            ConfEvent::Left { leg: 1 },
            ConfEvent::Joined {
                leg: 2,
                sdp: b"v=0 answer 2".to_vec()
            },
        ]
    );
    let p = w.progress();
    assert!(
        failed(&p, 1, "refused to move into the conference: 488 Not Acceptable Here"),
        "{p:?}"
    );
    assert!(w.t(1).state() == State::Ended, "the refusing talker was left up");
    assert!(!w.c.is_over(), "t0 and t2 go on: {p:?}");
    // A moved talker hanging up leaves like any other.
    w.t(0).hangup(0);
    w.run(0);
    assert!(w.c.is_over());
    assert_eq!(w.progress().first(), Some(&ConfProgress::Left { who: who(0) }));
}
