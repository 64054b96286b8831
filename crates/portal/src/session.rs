//! Who is signed in. The session (tower-sessions, in the database) holds
//! the number and a random token; the `portal_sessions` table holds the
//! token's hash per number. A session counts as signed in only while that
//! row exists, so ending a number's sessions (a password change, sign-out)
//! is one DELETE, wherever the sessions' cookies are. The top keeps its
//! own signed-in sessions the same way, in its own database.

use rand::RngCore;
use sha2::{Digest, Sha256};
use tower_sessions::Session;

use peerdial_store::Store;

use crate::{csrf, now_ms};

/// The session key holding the signed-in number.
const NUMBER: &str = "number";
/// The session key holding the sign-in token.
const SID: &str = "sid";
/// Set when the session was opened with a pairing code (it may then set a
/// password without knowing the old one).
const PAIRED: &str = "paired";

pub(crate) fn hash(sid: &str) -> String {
    hex::encode(Sha256::digest(sid.as_bytes()))
}

/// Signs `number` in on this session: a new session id (one planted before
/// is useless), a new sign-in token and a new CSRF token.
pub async fn begin(store: &Store, session: &Session, number: i64, paired: bool) -> Result<(), String> {
    session.cycle_id().await.map_err(|e| e.to_string())?;
    let mut b = [0u8; 24];
    rand::thread_rng().fill_bytes(&mut b);
    let sid = hex::encode(b);
    store
        .add_portal_session(&hash(&sid), number, now_ms())
        .await
        .map_err(|e| e.to_string())?;
    session.insert(NUMBER, number).await.map_err(|e| e.to_string())?;
    session.insert(SID, &sid).await.map_err(|e| e.to_string())?;
    session.insert(PAIRED, paired).await.map_err(|e| e.to_string())?;
    csrf::fresh(session).await;
    Ok(())
}

/// The signed-in number and the hash of its token, while the session lasts.
pub async fn current(store: &Store, session: &Session) -> Option<(i64, String)> {
    let n = session.get::<i64>(NUMBER).await.ok().flatten()?;
    let sid = session.get::<String>(SID).await.ok().flatten()?;
    let h = hash(&sid);
    match store.portal_session(&h).await {
        Ok(Some(stored)) if stored == n => Some((n, h)),
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(error = %e, "could not check a portal session");
            None
        }
    }
}

/// Whether the session was opened with a pairing code.
pub(crate) async fn paired(session: &Session) -> bool {
    session.get::<bool>(PAIRED).await.ok().flatten().unwrap_or(false)
}

/// Ends this session: its row goes, then the session itself.
pub async fn end(store: &Store, session: &Session) -> Result<(), String> {
    if let Ok(Some(sid)) = session.get::<String>(SID).await {
        store.end_portal_session(&hash(&sid)).await.map_err(|e| e.to_string())?;
    }
    session.flush().await.map_err(|e| e.to_string())
}

/// The signed-in number moved (a vanity number): the session follows.
pub(crate) async fn renumber(session: &Session, number: i64) -> Result<(), String> {
    session.insert(NUMBER, number).await.map_err(|e| e.to_string())
}
