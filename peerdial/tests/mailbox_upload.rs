//! Pictures and video for an offline number (issue 12): posted to the
//! callee's region as multipart with the sender's PASSporT, checked by
//! content, kept only after the commit; forged tokens, files that are not
//! what they claim and broken bodies store nothing.

mod common;

use common::mailbox::*;
use common::*;

/// The `Identity` header value `from`'s region signs for a message to
/// `to`, fetched as the phone does.
fn passport(r: &Region, from: &Device, to: &str) -> String {
    let raw = http_raw(
        r.http,
        "POST",
        "/api/v1/identity/passport",
        &[
            ("Authorization", &basic(&from.user, &from.password)),
            ("Content-Type", "application/json"),
        ],
        format!("{{\"dest\":\"{to}\"}}").as_bytes(),
    );
    let (status, j) = parse_http(&raw);
    assert_eq!(status, 200, "{j}");
    j["identity"].as_str().unwrap().to_string()
}

/// A multipart/form-data body: (field, content type, bytes).
fn form(parts: &[(&str, &str, &[u8])]) -> Vec<u8> {
    let mut b = Vec::new();
    for (name, ctype, data) in parts {
        b.extend_from_slice(
            format!("--b0undary\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"x\"\r\nContent-Type: {ctype}\r\n\r\n")
                .as_bytes(),
        );
        b.extend_from_slice(data);
        b.extend_from_slice(b"\r\n");
    }
    b.extend_from_slice(b"--b0undary--\r\n");
    b
}

fn post(r: &Region, to: &str, from: &str, identity: &str, body: &[u8]) -> (u16, serde_json::Value) {
    let raw = http_raw(
        r.http,
        "POST",
        &format!("/api/v1/messages/{to}"),
        &[
            ("Identity", identity),
            ("X-Peerdial-From", from),
            ("Content-Type", "multipart/form-data; boundary=b0undary"),
        ],
        body,
    );
    parse_http(&raw)
}

#[test]
fn a_phone_posts_a_picture_and_a_video_and_bad_posts_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let r = Region::start(dir.path(), &[]);
    let owner = provision(r.http, "02:00:00:00:12:31");
    let sender = provision(r.http, "02:00:00:00:12:32");
    let (to, from) = (owner.user.as_str(), sender.user.as_str());

    // A picture with data hidden after its end, and a caption.
    let mut png = Vec::new();
    image::RgbImage::from_pixel(5, 4, image::Rgb([10, 200, 10]))
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    png.extend_from_slice(b"GPS 25.03N 121.56E");
    let first = passport(&r, &sender, to);
    let (status, j) = post(
        &r,
        to,
        from,
        &first,
        &form(&[("file", "image/png", &png), ("text", "text/plain", b"look")]),
    );
    assert_eq!(status, 201, "{j}");
    let mp4 = b"\0\0\0\x18ftypisom\0\0\x02\0isomiso2\0\0\0\x08free\0\0\0\x08mdat";
    let (status, j) = post(&r, to, from, &passport(&r, &sender, to), &form(&[("file", "video/mp4", mp4)]));
    assert_eq!((status, j["stored"][0]["kind"].as_str()), (201, Some("video")), "{j}");

    // Refused, each with a clear error: a replayed token, one for another
    // callee, a made-up one, a text file called .png, a broken body, an
    // unassigned callee.
    let other = passport(&r, &sender, &sender.user);
    let unassigned = format!("{}9999", &to[..to.len() - 4]);
    let text_as_png = form(&[("file", "image/png", b"I am not a picture")]);
    let cases = [
        (to, first.as_str(), form(&[("file", "video/mp4", mp4)]), 401),
        (to, other.as_str(), form(&[("file", "video/mp4", mp4)]), 401),
        (
            to,
            "eyJhbGciOiJFUzI1NiJ9.e30.c2ln;info=<http://x/key>",
            form(&[("file", "video/mp4", mp4)]),
            401,
        ),
        (to, &passport(&r, &sender, to), text_as_png, 422),
        (
            to,
            &passport(&r, &sender, to),
            b"--b0undary\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\ncut".to_vec(),
            400,
        ),
        (
            unassigned.as_str(),
            &passport(&r, &sender, &unassigned),
            form(&[("file", "video/mp4", mp4)]),
            404,
        ),
    ];
    for (callee, identity, body, want) in &cases {
        let (status, j) = post(&r, callee, from, identity, body);
        assert_eq!(status, *want, "{j}");
        assert!(j["error"].as_str().is_some_and(|e| !e.is_empty()), "{j}");
    }

    let list = messages(&r, &owner);
    let kinds: Vec<_> = list["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["image", "text", "video"], "{list}");
    assert!(
        list["messages"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["sender"] == from && m["verified"] == true),
        "{list}"
    );
    assert_eq!(list["counts"]["Multimedia-Message"]["new"], 2, "{list}");

    let raw = owner_get(&r, &owner, &format!("/api/v1/messages/{to}/{}", list["messages"][0]["id"]));
    let picture = body_of(&raw);
    assert!(!picture.windows(3).any(|w| w == b"GPS"), "the hidden data was kept");
    let img = image::load_from_memory(picture).unwrap();
    assert_eq!((img.width(), img.height()), (5, 4));
}
