//! One-time pairing codes (design §9: sign in "as TVs do"): the phone asks
//! its region for a code with its device credentials and shows it; the
//! portal's sign-in takes number + code instead of a password. A code has
//! six digits, lives five minutes, works once, and only its hash is kept
//! (in the database, so a code survives a restart of the region).
//!
//! Six digits are few: guessing is stopped by the sign-in limits (a wrong
//! code counts like a wrong password), not by the hash.

use peerdial_store::{PairingOutcome, Store, StoreError};
use rand::Rng;
use sha2::{Digest, Sha256};

/// How long a code is valid.
pub const CODE_TTL_MS: i64 = 5 * 60 * 1000;
/// Digits in a code.
pub const CODE_DIGITS: usize = 6;

/// The stored form of a code for a number.
pub fn code_hash(number: i64, code: &str) -> String {
    hex::encode(Sha256::digest(format!("peerdial-pairing:{number}:{code}").as_bytes()))
}

/// Makes and stores a new code for `number`; returns it (the only time it
/// is seen in clear) and when it expires.
pub async fn issue(store: &Store, number: i64, now_ms: i64) -> Result<(String, i64), StoreError> {
    let code = format!("{:06}", rand::thread_rng().gen_range(0..1_000_000u32));
    let expires = now_ms + CODE_TTL_MS;
    store.put_pairing_code(number, &code_hash(number, &code), expires, now_ms).await?;
    Ok((code, expires))
}

/// Uses up a code typed at sign-in. Anything but six digits is simply wrong.
pub async fn redeem(store: &Store, number: i64, code: &str, now_ms: i64) -> Result<PairingOutcome, StoreError> {
    if code.len() != CODE_DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(PairingOutcome::Wrong);
    }
    store.use_pairing_code(number, &code_hash(number, code), now_ms).await
}
