//! Sign-in at the top (design §9): the top keeps no passwords. A person
//! types number and password (or a pairing code) on the top's `/signin`;
//! the top asks the number's region ([`Delegate::verify`], the region's
//! `POST /api/v1/account/verify`), which checks them with its own limits
//! and answers with a PASSporT for the number that the top verifies with
//! the key it finds in DNS. The top then keeps its own session, exactly
//! like a region's ([`crate::session`]: tower-sessions in the top's
//! database, a `portal_sessions` row per sign-in, HttpOnly SameSite
//! cookie, CSRF on every form, sign-out ends it).
//!
//! What it is not: the top's yellow pages (the top's `portal.rs`, drawn by
//! [`crate::yellow::render_top`]) or the top's APIs; [`router`] wraps them
//! in the same session layer so they can show who is signed in.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use peerdial_number::Number;
use peerdial_store::Store;
use tower_sessions::Session;

use crate::i18n::{self, Msg};
use crate::limit::{Limits, Refusal};
use crate::link::BoxFuture;
use crate::pages::Page;
use crate::verify::Denied;
use crate::{csrf, now_ms, session as signin_state, PortalError};

/// Why the top could not sign a person in.
#[derive(Debug, Clone)]
pub enum Delegated {
    /// The region refused (or the top's own limits did).
    Denied(Denied),
    /// No region of the tree holds the number.
    NoRegion,
    /// The region did not answer, or its answer did not verify.
    Unreachable(String),
}

/// What a signed-in person sees at the top besides their number.
#[derive(Debug, Clone, Default)]
pub struct Home {
    /// Their region's portal (`http://…`).
    pub portal: Option<String>,
    /// Their talkers (issue 13), one line each.
    pub talkers: Vec<String>,
}

/// The top's side: asking regions, and what a signed-in person sees.
pub trait Delegate: Send + Sync + 'static {
    /// Asks `number`'s region to check a password (or, when `code` is not
    /// empty, a pairing code); Ok once the region vouched and its PASSporT
    /// verified.
    fn verify(&self, number: Number, password: String, code: String) -> BoxFuture<'_, Result<(), Delegated>>;
    /// The signed-in page's contents for `number`.
    fn home(&self, number: Number) -> BoxFuture<'_, Home>;
}

struct TopPortal {
    store: Store,
    limits: Mutex<Limits>,
    delegate: Arc<dyn Delegate>,
}

/// The top's sign-in pages merged with `pages` (the top's own, already
/// given their state), all inside one session layer on `database`.
pub async fn router(pages: Router, store: Store, database: &str, delegate: Arc<dyn Delegate>) -> Result<Router, PortalError> {
    let state = Arc::new(TopPortal {
        store,
        limits: Mutex::new(Limits::default()),
        delegate,
    });
    let own = Router::new()
        .route("/signin", get(signin_form).post(signin))
        .route("/signout", post(signout))
        .route("/me", get(me))
        .with_state(state);
    crate::with_sessions(own.merge(pages), database).await
}

/// The signed-in number of a top session and the session's CSRF token.
pub async fn who(store: &Store, session: &Session) -> Option<(String, String)> {
    let (n, _) = signin_state::current(store, session).await?;
    let n = Number::from_u64(n as u64).ok()?;
    Some((n.to_string(), csrf::token(session).await))
}

#[derive(Template, WebTemplate)]
#[template(path = "top_signin.html")]
struct SignIn {
    p: Page,
    number: String,
    error: Option<String>,
}

#[derive(Template, WebTemplate)]
#[template(path = "top_me.html")]
struct Me {
    p: Page,
    home: Home,
}

async fn frame(top: &TopPortal, session: &Session, headers: &HeaderMap, path: &'static str) -> Page {
    let (signed_in, csrf) = match who(&top.store, session).await {
        Some((n, t)) => (Some(n), t),
        None => (None, csrf::token(session).await),
    };
    Page {
        t: i18n::choose(headers),
        csrf,
        signed_in,
        path,
    }
}

async fn signin_form(State(top): State<Arc<TopPortal>>, session: Session, headers: HeaderMap) -> Response {
    let p = frame(&top, &session, &headers, "/signin").await;
    if p.signed_in.is_some() {
        return Redirect::to("/me").into_response();
    }
    SignIn {
        p,
        number: String::new(),
        error: None,
    }
    .into_response()
}

fn refusal_text(d: &Delegated, t: &Msg) -> String {
    match d {
        Delegated::Denied(d) => d.text(t),
        Delegated::NoRegion => t.no_region.to_string(),
        Delegated::Unreachable(_) => t.region_unreachable.to_string(),
    }
}

async fn signin(
    State(top): State<Arc<TopPortal>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    session: Session,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if !csrf::check(&session, form.get("csrf").map(String::as_str)).await {
        let p = frame(&top, &session, &headers, "/signin").await;
        let error = Some(p.t.csrf_refused.to_string());
        return (
            StatusCode::FORBIDDEN,
            SignIn {
                p,
                number: String::new(),
                error,
            },
        )
            .into_response();
    }
    let typed = form.get("number").map(|n| n.trim().to_string()).unwrap_or_default();
    let password = form.get("password").cloned().unwrap_or_default();
    let code = form.get("code").map(|c| c.trim().to_string()).unwrap_or_default();
    let outcome = match Number::parse(&typed) {
        Err(_) => Err(Delegated::Denied(Denied::BadNumber)),
        Ok(number) => {
            let key = number.as_u64() as i64;
            let checked = top.limits.lock().expect("limits lock").check(key, peer.ip(), now_ms());
            match checked {
                Err(Refusal::Number(m)) => Err(Delegated::Denied(Denied::TooManyNumber(m))),
                Err(Refusal::Address(m)) => Err(Delegated::Denied(Denied::TooManyAddress(m))),
                Ok(()) => top.delegate.verify(number, password, code).await.map(|()| number),
            }
        }
    };
    let number = match outcome {
        Ok(n) => n,
        Err(d) => {
            if let (Delegated::Denied(Denied::WrongPassword | Denied::CodeWrong | Denied::CodeUsed | Denied::CodeExpired), Ok(n)) =
                (&d, Number::parse(&typed))
            {
                top.limits
                    .lock()
                    .expect("limits lock")
                    .failed(n.as_u64() as i64, peer.ip(), now_ms());
            }
            let status = match &d {
                Delegated::Denied(x) => x.status(),
                Delegated::NoRegion => StatusCode::NOT_FOUND,
                Delegated::Unreachable(why) => {
                    tracing::info!(number = %typed, %why, "a region could not check a sign-in at the top");
                    StatusCode::BAD_GATEWAY
                }
            };
            let p = frame(&top, &session, &headers, "/signin").await;
            let error = Some(refusal_text(&d, p.t));
            return (status, SignIn { p, number: typed, error }).into_response();
        }
    };
    top.limits.lock().expect("limits lock").succeeded(number.as_u64() as i64);
    if let Err(e) = signin_state::begin(&top.store, &session, number.as_u64() as i64, false).await {
        return crate::pages::unavailable(e);
    }
    tracing::info!(%number, "sign-in at the top");
    Redirect::to("/me").into_response()
}

async fn signout(State(top): State<Arc<TopPortal>>, session: Session, Form(form): Form<HashMap<String, String>>) -> Response {
    if !csrf::check(&session, form.get("csrf").map(String::as_str)).await {
        return (StatusCode::FORBIDDEN, "the form's CSRF token is missing or wrong").into_response();
    }
    if let Err(e) = signin_state::end(&top.store, &session).await {
        return crate::pages::unavailable(e);
    }
    Redirect::to("/").into_response()
}

async fn me(State(top): State<Arc<TopPortal>>, session: Session, headers: HeaderMap) -> Response {
    let p = frame(&top, &session, &headers, "/me").await;
    let Some(n) = p.signed_in.as_deref().and_then(|n| Number::parse(n).ok()) else {
        return Redirect::to("/signin").into_response();
    };
    let home = top.delegate.home(n).await;
    Me { p, home }.into_response()
}
