//! The channels page: the region's channels, each with a subscribe or
//! unsubscribe button for the signed-in number (what its phone's marquee
//! shows). The region keeps the subscriptions ([`crate::RegionLink`]).

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

use crate::link::ChannelView;
use crate::pages::{page_as, Page};
use crate::Portal;

type Form_ = Form<HashMap<String, String>>;

pub(crate) fn routes() -> Router<Arc<Portal>> {
    Router::new()
        .route("/channels", get(channels_page))
        .route("/channels/subscribe", post(subscribe))
        .route("/channels/unsubscribe", post(unsubscribe))
}

#[derive(Template, WebTemplate)]
#[template(path = "channels.html")]
struct ChannelsPage {
    p: Page,
    list: Vec<ChannelView>,
    saved: bool,
    error: Option<String>,
}

async fn render(
    portal: &Portal,
    session: &Session,
    headers: &HeaderMap,
    who: Number,
    status: StatusCode,
    saved: bool,
    error: Option<String>,
) -> Response {
    let p = page_as(session, headers, "/channels", true, Some(who)).await;
    let list = portal.link.channels(who);
    (status, ChannelsPage { p, list, saved, error }).into_response()
}

async fn channels_page(State(portal): State<Arc<Portal>>, session: Session, headers: HeaderMap) -> Response {
    let Some(n) = crate::pages::signed_in(&portal, &session).await else {
        return Redirect::to("/signin").into_response();
    };
    render(&portal, &session, &headers, n, StatusCode::OK, false, None).await
}

async fn change(portal: Arc<Portal>, session: Session, headers: HeaderMap, form: HashMap<String, String>, on: bool) -> Response {
    let who = match crate::pages::signed_post(&portal, &session, &headers, &form).await {
        Ok(n) => n,
        Err(r) => return r,
    };
    let channel = form.get("channel").cloned().unwrap_or_default();
    match portal.link.set_subscription(who, channel, on).await {
        Ok(()) => render(&portal, &session, &headers, who, StatusCode::OK, true, None).await,
        Err(why) => {
            let why = why.text(crate::i18n::choose(&headers));
            render(&portal, &session, &headers, who, StatusCode::BAD_REQUEST, false, Some(why)).await
        }
    }
}

async fn subscribe(State(portal): State<Arc<Portal>>, session: Session, headers: HeaderMap, Form(form): Form_) -> Response {
    change(portal, session, headers, form, true).await
}

async fn unsubscribe(State(portal): State<Arc<Portal>>, session: Session, headers: HeaderMap, Form(form): Form_) -> Response {
    change(portal, session, headers, form, false).await
}
