//! The greetings page: the current caller and callee pictures, an upload
//! form (multipart, CSRF-checked inside the form) and a greeting card drawn
//! from text. Storing goes through the region ([`crate::link::RegionLink`]),
//! the same code as `PUT /api/v1/greetings/…` and `POST …/card`, so the
//! limits and the normalisation are the API's.

use std::collections::HashMap;
use std::sync::Arc;

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use peerdial_greetings::MAX_UPLOAD_BYTES;
use peerdial_number::Number;
use tower_sessions::Session;

use crate::link::CardRequest;
use crate::pages::{page_as, Page};
use crate::Portal;

/// Room for the form's other fields and the multipart framing.
const FORM_OVERHEAD: usize = 16 * 1024;

pub(crate) fn routes() -> Router<Arc<Portal>> {
    Router::new()
        .route("/greetings", get(greetings_page))
        .route(
            "/greetings/upload",
            post(upload).layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES + FORM_OVERHEAD)),
        )
        .route("/greetings/card", post(card))
        .route("/greetings/preview", get(preview))
}

/// `GET /greetings/preview?text=…&foreground=…&background=…&layout=…`:
/// the card as it would be drawn, not stored (signed-in numbers only; the
/// page's script points an image at it as the text is typed).
async fn preview(
    State(portal): State<Arc<Portal>>,
    session: Session,
    axum::extract::Query(q): axum::extract::Query<HashMap<String, String>>,
) -> Response {
    if crate::pages::signed_in(&portal, &session).await.is_none() {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let get = |k: &str, d: &str| q.get(k).map_or(d.to_string(), |v| v.trim().chars().take(200).collect());
    let req = CardRequest {
        text: get("text", ""),
        foreground: get("foreground", "#ffffff"),
        background: get("background", "#1f4e79"),
        layout: get("layout", "centered"),
    };
    match portal.link.preview_card(req).await {
        Ok(png) => (
            [
                (axum::http::header::CONTENT_TYPE, "image/png"),
                (axum::http::header::CACHE_CONTROL, "no-store"),
            ],
            png,
        )
            .into_response(),
        Err(why) => (StatusCode::BAD_REQUEST, why.to_string()).into_response(),
    }
}

struct Current {
    kind: &'static str,
    label: &'static str,
    etag: Option<String>,
}

#[derive(Template, WebTemplate)]
#[template(path = "greetings.html")]
struct GreetingsPage {
    p: Page,
    digits: String,
    current: Vec<Current>,
    saved: bool,
    error: Option<String>,
}

async fn render(
    portal: &Portal,
    session: &Session,
    headers: &HeaderMap,
    n: Number,
    status: StatusCode,
    saved: bool,
    error: Option<String>,
) -> Response {
    let p = page_as(session, headers, "/greetings", true, Some(n)).await;
    let current = [("caller", p.t.as_caller), ("callee", p.t.as_callee)]
        .into_iter()
        .map(|(kind, label)| Current {
            kind,
            label,
            etag: portal.link.greeting_etag(n, kind),
        })
        .collect();
    (
        status,
        GreetingsPage {
            p,
            digits: n.digits(),
            current,
            saved,
            error,
        },
    )
        .into_response()
}

async fn greetings_page(State(portal): State<Arc<Portal>>, session: Session, headers: HeaderMap) -> Response {
    let Some(n) = crate::pages::signed_in(&portal, &session).await else {
        return Redirect::to("/signin").into_response();
    };
    render(&portal, &session, &headers, n, StatusCode::OK, false, None).await
}

fn kind_of(s: Option<&str>) -> &'static str {
    match s {
        Some("callee") => "callee",
        _ => "caller",
    }
}

/// Reads the whole form (the picture is capped by the body limit), then
/// checks the CSRF token before anything is decoded or stored.
async fn upload(State(portal): State<Arc<Portal>>, session: Session, headers: HeaderMap, mut form: Multipart) -> Response {
    let mut fields: HashMap<String, String> = HashMap::new();
    let mut picture: Option<Vec<u8>> = None;
    loop {
        match form.next_field().await {
            Ok(Some(field)) => {
                let name = field.name().unwrap_or_default().to_string();
                match field.bytes().await {
                    Ok(b) if name == "picture" => picture = Some(b.to_vec()),
                    Ok(b) if b.len() <= 1024 => {
                        fields.insert(name, String::from_utf8_lossy(&b).into_owned());
                    }
                    Ok(_) => {}
                    Err(e) => return (StatusCode::BAD_REQUEST, format!("unreadable form: {e}")).into_response(),
                }
            }
            Ok(None) => break,
            Err(e) => return (e.status(), format!("unreadable form: {}", e.body_text())).into_response(),
        }
    }
    let n = match crate::pages::signed_post(&portal, &session, &headers, &fields).await {
        Ok(n) => n,
        Err(r) => return r,
    };
    let kind = kind_of(fields.get("kind").map(String::as_str));
    let t = crate::i18n::choose(&headers);
    let picture = match picture {
        Some(p) if !p.is_empty() => p,
        _ => {
            return render(
                &portal,
                &session,
                &headers,
                n,
                StatusCode::BAD_REQUEST,
                false,
                Some(t.no_file.into()),
            )
            .await
        }
    };
    match portal.link.upload_greeting(n, kind, picture).await {
        Ok(_) => render(&portal, &session, &headers, n, StatusCode::OK, true, None).await,
        Err(why) => {
            let why = why.text(crate::i18n::choose(&headers));
            render(&portal, &session, &headers, n, StatusCode::BAD_REQUEST, false, Some(why)).await
        }
    }
}

async fn card(
    State(portal): State<Arc<Portal>>,
    session: Session,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let n = match crate::pages::signed_post(&portal, &session, &headers, &form).await {
        Ok(n) => n,
        Err(r) => return r,
    };
    let get = |k: &str, d: &str| form.get(k).map_or(d.to_string(), |v| v.trim().to_string());
    let req = CardRequest {
        text: get("text", ""),
        foreground: get("foreground", "#ffffff"),
        background: get("background", "#1f4e79"),
        layout: get("layout", "centered"),
    };
    let kind = kind_of(form.get("kind").map(String::as_str));
    match portal.link.card_greeting(n, kind, req).await {
        Ok(_) => render(&portal, &session, &headers, n, StatusCode::OK, true, None).await,
        Err(why) => {
            let why = why.text(crate::i18n::choose(&headers));
            render(&portal, &session, &headers, n, StatusCode::BAD_REQUEST, false, Some(why)).await
        }
    }
}
