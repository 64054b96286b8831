use super::*;

const A: &str = "127.0.0.1:5061";
const B: &str = "127.0.0.1:5062";

fn local(number: &str, addr: &str) -> Local {
    Local {
        uri: format!("sip:{number}@{addr}"),
        addr: addr.parse().unwrap(),
        user_agent: "test".into(),
    }
}

fn caller(now: u64) -> Call {
    Call::outgoing(
        local("886021", A),
        "sip:886022@127.0.0.1:5062",
        B.parse().unwrap(),
        b"offer".to_vec(),
        60_000,
        now,
    )
}

/// Delivers everything `from` wants to send to `to` (as the side at `from_addr`).
fn pump(from: &mut Call, from_addr: &str, to: &mut Call) -> usize {
    let mut n = 0;
    while let Some(t) = from.poll_transmit() {
        to.handle(&Message::parse(&t.data).unwrap(), from_addr.parse().unwrap(), 0);
        n += 1;
    }
    n
}

fn setup() -> (Call, Call) {
    let mut a = caller(0);
    let invite = a.poll_transmit().unwrap();
    assert_eq!(invite.to, B.parse().unwrap());
    let b = Call::incoming(local("886022", B), &invite.data, A.parse().unwrap(), 0).unwrap();
    assert_eq!(b.remote_offer(), b"offer");
    (a, b)
}

fn events(c: &mut Call) -> Vec<CallEvent> {
    std::iter::from_fn(|| c.poll_event()).collect()
}

#[test]
fn call_answer_and_hang_up_from_either_side() {
    for callee_hangs_up in [false, true] {
        let (mut a, mut b) = setup();
        b.ring(0);
        pump(&mut b, B, &mut a);
        assert_eq!(events(&mut a), vec![CallEvent::Ringing]);
        b.answer(b"answer".to_vec(), 0);
        pump(&mut b, B, &mut a);
        assert_eq!(events(&mut a), vec![CallEvent::Answered { sdp: b"answer".to_vec() }]);
        pump(&mut a, A, &mut b); // ACK
        assert_eq!(events(&mut b), vec![CallEvent::Confirmed]);
        let (hanger, other, h_addr, o_addr) = if callee_hangs_up {
            (&mut b, &mut a, B, A)
        } else {
            (&mut a, &mut b, A, B)
        };
        hanger.hangup(0);
        pump(hanger, h_addr, other);
        assert_eq!(events(other), vec![CallEvent::Ended(End::Remote)]);
        pump(other, o_addr, hanger);
        assert_eq!(events(hanger), vec![CallEvent::Ended(End::Local)]);
        assert!(a.is_done() && b.is_done());
    }
}

#[test]
fn cancel_while_ringing() {
    let (mut a, mut b) = setup();
    b.ring(0);
    pump(&mut b, B, &mut a);
    a.hangup(0);
    let cancel = a.poll_transmit().unwrap();
    assert!(cancel.data.starts_with(b"CANCEL sip:886022@127.0.0.1:5062"));
    b.handle(&Message::parse(&cancel.data).unwrap(), A.parse().unwrap(), 0);
    assert_eq!(events(&mut b), vec![CallEvent::Ended(End::CancelledByCaller)]);
    // 200 to the CANCEL, then 487 to the INVITE, which the caller ACKs.
    pump(&mut b, B, &mut a);
    assert_eq!(events(&mut a), vec![CallEvent::Ringing, CallEvent::Ended(End::Local)]);
    let ack = a.poll_transmit().unwrap();
    assert!(ack.data.starts_with(b"ACK "));
    b.handle(&Message::parse(&ack.data).unwrap(), A.parse().unwrap(), 0);
    b.handle_timeout(TIMEOUT + 1);
    assert!(b.is_done());
}

#[test]
fn cancel_before_any_provisional_waits_for_one() {
    let mut a = caller(0);
    a.poll_transmit();
    a.hangup(10);
    assert!(a.poll_transmit().is_none(), "no CANCEL before a provisional response");
    let mut b = Call::incoming(local("886022", B), &a.invite.to_bytes(), A.parse().unwrap(), 0).unwrap();
    pump(&mut b, B, &mut a); // 100 Trying
    assert!(a.poll_transmit().unwrap().data.starts_with(b"CANCEL "));
}

#[test]
fn busy_is_reported_and_acked() {
    let (mut a, mut b) = setup();
    b.reject(486, "Busy Here", 0);
    pump(&mut b, B, &mut a);
    assert_eq!(
        events(&mut a),
        vec![CallEvent::Ended(End::Rejected {
            code: 486,
            reason: "Busy Here".into()
        })]
    );
    let ack = a.poll_transmit().unwrap();
    let ack = Message::parse(&ack.data).unwrap();
    assert_eq!(ack.header("CSeq"), Some("1 ACK"));
    assert!(ack.header("To").unwrap().contains("tag="));
    b.handle(&ack, A.parse().unwrap(), 0);
    b.handle_timeout(1000);
    assert!(b.poll_transmit().is_none(), "the 486 is no longer retransmitted");
}

#[test]
fn invite_retransmits_then_times_out() {
    let mut a = caller(0);
    a.poll_transmit();
    let mut sent = 0;
    let mut now = 0;
    while let Some(t) = a.poll_timeout() {
        now = t;
        a.handle_timeout(now);
        while a.poll_transmit().is_some() {
            sent += 1;
        }
        if a.state() == State::Ended {
            break;
        }
    }
    // Timer A: 0.5, 1, 2, 4, 8, 16 s; Timer B at 32 s.
    assert_eq!(sent, 6);
    assert_eq!(now, 32_000);
    assert_eq!(events(&mut a), vec![CallEvent::Ended(End::NoResponse)]);
}

#[test]
fn no_answer_cancels_after_the_ring_timeout() {
    let mut a = Call::outgoing(local("1", A), "sip:2@127.0.0.1:5062", B.parse().unwrap(), vec![], 5_000, 0);
    let mut b = Call::incoming(local("2", B), &a.poll_transmit().unwrap().data, A.parse().unwrap(), 0).unwrap();
    b.ring(0);
    pump(&mut b, B, &mut a);
    a.handle_timeout(5_000);
    assert!(a.poll_transmit().unwrap().data.starts_with(b"CANCEL "));
    assert_eq!(events(&mut a), vec![CallEvent::Ringing, CallEvent::Ended(End::NoAnswer)]);
}

#[test]
fn lost_200_and_ack_are_recovered() {
    let (mut a, mut b) = setup();
    b.answer(b"answer".to_vec(), 0);
    while b.poll_transmit().is_some() {} // 100 and 200 lost
    b.handle_timeout(T1);
    pump(&mut b, B, &mut a); // the retransmitted 200
    assert!(matches!(events(&mut a).as_slice(), [CallEvent::Answered { .. }]));
    a.poll_transmit(); // ACK lost
    b.handle_timeout(3 * T1);
    pump(&mut b, B, &mut a);
    pump(&mut a, A, &mut b); // ACK again
    assert_eq!(events(&mut b), vec![CallEvent::Confirmed]);
}

#[test]
fn never_acked_200_ends_with_bye() {
    let (_, mut b) = setup();
    b.answer(b"x".to_vec(), 0);
    b.handle_timeout(TIMEOUT);
    assert_eq!(events(&mut b), vec![CallEvent::Ended(End::NoAck)]);
    assert!(std::iter::from_fn(|| b.poll_transmit()).any(|t| t.data.starts_with(b"BYE ")));
}

#[test]
fn malformed_invite_gets_400_and_no_call() {
    let bad = b"INVITE sip:1@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKx\r\nFrom: <sip:2@x>;tag=1\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\r\n";
    let err = Call::incoming(local("1", B), bad, A.parse().unwrap(), 0).err().unwrap().unwrap();
    assert!(err.data.starts_with(b"SIP/2.0 400 Missing To"));
    assert!(Call::incoming(local("1", B), b"\x00\x01garbage", A.parse().unwrap(), 0)
        .err()
        .unwrap()
        .is_none());
}

#[test]
fn requests_for_unknown_dialogs_get_481() {
    let bye = b"BYE sip:1@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKx\r\nFrom: <sip:2@x>;tag=1\r\nTo: <sip:1@y>;tag=2\r\nCall-ID: c\r\nCSeq: 2 BYE\r\n\r\n";
    let t = stateless_response(bye, A.parse().unwrap(), 481, "Call/Transaction Does Not Exist", &[])
        .unwrap()
        .unwrap();
    assert!(t.data.starts_with(b"SIP/2.0 481"));
}

/// An established call (both sides confirmed, nothing queued).
fn established() -> (Call, Call) {
    let (mut a, mut b) = setup();
    b.answer(b"answer".to_vec(), 0);
    pump(&mut b, B, &mut a);
    pump(&mut a, A, &mut b);
    events(&mut a);
    events(&mut b);
    (a, b)
}

/// Delivers `from`'s queue to `to` at time `now`.
fn pump_at(from: &mut Call, from_addr: &str, to: &mut Call, now: u64) -> Vec<Message> {
    let mut sent = Vec::new();
    while let Some(t) = from.poll_transmit() {
        let m = Message::parse(&t.data).unwrap();
        to.handle(&m, from_addr.parse().unwrap(), now);
        sent.push(m);
    }
    sent
}

fn method_or_code(m: &Message) -> String {
    match &m.start {
        StartLine::Request { method, .. } => method.clone(),
        StartLine::Response { code, .. } => code.to_string(),
    }
}

#[test]
fn hold_and_resume_from_either_side() {
    let (mut a, mut b) = established();
    for (offerer_is_caller, offer, answer) in [(true, "hold", "held"), (false, "resume", "resumed")] {
        let (x, y, xa, ya) = if offerer_is_caller {
            (&mut a, &mut b, A, B)
        } else {
            (&mut b, &mut a, B, A)
        };
        assert!(x.reinvite(offer.as_bytes().to_vec(), 0));
        assert!(!x.reinvite(b"again".to_vec(), 0), "one offer at a time");
        let sent = pump_at(x, xa, y, 0);
        assert_eq!(sent.iter().map(method_or_code).collect::<Vec<_>>(), ["INVITE"]);
        // In-dialog: to the Contact, with both tags.
        assert!(sent[0].header("To").unwrap().contains("tag="));
        assert_eq!(events(y), vec![CallEvent::Reoffer { sdp: offer.into() }]);
        y.answer_reoffer(answer.as_bytes().to_vec(), 0);
        pump_at(y, ya, x, 0);
        assert_eq!(events(x), vec![CallEvent::Reanswered { sdp: answer.into() }]);
        let acks = pump_at(x, xa, y, 0);
        assert_eq!(acks.iter().map(method_or_code).collect::<Vec<_>>(), ["ACK"]);
        // The ACK stopped the 2xx's retransmissions: nothing more to send.
        y.handle_timeout(10_000);
        assert!(y.poll_transmit().is_none());
        assert_eq!(x.state(), State::Confirmed);
        assert_eq!(y.state(), State::Confirmed);
    }
    // The call goes on and ends as usual.
    a.hangup(0);
    pump(&mut a, A, &mut b);
    assert_eq!(events(&mut b), vec![CallEvent::Ended(End::Remote)]);
}

#[test]
fn glare_gets_491_and_each_side_retries_after_its_own_wait() {
    let (mut a, mut b) = established();
    assert!(a.reinvite(b"a-hold".to_vec(), 0));
    assert!(b.reinvite(b"b-hold".to_vec(), 0));
    // The two INVITEs cross; each side answers the other's with 491.
    let (ia, ib) = (a.poll_transmit().unwrap(), b.poll_transmit().unwrap());
    b.handle(&Message::parse(&ia.data).unwrap(), A.parse().unwrap(), 0);
    a.handle(&Message::parse(&ib.data).unwrap(), B.parse().unwrap(), 0);
    assert!(events(&mut a).is_empty() && events(&mut b).is_empty());
    let to_a = pump_at(&mut b, B, &mut a, 0);
    let to_b = pump_at(&mut a, A, &mut b, 0);
    assert_eq!(to_a.iter().map(method_or_code).collect::<Vec<_>>(), ["491"]);
    // a acknowledged b's 491 at once; b acknowledges a's.
    assert_eq!(to_b.iter().map(method_or_code).collect::<Vec<_>>(), ["491", "ACK"]);
    assert_eq!(
        pump_at(&mut b, B, &mut a, 0).iter().map(method_or_code).collect::<Vec<_>>(),
        ["ACK"]
    );
    // The caller chose the Call-ID: it waits 2.1–4 s; the callee under 2 s.
    let (ta, tb) = (a.poll_timeout().unwrap(), b.poll_timeout().unwrap());
    assert!((2_100..4_000).contains(&ta), "{ta}");
    assert!(tb < 2_000, "{tb}");
    assert!(a.reinvite_pending() && b.reinvite_pending());
    b.handle_timeout(tb);
    pump_at(&mut b, B, &mut a, tb);
    assert_eq!(events(&mut a), vec![CallEvent::Reoffer { sdp: b"b-hold".to_vec() }]);
    a.answer_reoffer(b"a-answer".to_vec(), tb);
    pump_at(&mut a, A, &mut b, tb);
    assert_eq!(events(&mut b), vec![CallEvent::Reanswered { sdp: b"a-answer".to_vec() }]);
    pump_at(&mut b, B, &mut a, tb);
    a.handle_timeout(ta);
    pump_at(&mut a, A, &mut b, ta);
    assert_eq!(events(&mut b), vec![CallEvent::Reoffer { sdp: b"a-hold".to_vec() }]);
}

#[test]
fn a_refused_reoffer_keeps_the_call_and_481_ends_it() {
    let (mut a, mut b) = established();
    assert!(a.reinvite(b"video please".to_vec(), 0));
    pump_at(&mut a, A, &mut b, 0);
    events(&mut b);
    b.reject_reoffer(488, "Not Acceptable Here", 0);
    pump_at(&mut b, B, &mut a, 0);
    assert_eq!(
        events(&mut a),
        vec![CallEvent::ReofferFailed {
            code: 488,
            reason: "Not Acceptable Here".into()
        }]
    );
    assert_eq!(
        pump_at(&mut a, A, &mut b, 0).iter().map(method_or_code).collect::<Vec<_>>(),
        ["ACK"]
    );
    b.handle_timeout(10_000);
    assert!(b.poll_transmit().is_none(), "the ACK stopped the 488's retransmissions");
    assert_eq!((a.state(), b.state()), (State::Confirmed, State::Confirmed));

    // The other side forgot the dialog: 481 ends the call.
    assert!(a.reinvite(b"hold".to_vec(), 0));
    let inv = Message::parse(&a.poll_transmit().unwrap().data).unwrap();
    let via = top_via(&inv).unwrap();
    let r = response(&inv, &via, A.parse().unwrap(), 481, "Call/Transaction Does Not Exist", "x");
    a.handle(&r, B.parse().unwrap(), 0);
    assert_eq!(
        events(&mut a),
        vec![CallEvent::Ended(End::Rejected {
            code: 481,
            reason: "Call/Transaction Does Not Exist".into()
        })]
    );
}

#[test]
fn a_second_offer_before_the_first_is_answered_gets_500_and_retransmissions_get_the_same_answer() {
    let (mut a, mut b) = established();
    assert!(a.reinvite(b"hold".to_vec(), 0));
    let first = a.poll_transmit().unwrap();
    b.handle(&Message::parse(&first.data).unwrap(), A.parse().unwrap(), 0);
    assert_eq!(events(&mut b), vec![CallEvent::Reoffer { sdp: b"hold".to_vec() }]);
    // Its retransmission while b decides: nothing.
    b.handle(&Message::parse(&first.data).unwrap(), A.parse().unwrap(), 0);
    assert!(b.poll_transmit().is_none());
    // Another offer (new branch) meanwhile: 500 Retry-After.
    let mut other = Message::parse(&first.data).unwrap();
    let v = other.header("Via").unwrap().replace("branch=", "branch=z9hG4bKother");
    other.headers.retain(|(n, _)| n != "Via");
    other.headers.insert(0, ("Via".into(), v));
    b.handle(&other, A.parse().unwrap(), 0);
    let r = Message::parse(&b.poll_transmit().unwrap().data).unwrap();
    assert_eq!(method_or_code(&r), "500");
    assert!(r.header("Retry-After").is_some());
    b.answer_reoffer(b"held".to_vec(), 0);
    let ok = b.poll_transmit().unwrap();
    // A retransmitted re-INVITE gets the same 200 again.
    b.handle(&Message::parse(&first.data).unwrap(), A.parse().unwrap(), 0);
    assert_eq!(b.poll_transmit().unwrap().data, ok.data);
    // No ACK ever: the 200 repeats, then the call ends with a BYE.
    b.handle_timeout(T1);
    assert_eq!(b.poll_transmit().unwrap().data, ok.data);
    b.handle_timeout(64 * T1);
    let sent: Vec<String> = std::iter::from_fn(|| b.poll_transmit())
        .map(|t| method_or_code(&Message::parse(&t.data).unwrap()))
        .collect();
    assert!(sent.contains(&"BYE".to_string()), "{sent:?}");
    assert_eq!(events(&mut b), vec![CallEvent::Ended(End::NoAck)]);
}

#[test]
fn blind_transfer_refer_accepted_with_sipfrag_progress_from_either_side() {
    for transferor_is_caller in [true, false] {
        let (mut a, mut b) = established();
        let (x, y, xa, ya) = if transferor_is_caller {
            (&mut a, &mut b, A, B)
        } else {
            (&mut b, &mut a, B, A)
        };
        assert!(x.refer("sip:886023@127.0.0.1:5063", 0));
        assert!(!x.refer("sip:886024@127.0.0.1:5064", 0), "one REFER at a time");
        let sent = pump_at(x, xa, y, 0);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].header("Refer-To"), Some("<sip:886023@127.0.0.1:5063>"));
        assert!(sent[0].header("Contact").is_some());
        assert_eq!(
            events(y),
            vec![CallEvent::Referred {
                target: "sip:886023@127.0.0.1:5063".into(),
                referred_by: Some(x.local.uri.clone()),
            }]
        );
        // A retransmitted REFER while the user decides needs nothing.
        y.accept_refer(0);
        let replies = pump_at(y, ya, x, 0);
        assert_eq!(replies.iter().map(method_or_code).collect::<Vec<_>>(), ["202", "NOTIFY"]);
        assert_eq!(replies[1].body, b"SIP/2.0 100 Trying\r\n");
        assert!(replies[1].header("Subscription-State").unwrap().starts_with("active"));
        assert_eq!(
            events(x),
            vec![
                CallEvent::ReferAccepted,
                CallEvent::TransferProgress {
                    code: 100,
                    reason: "Trying".into(),
                    done: false
                }
            ]
        );
        assert_eq!(pump_at(x, xa, y, 0).iter().map(method_or_code).collect::<Vec<_>>(), ["200"]);
        y.notify_transfer(180, "Ringing", 10);
        y.notify_transfer(200, "OK", 20);
        // The older NOTIFY stops retransmitting once the newer is queued.
        let notes = pump_at(y, ya, x, 20);
        assert_eq!(notes.len(), 2);
        assert!(notes[1].header("Subscription-State").unwrap().starts_with("terminated"));
        assert_eq!(
            events(x),
            vec![
                CallEvent::TransferProgress {
                    code: 180,
                    reason: "Ringing".into(),
                    done: false
                },
                CallEvent::TransferProgress {
                    code: 200,
                    reason: "OK".into(),
                    done: true
                }
            ]
        );
        pump_at(x, xa, y, 20);
        assert_eq!(y.poll_timeout(), None, "the NOTIFYs were answered");
        // After the final NOTIFY, another NOTIFY is for no subscription.
        y.refer.notifying = true;
        y.notify_transfer(200, "OK", 30);
        let r = pump_at(y, ya, x, 30);
        assert_eq!(r.len(), 1);
        assert_eq!(pump_at(x, xa, y, 30).iter().map(method_or_code).collect::<Vec<_>>(), ["481"]);
        assert!(events(x).is_empty());
    }
}

#[test]
fn refused_malformed_and_unanswered_refers() {
    let (mut a, mut b) = established();
    // Declined by the user: 603, the call goes on.
    a.refer("sip:886023@127.0.0.1:5063", 0);
    pump_at(&mut a, A, &mut b, 0);
    events(&mut b);
    b.reject_refer(603, "Decline");
    assert_eq!(
        pump_at(&mut b, B, &mut a, 0).iter().map(method_or_code).collect::<Vec<_>>(),
        ["603"]
    );
    assert_eq!(
        events(&mut a),
        vec![CallEvent::ReferFailed {
            code: 603,
            reason: "Decline".into()
        }]
    );
    assert_eq!(a.state(), State::Confirmed);
    assert!(!a.refer_pending());
    // Bad Refer-To values: 400 and no event.
    for bad in ["", "<mailto:x@y>", "<sip:a@b>, <sip:c@d>"] {
        let mut m = a.request("REFER", &branch(), 50);
        if !bad.is_empty() {
            m.push("Refer-To", bad);
        }
        b.handle(&Message::parse(&m.to_bytes()).unwrap(), A.parse().unwrap(), 0);
        let r = Message::parse(&b.poll_transmit().unwrap().data).unwrap();
        assert_eq!(method_or_code(&r), "400", "{bad:?}");
        assert!(events(&mut b).is_empty());
    }
    // A NOTIFY when we sent no REFER (or for another package): 481.
    let mut n = a.request("NOTIFY", &branch(), 51);
    n.push("Event", "refer");
    n.body = b"SIP/2.0 200 OK".to_vec();
    b.handle(&Message::parse(&n.to_bytes()).unwrap(), A.parse().unwrap(), 0);
    let r = Message::parse(&b.poll_transmit().unwrap().data).unwrap();
    assert_eq!(method_or_code(&r), "481");
    // A REFER nobody answers fails after Timer F; the call stays.
    assert!(a.refer("sip:886023@127.0.0.1:5063", 0));
    while a.poll_transmit().is_some() {}
    let mut now = 0;
    while let Some(t) = a.poll_timeout() {
        now = t;
        a.handle_timeout(now);
        while a.poll_transmit().is_some() {}
        if now > 40_000 {
            break;
        }
    }
    assert!(now <= 40_000);
    assert_eq!(
        events(&mut a),
        vec![CallEvent::ReferFailed {
            code: 408,
            reason: "Request Timeout".into()
        }]
    );
    assert_eq!(a.state(), State::Confirmed);
}

#[test]
fn a_refer_before_the_call_is_answered_is_forbidden() {
    let (mut a, mut b) = setup();
    assert!(!a.refer("sip:886023@127.0.0.1:5063", 0));
    let mut m = a.request("REFER", &branch(), 2);
    m.push("Refer-To", "<sip:886023@127.0.0.1:5063>");
    b.handle(&Message::parse(&m.to_bytes()).unwrap(), A.parse().unwrap(), 0);
    let replies: Vec<_> = std::iter::from_fn(|| b.poll_transmit()).collect();
    let last = Message::parse(&replies.last().unwrap().data).unwrap();
    assert_eq!(method_or_code(&last), "403");
}

/// RFC 3264 late offer (RFC 3725 flow I's first talker): an INVITE with no
/// body, our offer in the 200, the answer in the ACK.
#[test]
fn offerless_invite_takes_its_answer_from_the_ack() {
    let mut a = Call::outgoing_without_offer(local("controller", A), "sip:886022@127.0.0.1:5062", B.parse().unwrap(), 60_000, 0);
    let invite = a.poll_transmit().unwrap();
    let mut b = Call::incoming(local("886022", B), &invite.data, A.parse().unwrap(), 0).unwrap();
    assert!(b.remote_offer().is_empty());
    b.answer(b"v=0 our offer".to_vec(), 0);
    pump(&mut b, B, &mut a);
    assert_eq!(
        events(&mut a),
        vec![CallEvent::Answered {
            sdp: b"v=0 our offer".to_vec()
        }]
    );
    a.ack_with(b"v=0 their answer".to_vec(), 0);
    pump(&mut a, A, &mut b);
    assert_eq!(
        events(&mut b),
        vec![
            CallEvent::AckAnswer {
                sdp: b"v=0 their answer".to_vec()
            },
            CallEvent::Confirmed
        ]
    );
    // A retransmitted ACK brings nothing new.
    a.ack_with(b"v=0 their answer".to_vec(), 0);
    pump(&mut a, A, &mut b);
    assert!(events(&mut b).is_empty());

    // An ordinary call's ACK carries no answer event.
    let (mut a, mut b) = setup();
    b.answer(b"answer".to_vec(), 0);
    pump(&mut b, B, &mut a);
    pump(&mut a, A, &mut b);
    assert_eq!(events(&mut b), vec![CallEvent::Confirmed]);
}

#[test]
fn a_caller_answers_one_digest_challenge_to_its_invite() {
    let challenge = |invite: &Message| {
        let mut r = Message::parse(
            &stateless_response(&invite.to_bytes(), A.parse().unwrap(), 401, "Unauthorized", &[])
                .unwrap()
                .unwrap()
                .data,
        )
        .unwrap();
        let h = crate::digest::challenges("switch.test", "n1", false, &[crate::digest::Algorithm::Md5]);
        r.push("WWW-Authenticate", h[0].clone());
        r
    };
    let mut a = caller(0);
    a.set_credentials("886021", "pw");
    let first = Message::parse(&a.poll_transmit().unwrap().data).unwrap();
    assert!(first.header("Authorization").is_none(), "credentials are never sent unasked");
    a.handle(&challenge(&first), B.parse().unwrap(), 10);
    let ack = Message::parse(&a.poll_transmit().unwrap().data).unwrap();
    assert!(matches!(&ack.start, StartLine::Request { method, .. } if method == "ACK"));
    let again = Message::parse(&a.poll_transmit().unwrap().data).unwrap();
    assert_eq!(again.header("CSeq"), Some("2 INVITE"));
    assert_eq!(again.header("Call-ID"), first.header("Call-ID"));
    let creds = crate::digest::Credentials::parse(again.header("Authorization").unwrap()).unwrap();
    assert!(creds.verify(&crate::digest::Ha1::new("886021", "switch.test", "pw"), "INVITE"));
    assert!(events(&mut a).is_empty(), "the call goes on");
    // A second challenge: refused, as any 401.
    a.handle(&challenge(&again), B.parse().unwrap(), 20);
    assert!(matches!(events(&mut a)[..], [CallEvent::Ended(End::Rejected { code: 401, .. })]));
}
