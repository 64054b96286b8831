//! Cloud-signed wake tokens: when the cloud wakes a callee for a caller it
//! signs two short-lived ES256 tokens (`typ: pdwake`) with its own key, one
//! per side, each bound to caller, callee and the side's role. The caller
//! presents its token in the INVITE (`X-Peerdial-Wake-Token`); the woken
//! callee, which got both tokens in the push, checks it and presents its
//! own in the answer; the caller checks that one. Both check with the
//! cloud's public key (`GET /api/v1/push/key` on the top), which
//! [`CloudKey`] fetches once for the phone and the switch alike. Not here:
//! remembering used tokens.

use peerdial_identity::{PublicKey, SigningKey};
use peerdial_number::Number;
use serde::{Deserialize, Serialize};

use crate::{PushError, Result};

pub const WAKE_TYP: &str = "pdwake";
/// How long a wake token is good for.
pub const LIFETIME_SECS: u64 = 30;
/// The SIP header that carries it.
pub const HEADER: &str = "X-Peerdial-Wake-Token";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Caller,
    Callee,
}

/// Fields in alphabetical order: canonical JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WakeClaims {
    pub callee: String,
    pub caller: String,
    pub exp: u64,
    pub iat: u64,
    /// The same for both tokens of one wake-up.
    pub jti: String,
    pub role: Role,
}

/// Signs the caller's and the callee's tokens for one wake-up.
pub fn sign_pair(key: &SigningKey, caller: Number, callee: Number, now_secs: u64) -> Result<(String, String)> {
    let jti = hex_id();
    let sign = |role| {
        let c = WakeClaims {
            callee: callee.digits(),
            caller: caller.digits(),
            exp: now_secs + LIFETIME_SECS,
            iat: now_secs,
            jti: jti.clone(),
            role,
        };
        key.sign_jws(WAKE_TYP, None, &c).map_err(|e| PushError::Token(e.to_string()))
    };
    Ok((sign(Role::Caller)?, sign(Role::Callee)?))
}

fn hex_id() -> String {
    let b: [u8; 12] = rand::random();
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Checks `token` under the cloud's key: signature, `typ`, role, caller,
/// callee and time (issued no later than a minute ahead, not expired).
pub fn verify(key: &PublicKey, token: &str, role: Role, caller: Number, callee: Number, now_secs: u64) -> Result<WakeClaims> {
    let (_, c): (_, WakeClaims) = key
        .verify_jws(token, WAKE_TYP)
        .map_err(|e| PushError::Token(format!("did not verify: {e}")))?;
    if c.role != role {
        return Err(PushError::Token("it is the other side's token".into()));
    }
    if c.caller != caller.digits() || c.callee != callee.digits() {
        return Err(PushError::Token("it was issued for another call".into()));
    }
    if c.exp < now_secs {
        return Err(PushError::Token("expired".into()));
    }
    if c.iat > now_secs + 60 || c.exp > c.iat + LIFETIME_SECS {
        return Err(PushError::Token("its times are wrong".into()));
    }
    Ok(c)
}

/// The cloud's key for wake tokens, fetched once and kept (clones share
/// it).
#[derive(Clone, Default)]
pub struct CloudKey(std::sync::Arc<std::sync::Mutex<Option<PublicKey>>>);

impl CloudKey {
    /// The key, if it was fetched already.
    pub fn cached(&self) -> Option<PublicKey> {
        self.0.lock().expect("key lock").clone()
    }

    /// The key, from the cloud at `url` the first time (5 s at most).
    pub async fn get(&self, url: &str) -> std::result::Result<PublicKey, String> {
        if let Some(k) = self.cached() {
            return Ok(k);
        }
        let ask = peerdial_net::http_client::request("GET", url, "/api/v1/push/key", None);
        let (status, body) = tokio::time::timeout(std::time::Duration::from_secs(5), ask)
            .await
            .map_err(|_| "the cloud did not answer".to_string())?
            .map_err(|e| e.to_string())?;
        if status != 200 {
            return Err(format!("the cloud answered {status} for its key"));
        }
        let k = key_from_answer(&body).map_err(|e| e.to_string())?;
        *self.0.lock().expect("key lock") = Some(k.clone());
        Ok(k)
    }
}

/// The cloud's key for wake tokens from its `GET /api/v1/push/key`
/// answer (`{"jwk": {...}, "vapid": "..."}`).
pub fn key_from_answer(body: &str) -> Result<PublicKey> {
    let v: serde_json::Value = serde_json::from_str(body).map_err(|e| PushError::Token(format!("the cloud's key: {e}")))?;
    PublicKey::from_jwk(&v["jwk"].to_string()).map_err(|e| PushError::Token(format!("the cloud's key: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_bound_to_role_call_and_time() {
        let key = SigningKey::generate(&mut rand::rngs::OsRng);
        let (a, b) = (Number::parse("886-02-11111111").unwrap(), Number::parse("886-03-22222222").unwrap());
        let (caller_t, callee_t) = sign_pair(&key, a, b, 1000).unwrap();
        let pk = key.public_key();
        let c = verify(pk, &caller_t, Role::Caller, a, b, 1010).unwrap();
        let d = verify(pk, &callee_t, Role::Callee, a, b, 1010).unwrap();
        assert_eq!(c.jti, d.jti);
        assert!(verify(pk, &caller_t, Role::Callee, a, b, 1010)
            .unwrap_err()
            .to_string()
            .contains("other side"));
        assert!(verify(pk, &caller_t, Role::Caller, b, a, 1010)
            .unwrap_err()
            .to_string()
            .contains("another call"));
        assert!(verify(pk, &caller_t, Role::Caller, a, b, 1031)
            .unwrap_err()
            .to_string()
            .contains("expired"));
        let other = SigningKey::generate(&mut rand::rngs::OsRng);
        assert!(verify(other.public_key(), &caller_t, Role::Caller, a, b, 1010).is_err());
        assert!(verify(pk, "x.y.z", Role::Caller, a, b, 1010).is_err());
    }
}
