use super::*;

const CT: &str = "multipart/form-data; boundary=XyZ";

fn form(parts: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
    let mut b = Vec::new();
    for (name, ctype, data) in parts {
        b.extend_from_slice(format!("--XyZ\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"f\"\r\n").as_bytes());
        if let Some(c) = ctype {
            b.extend_from_slice(format!("Content-Type: {c}\r\n").as_bytes());
        }
        b.extend_from_slice(b"\r\n");
        b.extend_from_slice(data);
        b.extend_from_slice(b"\r\n");
    }
    b.extend_from_slice(b"--XyZ--\r\n");
    b
}

/// A 3x2 PNG carrying a tEXt chunk (metadata to strip).
fn png_with_text() -> Vec<u8> {
    let img = image::RgbImage::from_pixel(3, 2, image::Rgb([200, 10, 10]));
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
    let data = b"Comment\0secret place";
    let mut chunk = (data.len() as u32).to_be_bytes().to_vec();
    chunk.extend_from_slice(b"tEXt");
    chunk.extend_from_slice(data);
    let crc = crc32(&chunk[4..]);
    chunk.extend_from_slice(&crc.to_be_bytes());
    png.splice(33..33, chunk); // after the signature and IHDR
    png
}

fn crc32(b: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for x in b {
        c ^= *x as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
        }
    }
    !c
}

pub(crate) const MP4: &[u8] = b"\0\0\0\x18ftypisom\0\0\x02\0isomiso2\0\0\0\x08free\0\0\0\x08mdat";
const WEBM: &[u8] = b"\x1a\x45\xdf\xa3\x87\x42\x82\x84webm\x18\x53\x80\x67\x01\xff\xff\xff\xff\xff\xff\xff";

fn take(body: &[u8]) -> Result<Intake, MailboxError> {
    intake(body, CT, &IntakeLimits::default())
}

#[test]
fn a_picture_is_re_encoded_without_its_metadata_and_the_text_comes_beside_it() {
    let png = png_with_text();
    assert!(png.windows(6).any(|w| w == b"secret"));
    let got = take(&form(&[("file", Some("image/png"), &png), ("text", None, "hello".as_bytes())])).unwrap();
    assert_eq!((got.main.kind, got.main.content_type.as_str()), (Kind::Image, "image/png"));
    assert!(!got.main.body.windows(6).any(|w| w == b"secret"), "metadata kept");
    assert_eq!(image::load_from_memory(&got.main.body).unwrap().width(), 3);
    let caption = got.caption.unwrap();
    assert_eq!((caption.kind, caption.body.as_slice()), (Kind::Text, &b"hello"[..]));
}

#[test]
fn video_audio_and_text_are_checked_by_their_content() {
    let kind = |ct: &str, data: &[u8]| take(&form(&[("file", Some(ct), data)])).map(|i| i.main.kind);
    assert_eq!(kind("video/mp4", MP4), Ok(Kind::Video));
    assert_eq!(kind("video/webm", WEBM), Ok(Kind::Video));
    let wav = b"RIFF\x2c\0\0\0WAVEfmt \x10\0\0\0\x01\0\x01\0\x40\x1f\0\0\x80\x3e\0\0\x02\0\x10\0data\x04\0\0\0\x01\0\x02\0";
    assert_eq!(kind("audio/wav", wav), Ok(Kind::Audio));
    assert_eq!(kind("text/plain", b"hi"), Ok(Kind::Text));
    let not = |r: Result<Kind, MailboxError>| matches!(r, Err(MailboxError::NotWhatItClaims { .. }));
    assert!(not(kind("image/png", b"just some text, called .png")));
    assert!(not(kind("video/mp4", b"\0\0\0\x18moovisom\0\0\x02\0isomiso2")));
    assert!(not(kind("video/mp4", &MP4[..MP4.len() - 3])), "a truncated box");
    assert!(not(kind(
        "video/webm",
        &WEBM.iter().map(|b| if *b == b'w' { b'x' } else { *b }).collect::<Vec<_>>()
    )));
    assert!(not(kind("audio/wav", b"RIFF\0\0\0\0WAVE")));
    // Eight-byte sizes (found by fuzzing): read, not a panic.
    let long_sizes = b"\x1a\x45\xdf\xa3\x01\0\0\0\0\0\0\x07\x42\x82\x84webm\x18\x53\x80\x67\x01";
    assert_eq!(check_webm(long_sizes), Ok(()));
    assert!(check_webm(&long_sizes[..14]).is_err());
    assert!(matches!(kind("application/pdf", b"%PDF"), Err(MailboxError::UnsupportedType(_))));
}

#[test]
fn malformed_or_odd_forms_are_refused() {
    let malformed = |r: Result<Intake, MailboxError>| matches!(r, Err(MailboxError::Malformed(_)));
    assert!(matches!(
        intake(b"x", "application/json", &IntakeLimits::default()),
        Err(MailboxError::Malformed(_))
    ));
    assert!(malformed(take(
        b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nno end"
    )));
    assert!(malformed(take(&form(&[("other", None, b"x")]))));
    assert!(malformed(take(&form(&[
        ("file", Some("text/plain"), b"a"),
        ("file", Some("text/plain"), b"b")
    ]))));
    assert_eq!(take(&form(&[])), Err(MailboxError::Empty));
    let text_only = take(&form(&[("text", None, "héllo".as_bytes())])).unwrap();
    assert_eq!((text_only.main.kind, text_only.caption), (Kind::Text, None));
    let small = IntakeLimits {
        max_body: 64,
        ..Default::default()
    };
    assert!(matches!(
        intake(&form(&[("file", Some("video/mp4"), MP4)]), CT, &small),
        Err(MailboxError::TooLarge { .. })
    ));
}
