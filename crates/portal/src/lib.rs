//! The web portal of a region (design §9, §10): server-rendered pages for
//! people, mounted by the region at `/` on its HTTP address.
//!
//! What it is: sign-in with number and password (Argon2id hashes in the
//! region's database), sessions in that same database (tower-sessions;
//! they survive a restart), a profile with per-field privacy, and the
//! area's yellow pages searching public fields only. Every form carries a
//! session-bound CSRF token ([`csrf`]); sign-in attempts are limited per
//! number and per client address ([`limit`]); pages come in English and
//! Traditional Chinese ([`i18n`]).
//!
//! Also: sign-in with a one-time pairing code from the phone ([`pairing`]),
//! password change that ends the number's other sessions ([`session`]),
//! friends and friends-only presence, greeting uploads and cards, vanity
//! numbers, and an operator page. Live state (presence, greetings, the
//! registrar, the zone) belongs to the region and is reached through
//! [`link::RegionLink`].
//!
//! For the top: [`yellow::render_top`] draws the yellow pages over every
//! region from their `GET /api/v1/yellow` answers (the top asks them),
//! [`lang_routes`] is the language switch, and [`top`] is sign-in at the
//! top, delegated to the number's region ([`verify`]: the region's
//! `POST /api/v1/account/verify`); the rest of the top's pages are the
//! top's own. Setting the first password is a
//! JSON API of the region (it checks SIP credentials, which live in the
//! region), using [`hash_password`].

mod account;
mod channels;
pub mod csrf;
mod friends;
mod greetings;
pub mod i18n;
pub mod limit;
pub mod link;
mod operator;
mod pages;
pub mod pairing;
pub mod refusals;
pub mod session;
pub mod top;
mod vanity;
pub mod verify;
pub mod yellow;

pub use link::{RegionLink, Standalone};
/// The session extractor, for the top's pages inside [`top::router`].
pub use tower_sessions::Session;

use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::Argon2;
use axum::extract::DefaultBodyLimit;
use axum::Router;
use peerdial_number::{Area, Number};
use peerdial_store::{Backend, Store};
use tower_sessions::cookie::time;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};
use tower_sessions_sqlx_store::{PostgresStore, SqliteStore};

/// Form bodies are small; anything bigger is refused unread.
pub const MAX_FORM: usize = 16 * 1024;
/// Shortest and longest password accepted.
pub const PASSWORD_CHARS: std::ops::RangeInclusive<usize> = 8..=128;
/// A session ends after this long without a visit.
const IDLE_DAYS: i64 = 7;
/// The session cookie's name.
pub const COOKIE: &str = "peerdial_portal";

#[derive(Debug, thiserror::Error)]
pub enum PortalError {
    #[error("storage: {0}")]
    Store(#[from] peerdial_store::StoreError),
    #[error("session store: {0}")]
    Sessions(#[from] sqlx::Error),
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("a password has {min} to {max} characters", min = PASSWORD_CHARS.start(), max = PASSWORD_CHARS.end())]
    PasswordLength,
}

/// What the portal needs from its region.
pub struct PortalConfig {
    pub store: Store,
    /// The region's database URL (`sqlite:PATH` or `postgres://…`): the
    /// sessions live there too.
    pub database: String,
    pub area: Area,
    /// The region's live state ([`Standalone`] for none).
    pub link: Arc<dyn RegionLink>,
}

/// The portal's shared state.
pub(crate) struct Portal {
    pub store: Store,
    pub area: Area,
    pub limits: Mutex<limit::Limits>,
    pub link: Arc<dyn RegionLink>,
}

impl Portal {
    /// The area's first and last number, as stored.
    pub fn range(&self) -> (i64, i64) {
        (
            Number::new(self.area, 0).as_u64() as i64,
            Number::new(self.area, 99_999_999).as_u64() as i64,
        )
    }
}

/// The language switch alone, for the top's pages.
pub fn lang_routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/lang/{code}", axum::routing::get(pages::switch_lang))
}

/// The portal's routes, with their session layer; merge into the region's
/// router (they use `ConnectInfo<SocketAddr>`).
pub async fn router(cfg: PortalConfig) -> Result<Router, PortalError> {
    let portal = Arc::new(Portal {
        store: cfg.store,
        area: cfg.area,
        limits: Mutex::new(limit::Limits::default()),
        link: cfg.link,
    });
    with_sessions(pages::routes().with_state(portal), &cfg.database).await
}

/// `routes` inside a session layer whose sessions live in `database`
/// (`sqlite:PATH` or `postgres://…`), with the forms' body limit.
pub async fn with_sessions(routes: Router, database: &str) -> Result<Router, PortalError> {
    let routes = routes.layer(DefaultBodyLimit::max(MAX_FORM));
    let (backend, url) = peerdial_store::connect_url(database)?;
    Ok(match backend {
        Backend::Sqlite => {
            let opts = sqlx::sqlite::SqliteConnectOptions::from_str(&url)?.busy_timeout(Duration::from_secs(10));
            let pool = sqlx::sqlite::SqlitePoolOptions::new().max_connections(2).connect_with(opts).await?;
            let store = SqliteStore::new(pool);
            store.migrate().await?;
            routes.layer(session_layer(store))
        }
        Backend::Postgres => {
            let pool = sqlx::postgres::PgPoolOptions::new().max_connections(4).connect(&url).await?;
            let store = PostgresStore::new(pool);
            store.migrate().await?;
            routes.layer(session_layer(store))
        }
    })
}

fn session_layer<S: tower_sessions::SessionStore + Clone>(store: S) -> SessionManagerLayer<S> {
    // Plain HTTP on the region's address: a TLS front may add Secure.
    SessionManagerLayer::new(store)
        .with_name(COOKIE)
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(false)
        .with_expiry(Expiry::OnInactivity(time::Duration::days(IDLE_DAYS)))
}

/// An Argon2id PHC string for a password (off the async threads: it takes
/// tens of milliseconds on purpose).
pub async fn hash_password(password: &str) -> Result<String, PortalError> {
    if !PASSWORD_CHARS.contains(&password.chars().count()) {
        return Err(PortalError::PasswordLength);
    }
    let password = password.to_string();
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| PortalError::Hash(e.to_string()))
    })
    .await
    .map_err(|e| PortalError::Hash(e.to_string()))?
}

/// Whether `password` matches a stored PHC string (false for a corrupt one).
pub async fn verify_password(password: String, phc: String) -> bool {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&phc).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
    })
    .await
    .unwrap_or(false)
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
