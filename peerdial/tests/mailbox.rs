//! The mailbox of a running region (issue 12), as callers and owners see
//! it: a provisioned number always resolves (its mailbox at order 20),
//! baresip calling an offline number leaves a voice message whose tone
//! survives, the owner lists and fetches it over HTTP, and calls that are
//! wrong (unassigned numbers, no RTP) get clear answers and store nothing.
//! Pictures and video posted over HTTP: `mailbox_upload.rs`.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use common::baresip::Baresip;
use common::mailbox::*;
use common::*;
use peerdial_media::codec::{Decoder, Encoder};
use peerdial_media::CodecKind;

#[test]
fn baresip_leaves_a_voice_message_for_an_offline_number() {
    let dir = tempfile::tempdir().unwrap();
    let r = Region::start(dir.path(), &["--voice-max", "3"]);
    let owner = provision(r.http, "02:00:00:00:12:01");
    let caller = provision(r.http, "02:00:00:00:12:02");
    let mailbox = mailbox_uri(&r, &owner.user);
    assert_eq!(naptr_set(r.dns, &owner.user), vec![(20, mailbox.clone())], "offline: the mailbox");

    let tone = dir.path().join("tone.wav");
    let t = peerdial_media::audio::tone(700.0, 8000, 8000 * 10, 12_000.0);
    peerdial_media::audio::write_wav(&tone, &t, 8000).unwrap();
    let account = format!(
        "<sip:{}@{};transport=udp>;auth_pass={};regint=600;mwi=no\n",
        caller.user, r.sip, caller.password
    );
    let mut bs = Baresip::start_with_audio(dir.path(), &account, &tone, &dir.path().join("dump"));
    assert!(
        eventually(10, || naptr_uri(r.dns, &caller.user).is_some()),
        "baresip did not register: {}",
        bs.log()
    );
    // A standard phone follows the NAPTR: the mailbox URI.
    bs.command(&format!("/dial {mailbox}"));
    let stored = eventually(15, || messages(&r, &owner)["messages"].as_array().is_some_and(|m| !m.is_empty()));
    assert!(stored, "no voice message: {}", bs.log());
    let list = messages(&r, &owner);
    let m = &list["messages"][0];
    assert_eq!(
        (m["kind"].as_str(), m["content_type"].as_str()),
        (Some("voice"), Some("audio/wav")),
        "{list}"
    );
    assert_eq!(m["sender"], caller.user.as_str());
    assert_eq!(m["verified"], false, "baresip sends no Identity");
    assert_eq!(list["calls"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list["calls"][0]["caller"], caller.user.as_str());
    assert_eq!(list["waiting"], true);
    assert_eq!(list["counts"]["Voice-Message"]["new"], 1);

    let raw = owner_get(&r, &owner, &format!("/api/v1/messages/{}/{}", owner.user, m["id"]));
    let wav = dir.path().join("stored.wav");
    std::fs::write(&wav, body_of(&raw)).unwrap();
    let rec = peerdial_media::audio::read_wav(&wav, 8000).unwrap();
    let secs = rec.len() as f32 / 8000.0;
    assert!((1.5..=3.6).contains(&secs), "recorded {secs} s with --voice-max 3");
    let f = peerdial_media::audio::frequency(&rec[rec.len() / 4..rec.len() * 3 / 4], 8000);
    assert!((f - 700.0).abs() <= 15.0, "the recording holds {f} Hz, baresip sent 700 Hz");

    // Another number's credentials see nothing of it.
    let raw = http_raw(
        r.http,
        "GET",
        &format!("/api/v1/messages/{}", owner.user),
        &[("Authorization", &basic(&caller.user, &caller.password))],
        b"",
    );
    assert_eq!(parse_http(&raw).0, 403);
    // Read, then deleted.
    let auth = basic(&owner.user, &owner.password);
    let path = format!("/api/v1/messages/{}/{}", owner.user, m["id"]);
    let raw = http_raw(r.http, "POST", &format!("{path}/read"), &[("Authorization", &auth)], b"");
    assert_eq!(parse_http(&raw).0, 200);
    assert_eq!(messages(&r, &owner)["counts"]["Voice-Message"]["old"], 1);
    let raw = http_raw(r.http, "DELETE", &path, &[("Authorization", &auth)], b"");
    assert_eq!(parse_http(&raw).0, 204);
    assert_eq!(messages(&r, &owner)["messages"].as_array().unwrap().len(), 0);
    bs.kill9();
}

/// An INVITE with a PCMU offer (and telephone-event) from `sock` to `uri`
/// at the region, for RTP at `rtp_port`.
fn invite(sock: &UdpSocket, r: &Region, uri: &str, call_id: &str, rtp_port: u16) {
    invite_with(sock, r, uri, call_id, rtp_port, CodecKind::Pcmu);
}

/// The INVITE of `invite`, offering G.711 `law` only (and telephone-event).
fn invite_with(sock: &UdpSocket, r: &Region, uri: &str, call_id: &str, rtp_port: u16, law: CodecKind) {
    let local = sock.local_addr().unwrap();
    let (pt, name) = (law.default_pt(), law.name());
    let sdp = format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {rtp_port} RTP/AVP {pt} 101\r\n\
a=rtpmap:{pt} {name}/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n"
    );
    let msg = format!(
        "INVITE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{call_id}\r\nMax-Forwards: 70\r\n\
From: <sip:tester@{local}>;tag=t1\r\nTo: <{uri}>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\n\
Contact: <sip:tester@{local}>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    );
    sock.send_to(msg.as_bytes(), r.sip).unwrap();
}

/// The status codes of the answers that arrive within `secs`.
fn statuses(sock: &UdpSocket, secs: u64) -> Vec<u16> {
    sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let end = std::time::Instant::now() + Duration::from_secs(secs);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while std::time::Instant::now() < end {
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]);
            if let Some(code) = text.strip_prefix("SIP/2.0 ").and_then(|t| t.get(..3)).and_then(|c| c.parse().ok()) {
                out.push(code);
                if code >= 200 {
                    break;
                }
            }
        }
    }
    out
}

#[test]
fn unassigned_numbers_get_404_and_a_call_without_rtp_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let r = Region::start(dir.path(), &["--voice-max", "20"]);
    let owner = provision(r.http, "02:00:00:00:12:11");
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let sip: SocketAddr = r.sip;
    invite(&sock, &r, &format!("sip:8860299999999@{sip}"), "unassigned", 9);
    assert_eq!(statuses(&sock, 3).last(), Some(&404), "an unassigned number");
    // Answered, but the caller sends no RTP: the mailbox hangs up (BYE)
    // after its timeout, well before --voice-max, and keeps nothing.
    invite(&sock, &r, &mailbox_uri(&r, &owner.user), "silent", 9);
    let mut bye = false;
    let end = std::time::Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 4096];
    while !bye && std::time::Instant::now() < end {
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            bye = buf[..n].starts_with(b"BYE ");
        }
    }
    assert!(bye, "no BYE from the mailbox after a call with no RTP");
    let list = messages(&r, &owner);
    assert_eq!(list["messages"].as_array().unwrap().len(), 0, "{list}");
    assert_eq!(list["calls"].as_array().unwrap().len(), 1, "the attempt is logged: {list}");
    assert_eq!(list["waiting"], false);
}

#[test]
fn a_text_from_baresip_to_an_offline_number_waits_and_reaches_our_phone_when_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let r = Region::start(dir.path(), &["--keepalive", "600"]);
    // The owner's phone registers once (its number), then is killed:
    // its TCP flow closes and the number is offline.
    let mac = "02:00:00:00:12:21";
    let mut phone = Softphone::start(&r, dir.path(), mac, r.dns, &[]);
    let number = phone.number.clone();
    let (user, password) = phone_credentials(dir.path(), mac);
    let owner = Device {
        number: number.clone(),
        user: user.clone(),
        password,
        secret: String::new(),
        realm: String::new(),
    };
    phone.child.kill().unwrap();
    phone.child.wait().unwrap();
    assert!(eventually(5, || naptr_set(r.dns, &user).len() == 1), "only the mailbox is left");

    let sender = provision(r.http, "02:00:00:00:12:22");
    let a = dir.path().join("a");
    let mut bs = Baresip::start(
        &a,
        &format!(
            "<sip:{}@{};transport=udp>;auth_pass={};regint=600;mwi=no\n",
            sender.user, r.sip, sender.password
        ),
        &format!("\"Owner\" <{}>\n", mailbox_uri(&r, &user)),
        &["module_app contact.so"],
    );
    assert!(eventually(10, || naptr_uri(r.dns, &sender.user).is_some()), "{}", bs.log());
    bs.command("/message hello from the mailbox test");
    assert!(
        eventually(10, || messages(&r, &owner)["messages"].as_array().is_some_and(|m| !m.is_empty())),
        "not stored: {}",
        bs.log()
    );
    let list = messages(&r, &owner);
    assert_eq!(list["messages"][0]["kind"], "text", "{list}");
    assert_eq!(list["messages"][0]["sender"], sender.user.as_str());
    assert_eq!(list["counts"]["Text-Message"]["new"], 1);

    // The owner's phone comes back: the text arrives as a MESSAGE, once.
    let phone = Softphone::start(&r, dir.path(), mac, r.dns, &[]);
    assert_eq!(phone.number, number);
    phone.expect_line(&format!("message from {}: hello from the mailbox test", sender.number), 10);
    std::thread::sleep(Duration::from_millis(1500));
    let shown = phone.lines().iter().filter(|l| l.starts_with("message from")).count();
    assert_eq!(shown, 1, "{:#?}", phone.lines());
    // The region recorded that it came online (the patent's user_property).
    let (_, status) = http(r.http, "GET", &format!("/api/v1/numbers/{user}"), b"");
    assert_eq!(status["last_state"]["online"], true, "{status}");
}

#[test]
fn messages_that_are_not_text_or_not_for_us_or_over_quota_are_refused_and_it_all_works_over_tcp() {
    let dir = tempfile::tempdir().unwrap();
    // Room for one text of at most 64 bytes.
    let r = Region::start(dir.path(), &["--mailbox-max-messages", "1", "--mailbox-max-message", "64"]);
    let owner = provision(r.http, "02:00:00:00:12:31");
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let local = sock.local_addr().unwrap();
    let send = |uri: &str, ctype: &str, body: &str, cid: &str| {
        let m = format!(
            "MESSAGE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{cid}\r\nMax-Forwards: 70\r\n\
From: <sip:tester@{local}>;tag=t1\r\nTo: <{uri}>\r\nCall-ID: {cid}\r\nCSeq: 1 MESSAGE\r\n\
Content-Type: {ctype}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        sock.send_to(m.as_bytes(), r.sip).unwrap();
        statuses(&sock, 3).last().copied()
    };
    let mailbox = mailbox_uri(&r, &owner.user);
    assert_eq!(send(&mailbox, "application/json", "{}", "json"), Some(415));
    assert_eq!(
        send(&format!("sip:8860299999999@{}", r.sip), "text/plain", "hi", "nobody"),
        Some(404)
    );
    assert_eq!(send(&mailbox, "text/plain", "", "empty"), Some(400));
    assert_eq!(messages(&r, &owner)["messages"].as_array().unwrap().len(), 0);
    // A good one is accepted; its retransmission is answered, not stored again.
    assert_eq!(send(&mailbox, "text/plain;charset=utf-8", "hi", "good"), Some(202));
    assert_eq!(send(&mailbox, "text/plain;charset=utf-8", "hi", "good"), Some(202));
    assert_eq!(messages(&r, &owner)["messages"].as_array().unwrap().len(), 1);
    // Over --mailbox-max-message, then over --mailbox-max-messages.
    assert_eq!(send(&mailbox, "text/plain", &"x".repeat(65), "long"), Some(413));
    assert_eq!(send(&mailbox, "text/plain", "again", "full"), Some(486));
    assert_eq!(messages(&r, &owner)["messages"].as_array().unwrap().len(), 1);
    // A caller to the full mailbox is turned away too (and logged as a
    // missed call): there is no room to record it.
    invite(&sock, &r, &mailbox, "fullcall", 9);
    assert_eq!(statuses(&sock, 3).last(), Some(&486), "a voice call to a full mailbox");
    let list = messages(&r, &owner);
    assert_eq!(list["messages"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list["calls"].as_array().unwrap().len(), 1, "{list}");

    // The mailbox over TCP: a MESSAGE is answered on the connection (full,
    // with the reason), and MWI works there too.
    let mut tcp = Phone::tcp(r.sip);
    let local = tcp.local();
    let m = format!(
        "MESSAGE {mailbox} SIP/2.0\r\nVia: SIP/2.0/TCP {local};branch=z9hG4bKtcp1\r\nMax-Forwards: 70\r\n\
From: <sip:tester@{local}>;tag=t2\r\nTo: <{mailbox}>\r\nCall-ID: tcp1\r\nCSeq: 1 MESSAGE\r\n\
Content-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi"
    );
    tcp.send_raw(m.as_bytes());
    let full = tcp.recv().expect("an answer over TCP");
    assert_eq!(status(&full), 486);
    assert!(full.header("Warning").is_some_and(|w| w.contains("is full")), "{full:?}");
    let notify = subscribe_mwi(&mut tcp, &owner, &mailbox);
    assert!(notify.header("Via").is_some_and(|v| v.contains("TCP")), "{notify:?}");
    assert!(String::from_utf8_lossy(&notify.body).contains("Text-Message: 1/0"), "{notify:?}");

    // Over UDP a NOTIFY nobody answers comes again (Timer E), the same one.
    let mut udp = Phone::udp(r.sip);
    let first = subscribe_mwi(&mut udp, &owner, &mailbox);
    let again = udp.recv().expect("the NOTIFY retransmitted");
    assert_eq!(again.header("CSeq"), first.header("CSeq"));
    assert_eq!(again.header("Call-ID"), first.header("Call-ID"));
}

/// SUBSCRIBEs to `dev`'s message-summary over `phone` (answering the
/// digest challenge); the first NOTIFY, unanswered.
fn subscribe_mwi(phone: &mut Phone, dev: &Device, mailbox: &str) -> peerdial_sip::Message {
    let transport = if phone.tcp.is_some() { "TCP" } else { "UDP" };
    let local = phone.local();
    let req = |cseq: u32, auth: &str| {
        format!(
            "SUBSCRIBE {mailbox} SIP/2.0\r\nVia: SIP/2.0/{transport} {local};branch=z9hG4bKmwi{cseq};rport\r\nMax-Forwards: 70\r\n\
From: <{mailbox}>;tag=w1\r\nTo: <{mailbox}>\r\nCall-ID: mwi-{transport}\r\nCSeq: {cseq} SUBSCRIBE\r\n\
Contact: <sip:{}@{local}>\r\nEvent: message-summary\r\nAccept: application/simple-message-summary\r\nExpires: 600\r\n{auth}Content-Length: 0\r\n\r\n",
            dev.user
        )
    };
    phone.send_raw(req(1, "").as_bytes());
    let challenge = phone.recv().expect("a challenge");
    assert_eq!(status(&challenge), 401);
    let nonce = peerdial_sip::digest::challenge_nonce(challenge.header("WWW-Authenticate").unwrap()).unwrap();
    let auth = peerdial_sip::digest::Credentials::respond(
        &dev.user,
        &dev.realm,
        &dev.password,
        peerdial_sip::digest::Algorithm::Md5,
        "SUBSCRIBE",
        mailbox,
        &nonce,
    );
    phone.send_raw(req(2, &format!("Authorization: {}\r\n", auth.to_header())).as_bytes());
    let ok = phone.recv().expect("an answer to the SUBSCRIBE");
    assert_eq!(status(&ok), 200);
    let notify = phone.recv().expect("a NOTIFY");
    assert!(notify.method() == Some("NOTIFY"), "{notify:?}");
    notify
}

#[test]
fn baresip_subscribes_to_its_message_summary_and_sees_changes() {
    let dir = tempfile::tempdir().unwrap();
    let r = Region::start(dir.path(), &["--keepalive", "600"]);
    let owner = provision(r.http, "02:00:00:00:12:41");
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let local = sock.local_addr().unwrap();
    let uri = mailbox_uri(&r, &owner.user);
    let m = format!(
        "MESSAGE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKmwi1\r\nMax-Forwards: 70\r\n\
From: <sip:tester@{local}>;tag=t1\r\nTo: <{uri}>\r\nCall-ID: mwi1\r\nCSeq: 1 MESSAGE\r\n\
Content-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"
    );
    sock.send_to(m.as_bytes(), r.sip).unwrap();
    assert_eq!(statuses(&sock, 3).last(), Some(&202));

    // baresip's MWI floods a registrar that answers at once unless the
    // account is added after it is ready (peers.md).
    let mut bs = Baresip::start(dir.path(), "", "", &["module_app mwi.so"]);
    assert!(eventually(10, || bs.log().contains("baresip is ready")), "{}", bs.log());
    bs.command(&format!(
        "/uanew <sip:{}@{};transport=udp>;auth_pass={};regint=600",
        owner.user, r.sip, owner.password
    ));
    assert!(
        eventually(10, || bs.log().contains("Messages-Waiting: yes")
            && bs.log().contains("Text-Message: 1/0")),
        "no MWI NOTIFY with the waiting text: {}",
        bs.log()
    );
    // Read on another device (the HTTP API): a NOTIFY says nothing waits.
    let id = messages(&r, &owner)["messages"][0]["id"].clone();
    let auth = basic(&owner.user, &owner.password);
    let raw = http_raw(
        r.http,
        "POST",
        &format!("/api/v1/messages/{}/{id}/read", owner.user),
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(parse_http(&raw).0, 200);
    assert!(
        eventually(10, || bs.log().contains("Messages-Waiting: no")
            && bs.log().contains("Text-Message: 0/1")),
        "no NOTIFY after the text was read: {}",
        bs.log()
    );
}

#[test]
fn the_owners_prompt_plays_and_hash_ends_the_recording() {
    let dir = tempfile::tempdir().unwrap();
    let r = Region::start(dir.path(), &["--voice-max", "20"]);
    let owner = provision(r.http, "02:00:00:00:12:51");
    let auth = basic(&owner.user, &owner.password);
    let path = format!("/api/v1/mailbox/{}/prompt", owner.user);
    let wav = dir.path().join("prompt.wav");
    peerdial_media::audio::write_wav(&wav, &peerdial_media::audio::tone(1200.0, 16000, 16000, 10_000.0), 16000).unwrap();
    let wav = std::fs::read(&wav).unwrap();
    assert_eq!(
        parse_http(&http_raw(r.http, "PUT", &path, &[], &wav)).0,
        401,
        "the owner's credentials are needed"
    );
    let (status, j) = parse_http(&http_raw(r.http, "PUT", &path, &[("Authorization", &auth)], b"not a wav"));
    assert_eq!(status, 415, "{j}");
    assert_eq!(
        parse_http(&http_raw(r.http, "PUT", &path, &[("Authorization", &auth)], &wav)).0,
        200
    );
    let (heard, rec) = leave_a_message(&r, &owner, dir.path(), CodecKind::Pcmu);
    let f = peerdial_media::audio::frequency(&heard[800..heard.len().min(6400)], 8000);
    assert!((f - 1200.0).abs() <= 20.0, "the prompt came as {f} Hz, the owner uploaded 1200 Hz");
    assert!(rec.len() < 8000 * 2, "recorded {} samples: # should have ended it", rec.len());
    let f = peerdial_media::audio::frequency(&rec[rec.len() / 4..rec.len() * 3 / 4], 8000);
    assert!((f - 500.0).abs() <= 15.0, "the recording holds {f} Hz, we sent 500 Hz");
}

/// No prompt uploaded: a caller offering PCMA only hears the default
/// (chimes of 660 and 880 Hz), and its message is kept as it was sent.
#[test]
fn a_pcma_caller_hears_the_default_prompt_and_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let r = Region::start(dir.path(), &["--voice-max", "20"]);
    let owner = provision(r.http, "02:00:00:00:12:52");
    let (heard, rec) = leave_a_message(&r, &owner, dir.path(), CodecKind::Pcma);
    let pitches: Vec<f32> = heard
        .chunks(800)
        .filter(|w| w.len() == 800 && peerdial_media::audio::rms(w) > 1_000.0)
        .map(|w| peerdial_media::audio::frequency(w, 8000))
        .collect();
    for want in [660.0, 880.0] {
        assert!(
            pitches.iter().any(|f| (f - want).abs() <= 20.0),
            "no {want} Hz in the default prompt: {pitches:?}"
        );
    }
    let f = peerdial_media::audio::frequency(&rec[rec.len() / 4..rec.len() * 3 / 4], 8000);
    assert!((f - 500.0).abs() <= 15.0, "the PCMA recording holds {f} Hz, we sent 500 Hz");
}

/// A raw caller offering `law` calls the owner's mailbox, sends a second
/// of 500 Hz while listening, then `#`: what it heard, and the recording
/// the owner fetches.
fn leave_a_message(r: &Region, owner: &Device, dir: &std::path::Path, law: CodecKind) -> (Vec<i16>, Vec<i16>) {
    use peerdial_media::rtp::{build, RtpHeader, TelephoneEvent};
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let rtp = UdpSocket::bind("127.0.0.1:0").unwrap();
    invite_with(
        &sock,
        r,
        &mailbox_uri(r, &owner.user),
        "hash",
        rtp.local_addr().unwrap().port(),
        law,
    );
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 4096];
    let ok = loop {
        let (n, _) = sock.recv_from(&mut buf).expect("an answer to the INVITE");
        let text = String::from_utf8_lossy(&buf[..n]).to_string();
        if text.starts_with("SIP/2.0 200") {
            break text;
        }
    };
    let line = |name: &str| ok.lines().find(|l| l.starts_with(name)).unwrap().to_string();
    let port: u16 = ok
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let m = ok.lines().find(|l| l.starts_with("m=audio ")).unwrap();
    let pt = law.default_pt();
    assert_eq!(m.split(' ').nth(3), Some(pt.to_string().as_str()), "the mailbox answered {m}");
    let local = sock.local_addr().unwrap();
    let ack = format!(
        "ACK {} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKack\r\nMax-Forwards: 70\r\nFrom: <sip:tester@{local}>;tag=t1\r\n{}\r\nCall-ID: hash\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
        mailbox_uri(r, &owner.user),
        line("To:")
    );
    sock.send_to(ack.as_bytes(), r.sip).unwrap();
    // One second of a 500 Hz tone, paced, while the prompt comes back.
    let to: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let tone = peerdial_media::audio::tone(500.0, 8000, 8000, 10_000.0);
    rtp.set_nonblocking(true).unwrap();
    let mut heard = Vec::new();
    let (mut encoder, mut decoder) = (Encoder::new(law).unwrap(), Decoder::new(law).unwrap());
    let mut payload = Vec::new();
    let mut h = RtpHeader {
        marker: false,
        payload_type: pt,
        seq: 1,
        timestamp: 0,
        ssrc: 77,
    };
    let start = std::time::Instant::now();
    for (i, frame) in tone.chunks(160).enumerate() {
        encoder.encode(frame, &mut payload).unwrap();
        rtp.send_to(&build(&h, &payload), to).unwrap();
        h.seq += 1;
        h.timestamp += 160;
        // Paced by the clock, not by sleeps that add up.
        std::thread::sleep((start + Duration::from_millis(20 * (i as u64 + 1))).saturating_duration_since(std::time::Instant::now()));
        while let Ok((n, _)) = rtp.recv_from(&mut buf) {
            if n > 12 && buf[1] & 0x7f == pt {
                decoder.decode(Some(&buf[12..n]), n - 12, &mut heard).unwrap();
            }
        }
    }
    // '#' as RFC 4733 events: the mailbox hangs up long before --voice-max.
    h.payload_type = 101;
    h.marker = true;
    for i in 0..4u16 {
        let ev = TelephoneEvent {
            event: 11,
            end: i >= 2,
            volume: 10,
            duration: 160 * (i + 1),
        };
        rtp.send_to(&build(&h, &ev.to_bytes()), to).unwrap();
        h.seq += 1;
        h.marker = false;
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut bye = false;
    while !bye {
        let Ok((n, _)) = sock.recv_from(&mut buf) else { break };
        bye = buf[..n].starts_with(b"BYE ");
    }
    assert!(bye, "no BYE after #");
    assert!(eventually(5, || messages(r, owner)["messages"]
        .as_array()
        .is_some_and(|m| !m.is_empty())));
    let m = messages(r, owner)["messages"][0].clone();
    let raw = owner_get(r, owner, &format!("/api/v1/messages/{}/{}", owner.user, m["id"]));
    let stored = dir.join("stored.wav");
    std::fs::write(&stored, body_of(&raw)).unwrap();
    let rec = peerdial_media::audio::read_wav(&stored, 8000).unwrap();
    // Decoded by the right law, the tone keeps its level (a 10,000 peak).
    let level = peerdial_media::audio::rms(&rec[rec.len() / 4..rec.len() * 3 / 4]);
    assert!(
        (6_000.0..8_000.0).contains(&level),
        "the {} recording's level is {level}",
        law.name()
    );
    (heard, rec)
}

#[test]
fn acknowledged_texts_survive_kill_9_under_load() {
    let dir = tempfile::tempdir().unwrap();
    let r = Region::start(dir.path(), &[]);
    let owner = provision(r.http, "02:00:00:00:12:61");
    let (sip, uri) = (r.sip, mailbox_uri(&r, &owner.user));
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    // Bounded, but long enough that the kill after 40 lands mid-load (CI
    // once acknowledged all of 4 x 45 before the kill came).
    const PER_WORKER: usize = 1_000;
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let (acked, uri) = (acked.clone(), uri.clone());
            std::thread::spawn(move || {
                let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
                sock.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
                let local = sock.local_addr().unwrap();
                for i in 0..PER_WORKER {
                    let text = format!("load {w}-{i}");
                    let m = format!(
                        "MESSAGE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{w}x{i}\r\nMax-Forwards: 70\r\n\
From: <sip:tester@{local}>;tag=t{w}\r\nTo: <{uri}>\r\nCall-ID: load{w}x{i}\r\nCSeq: 1 MESSAGE\r\n\
Content-Type: text/plain\r\nContent-Length: {}\r\n\r\n{text}",
                        text.len()
                    );
                    sock.send_to(m.as_bytes(), sip).unwrap();
                    let mut buf = [0u8; 2048];
                    match sock.recv_from(&mut buf) {
                        Ok((n, _)) if buf[..n].starts_with(b"SIP/2.0 202") => acked.lock().unwrap().push(text),
                        _ => return,
                    }
                }
            })
        })
        .collect();
    assert!(eventually(20, || acked.lock().unwrap().len() >= 40));
    r.kill9();
    for w in workers {
        w.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() < 4 * PER_WORKER, "the kill landed mid-load ({} acked)", acked.len());
    let r = Region::start(dir.path(), &[]);
    let list = messages(&r, &owner);
    let mut stored = Vec::new();
    for m in list["messages"].as_array().unwrap() {
        let raw = owner_get(&r, &owner, &format!("/api/v1/messages/{}/{}", owner.user, m["id"]));
        stored.push(String::from_utf8_lossy(body_of(&raw)).to_string());
    }
    for text in &acked {
        assert!(
            stored.contains(text),
            "acknowledged {text:?} was lost ({} acked, {} stored)",
            acked.len(),
            stored.len()
        );
    }
}

#[test]
fn sipp_streams_rtp_into_the_mailbox_and_the_tone_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let r = Region::start(dir.path(), &[]);
    let owner = provision(r.http, "02:00:00:00:12:71");
    ulaw_tone(&dir.path().join("tone-ulaw.wav"), 800, 3);
    // SIPp's caller streams the tone for 3 s, then hangs up (BYE).
    sipp_call(
        dir.path(),
        &["-sf", concat!(env!("CARGO_MANIFEST_DIR"), "/sipp/uac-rtp.xml")],
        &owner.user,
        r.sip,
    );
    assert!(eventually(5, || messages(&r, &owner)["messages"]
        .as_array()
        .is_some_and(|m| !m.is_empty())));
    let list = messages(&r, &owner);
    // Not a number: the caller is shown by its From URI, unverified.
    let sender = list["messages"][0]["sender"].as_str().unwrap_or_default();
    assert!(sender.starts_with("sip:sipp@127.0.0.1:"), "{list}");
    assert_eq!(list["messages"][0]["verified"], false);
    let raw = owner_get(
        &r,
        &owner,
        &format!("/api/v1/messages/{}/{}", owner.user, list["messages"][0]["id"]),
    );
    let wav = dir.path().join("stored.wav");
    std::fs::write(&wav, body_of(&raw)).unwrap();
    let rec = peerdial_media::audio::read_wav(&wav, 8000).unwrap();
    let f = peerdial_media::audio::frequency(&rec[rec.len() / 4..rec.len() / 2], 8000);
    assert!((f - 800.0).abs() <= 15.0, "the recording holds {f} Hz, SIPp streamed 800 Hz");
    // The same call with its SIP over TCP (RTP still UDP) is kept too.
    sipp_call(
        dir.path(),
        &["-sf", concat!(env!("CARGO_MANIFEST_DIR"), "/sipp/uac-rtp.xml"), "-t", "t1"],
        &owner.user,
        r.sip,
    );
    assert!(
        eventually(5, || messages(&r, &owner)["messages"].as_array().is_some_and(|m| m.len() == 2)),
        "{}",
        messages(&r, &owner)
    );
}
