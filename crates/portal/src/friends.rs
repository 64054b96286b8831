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
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use peerdial_number::Number;
use tower_sessions::Session;

use crate::pages::{page_as, unavailable, Page};
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
        .route("/friends/events", get(events))
}

/// How often the live list reads this region's friends (in memory) and,
/// every [`REMOTE_EVERY`]th time, asks the other regions (over HTTP, each
/// ask signed): friends in other regions follow within a few seconds.
const TICK: Duration = Duration::from_secs(1);
const REMOTE_EVERY: u64 = 3;

/// Each friend's presence as `owner` may see it: this region's from
/// memory, the others' (when `remote`) from their regions, at once.
async fn presences(portal: &Portal, owner: Number, numbers: &[Number], remote: bool) -> Vec<(Number, Option<String>)> {
    let others: Vec<Number> = numbers.iter().copied().filter(|f| !portal.area.contains(*f)).collect();
    let asked = if remote {
        portal.link.remote_presence(others.clone(), owner).await
    } else {
        Vec::new()
    };
    let mut asked = others.into_iter().zip(asked);
    numbers
        .iter()
        .filter_map(|&f| {
            if portal.area.contains(f) {
                Some((f, portal.link.presence(f, owner)))
            } else if remote {
                asked.next()
            } else {
                None
            }
        })
        .collect()
}

/// `GET /friends/events`: the signed-in number's friends' presence as
/// Server-Sent Events, each friend at once and again when it changes
/// (`{"number": digits, "presence": state or null}`), for the page's
/// script; the page itself works without it.
async fn events(State(portal): State<Arc<Portal>>, session: Session) -> Response {
    let Some(owner) = crate::pages::signed_in(&portal, &session).await else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let numbers: Vec<Number> = match portal.store.friends(owner.as_u64() as i64).await {
        Ok(f) => f.into_iter().filter_map(|f| Number::from_u64(f as u64).ok()).collect(),
        Err(e) => return unavailable(e),
    };
    let start = (portal, numbers, HashMap::<Number, Option<String>>::new(), 0u64, Vec::<Event>::new());
    let stream = futures_util::stream::unfold(start, move |(portal, numbers, mut last, mut tick, mut due)| async move {
        loop {
            if let Some(ev) = due.pop() {
                return Some((Ok::<Event, Infallible>(ev), (portal, numbers, last, tick, due)));
            }
            if tick > 0 {
                tokio::time::sleep(TICK).await;
            }
            let remote = tick % REMOTE_EVERY == 0;
            tick += 1;
            for (n, p) in presences(&portal, owner, &numbers, remote).await {
                if last.get(&n) != Some(&p) {
                    let data = serde_json::json!({ "number": n.digits(), "presence": p });
                    due.push(Event::default().data(data.to_string()));
                    last.insert(n, p);
                }
            }
        }
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
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
    let p = page_as(session, headers, "/friends", true, Some(owner)).await;
    let numbers: Vec<Number> = stored.into_iter().filter_map(|f| Number::from_u64(f as u64).ok()).collect();
    let list = presences(portal, owner, &numbers, true)
        .await
        .into_iter()
        .map(|(f, presence)| Friend {
            number: f.to_string(),
            digits: f.digits(),
            href: format!("tel:+{}", f.digits()),
            presence: presence.unwrap_or_else(|| p.t.unknown.to_string()),
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
