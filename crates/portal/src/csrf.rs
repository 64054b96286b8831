//! CSRF tokens bound to the session: every form carries the session's
//! token in a hidden field, and every POST must bring it back. A page on
//! another site cannot read the token, so it cannot forge a post. (SameSite
//! cookies are a second line, not the only one.)

use rand::RngCore;
use subtle::ConstantTimeEq;
use tower_sessions::Session;

const KEY: &str = "csrf";

/// The session's token, made (and stored with the session) on first use.
pub async fn token(session: &Session) -> String {
    if let Ok(Some(t)) = session.get::<String>(KEY).await {
        return t;
    }
    fresh(session).await
}

/// A new token (on sign-in, so a token seen before does not carry over).
pub async fn fresh(session: &Session) -> String {
    let mut b = [0u8; 24];
    rand::thread_rng().fill_bytes(&mut b);
    let t = hex::encode(b);
    if let Err(e) = session.insert(KEY, &t).await {
        tracing::warn!(error = %e, "could not store a CSRF token");
    }
    t
}

/// Whether a posted token is the session's (in constant time).
pub async fn check(session: &Session, posted: Option<&str>) -> bool {
    let (Some(posted), Ok(Some(known))) = (posted, session.get::<String>(KEY).await) else {
        return false;
    };
    posted.as_bytes().ct_eq(known.as_bytes()).into()
}
