//! The account page: changing the password. A change ends every other
//! session of the number (the one that changed it stays signed in). The
//! current password is asked for when there is one, except in a session
//! opened with a pairing code (the phone in hand proved ownership; that is
//! how a forgotten password is replaced).

use std::collections::HashMap;
use std::sync::Arc;

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Router};
use tower_sessions::Session;

use crate::pages::{csrf_refused, page, unavailable, Page};
use crate::{csrf, hash_password, now_ms, session, verify_password, Portal, PortalError};

pub(crate) fn routes() -> Router<Arc<Portal>> {
    Router::new()
        .route("/account", get(account_page))
        .route("/account/password", axum::routing::post(change_password))
}

#[derive(Template, WebTemplate)]
#[template(path = "account.html")]
struct AccountPage {
    p: Page,
    need_current: bool,
    changed: bool,
    error: Option<String>,
}

async fn needs_current(portal: &Portal, session: &Session, number: i64) -> Result<bool, Response> {
    if session::paired(session).await {
        return Ok(false);
    }
    match portal.store.password_hash(number).await {
        Ok(h) => Ok(h.is_some()),
        Err(e) => Err(unavailable(e)),
    }
}

async fn account_page(State(portal): State<Arc<Portal>>, session: Session, headers: HeaderMap) -> Response {
    let Some((n, _)) = session::current(&portal.store, &session).await else {
        return Redirect::to("/signin").into_response();
    };
    let need_current = match needs_current(&portal, &session, n).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let p = page(&portal, &session, &headers, "/account", true).await;
    AccountPage {
        p,
        need_current,
        changed: false,
        error: None,
    }
    .into_response()
}

async fn change_password(
    State(portal): State<Arc<Portal>>,
    session: Session,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if !csrf::check(&session, form.get("csrf").map(String::as_str)).await {
        return csrf_refused(&portal, &session, &headers).await;
    }
    let Some((n, sid)) = session::current(&portal.store, &session).await else {
        return Redirect::to("/signin").into_response();
    };
    let need_current = match needs_current(&portal, &session, n).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let p = page(&portal, &session, &headers, "/account", true).await;
    let refuse = |status: StatusCode, p: Page, why: &str| {
        (
            status,
            AccountPage {
                p,
                need_current,
                changed: false,
                error: Some(why.to_string()),
            },
        )
            .into_response()
    };
    if need_current {
        let current = form.get("current").cloned().unwrap_or_default();
        let ok = match portal.store.password_hash(n).await {
            Ok(Some(h)) => verify_password(current, h).await,
            Ok(None) => true,
            Err(e) => return unavailable(e),
        };
        if !ok {
            let why = p.t.wrong_password;
            return refuse(StatusCode::UNAUTHORIZED, p, why);
        }
    }
    let new = form.get("new").cloned().unwrap_or_default();
    let hash = match hash_password(&new).await {
        Ok(h) => h,
        Err(PortalError::PasswordLength) => {
            let why = p.t.password_length;
            return refuse(StatusCode::BAD_REQUEST, p, why);
        }
        Err(e) => return unavailable(e),
    };
    if let Err(e) = portal.store.set_password_hash(n, &hash, now_ms()).await {
        return unavailable(e);
    }
    let ended = match portal.store.end_number_sessions(n, Some(&sid)).await {
        Ok(k) => k,
        Err(e) => return unavailable(e),
    };
    tracing::info!(number = n, other_sessions_ended = ended, "portal password changed");
    AccountPage {
        p,
        need_current: true,
        changed: true,
        error: None,
    }
    .into_response()
}
