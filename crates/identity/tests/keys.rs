//! Key storage and the published forms of the public key.

use peerdial_identity::{IdentityError, PublicKey, SigningKey};
use rand::rngs::StdRng;
use rand::SeedableRng;

fn key(seed: u64) -> SigningKey {
    SigningKey::generate(&mut StdRng::seed_from_u64(seed))
}

#[test]
fn pem_round_trip_keeps_the_key() {
    let k = key(1);
    let pem = k.to_pkcs8_pem();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    let back = SigningKey::from_pkcs8_pem(&pem).unwrap();
    assert_eq!(back.public_key(), k.public_key());
    assert!(matches!(
        SigningKey::from_pkcs8_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
        Err(IdentityError::Pem)
    ));
    assert!(matches!(SigningKey::from_pkcs8_pem(""), Err(IdentityError::Pem)));
}

#[test]
fn reads_an_openssl_generated_key() {
    // `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`
    let pem = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgYbHQVc7F7zSXq9rh
vnzwdmgPwViiFEmqKfqo4XcM5HuhRANCAATa0+nEEUbA+00IEshFMMBk6RK9B+xs
4Lm8yBZuve14aBuWMwDkULkQ+nruwsT5xVF8yssQYxmGJ25YF6Avek8n
-----END PRIVATE KEY-----
";
    let k = SigningKey::from_pkcs8_pem(pem).unwrap();
    // `openssl pkey -pubout -outform DER | base64`: the same SPKI, and the TXT form carries it.
    let spki =
        "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE2tPpxBFGwPtNCBLIRTDAZOkSvQfsbOC5vMgWbr3teGgbljMA5FC5EPp67sLE+cVRfMrLEGMZhiduWBegL3pPJw==";
    assert_eq!(k.public_key().to_txt(), format!("v=pdid1; k=es256; p={spki}"));
}

#[test]
fn debug_never_shows_the_private_key() {
    let k = key(2);
    let dbg = format!("{k:?}");
    assert!(dbg.contains(k.public_key().kid()));
    assert!(!dbg.contains("PRIVATE"));
    let pem = k.to_pkcs8_pem();
    let body: String = pem.lines().nth(1).unwrap().chars().take(20).collect();
    assert!(!dbg.contains(&body));
}

#[test]
fn save_writes_owner_only_file_and_load_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("identity.pem");
    let k = key(3);
    k.save(&path).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    assert_eq!(SigningKey::load(&path).unwrap().public_key(), k.public_key());

    let other = dir.path().join("new.pem");
    let made = SigningKey::load_or_generate(&other, &mut StdRng::seed_from_u64(4)).unwrap();
    let again = SigningKey::load_or_generate(&other, &mut StdRng::seed_from_u64(5)).unwrap();
    assert_eq!(made.public_key(), again.public_key(), "second call loads, not regenerates");

    let missing = SigningKey::load(&dir.path().join("nope.pem")).unwrap_err();
    assert!(matches!(missing, IdentityError::Io { .. }), "{missing}");
}

#[test]
fn txt_round_trip_and_fits_one_string() {
    let k = key(6);
    let txt = k.public_key().to_txt();
    assert!(txt.starts_with("v=pdid1; k=es256; p="), "{txt}");
    assert!(txt.len() <= 255, "{}", txt.len());
    assert_eq!(&PublicKey::from_txt(&txt).unwrap(), k.public_key());
    let chunks = k.public_key().txt_chunks();
    assert_eq!(chunks.concat(), txt);
    assert!(chunks.iter().all(|c| c.len() <= 255));
    assert_eq!(&PublicKey::from_txt_chunks(&chunks).unwrap(), k.public_key());
    // A record split anywhere by the DNS layer still reads back.
    let (a, b) = txt.split_at(40);
    assert_eq!(&PublicKey::from_txt_chunks(&[a, b]).unwrap(), k.public_key());
    // Spacing is tolerated.
    let p = txt.rsplit_once("p=").unwrap().1;
    let spaced = format!("v=pdid1 ;k = es256;  p={p};");
    assert_eq!(&PublicKey::from_txt(&spaced).unwrap(), k.public_key());
}

#[test]
fn txt_parser_is_strict() {
    let txt = key(7).public_key().to_txt();
    let p = txt.rsplit_once("p=").unwrap().1.to_owned();
    let cases = [
        (String::new(), "must start with v=pdid1"),
        (format!("k=es256; v=pdid1; p={p}"), "must start with v=pdid1"),
        (format!("v=pdid2; k=es256; p={p}"), "unknown version"),
        (format!("v=pdid1; k=rsa; p={p}"), "unsupported key type"),
        (format!("v=pdid1; p={p}"), "missing k="),
        ("v=pdid1; k=es256".to_owned(), "missing p="),
        (format!("v=pdid1; k=es256; k=es256; p={p}"), "appears twice"),
        (format!("v=pdid1; k=es256; p={p}; t=y"), "unknown tag"),
        (format!("v=pdid1; k=es256; v=pdid1; p={p}"), "once, first"),
        (format!("v=pdid1; k=es256;; p={p}"), "empty tag"),
        (format!("v=pdid1; k=es256; p={}", &p[1..]), "not base64"),
        ("v=pdid1; k=es256; p=AAAA".to_owned(), "not a P-256"),
        ("v=pdid1; k=es256; pAAAA".to_owned(), "tag=value"),
        (format!("v=pdid1; k=es256; P={p}"), "tag=value"),
    ];
    for (text, want) in cases {
        let err = PublicKey::from_txt(&text).unwrap_err().to_string();
        assert!(err.contains(want), "{text:?}: got {err:?}, want {want:?}");
    }
}

#[test]
fn txt_records_pick_peerdial_keys_among_others() {
    let (a, b) = (key(8), key(9));
    let records = ["v=spf1 -all".to_owned(), a.public_key().to_txt(), b.public_key().to_txt()];
    let keys = PublicKey::from_txt_records(&records).unwrap();
    assert_eq!(keys, vec![a.public_key().clone(), b.public_key().clone()]);
    assert!(PublicKey::from_txt_records(&["v=spf1 -all"]).is_err());
    assert!(PublicKey::from_txt_records(&["v=pdid1; k=es256; p=!!"]).is_err());
}

#[test]
fn jwk_round_trip_and_strictness() {
    let k = key(10);
    let jwk = k.public_key().to_jwk();
    let v: serde_json::Value = serde_json::from_str(&jwk).unwrap();
    assert_eq!(v["kty"], "EC");
    assert_eq!(v["crv"], "P-256");
    assert_eq!(v["kid"], k.public_key().kid());
    assert_eq!(&PublicKey::from_jwk(&jwk).unwrap(), k.public_key());

    let with = |field: &str, value: serde_json::Value| {
        let mut v = v.clone();
        v[field] = value;
        PublicKey::from_jwk(&v.to_string()).unwrap_err().to_string()
    };
    assert!(with("d", "AAAA".into()).contains("private"));
    assert!(with("crv", "P-384".into()).contains("crv"));
    assert!(with("kty", "RSA".into()).contains("kty"));
    assert!(with("alg", "RS256".into()).contains("alg"));
    assert!(with("use", "enc".into()).contains("use"));
    assert!(with("kid", "other".into()).contains("thumbprint"));
    assert!(with("x", "AAAA".into()).contains("32 bytes"));
    assert!(with("y", "*".into()).contains("base64url"));
    // A point not on the curve: change x, keep y.
    let other_x = serde_json::from_str::<serde_json::Value>(&key(11).public_key().to_jwk()).unwrap()["x"].clone();
    let mut off = v.clone();
    off["x"] = other_x;
    off.as_object_mut().unwrap().remove("kid");
    let err = PublicKey::from_jwk(&off.to_string()).unwrap_err().to_string();
    assert!(err.contains("not a point"), "{err}");
    assert!(PublicKey::from_jwk("[]").is_err());
    assert!(PublicKey::from_jwk("{}").unwrap_err().to_string().contains("kty"));
}

#[test]
fn kid_is_the_rfc7638_thumbprint() {
    // RFC 7638 §3.1's example is RSA; check the EC form against an independent
    // computation over the JWK's own x and y.
    use base64::Engine;
    use sha2::Digest;
    let k = key(12);
    let v: serde_json::Value = serde_json::from_str(&k.public_key().to_jwk()).unwrap();
    let canon = format!(
        r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
        v["x"].as_str().unwrap(),
        v["y"].as_str().unwrap()
    );
    let want = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(canon));
    assert_eq!(k.public_key().kid(), want);
    assert_ne!(key(13).public_key().kid(), want);
}
