//! The portal's pages and form handlers. Every POST checks the CSRF token
//! first and changes nothing when it is wrong; templates (askama) escape
//! every value, so what people type is always shown as text.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use peerdial_number::Number;
use peerdial_store::{ProfileRow, FIELDS};
use tower_sessions::Session;

use crate::i18n::{self, Msg};
use crate::verify::Failed;
use crate::{csrf, now_ms, session as signin_state, Portal};

/// Longest value of each field, in characters (the last is the introduction).
const MAX_CHARS: [usize; 5] = [80, 80, 120, 200, 1000];

type Form_ = Form<HashMap<String, String>>;

pub(crate) fn routes() -> Router<Arc<Portal>> {
    Router::new()
        .route("/signin", get(signin_form).post(signin))
        .route("/signout", post(signout))
        .route("/profile", get(profile_form).post(profile_save))
        .route("/lang/{code}", get(switch_lang))
        .merge(crate::account::routes())
        .merge(crate::channels::routes())
        .merge(crate::friends::routes())
        .merge(crate::greetings::routes())
        .merge(crate::operator::routes())
        .merge(crate::vanity::routes())
        .merge(crate::yellow::routes())
        .merge(crate::verify::routes())
}

/// What every page's frame needs.
pub(crate) struct Page {
    pub t: &'static Msg,
    pub csrf: String,
    pub signed_in: Option<String>,
    pub path: &'static str,
}

/// The signed-in number, while its session lasts.
pub(crate) async fn signed_in(portal: &Portal, session: &Session) -> Option<Number> {
    let (n, _) = signin_state::current(&portal.store, session).await?;
    Number::from_u64(n as u64).ok()
}

/// A form post by a signed-in number: the CSRF token is checked first
/// (refused: 403 page), then the session (none: back to sign-in).
pub(crate) async fn signed_post(
    portal: &Portal,
    session: &Session,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<Number, Response> {
    if !csrf::check(session, form.get("csrf").map(String::as_str)).await {
        return Err(csrf_refused(portal, session, headers).await);
    }
    signed_in(portal, session)
        .await
        .ok_or_else(|| Redirect::to("/signin").into_response())
}

/// The frame; a CSRF token is made only when the page has a form to post.
pub(crate) async fn page(portal: &Portal, session: &Session, headers: &HeaderMap, path: &'static str, form: bool) -> Page {
    page_as(session, headers, path, form, signed_in(portal, session).await).await
}

/// The frame for `who`, whose session the handler has just checked (one
/// look-up of the session's row, not two).
pub(crate) async fn page_as(session: &Session, headers: &HeaderMap, path: &'static str, form: bool, who: Option<Number>) -> Page {
    let csrf = if form || who.is_some() {
        csrf::token(session).await
    } else {
        String::new()
    };
    Page {
        t: i18n::choose(headers),
        csrf,
        signed_in: who.map(|n| n.to_string()),
        path,
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "message.html")]
struct Message {
    p: Page,
    text: String,
}

pub(crate) async fn message(
    portal: &Portal,
    status: StatusCode,
    session: &Session,
    headers: &HeaderMap,
    text: impl FnOnce(&Msg) -> String,
) -> Response {
    let p = page(portal, session, headers, "/", false).await;
    let text = text(p.t);
    (status, Message { p, text }).into_response()
}

pub(crate) async fn csrf_refused(portal: &Portal, session: &Session, headers: &HeaderMap) -> Response {
    message(portal, StatusCode::FORBIDDEN, session, headers, |t| t.csrf_refused.to_string()).await
}

pub(crate) fn unavailable(e: impl std::fmt::Display) -> Response {
    tracing::warn!(error = %e, "portal storage failed");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "the region's database is not answering; try again shortly",
    )
        .into_response()
}

#[derive(Template, WebTemplate)]
#[template(path = "signin.html")]
struct SignIn {
    p: Page,
    number: String,
    error: Option<String>,
}

async fn signin_form(State(portal): State<Arc<Portal>>, session: Session, headers: HeaderMap) -> Response {
    if signed_in(&portal, &session).await.is_some() {
        return Redirect::to("/profile").into_response();
    }
    let p = page(&portal, &session, &headers, "/signin", true).await;
    SignIn {
        p,
        number: String::new(),
        error: None,
    }
    .into_response()
}

/// Sign-in with number and password, or number and a pairing code from
/// the phone (6 digits, in the `code` field). Wrong passwords and wrong
/// codes count alike against the number and the address.
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
    let typed = form.get("number").cloned().unwrap_or_default();
    let password = form.get("password").cloned().unwrap_or_default();
    let code = form.get("code").map(|c| c.trim().to_string()).unwrap_or_default();
    let refuse = |status: StatusCode, p: Page, why: String| {
        (
            status,
            SignIn {
                p,
                number: typed.clone(),
                error: Some(why),
            },
        )
            .into_response()
    };
    let p = page(&portal, &session, &headers, "/signin", true).await;
    let number = match Number::parse(typed.trim()) {
        Ok(n) if portal.area.contains(n) => n,
        _ => {
            let d = crate::verify::Denied::BadNumber;
            let why = d.text(p.t);
            return refuse(d.status(), p, why);
        }
    };
    let paired = match crate::verify::check(&portal, number, password, &code, Some(peer.ip())).await {
        Ok(paired) => paired,
        Err(Failed::Denied(d)) => {
            tracing::info!(%number, addr = %peer.ip(), refused = d.code(), "portal sign-in refused");
            let why = d.text(p.t);
            return refuse(d.status(), p, why);
        }
        Err(Failed::Unavailable(e)) => return unavailable(e),
    };
    let key = number.as_u64() as i64;
    if let Err(e) = signin_state::begin(&portal.store, &session, key, paired).await {
        return unavailable(e);
    }
    tracing::info!(%number, paired, "portal sign-in");
    Redirect::to("/profile").into_response()
}

/// Ends this session everywhere it is kept (the database row and the
/// session), so its cookie is worthless afterwards.
async fn signout(State(portal): State<Arc<Portal>>, session: Session, headers: HeaderMap, Form(form): Form_) -> Response {
    if !csrf::check(&session, form.get("csrf").map(String::as_str)).await {
        return csrf_refused(&portal, &session, &headers).await;
    }
    if let Err(e) = signin_state::end(&portal.store, &session).await {
        return unavailable(e);
    }
    Redirect::to("/").into_response()
}

struct FieldForm {
    name: String,
    label: &'static str,
    value: String,
    public: bool,
    long: bool,
    max: usize,
}

#[derive(Template, WebTemplate)]
#[template(path = "profile.html")]
struct ProfilePage {
    p: Page,
    fields: Vec<FieldForm>,
    listed: bool,
    saved: bool,
    error: Option<String>,
}

fn profile_page(p: Page, row: &ProfileRow, saved: bool, error: Option<String>) -> ProfilePage {
    let fields = (0..FIELDS.len())
        .map(|i| FieldForm {
            name: FIELDS[i].to_string(),
            label: p.t.fields[i],
            value: row.fields[i].clone(),
            public: row.is_public(i),
            long: i == FIELDS.len() - 1,
            max: MAX_CHARS[i],
        })
        .collect();
    ProfilePage {
        p,
        fields,
        listed: row.listed,
        saved,
        error,
    }
}

async fn profile_form(State(portal): State<Arc<Portal>>, session: Session, headers: HeaderMap) -> Response {
    let Some(n) = signed_in(&portal, &session).await else {
        return Redirect::to("/signin").into_response();
    };
    let key = n.as_u64() as i64;
    let row = match portal.store.profile(key).await {
        Ok(r) => r.unwrap_or(ProfileRow {
            number: key,
            ..ProfileRow::default()
        }),
        Err(e) => return unavailable(e),
    };
    let p = page_as(&session, &headers, "/profile", true, Some(n)).await;
    profile_page(p, &row, false, None).into_response()
}

async fn profile_save(State(portal): State<Arc<Portal>>, session: Session, headers: HeaderMap, Form(form): Form_) -> Response {
    let n = match signed_post(&portal, &session, &headers, &form).await {
        Ok(n) => n,
        Err(r) => return r,
    };
    let mut row = ProfileRow {
        number: n.as_u64() as i64,
        ..ProfileRow::default()
    };
    let mut too_long = false;
    for (i, name) in FIELDS.iter().enumerate() {
        let v = form.get(*name).map(|v| v.trim()).unwrap_or_default();
        // Control characters never belong in a profile (newlines do, in the introduction).
        let v: String = v.chars().filter(|c| !c.is_control() || (*c == '\n' && i == 4)).collect();
        too_long |= v.chars().count() > MAX_CHARS[i];
        row.fields[i] = v;
        if form.contains_key(&format!("{name}_public")) {
            row.public_mask |= 1 << i;
        }
    }
    row.listed = form.contains_key("listed");
    let p = page_as(&session, &headers, "/profile", true, Some(n)).await;
    if too_long {
        let why = p.t.too_long.to_string();
        return (StatusCode::BAD_REQUEST, profile_page(p, &row, false, Some(why))).into_response();
    }
    if let Err(e) = portal.store.put_profile(&row, now_ms()).await {
        return unavailable(e);
    }
    profile_page(p, &row, true, None).into_response()
}

/// The language switch: remembers the choice in a cookie and goes back to
/// the page (only a path on this site).
pub async fn switch_lang(Path(code): Path<String>, Query(q): Query<HashMap<String, String>>) -> Response {
    let Some(m) = i18n::by_code(&code) else {
        return (StatusCode::NOT_FOUND, "no such language").into_response();
    };
    let back = q
        .get("back")
        .filter(|b| b.starts_with('/') && !b.starts_with("//") && !b.contains('\\'))
        .map_or("/", String::as_str);
    let cookie = format!("{}={}; Path=/; Max-Age=31536000; SameSite=Lax; HttpOnly", i18n::COOKIE, m.code);
    ([(header::SET_COOKIE, cookie)], Redirect::to(back)).into_response()
}
