//! Relaying the top's global channels to this region's phones (issue 11).
//!
//! Every [`EVERY`] the region asks the tree node it joined (`--top`) for
//! its global channels and the items after the last one relayed; a global
//! channel becomes a channel of this region with scope `global` (users
//! subscribe to it like to any other, here), and each item is stored with
//! the top's id as its origin, so a restart resumes where it stopped and
//! nothing is relayed twice. Items are cleaned again: the top is trusted
//! to say what it publishes, not with this region's phones' terminals.
//!
//! A post by one of this region's numbers to a global channel goes the
//! other way ([`forward`]): the region vouches for the poster with a
//! PASSporT (`orig` = `dest` = the poster) and hands the post to the top,
//! which decides whether that number publishes there.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use peerdial_channels::{Channel, Scope};
use peerdial_number::Number;
use peerdial_store::ItemRow;
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::{now_ms, Shared};

/// How often the top is asked.
pub const EVERY: Duration = Duration::from_secs(5);

async fn get(top: &str, path: &str) -> Option<Value> {
    match peerdial_net::http_client::request("GET", top, path, None).await {
        Ok((200, body)) => serde_json::from_str(&body).ok(),
        Ok((status, _)) => {
            tracing::debug!(status, path, "the top refused a relay request");
            None
        }
        Err(e) => {
            tracing::debug!(error = %e, "the top did not answer a relay request");
            None
        }
    }
}

/// The local id of global channel `name`, made the first time.
async fn local_channel(shared: &Shared, name: &str, title: &str) -> Option<u64> {
    if let Ok(c) = shared.channels.marquee.lock().expect("marquee").channel(name) {
        // A local channel of the same name wins; the global one is not relayed.
        return (c.scope == Scope::Global).then_some(c.id);
    }
    peerdial_channels::marquee::check_name(name).ok()?;
    let title = peerdial_channels::text::post_text(title).unwrap_or_else(|_| name.to_string());
    match shared
        .store
        .add_channel(name, &title, Scope::Global.as_str(), now_ms() as i64)
        .await
    {
        Ok(id) => {
            let c = Channel {
                id: id as u64,
                name: name.to_string(),
                title,
                scope: Scope::Global,
                until_ms: None,
            };
            let _ = shared.channels.marquee.lock().expect("marquee").add_channel(c);
            tracing::info!(channel = %name, "relaying a global channel");
            Some(id as u64)
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not store a global channel");
            None
        }
    }
}

/// One round: new channels, then new items of each.
async fn round(shared: &Shared, top: &str, marks: &mut HashMap<u64, i64>) {
    let Some(list) = get(top, "/api/v1/channels").await else { return };
    for c in list["channels"].as_array().into_iter().flatten() {
        let (Some(name), title) = (c["name"].as_str(), c["title"].as_str().unwrap_or_default()) else {
            continue;
        };
        let Some(id) = local_channel(shared, name, title).await else {
            continue;
        };
        let after = marks.get(&id).copied().unwrap_or(0);
        let Some(page) = get(top, &format!("/api/v1/channels/{name}/items?after={after}")).await else {
            continue;
        };
        for i in page["items"].as_array().into_iter().flatten() {
            let (Some(origin), Some(text)) = (i["id"].as_i64(), i["text"].as_str()) else {
                continue;
            };
            let Ok(text) = peerdial_channels::text::post_text(text) else {
                continue;
            };
            if origin <= after {
                continue;
            }
            let row = ItemRow {
                id: 0,
                channel: id as i64,
                owner: 0,
                // Who posted, as the top says (a publisher of any region).
                poster: i["poster"]
                    .as_str()
                    .and_then(|p| Number::parse(p).ok())
                    .map_or(0, |p| p.as_u64() as i64),
                text,
                posted_ms: i["posted"].as_i64().unwrap_or(0) * 1000,
                expires_ms: i["expires"].as_i64().unwrap_or(0) * 1000,
                delivered_ms: 0,
                origin,
            };
            if row.expires_ms <= now_ms() as i64 {
                continue;
            }
            match crate::channels::store_item(shared, row).await {
                Ok(_) => {
                    marks.insert(id, origin);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not store a relayed item; trying again next round");
                    break;
                }
            }
        }
    }
}

/// Posts `text` to global channel `name` on the top as `poster`, and
/// answers with what the top answered.
pub async fn forward(shared: &Shared, top: &str, name: &str, poster: Number, text: &str, expires_in: Option<u64>) -> Response {
    let identity = match crate::identity::sign(shared, poster, poster, now_ms() / 1000) {
        Ok(i) => i,
        Err(e) => return peerdial_net::http_server::error(StatusCode::INTERNAL_SERVER_ERROR, format!("could not sign: {e}")),
    };
    let from = poster.digits();
    let headers = [("Identity", identity.as_str()), ("X-Peerdial-From", from.as_str())];
    let body = json!({ "text": text, "expires_in": expires_in }).to_string();
    let path = format!("/api/v1/channels/{name}/items");
    match peerdial_net::http_client::request_with("POST", top, &path, &headers, Some(&body)).await {
        Ok((status, answer)) => {
            if (200..300).contains(&status) {
                tracing::info!(channel = %name, %poster, "post forwarded to the top");
                shared.channels.relay_now.notify_one();
            }
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
            (status, [(axum::http::header::CONTENT_TYPE, "application/json")], answer).into_response()
        }
        Err(e) => peerdial_net::http_server::error(
            StatusCode::BAD_GATEWAY,
            format!("the top, which holds global channel {name:?}, did not answer: {e}"),
        ),
    }
}

/// Relays until stopped (only with `--top`).
pub async fn run(shared: Arc<Shared>, top: String, mut stop: watch::Receiver<bool>) {
    let mut marks: HashMap<u64, i64> = match shared.store.relay_marks().await {
        Ok(m) => m.into_iter().map(|(c, o)| (c as u64, o)).collect(),
        Err(e) => {
            tracing::warn!(error = %e, "could not read the relay marks; global channels are not relayed");
            return;
        }
    };
    let mut tick = tokio::time::interval(EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => round(&shared, &top, &mut marks).await,
            _ = shared.channels.relay_now.notified() => round(&shared, &top, &mut marks).await,
            _ = stop.changed() => return,
        }
    }
}
