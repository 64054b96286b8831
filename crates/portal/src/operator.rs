//! The operator's page: an account created from the command line
//! (`peerdial region operator add NAME`) signs in here, sees counts of
//! numbers, registrations and signed-in sessions, and disables or
//! re-enables a number. Operator sign-ins are rate-limited like numbers'.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use peerdial_number::Number;
use sha2::{Digest, Sha256};
use tower_sessions::Session;

use crate::pages::{csrf_refused, page, unavailable, Page};
use crate::{csrf, now_ms, verify_password, Portal};

/// The session key holding the signed-in operator's name.
const OPERATOR: &str = "operator";
/// The session key holding the operator's sign-in token; its hash is a
/// `portal_sessions` row keyed by [`limit_key`] (negative), so operator
/// sessions are counted, and sign-out ends them, like numbers' sessions.
const OPERATOR_SID: &str = "operator_sid";
/// Sessions counted: those started within the idle limit.
const SESSION_WINDOW_MS: i64 = 7 * 24 * 3600 * 1000;

type Form_ = Form<HashMap<String, String>>;

pub(crate) fn routes() -> Router<Arc<Portal>> {
    Router::new()
        .route("/operator", get(operator_page))
        .route("/operator/signin", post(signin))
        .route("/operator/signout", post(signout))
        .route("/operator/number", post(number))
        .route("/operator/broadcast", post(broadcast))
}

#[derive(Template, WebTemplate)]
#[template(path = "operator.html")]
struct OperatorPage {
    p: Page,
    operator: Option<String>,
    numbers: usize,
    registered: usize,
    sessions: i64,
    operator_sessions: i64,
    disabled: Vec<String>,
    done: bool,
    error: Option<String>,
}

/// The signed-in operator, while the session's row lasts.
async fn operator_of(portal: &Portal, session: &Session) -> Option<String> {
    let name = session.get::<String>(OPERATOR).await.ok().flatten()?;
    let sid = session.get::<String>(OPERATOR_SID).await.ok().flatten()?;
    match portal.store.portal_session(&crate::session::hash(&sid)).await {
        Ok(Some(key)) if key == limit_key(&name) => Some(name),
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(error = %e, "could not check an operator session");
            None
        }
    }
}

async fn render(
    portal: &Portal,
    session: &Session,
    headers: &HeaderMap,
    status: StatusCode,
    done: bool,
    error: Option<String>,
) -> Response {
    let p = page(portal, session, headers, "/operator", true).await;
    let operator = operator_of(portal, session).await;
    let mut view = OperatorPage {
        p,
        operator: None,
        numbers: 0,
        registered: 0,
        sessions: 0,
        operator_sessions: 0,
        disabled: Vec::new(),
        done,
        error,
    };
    if let Some(name) = operator {
        let c = portal.link.counts();
        view.numbers = c.numbers;
        view.registered = c.registered;
        (view.sessions, view.operator_sessions) = match portal.store.portal_session_counts(now_ms() - SESSION_WINDOW_MS).await {
            Ok(n) => n,
            Err(e) => return unavailable(e),
        };
        view.disabled = match portal.store.disabled_numbers().await {
            Ok(d) => d
                .into_iter()
                .filter_map(|n| Number::from_u64(n as u64).ok())
                .map(|n| n.to_string())
                .collect(),
            Err(e) => return unavailable(e),
        };
        view.operator = Some(name);
    }
    (status, view).into_response()
}

async fn operator_page(State(portal): State<Arc<Portal>>, session: Session, headers: HeaderMap) -> Response {
    render(&portal, &session, &headers, StatusCode::OK, false, None).await
}

/// A rate-limit key for an operator name (negative: never a number's).
fn limit_key(name: &str) -> i64 {
    let h = Sha256::digest(name.as_bytes());
    -(i64::from_be_bytes([0, h[0], h[1], h[2], h[3], h[4], h[5], h[6]]) + 1)
}

async fn signin(
    State(portal): State<Arc<Portal>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    session: Session,
    headers: HeaderMap,
    Form(form): Form_,
) -> Response {
    if !csrf::check(&session, form.get("csrf").map(String::as_str)).await {
        return csrf_refused(&portal, &session, &headers).await;
    }
    let t = crate::i18n::choose(&headers);
    let name = form.get("name").map(|n| n.trim().to_string()).unwrap_or_default();
    let password = form.get("password").cloned().unwrap_or_default();
    let key = limit_key(&name);
    let now = now_ms();
    if portal.limits.lock().expect("limits lock").check(key, peer.ip(), now).is_err() {
        let why = format!("{} 15 {}", t.too_many_address, t.minutes);
        return render(&portal, &session, &headers, StatusCode::TOO_MANY_REQUESTS, false, Some(why)).await;
    }
    let ok = match portal.store.operator_hash(&name).await {
        Ok(Some(h)) => verify_password(password, h).await,
        Ok(None) => false,
        Err(e) => return unavailable(e),
    };
    if !ok {
        portal.limits.lock().expect("limits lock").failed(key, peer.ip(), now);
        tracing::info!(addr = %peer.ip(), "operator sign-in refused");
        return render(
            &portal,
            &session,
            &headers,
            StatusCode::UNAUTHORIZED,
            false,
            Some(t.wrong_password.into()),
        )
        .await;
    }
    portal.limits.lock().expect("limits lock").succeeded(key);
    if let Err(e) = session.cycle_id().await {
        return unavailable(e);
    }
    let sid = hex::encode(rand::random::<[u8; 24]>());
    if let Err(e) = portal.store.add_portal_session(&crate::session::hash(&sid), key, now).await {
        return unavailable(e);
    }
    if let Err(e) = session.insert(OPERATOR, &name).await {
        return unavailable(e);
    }
    if let Err(e) = session.insert(OPERATOR_SID, &sid).await {
        return unavailable(e);
    }
    csrf::fresh(&session).await;
    tracing::info!(operator = %name, "operator sign-in");
    Redirect::to("/operator").into_response()
}

async fn number(State(portal): State<Arc<Portal>>, session: Session, headers: HeaderMap, Form(form): Form_) -> Response {
    let name = match operator_post(&portal, &session, &headers, &form).await {
        Ok(n) => n,
        Err(r) => return r,
    };
    let t = crate::i18n::choose(&headers);
    let n = match Number::parse(form.get("number").map(String::as_str).unwrap_or_default().trim()) {
        Ok(n) if portal.area.contains(n) && (portal.link.provisioned(n) || portal.link.disabled(n)) => n,
        _ => {
            return render(
                &portal,
                &session,
                &headers,
                StatusCode::BAD_REQUEST,
                false,
                Some(t.not_in_area.into()),
            )
            .await
        }
    };
    let disable = form.get("action").map(String::as_str) == Some("disable");
    if let Err(why) = portal.link.set_disabled(n, disable).await {
        let why = why.text(crate::i18n::choose(&headers));
        return render(&portal, &session, &headers, StatusCode::SERVICE_UNAVAILABLE, false, Some(why)).await;
    }
    if disable {
        // A disabled number's portal sessions end too.
        if let Err(e) = portal.store.end_number_sessions(n.as_u64() as i64, None).await {
            return unavailable(e);
        }
    }
    tracing::info!(operator = %name, number = %n, disable, "operator changed a number");
    render(&portal, &session, &headers, StatusCode::OK, true, None).await
}

/// A form post from a signed-in operator: its name, or the answer to give
/// (a refused CSRF token, or back to the sign-in form).
async fn operator_post(
    portal: &Portal,
    session: &Session,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<String, Response> {
    if !csrf::check(session, form.get("csrf").map(String::as_str)).await {
        return Err(csrf_refused(portal, session, headers).await);
    }
    operator_of(portal, session)
        .await
        .ok_or_else(|| Redirect::to("/operator").into_response())
}

/// A broadcast from the operator page: text, an optional repeat (minutes)
/// and end (a `datetime-local` value, read as UTC).
async fn broadcast(State(portal): State<Arc<Portal>>, session: Session, headers: HeaderMap, Form(form): Form_) -> Response {
    let name = match operator_post(&portal, &session, &headers, &form).await {
        Ok(n) => n,
        Err(r) => return r,
    };
    let t = crate::i18n::choose(&headers);
    let field = |k: &str| form.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    let every = field("every").map(|e| e.parse::<u64>().map_err(|_| ())).transpose();
    let until = field("until")
        .map(|u| peerdial_channels::schedule::parse_utc(u).ok_or(()))
        .transpose();
    let (Ok(every), Ok(until)) = (every, until) else {
        let why = Some(t.bad_schedule.into());
        return render(&portal, &session, &headers, StatusCode::BAD_REQUEST, false, why).await;
    };
    let text = form.get("text").cloned().unwrap_or_default();
    match portal.link.broadcast(text, every, until).await {
        Ok(id) => {
            tracing::info!(operator = %name, broadcast = id, "broadcast from the operator page");
            render(&portal, &session, &headers, StatusCode::OK, true, None).await
        }
        Err(why) => {
            let why = why.text(crate::i18n::choose(&headers));
            render(&portal, &session, &headers, StatusCode::BAD_REQUEST, false, Some(why)).await
        }
    }
}

/// Ends the operator's session: its row goes, then the session itself.
async fn signout(State(portal): State<Arc<Portal>>, session: Session, headers: HeaderMap, Form(form): Form_) -> Response {
    if !csrf::check(&session, form.get("csrf").map(String::as_str)).await {
        return csrf_refused(&portal, &session, &headers).await;
    }
    if let Ok(Some(sid)) = session.get::<String>(OPERATOR_SID).await {
        if let Err(e) = portal.store.end_portal_session(&crate::session::hash(&sid)).await {
            return unavailable(e);
        }
    }
    if let Err(e) = session.flush().await {
        return unavailable(e);
    }
    Redirect::to("/operator").into_response()
}
