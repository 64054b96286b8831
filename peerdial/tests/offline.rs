//! Calls and messages for a phone that is offline, from our phones' side
//! (issue 12): the TCP flow that makes a phone online while connected, the
//! fall-through to the mailbox, `message`, `send`, `voicemail`, and what the
//! phone shows and saves when it is back, also from another region.

mod common;

use common::tones::{tone_wav, RATE};
use common::*;
use peerdial_media::audio::{frequency, read_wav, rms};

fn digits(number: &str) -> String {
    number.replace('-', "")
}

fn presence(r: &Region, number: &str) -> String {
    let (_, v) = http(r.http, "GET", &format!("/api/v1/presence/{}", digits(number)), b"");
    v["state"].as_str().unwrap_or_default().to_string()
}

/// The pitch of the loud part of a recording.
fn pitch(samples: &[i16]) -> f32 {
    let mut fs: Vec<f32> = samples
        .chunks(RATE as usize / 10)
        .filter(|w| w.len() == RATE as usize / 10 && rms(w) > 1_500.0)
        .map(|w| frequency(w, RATE))
        .collect();
    assert!(!fs.is_empty(), "nothing loud in the recording");
    fs.sort_by(f32::total_cmp);
    fs[fs.len() / 2]
}

#[test]
fn an_offline_phone_gets_its_calls_and_messages_when_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let r = Region::start(dir.path(), &[]);
    let mac_b = "02:00:00:00:12:02";

    // B registers over its TCP flow: online, its contact in DNS (order 10).
    let mut b = Softphone::start(&r, dir.path(), mac_b, r.dns, &[]);
    let nb = b.number.clone();
    assert!(eventually(5, || presence(&r, &nb) == "online"), "{}", presence(&r, &nb));
    let set = naptr_set(r.dns, &digits(&nb));
    assert_eq!(set.len(), 2, "{set:?}");
    assert_eq!(set[0], (10, format!("sip:{}@{}", digits(&nb), b.sip)), "calls still come over UDP");
    assert_eq!(set[1], (20, mailbox_uri(&r, &digits(&nb))));

    // Killed: the connection closes, and B is offline at once, not after a
    // keep-alive timeout; only the mailbox is left in DNS.
    b.child.kill().unwrap();
    b.child.wait().unwrap();
    assert!(eventually(3, || presence(&r, &nb) == "offline"), "{}", presence(&r, &nb));
    assert!(
        eventually(3, || naptr_set(r.dns, &digits(&nb)).len() == 1),
        "{:?}",
        naptr_set(r.dns, &digits(&nb))
    );

    // A leaves B a text, a picture and a voice message.
    let mut a = Softphone::start(&r, dir.path(), "02:00:00:00:12:01", r.dns, &[]);
    let na = a.number.clone();
    // Before calling, A sees that B is offline and chooses (the patent's
    // "call now or leave a request"); this time not to call at all.
    a.send(&format!("call {nb}"));
    a.expect_line(&format!("{nb} is offline: call anyway, leave a message, or not?"), 10);
    a.send("no");
    a.expect_line(&format!("not calling {nb}"), 5);
    a.send(&format!("message {nb} dinner at eight?"));
    a.expect_line(&format!("message to {nb} kept by its mailbox"), 10);
    let pic = dir.path().join("face.png");
    image::RgbImage::from_pixel(16, 16, image::Rgb([200, 30, 30])).save(&pic).unwrap();
    a.send(&format!("send {nb} {}", pic.display()));
    a.expect_line(&format!("sent face.png to {nb}'s mailbox"), 10);
    // What the mailbox does not take is refused before anything is sent.
    let exe = dir.path().join("tool.exe");
    std::fs::write(&exe, b"MZ").unwrap();
    a.send(&format!("send {nb} {}", exe.display()));
    a.expect_line("not sent: ", 5);
    let tone = tone_wav(dir.path(), "700.wav", 700.0, 2);
    let mut vm = voicemail(&r, dir.path(), "02:00:00:00:12:03", r.dns, &nb, &["--play", &tone]);
    assert_eq!(vm.wait_exit(20), 0, "{:#?}", vm.lines());
    vm.expect_line("answered", 0);

    // B comes back: the text arrives as a MESSAGE, and the mailbox shows
    // the missed call and the three messages, bodies saved to its folder.
    let b = Softphone::start(&r, dir.path(), mac_b, r.dns, &[]);
    b.expect_line(&format!("message from {na}"), 10);
    b.expect_line("dinner at eight?", 0);
    b.expect_line("mailbox: 1 missed call, 3 messages (3 new)", 10);
    b.expect_line("missed call from 886-02-", 0);
    let voice = b.expect_line("(voice) from 886-02-", 0);
    let picture = b.expect_line("(image) from ", 0);
    assert!(
        picture.contains(&format!("from {na}")) && picture.contains("(verified)"),
        "{picture}"
    );
    let saved = |line: &str| std::path::PathBuf::from(line.rsplit("saved to ").next().unwrap().trim());
    let png = image::open(saved(&picture)).unwrap().to_rgb8();
    assert_eq!(png.get_pixel(3, 3), &image::Rgb([200, 30, 30]));
    let heard = read_wav(&saved(&voice), RATE).unwrap();
    let f = pitch(&heard);
    assert!((f - 700.0).abs() <= 25.0, "the voice message is at {f} Hz");
    // Read on this device: the region keeps it for every device.
    let id: i64 = voice.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut b = b;
    b.send(&format!("read {id}"));
    b.expect_line(&format!("message {id} read"), 10);
    b.expect_line("(2 new)", 10);
    b.send("delete 999999");
    b.expect_line("no message 999999", 10);
    // Without a sound device (no `sound` feature), `play` names the WAV.
    b.send(&format!("play {id}"));
    let play = b.expect_line(&format!("message {id} is the WAV file "), 10);
    assert!(play.ends_with(saved(&voice).to_str().unwrap()), "{play}");
    let picture_id = picture.split_whitespace().nth(1).unwrap();
    b.send(&format!("play {picture_id}"));
    b.expect_line(&format!("no voice message {picture_id}"), 10);

    // B online but not answering: A's call rings out and goes on to the
    // mailbox (`--ring-timeout`), with --no-mailbox it just ends.
    let mut late = dial(
        &r,
        dir.path(),
        "02:00:00:00:12:03",
        r.dns,
        &nb,
        &["--ring-timeout", "1.5", "--duration", "1"],
    );
    late.expect_line("ended: no answer", 10);
    late.expect_line(&format!("{nb}: no answer; calling its mailbox"), 5);
    assert_eq!(late.wait_exit(20), 0, "{:#?}", late.lines());
    let mut plain = dial(
        &r,
        dir.path(),
        "02:00:00:00:12:03",
        r.dns,
        &nb,
        &["--ring-timeout", "1", "--no-mailbox"],
    );
    assert_eq!(plain.wait_exit(20), 5, "{:#?}", plain.lines());
    // B declines a call: it goes on to the mailbox too.
    let rings = || b.lines().iter().filter(|l| l.contains("incoming call from")).count();
    let rung = rings();
    let mut declined = dial(&r, dir.path(), "02:00:00:00:12:03", r.dns, &nb, &["--duration", "1"]);
    assert!(eventually(10, || rings() == rung + 1), "{:#?}", b.lines());
    b.send("reject");
    declined.expect_line(&format!("{nb}: "), 10);
    declined.expect_line("; calling its mailbox", 10);
    assert_eq!(declined.wait_exit(20), 0, "{:#?}", declined.lines());
    // B is told at once (its message-summary subscription; it polls only
    // every 5 minutes), without asking.
    assert!(
        eventually(10, || b.lines().iter().any(|l| l.contains("mailbox: 3 missed calls"))),
        "{:#?}",
        b.lines()
    );
    a.stop();
    b.stop();
}

/// `send N FILE` to a number in another region: the phone finds that
/// region through DNS, the video is kept there, and the offline owner's
/// phone saves it byte for byte when it is back.
#[test]
fn a_video_sent_to_another_regions_offline_number_is_saved_when_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let (unbound, a, b) = two_regions_with_resolver(dir.path());
    let mac_owner = "02:00:00:00:12:22";
    // The owner's phone registers once (so it has its number), then is off.
    let mut owner = Softphone::start(&b, dir.path(), mac_owner, unbound.addr, &[]);
    let no = owner.number.clone();
    owner.stop();
    let mut sender = Softphone::start(&a, dir.path(), "02:00:00:00:12:21", unbound.addr, &[]);
    let ns = sender.number.clone();
    let clip = dir.path().join("clip.mp4");
    let mp4 = common::mailbox::TINY_MP4;
    std::fs::write(&clip, mp4).unwrap();
    sender.send(&format!("send {no} {}", clip.display()));
    sender.expect_line(&format!("sent clip.mp4 to {no}'s mailbox"), 10);
    sender.stop();

    let owner = Softphone::start(&b, dir.path(), mac_owner, unbound.addr, &[]);
    owner.expect_line("mailbox: 0 missed calls, 1 message (1 new)", 10);
    let video = owner.expect_line("(video) from ", 0);
    assert!(video.contains(&format!("from {ns}")) && video.contains("(verified)"), "{video}");
    let saved = std::path::PathBuf::from(video.rsplit("saved to ").next().unwrap().trim());
    assert_eq!(saved.extension().and_then(|e| e.to_str()), Some("mp4"), "{video}");
    assert_eq!(std::fs::read(&saved).unwrap(), mp4, "the saved video is what was sent");
}
