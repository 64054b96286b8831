//! Caller identity: the Identity header parser, the PASSporT decoder and
//! verifier (with a fixed key) and the key record parsers never panic on
//! arbitrary bytes; what parses round-trips; and no changed token verifies.
#![no_main]
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use peerdial_identity::{IdentityHeader, Jws, Passport, PublicKey, SigningKey, Verifier};
use peerdial_number::Number;

// A fixed key (made by `openssl genpkey -algorithm EC`; for fuzzing only).
const PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgYbHQVc7F7zSXq9rh
vnzwdmgPwViiFEmqKfqo4XcM5HuhRANCAATa0+nEEUbA+00IEshFMMBk6RK9B+xs
4Lm8yBZuve14aBuWMwDkULkQ+nruwsT5xVF8yssQYxmGJ25YF6Avek8n
-----END PRIVATE KEY-----
";
const URL: &str = "https://region.example/api/v1/identity/key";
const IAT: u64 = 1_800_000_000;

struct Fixture {
    key: SigningKey,
    from: Number,
    to: Number,
    header: String,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let key = SigningKey::from_pkcs8_pem(PEM).unwrap();
        let from = Number::parse("886-02-12345678").unwrap();
        let to = Number::parse("886-03-87654321").unwrap();
        let token = Passport::sign(&key, from, &[to], IAT, 60, URL).unwrap();
        let header = IdentityHeader::new(token, URL).to_string();
        Fixture { key, from, to, header }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let now = IAT * 1000 + 1000;
    let s = String::from_utf8_lossy(data);

    if let Ok(h) = IdentityHeader::parse(&s) {
        let again = IdentityHeader::parse(&h.to_string()).unwrap();
        assert_eq!(again, h);
    }
    let _ = Jws::decode(&s);
    let _ = Passport::decode(&s);
    let v = Verifier::default().verify(Some(&s), f.from, f.to, f.key.public_key(), now);
    // Only our own token, unchanged in its signed part, can verify.
    if v.is_verified() {
        let token = IdentityHeader::parse(&s).unwrap().token;
        assert!(f.header.starts_with(&token[..token.rfind('.').unwrap()]));
    }

    // Flip bytes of the real token: never verified unless nothing changed.
    let mut bytes = f.header.clone().into_bytes();
    let token_len = f.header.find(';').unwrap();
    for pair in data.chunks_exact(2) {
        let i = pair[0] as usize % token_len;
        bytes[i] ^= pair[1];
    }
    let changed = String::from_utf8_lossy(&bytes);
    let v = Verifier::default().verify(Some(&changed), f.from, f.to, f.key.public_key(), now);
    if changed != f.header {
        assert!(!v.is_verified(), "{changed}");
    }

    for k in [PublicKey::from_txt(&s), PublicKey::from_txt_chunks(&[data])].into_iter().flatten() {
        assert_eq!(PublicKey::from_txt(&k.to_txt()).unwrap(), k);
    }
    if let Ok(k) = PublicKey::from_jwk(&s) {
        assert_eq!(PublicKey::from_jwk(&k.to_jwk()).unwrap(), k);
    }
});
