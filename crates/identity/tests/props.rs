//! Random input never panics a parser, and no changed token verifies.

use peerdial_identity::{IdentityHeader, Jws, Passport, PublicKey, SigningKey, Verifier};
use peerdial_number::Number;
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::sync::OnceLock;

const URL: &str = "https://region.example/api/v1/identity/key";
const IAT: u64 = 1_800_000_000;
const NOW: u64 = IAT * 1000 + 1000;

fn key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| SigningKey::generate(&mut StdRng::seed_from_u64(42)))
}

fn numbers() -> (Number, Number) {
    (Number::parse("886-02-12345678").unwrap(), Number::parse("886-03-87654321").unwrap())
}

fn good_header() -> String {
    let (a, b) = numbers();
    let token = Passport::sign(key(), a, &[b], IAT, 60, URL).unwrap();
    IdentityHeader::new(token, URL).to_string()
}

/// Everything a phone would run on an untrusted header value.
fn feed(s: &str) {
    let (a, b) = numbers();
    let _ = IdentityHeader::parse(s);
    let _ = peerdial_identity::key_url(s);
    let _ = Jws::decode(s);
    let _ = Passport::decode(s);
    let _ = PublicKey::from_txt(s);
    let _ = PublicKey::from_jwk(s);
    let _ = Verifier::default().verify(Some(s), a, b, key().public_key(), NOW);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_strings_never_panic(s in ".{0,400}") {
        feed(&s);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        feed(&String::from_utf8_lossy(&bytes));
        let _ = PublicKey::from_txt_chunks(&[&bytes]);
        let _ = PublicKey::from_spki_der(&bytes);
    }

    /// Header-shaped noise gets further into the parser than random text.
    #[test]
    fn header_shaped_noise_never_panics(
        token in "[A-Za-z0-9_.=-]{0,300}",
        params in proptest::collection::vec(("[a-zA-Z]{0,5}", "[ <>\"=;a-z:/.]{0,30}"), 0..5),
    ) {
        let mut s = token;
        for (k, v) in params {
            s.push_str(&format!(";{k}={v}"));
        }
        s.push_str(&format!(";info=<{URL}>"));
        feed(&s);
    }

    /// Changing any byte of the token (not of the parameters) is never
    /// verified: it is either malformed or a bad signature.
    #[test]
    fn changed_token_never_verifies(pos in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let h = good_header();
        let token_len = h.find(';').unwrap();
        let i = pos.index(token_len);
        let mut bytes = h.into_bytes();
        prop_assume!(bytes[i] != byte);
        bytes[i] = byte;
        let changed = String::from_utf8_lossy(&bytes);
        let (a, b) = numbers();
        let v = Verifier::default().verify(Some(&changed), a, b, key().public_key(), NOW);
        prop_assert!(!v.is_verified(), "{changed}");
    }

    #[test]
    fn any_numbers_round_trip(
        orig in 10_000_000_000u64..10_000_000_000_000,
        dest in 10_000_000_000u64..10_000_000_000_000,
        iat in 0u64..4_000_000_000,
    ) {
        let (orig, dest) = (Number::from_u64(orig).unwrap(), Number::from_u64(dest).unwrap());
        let token = Passport::sign(key(), orig, &[dest], iat, 60, URL).unwrap();
        let h = IdentityHeader::new(token, URL).to_string();
        let v = Verifier::default().verify(Some(&h), orig, dest, key().public_key(), iat * 1000);
        prop_assert!(v.is_verified(), "{v:?}");
    }
}
