//! The vanity-number page: search the area's free numbers by a digit
//! pattern (contains, or ends with), and take one. The move itself (one
//! transaction; exactly one of racing owners wins; the old number is
//! quarantined; DNS follows at once) is the region's
//! ([`crate::link::RegionLink::reserve_number`]).

use std::collections::HashMap;
use std::sync::Arc;

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Router};
use peerdial_number::Number;
use tower_sessions::Session;

use crate::pages::{page_as, Page};
use crate::{session, Portal};

/// Free numbers shown per search.
const SHOWN: usize = 20;

pub(crate) fn routes() -> Router<Arc<Portal>> {
    Router::new().route("/number", get(search).post(reserve))
}

#[derive(Template, WebTemplate)]
#[template(path = "vanity.html")]
struct VanityPage {
    p: Page,
    pattern: String,
    ends_with: bool,
    searched: bool,
    /// (shown, digits)
    free: Vec<(String, String)>,
    reserved: Option<String>,
    error: Option<String>,
}

/// A pattern is 1 to 8 ASCII digits.
pub(crate) fn valid_pattern(p: &str) -> bool {
    (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit())
}

async fn search(
    State(portal): State<Arc<Portal>>,
    session: Session,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(who) = crate::pages::signed_in(&portal, &session).await else {
        return Redirect::to("/signin").into_response();
    };
    let p = page_as(&session, &headers, "/number", true, Some(who)).await;
    let pattern: String = q.get("pattern").map(|s| s.trim().chars().take(32).collect()).unwrap_or_default();
    let ends_with = q.get("mode").map(String::as_str) == Some("ends");
    let mut view = VanityPage {
        p,
        pattern: pattern.clone(),
        ends_with,
        searched: false,
        free: Vec::new(),
        reserved: q.get("reserved").and_then(|n| Number::parse(n).ok()).map(|n| n.to_string()),
        error: None,
    };
    if pattern.is_empty() {
        return view.into_response();
    }
    if !valid_pattern(&pattern) {
        view.error = Some(view.p.t.bad_pattern.to_string());
        return (StatusCode::BAD_REQUEST, view).into_response();
    }
    view.searched = true;
    view.free = portal
        .link
        .free_numbers(&pattern, ends_with, SHOWN)
        .into_iter()
        .map(|n| (n.to_string(), n.digits()))
        .collect();
    view.into_response()
}

async fn reserve(
    State(portal): State<Arc<Portal>>,
    session: Session,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let owner = match crate::pages::signed_post(&portal, &session, &headers, &form).await {
        Ok(n) => n,
        Err(r) => return r,
    };
    let p = page_as(&session, &headers, "/number", true, Some(owner)).await;
    let refuse = |p: Page, why: String| {
        (
            StatusCode::CONFLICT,
            VanityPage {
                p,
                pattern: String::new(),
                ends_with: false,
                searched: false,
                free: Vec::new(),
                reserved: None,
                error: Some(why),
            },
        )
            .into_response()
    };
    let typed = form.get("number").map(String::as_str).unwrap_or_default().trim();
    let new = match Number::parse(typed) {
        Ok(n) if portal.area.contains(n) => n,
        _ => {
            let why = p.t.bad_number.to_string();
            return refuse(p, why);
        }
    };
    if let Err(why) = portal.link.reserve_number(owner, new).await {
        let why = why.text(p.t);
        return refuse(p, why);
    }
    tracing::info!(old = %owner, %new, "vanity number reserved");
    // The session follows the number (its row moved with it).
    if let Err(e) = session::renumber(&session, new.as_u64() as i64).await {
        return crate::pages::unavailable(e);
    }
    Redirect::to(&format!("/number?reserved={}", new.digits())).into_response()
}
