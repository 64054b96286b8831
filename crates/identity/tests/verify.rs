//! Signing and verifying PASSporTs through the Identity header, with
//! simulated time.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use peerdial_identity::{IdentityHeader, Passport, Reason, SigningKey, Verdict, Verified, Verifier, VerifierConfig};
use peerdial_number::Number;
use rand::rngs::StdRng;
use rand::SeedableRng;

const URL: &str = "https://region.2.0.6.8.8.peerdial.internal:8080/api/v1/identity/key";
const IAT: u64 = 1_800_000_000;
const NOW: u64 = IAT * 1000 + 1500; // 1.5 s after issue, in ms

fn key(seed: u64) -> SigningKey {
    SigningKey::generate(&mut StdRng::seed_from_u64(seed))
}

fn n(s: &str) -> Number {
    Number::parse(s).unwrap()
}

fn alice() -> Number {
    n("886-02-12345678")
}

fn bob() -> Number {
    n("886-03-87654321")
}

/// A header value for a call alice → bob issued at `iat` for 60 s.
fn header(k: &SigningKey, iat: u64) -> String {
    let token = Passport::sign(k, alice(), &[bob()], iat, 60, URL).unwrap();
    IdentityHeader::new(token, URL).to_string()
}

fn unverified(v: Verdict) -> Reason {
    match v {
        Verdict::Unverified(r) => r,
        Verdict::Verified(v) => panic!("unexpectedly verified: {v:?}"),
    }
}

#[test]
fn round_trip_verifies() {
    let k = key(1);
    let h = header(&k, IAT);
    assert!(h.contains(";info=<https://"), "{h}");
    assert!(h.ends_with(";alg=ES256"), "{h}");
    let mut v = Verifier::default();
    let got = v.verify(Some(&h), alice(), bob(), k.public_key(), NOW);
    assert_eq!(
        got,
        Verdict::Verified(Verified {
            orig: alice(),
            dest: bob(),
            iat: IAT,
            key_url: URL.into()
        })
    );
}

#[test]
fn token_is_canonical_base_passport() {
    let k = key(2);
    let token = Passport::sign(&k, alice(), &[bob()], IAT, 60, URL).unwrap();
    let parts: Vec<_> = token.split('.').collect();
    assert_eq!(parts.len(), 3);
    let header = String::from_utf8(URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    let payload = String::from_utf8(URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    assert_eq!(
        header,
        format!(
            r#"{{"alg":"ES256","kid":"{}","typ":"passport","x5u":"{URL}"}}"#,
            k.public_key().kid()
        )
    );
    assert_eq!(
        payload,
        format!(
            r#"{{"dest":{{"tn":["8860387654321"]}},"exp":{},"iat":{IAT},"orig":{{"tn":"8860212345678"}}}}"#,
            IAT + 60
        )
    );
    assert_eq!(URL_SAFE_NO_PAD.decode(parts[2]).unwrap().len(), 64);
    let p = Passport::decode(&token).unwrap();
    assert_eq!((p.orig, p.dest, p.iat, p.exp), (alice(), vec![bob()], IAT, Some(IAT + 60)));
    assert_eq!(p.kid.as_deref(), Some(k.public_key().kid()));
}

#[test]
fn sign_refuses_bad_claims() {
    let k = key(3);
    assert!(Passport::sign(&k, Number::NONE, &[bob()], IAT, 60, URL).is_err());
    assert!(Passport::sign(&k, alice(), &[], IAT, 60, URL).is_err());
    assert!(Passport::sign(&k, alice(), &[bob()], IAT, 0, URL).is_err());
    assert!(Passport::sign(&k, alice(), &[bob()], IAT, 60, "ftp://x").is_err());
    assert!(Passport::sign(&k, alice(), &[bob()], IAT, 60, "https://a b").is_err());
}

#[test]
fn no_header() {
    let k = key(4);
    let r = unverified(Verifier::default().verify(None, alice(), bob(), k.public_key(), NOW));
    assert_eq!(r, Reason::NoHeader);
}

#[test]
fn malformed_headers_and_tokens() {
    let k = key(5);
    let good = Passport::sign(&k, alice(), &[bob()], IAT, 60, URL).unwrap();
    let parts: Vec<&str> = good.split('.').collect();
    let enc = |s: &str| URL_SAFE_NO_PAD.encode(s);
    let with_header = |h: &str| format!("{}.{}.{};info=<{URL}>", enc(h), parts[1], parts[2]);
    let with_payload = |p: &str| format!("{}.{}.{};info=<{URL}>", parts[0], enc(p), parts[2]);
    let cases = [
        (String::new(), "no token"),
        ("garbage".to_owned(), "missing info"),
        (format!("{good};info=<{URL}>;alg=RS256"), "only ES256"),
        (format!("{good};info={URL}"), "angle brackets"),
        (format!("{good};info=<{URL}>;info=<{URL}>"), "twice"),
        (format!("{good};info=<https://other.example/key>"), "x5u differ"),
        (format!("{good};info=<{URL}>;ppt=shaken"), "ppt=shaken"),
        (format!("{good} junk;info=<{URL}>"), "expected ';'"),
        (format!("a.b;info=<{URL}>"), "three"),
        (format!("..{};info=<{URL}>", parts[2]), "compact-form"),
        (format!("{}=.{}.{};info=<{URL}>", parts[0], parts[1], parts[2]), "expected ';'"),
        (format!("{}.{}.AAAA;info=<{URL}>", parts[0], parts[1]), "64 bytes"),
        (with_header(r#"{"alg":"none","typ":"passport","x5u":"https://x"}"#), "only ES256"),
        (with_header(r#"{"alg":"ES256","typ":"jwt","x5u":"https://x"}"#), "typ"),
        (with_header(r#"{"alg":"ES256","typ":"passport"}"#), "no x5u"),
        (
            with_header(r#"{"alg":"ES256","typ":"passport","ppt":"div","x5u":"https://x"}"#),
            "ppt",
        ),
        (
            with_header(r#"{"alg":"ES256","crit":["x"],"typ":"passport","x5u":"https://x"}"#),
            "crit",
        ),
        (
            with_payload(r#"{"dest":{"tn":[]},"iat":1,"orig":{"tn":"8860212345678"}}"#),
            "dest.tn is empty",
        ),
        (
            with_payload(r#"{"dest":{"tn":["8860387654321"]},"iat":1,"orig":{"tn":"+886-02-12345678"}}"#),
            "13 digits",
        ),
        (
            with_payload(r#"{"dest":{"uri":["sip:x"]},"iat":1,"orig":{"tn":"8860212345678"}}"#),
            "tn",
        ),
        (
            with_payload(r#"{"dest":{"tn":["8860387654321"]},"iat":-1,"orig":{"tn":"8860212345678"}}"#),
            "expected u64",
        ),
        (
            with_payload(r#"{"dest":{"tn":["8860387654321"]},"exp":1,"iat":5,"orig":{"tn":"8860212345678"}}"#),
            "exp is before iat",
        ),
        (
            with_payload(r#"{"dest":{"tn":["8860387654321"]},"iat":5,"orig":{"tn":"0000000000000"}}"#),
            "null number",
        ),
    ];
    let mut v = Verifier::default();
    for (h, want) in cases {
        match unverified(v.verify(Some(&h), alice(), bob(), k.public_key(), NOW)) {
            Reason::Malformed(m) => assert!(m.contains(want), "{h:?}: got {m:?}, want {want:?}"),
            other => panic!("{h:?}: {other:?}"),
        }
    }
}

#[test]
fn tampered_payload_is_a_bad_signature() {
    let k = key(6);
    let token = Passport::sign(&k, alice(), &[bob()], IAT, 60, URL).unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    // Another caller's claims under alice's token's signature.
    let forged_claims = format!(
        r#"{{"dest":{{"tn":["8860387654321"]}},"exp":{},"iat":{IAT},"orig":{{"tn":"8860211111111"}}}}"#,
        IAT + 60
    );
    let forged = format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode(forged_claims), parts[2]);
    let h = IdentityHeader::new(forged, URL).to_string();
    let r = unverified(Verifier::default().verify(Some(&h), n("886-02-11111111"), bob(), k.public_key(), NOW));
    assert_eq!(r, Reason::BadSignature);
}

#[test]
fn key_of_another_region_is_the_wrong_key() {
    let (ours, theirs) = (key(7), key(8));
    let h = header(&theirs, IAT);
    let r = unverified(Verifier::default().verify(Some(&h), alice(), bob(), ours.public_key(), NOW));
    assert_eq!(
        r,
        Reason::WrongKey {
            kid: theirs.public_key().kid().into()
        }
    );
    // During a rotation both keys are published; either verifies.
    let keys = [ours.public_key().clone(), theirs.public_key().clone()];
    assert!(Verifier::default().verify_any(Some(&h), alice(), bob(), &keys, NOW).is_verified());
    assert!(matches!(
        unverified(Verifier::default().verify_any(Some(&h), alice(), bob(), &[], NOW)),
        Reason::WrongKey { .. }
    ));
}

#[test]
fn foreign_key_claiming_our_kid_is_a_bad_signature() {
    use peerdial_identity::JwsHeader;
    let (ours, theirs) = (key(9), key(10));
    let claims = serde_json::json!({"dest": {"tn": ["8860387654321"]}, "iat": IAT, "orig": {"tn": "8860212345678"}});
    let lie = JwsHeader {
        alg: "ES256".into(),
        kid: Some(ours.public_key().kid().into()),
        ppt: None,
        typ: "passport".into(),
        x5u: Some(URL.into()),
    };
    let token = theirs.sign_with_header(&lie, &claims).unwrap();
    let h = IdentityHeader::new(token, URL).to_string();
    let r = unverified(Verifier::default().verify(Some(&h), alice(), bob(), ours.public_key(), NOW));
    assert_eq!(r, Reason::BadSignature);
    // Without a kid, only the signature can tell: still a bad signature.
    let anon = JwsHeader { kid: None, ..lie };
    let token = theirs.sign_with_header(&anon, &claims).unwrap();
    let h = IdentityHeader::new(token, URL).to_string();
    let r = unverified(Verifier::default().verify(Some(&h), alice(), bob(), ours.public_key(), NOW));
    assert_eq!(r, Reason::BadSignature);
    // And a token without kid or exp from the right key verifies (60 s default life).
    let token = ours.sign_with_header(&anon, &claims).unwrap();
    let h = IdentityHeader::new(token, URL).to_string();
    assert!(Verifier::default()
        .verify(Some(&h), alice(), bob(), ours.public_key(), NOW)
        .is_verified());
}

#[test]
fn orig_must_be_from_and_dest_must_be_to() {
    let k = key(11);
    let h = header(&k, IAT);
    let mallory = n("886-02-66666666");
    let r = unverified(Verifier::default().verify(Some(&h), mallory, bob(), k.public_key(), NOW));
    assert_eq!(
        r,
        Reason::OrigMismatch {
            orig: alice(),
            from: mallory
        }
    );
    let carol = n("886-03-11112222");
    let r = unverified(Verifier::default().verify(Some(&h), alice(), carol, k.public_key(), NOW));
    assert_eq!(
        r,
        Reason::DestMismatch {
            dest: vec![bob()],
            to: carol
        }
    );
    // Any of several dest numbers matches.
    let token = Passport::sign(&k, alice(), &[carol, bob()], IAT, 60, URL).unwrap();
    let h = IdentityHeader::new(token, URL).to_string();
    assert!(Verifier::default()
        .verify(Some(&h), alice(), bob(), k.public_key(), NOW)
        .is_verified());
}

#[test]
fn expiry_and_future_iat_with_skew() {
    let k = key(12);
    let cfg = VerifierConfig::default(); // skew 10 s
    let h = header(&k, IAT); // exp = IAT + 60
    let at = |secs: u64| IAT * 1000 + secs * 1000;
    let check = |now| Verifier::new(cfg).verify(Some(&h), alice(), bob(), k.public_key(), now);
    assert!(check(at(69) + 999).is_verified(), "inside exp + skew");
    assert_eq!(
        unverified(check(at(70))),
        Reason::Expired {
            exp: IAT + 60,
            now: IAT + 70
        }
    );
    assert!(check(IAT * 1000 - 10_000).is_verified(), "iat 10 s ahead is within skew");
    assert_eq!(
        unverified(check(IAT * 1000 - 11_000)),
        Reason::FromFuture { iat: IAT, now: IAT - 11 }
    );
    // A lifetime beyond max_lifetime is cut to it.
    let long = Passport::sign(&k, alice(), &[bob()], IAT, 86_400, URL).unwrap();
    let h = IdentityHeader::new(long, URL).to_string();
    let r = unverified(Verifier::new(cfg).verify(Some(&h), alice(), bob(), k.public_key(), at(400)));
    assert_eq!(
        r,
        Reason::Expired {
            exp: IAT + cfg.max_lifetime,
            now: IAT + 400
        }
    );
}

#[test]
fn second_use_is_a_replay_even_malleated() {
    let k = key(13);
    let h = header(&k, IAT);
    let mut v = Verifier::default();
    assert!(v.verify(Some(&h), alice(), bob(), k.public_key(), NOW).is_verified());
    assert_eq!(
        unverified(v.verify(Some(&h), alice(), bob(), k.public_key(), NOW + 10)),
        Reason::Replayed
    );
    // The same header with other spacing is the same token.
    let spaced = h.replace(";", " ;\r\n ");
    assert_eq!(
        unverified(v.verify(Some(&spaced), alice(), bob(), k.public_key(), NOW + 20)),
        Reason::Replayed
    );

    // (r, n - s) verifies too; it must not slip past the cache.
    let (token, _) = h.split_once(';').unwrap();
    let (input, sig) = token.rsplit_once('.').unwrap();
    let sig = p256::ecdsa::Signature::from_slice(&URL_SAFE_NO_PAD.decode(sig).unwrap()).unwrap();
    let neg_s = -*sig.s();
    let twin = p256::ecdsa::Signature::from_scalars(sig.r().to_bytes(), neg_s.to_bytes()).unwrap();
    let twin = format!("{input}.{};info=<{URL}>", URL_SAFE_NO_PAD.encode(twin.to_bytes()));
    assert_ne!(twin, h);
    assert!(v.check(Some(&twin), alice(), bob(), &[k.public_key().clone()], NOW).is_verified());
    assert_eq!(
        unverified(v.verify(Some(&twin), alice(), bob(), k.public_key(), NOW + 30)),
        Reason::Replayed
    );
}

#[test]
fn rejected_tokens_are_not_remembered_and_expired_entries_go() {
    let k = key(14);
    let h = header(&k, IAT);
    let mut v = Verifier::default();
    // Wrong From first: refused, and not burnt for the real caller.
    assert!(!v.verify(Some(&h), bob(), bob(), k.public_key(), NOW).is_verified());
    assert!(v.replay_cache().is_empty());
    assert!(v.verify(Some(&h), alice(), bob(), k.public_key(), NOW).is_verified());
    assert_eq!(v.poll_timeout(), Some((IAT + 70) * 1000));
    v.handle_timeout((IAT + 70) * 1000);
    assert!(v.replay_cache().is_empty());
    assert_eq!(v.poll_timeout(), None);
}

#[test]
fn bounded_replay_cache_evicts_the_oldest() {
    let k = key(15);
    let mut v = Verifier::new(VerifierConfig {
        replay_capacity: 2,
        ..VerifierConfig::default()
    });
    let hs: Vec<String> = (0..3).map(|i| header(&k, IAT + i)).collect();
    for h in &hs {
        assert!(v.verify(Some(h), alice(), bob(), k.public_key(), NOW).is_verified());
    }
    assert_eq!(v.replay_cache().len(), 2);
    // The earliest-expiring one was dropped; the other two still count as seen.
    assert!(v.verify(Some(&hs[0]), alice(), bob(), k.public_key(), NOW).is_verified());
    assert_eq!(
        unverified(v.verify(Some(&hs[2]), alice(), bob(), k.public_key(), NOW)),
        Reason::Replayed
    );
}

#[test]
fn header_parser_tolerates_lws_order_and_case() {
    let k = key(16);
    let token = Passport::sign(&k, alice(), &[bob()], IAT, 60, URL).unwrap();
    let forms = [
        format!("{token};info=<{URL}>;alg=ES256"),
        format!("  {token} ; alg = es256 ;\r\n\tINFO = <{URL}>  "),
        format!("{token};foo=bar;info=<{URL}>;x;alg=ES256"),
        format!("{token};Info=<{URL}>"),
    ];
    for f in &forms {
        let h = IdentityHeader::parse(f).unwrap_or_else(|e| panic!("{f:?}: {e}"));
        assert_eq!(h.token, token);
        assert_eq!(h.key_url(), URL);
        assert_eq!(peerdial_identity::key_url(f).unwrap(), URL);
        assert!(Verifier::default()
            .verify(Some(f), alice(), bob(), k.public_key(), NOW)
            .is_verified());
    }
    let parsed = IdentityHeader::parse(&forms[0]).unwrap();
    assert_eq!(parsed.to_string(), forms[0]);
    for bad in [
        format!("{token};info=<{URL}"),
        format!("{token};info=\"x"),
        format!("{token};=x;info=<{URL}>"),
        format!("{token};info=<{URL}>;alg"),
        format!("{token};info=<{URL}>,{token};info=<{URL}>"),
        format!("{token};info=<{URL}>;alg=ES256;{}", "x=y;".repeat(3000)),
    ] {
        assert!(IdentityHeader::parse(&bad).is_err(), "{bad:?}");
    }
}

#[test]
fn two_calls_in_the_same_second_get_two_tokens_and_both_verify() {
    // Same caller, callee and iat (a redial within the second): the tokens
    // must differ, or the callee would take the second for a replay.
    let k = key(21);
    let (first, second) = (header(&k, IAT), header(&k, IAT));
    assert_ne!(first, second);
    let mut v = Verifier::default();
    assert!(v.verify(Some(&first), alice(), bob(), k.public_key(), NOW).is_verified());
    assert!(v.verify(Some(&second), alice(), bob(), k.public_key(), NOW + 5).is_verified());
}
