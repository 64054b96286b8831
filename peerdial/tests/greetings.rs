//! Greeting pictures and caller identity on a running region, over its
//! HTTP API and its DNS, as a phone or a web page would use them.

mod common;

use std::io::Cursor;
use std::net::SocketAddr;

use base64::Engine;
use common::*;
use hickory_proto::rr::{RData, RecordType};
use peerdial_identity::{PublicKey, Verdict, Verifier, VerifierConfig};
use peerdial_number::Number;

fn basic(d: &Device) -> String {
    let creds = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", d.user, d.password));
    format!("Basic {creds}")
}

/// Status, head (lower-case) and body of a raw response.
fn split(resp: &[u8]) -> (u16, String, Vec<u8>) {
    let at = resp.windows(4).position(|w| w == b"\r\n\r\n").expect("end of head");
    let head = String::from_utf8_lossy(&resp[..at]).to_ascii_lowercase();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head, resp[at + 4..].to_vec())
}

fn header(head: &str, name: &str) -> Option<String> {
    head.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .map(|v| v.trim().to_string())
}

/// kill -9 (nothing flushed) and start again on the same data.
fn killed_and_restarted(r: Region) -> Region {
    let data = r.data.clone();
    r.kill9();
    Region::start(&data, &[])
}

fn picture(w: u32, h: u32, format: image::ImageFormat) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, 128]));
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

fn put(http: SocketAddr, d: &Device, path: &str, auth: Option<&str>, body: &[u8]) -> (u16, serde_json::Value) {
    let mut headers = vec![("Content-Type", "application/octet-stream")];
    if let Some(a) = auth {
        headers.push(("Authorization", a));
    }
    let _ = d;
    parse_http(&http_raw(http, "PUT", path, &headers, body))
}

#[test]
fn greetings_are_uploaded_normalised_served_with_etags_and_refused_when_bad() {
    let dir = tempfile::tempdir().unwrap();
    let r = Region::start(dir.path(), &[]);
    let a = provision(r.http, "02:00:00:00:91:01");
    let b = provision(r.http, "02:00:00:00:91:02");
    let path = format!("/api/v1/greetings/{}/caller", a.number);

    // Nothing yet: 404 for the picture, nulls in the summary.
    assert_eq!(split(&http_raw(r.http, "GET", &path, &[], b"")).0, 404);
    let (s, j) = http(r.http, "GET", &format!("/api/v1/greetings/{}", a.number), b"");
    assert_eq!((s, j["caller"].is_null()), (200, true), "{j}");

    // Bad input stores nothing: no or wrong credentials, another number's
    // credentials, non-images, a truncated image, a decompression bomb's
    // header, an oversize body.
    let png = picture(1000, 500, image::ImageFormat::Png);
    let (s, _) = put(r.http, &a, &path, None, &png);
    assert_eq!(s, 401);
    let wrong = base64::engine::general_purpose::STANDARD.encode(format!("{}:nope", a.user));
    assert_eq!(put(r.http, &a, &path, Some(&format!("Basic {wrong}")), &png).0, 401);
    let (s, j) = put(r.http, &a, &path, Some(&basic(&b)), &png);
    assert_eq!(s, 403, "{j}");
    let (s, j) = put(r.http, &a, &path, Some(&basic(&a)), b"<script>alert(1)</script>");
    assert_eq!(s, 415, "{j}");
    let (s, j) = put(r.http, &a, &path, Some(&basic(&a)), &png[..png.len() / 2]);
    assert_eq!(s, 400, "{j}");
    assert!(j["error"].as_str().unwrap().contains("truncated"), "{j}");
    let mut bomb = picture(8, 8, image::ImageFormat::Png);
    bomb[16..20].copy_from_slice(&100_000u32.to_be_bytes()); // IHDR width
    bomb[20..24].copy_from_slice(&100_000u32.to_be_bytes()); // IHDR height
    let (s, j) = put(r.http, &a, &path, Some(&basic(&a)), &bomb);
    assert_eq!(s, 400, "{j}");
    let (s, j) = put(r.http, &a, &path, Some(&basic(&a)), &vec![0u8; 2 * 1024 * 1024]);
    assert_eq!(s, 413, "{j}");
    assert_eq!(split(&http_raw(r.http, "GET", &path, &[], b"")).0, 404, "nothing was stored");

    // A JPEG is taken, scaled into the box and served as PNG with an ETag.
    let jpeg = picture(1000, 500, image::ImageFormat::Jpeg);
    let (s, j) = put(r.http, &a, &path, Some(&basic(&a)), &jpeg);
    assert_eq!(s, 200, "{j}");
    assert_eq!((j["width"].as_u64(), j["height"].as_u64()), (Some(480), Some(240)), "{j}");
    let etag = j["etag"].as_str().unwrap().to_string();
    let (s, head, body) = split(&http_raw(r.http, "GET", &path, &[], b""));
    assert_eq!(s, 200);
    assert_eq!(header(&head, "content-type").as_deref(), Some("image/png"));
    assert_eq!(header(&head, "etag").as_deref(), Some(etag.as_str()));
    assert!(header(&head, "cache-control").is_some(), "{head}");
    let img = image::load_from_memory_with_format(&body, image::ImageFormat::Png).unwrap();
    assert_eq!((img.width(), img.height()), (480, 240));
    // Revalidation: the same update code → 304 with no body.
    let (s, _, body) = split(&http_raw(r.http, "GET", &path, &[("If-None-Match", &etag)], b""));
    assert_eq!((s, body.len()), (304, 0));
    let (s, _, _) = split(&http_raw(r.http, "GET", &path, &[("If-None-Match", "\"other\"")], b""));
    assert_eq!(s, 200);

    // A card drawn on the server replaces it: a new update code.
    let card = br##"{"text":"Hello from Taipei","foreground":"#ffffff","background":"#003366","layout":"banner"}"##;
    let resp = http_raw(r.http, "POST", &format!("{path}/card"), &[("Authorization", &basic(&a))], card);
    let (s, j) = parse_http(&resp);
    assert_eq!(s, 200, "{j}");
    let card_etag = j["etag"].as_str().unwrap().to_string();
    assert_ne!(card_etag, etag);
    let bad_card = b"{\"text\":\"\\u001b[31mred\"}";
    let (s, j) = parse_http(&http_raw(
        r.http,
        "POST",
        &format!("{path}/card"),
        &[("Authorization", &basic(&a))],
        bad_card,
    ));
    assert_eq!(s, 400, "{j}");

    // Kept across a restart.
    let r = killed_and_restarted(r);
    let (s, head, _) = split(&http_raw(r.http, "GET", &path, &[], b""));
    assert_eq!((s, header(&head, "etag")), (200, Some(card_etag.clone())));
    let (s, j) = http(r.http, "GET", &format!("/api/v1/greetings/{}", a.number), b"");
    assert_eq!((s, j["caller"]["etag"].as_str()), (200, Some(card_etag.as_str())), "{j}");

    // Deleted by its owner only.
    assert_eq!(
        split(&http_raw(r.http, "DELETE", &path, &[("Authorization", &basic(&b))], b"")).0,
        403
    );
    assert_eq!(
        split(&http_raw(r.http, "DELETE", &path, &[("Authorization", &basic(&a))], b"")).0,
        204
    );
    assert_eq!(split(&http_raw(r.http, "GET", &path, &[], b"")).0, 404);
}

#[test]
fn the_region_signs_caller_identity_with_the_key_it_publishes_in_dns() {
    let dir = tempfile::tempdir().unwrap();
    let r = Region::start(dir.path(), &[]);
    let a = provision(r.http, "02:00:00:00:92:01");
    let b = provision(r.http, "02:00:00:00:92:02");
    let body = format!(r#"{{"dest":"{}"}}"#, b.number);
    // Only with the caller's own credentials.
    let (s, _) = parse_http(&http_raw(r.http, "POST", "/api/v1/identity/passport", &[], body.as_bytes()));
    assert_eq!(s, 401);
    let (s, j) = parse_http(&http_raw(
        r.http,
        "POST",
        "/api/v1/identity/passport",
        &[("Authorization", &basic(&a))],
        b"{\"dest\":\"12\"}",
    ));
    assert_eq!(s, 400, "{j}");
    let (s, j) = parse_http(&http_raw(
        r.http,
        "POST",
        "/api/v1/identity/passport",
        &[("Authorization", &basic(&a))],
        body.as_bytes(),
    ));
    assert_eq!(s, 200, "{j}");
    let identity = j["identity"].as_str().unwrap().to_string();

    // The key, from DNS (TXT at the area zone's apex) and from its URL, is one key.
    let m = dns_query(r.dns, ZONE, RecordType::TXT);
    let chunks: Vec<Vec<u8>> = m
        .answers()
        .iter()
        .find_map(|rec| match rec.data() {
            RData::TXT(t) => Some(t.iter().map(|s| s.to_vec()).collect()),
            _ => None,
        })
        .expect("TXT at the apex");
    let from_dns = PublicKey::from_txt_chunks(&chunks).unwrap();
    let (s, jwk) = http(r.http, "GET", "/api/v1/identity/key", b"");
    assert_eq!(s, 200);
    let from_url = PublicKey::from_jwk(&jwk.to_string()).unwrap();
    assert_eq!(from_dns, from_url);

    // The callee verifies it; a copy, or the same token for another call, is refused.
    let (from, to) = (Number::parse(&a.number).unwrap(), Number::parse(&b.number).unwrap());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let mut v = Verifier::new(VerifierConfig::default());
    let verdict = v.verify(Some(&identity), from, to, &from_dns, now);
    assert!(matches!(verdict, Verdict::Verified(_)), "{verdict:?} {identity}");
    assert!(!v.verify(Some(&identity), from, to, &from_dns, now).is_verified(), "replayed");
    let mut fresh = Verifier::new(VerifierConfig::default());
    assert!(
        !fresh.verify(Some(&identity), to, from, &from_dns, now).is_verified(),
        "another caller"
    );
    assert!(
        !fresh.verify(Some(&identity), from, to, &from_dns, now + 3_600_000).is_verified(),
        "expired"
    );

    // The key survives a restart (tokens already out stay verifiable).
    let r = killed_and_restarted(r);
    let (_, jwk) = http(r.http, "GET", "/api/v1/identity/key", b"");
    assert_eq!(PublicKey::from_jwk(&jwk.to_string()).unwrap(), from_dns);
}
