//! The friends page: add and remove friends by number (any region), see
//! their presence, and make one's own presence friends-only. The list is
//! stored in the `friends` table, which is what the region's friends-only
//! presence checks (the page tells the region after each change).
//!
//! Presence of a friend in this region is what that friend's own policy
//! lets the signed-in number see; a friend in another region is asked of
//! that region ([`crate::RegionLink::remote_presence`]: its HTTP API with
//! a PASSporT proving the signed-in number, all at once, short deadline),
//! so its friends-only policy applies there too; "unknown" when that
//! region cannot be found or does not answer in time.

use std::collections::HashMap;
use std::sync::Arc;

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use peerdial_number::Number;
use tower_sessions::Session;

use crate::pages::{page, unavailable, Page};
use crate::{now_ms, Portal};

/// Most friends one number lists (as the presence API allows).
const MAX_FRIENDS: usize = 1000;

type Form_ = Form<HashMap<String, String>>;

pub(crate) fn routes() -> Router<Arc<Portal>> {
    Router::new()
        .route("/friends", get(friends_page))
        .route("/friends/add", post(add))
        .route("/friends/remove", post(remove))
        .route("/friends/policy", post(policy))
}

struct Friend {
    number: String,
    digits: String,
    href: String,
    presence: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "friends.html")]
struct FriendsPage {
    p: Page,
    friends_only: bool,
    list: Vec<Friend>,
    saved: bool,
    error: Option<String>,
}

/// A friend's number: 13 digits (separators allowed), a real number.
pub(crate) fn parse_friend(s: &str) -> Option<Number> {
    let s = s.trim();
    let digits = s.chars().filter(char::is_ascii_digit).count();
    if digits != 13 || !s.chars().all(|c| c.is_ascii_digit() || c == '-' || c == ' ' || c == '+') {
        return None;
    }
    Number::parse(s).ok().filter(|n| !n.is_none())
}

async fn render(
    portal: &Portal,
    session: &Session,
    headers: &HeaderMap,
    owner: Number,
    status: StatusCode,
    saved: bool,
    error: Option<String>,
) -> Response {
    let key = owner.as_u64() as i64;
    let stored = match portal.store.friends(key).await {
        Ok(f) => f,
        Err(e) => return unavailable(e),
    };
    let p = page(portal, session, headers, "/friends", true).await;
    let numbers: Vec<Number> = stored.into_iter().filter_map(|f| Number::from_u64(f as u64).ok()).collect();
    let others: Vec<Number> = numbers.iter().copied().filter(|f| !portal.area.contains(*f)).collect();
    let mut remote = others.iter().copied().zip(portal.link.remote_presence(others.clone(), owner).await);
    let list = numbers
        .into_iter()
        .map(|f| {
            let presence = if portal.area.contains(f) {
                portal.link.presence(f, owner)
            } else {
                remote.next().and_then(|(_, p)| p)
            };
            Friend {
                number: f.to_string(),
                digits: f.digits(),
                href: format!("tel:+{}", f.digits()),
                presence: presence.unwrap_or_else(|| p.t.unknown.to_string()),
            }
        })
        .collect();
    let friends_only = portal.link.friends_only(owner);
    (
        status,
        FriendsPage {
            p,
            friends_only,
            list,
            saved,
            error,
        },
    )
        .into_response()
}

async fn friends_page(State(portal): State<Arc<Portal>>, session: Session, headers: HeaderMap) -> Response {
    let Some(n) = crate::pages::signed_in(&portal, &session).await else {
        return Redirect::to("/signin").into_response();
    };
    render(&portal, &session, &headers, n, StatusCode::OK, false, None).await
}

async fn add(State(portal): State<Arc<Portal>>, session: Session, headers: HeaderMap, Form(form): Form_) -> Response {
    let owner = match crate::pages::signed_post(&portal, &session, &headers, &form).await {
        Ok(n) => n,
        Err(r) => return r,
    };
    let t = crate::i18n::choose(&headers);
    let typed = form.get("friend").map(String::as_str).unwrap_or_default();
    let Some(friend) = parse_friend(typed) else {
        return render(
            &portal,
            &session,
            &headers,
            owner,
            StatusCode::BAD_REQUEST,
            false,
            Some(t.bad_friend.into()),
        )
        .await;
    };
    if friend == owner {
        return render(
            &portal,
            &session,
            &headers,
            owner,
            StatusCode::BAD_REQUEST,
            false,
            Some(t.friend_self.into()),
        )
        .await;
    }
    let key = owner.as_u64() as i64;
    match portal.store.friends(key).await {
        Ok(f) if f.len() >= MAX_FRIENDS => {
            return render(
                &portal,
                &session,
                &headers,
                owner,
                StatusCode::BAD_REQUEST,
                false,
                Some(t.too_many_friends.into()),
            )
            .await
        }
        Ok(_) => {}
        Err(e) => return unavailable(e),
    }
    if let Err(e) = portal.store.add_friend(key, friend.as_u64() as i64, now_ms()).await {
        return unavailable(e);
    }
    if let Err(e) = portal.link.policy_changed(owner).await {
        return unavailable(e);
    }
    Redirect::to("/friends").into_response()
}

async fn remove(State(portal): State<Arc<Portal>>, session: Session, headers: HeaderMap, Form(form): Form_) -> Response {
    let owner = match crate::pages::signed_post(&portal, &session, &headers, &form).await {
        Ok(n) => n,
        Err(r) => return r,
    };
    let typed = form.get("friend").map(String::as_str).unwrap_or_default();
    if let Some(friend) = parse_friend(typed) {
        if let Err(e) = portal.store.remove_friend(owner.as_u64() as i64, friend.as_u64() as i64).await {
            return unavailable(e);
        }
        if let Err(e) = portal.link.policy_changed(owner).await {
            return unavailable(e);
        }
    }
    Redirect::to("/friends").into_response()
}

async fn policy(State(portal): State<Arc<Portal>>, session: Session, headers: HeaderMap, Form(form): Form_) -> Response {
    let owner = match crate::pages::signed_post(&portal, &session, &headers, &form).await {
        Ok(n) => n,
        Err(r) => return r,
    };
    let only = form.contains_key("friends_only");
    if let Err(e) = portal.store.put_friends_only(owner.as_u64() as i64, only, now_ms()).await {
        return unavailable(e);
    }
    if let Err(e) = portal.link.policy_changed(owner).await {
        return unavailable(e);
    }
    render(&portal, &session, &headers, owner, StatusCode::OK, true, None).await
}
