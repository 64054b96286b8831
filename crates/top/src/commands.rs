//! The cloud command (issue 15, C3): a device with no switch may hold one
//! persistent connection to the cloud, `GET /api/v1/devices/commands`, a
//! stream of Server-Sent Events, signed in with a PASSporT its region made
//! for its own number (as designation is). Waking a device that holds one
//! sends the wake payload down it (`event: wake`) instead of through a
//! push service: nothing in between, and no push registration needed.
//!
//! One connection per number: a newer one replaces the older (whose
//! stream ends). A connection that went away is noticed when a wake finds
//! its channel closed, and the wake falls back to push.
//!
//! Not here: the payload and its tokens (`push.rs` builds them for both).

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use peerdial_number::Number;
use tokio::sync::mpsc;

use crate::TopShared;

/// Wakes queued for a device that has not read them yet; more means the
/// connection is stuck, and the wake goes by push instead.
const QUEUE: usize = 4;

/// The devices holding a command connection.
#[derive(Default)]
pub struct Commands {
    held: Mutex<HashMap<Number, (u64, mpsc::Sender<String>)>>,
    next: AtomicU64,
}

impl Commands {
    /// Sends `payload` (JSON) to `n`'s connection; false when it holds
    /// none, or it is gone or stuck.
    pub(crate) fn send(&self, n: Number, payload: String) -> bool {
        let mut held = self.held.lock().expect("commands lock");
        let Some((_, tx)) = held.get(&n) else { return false };
        match tx.try_send(payload) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => false,
            Err(mpsc::error::TrySendError::Closed(_)) => {
                held.remove(&n);
                false
            }
        }
    }

    pub fn holds(&self, n: Number) -> bool {
        self.held
            .lock()
            .expect("commands lock")
            .get(&n)
            .is_some_and(|(_, tx)| !tx.is_closed())
    }
}

/// Forgets a connection when its stream is dropped (the device went away),
/// unless a newer one took its place.
struct Held {
    shared: Arc<TopShared>,
    number: Number,
    id: u64,
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut held = self.shared.push.commands.held.lock().expect("commands lock");
        if held.get(&self.number).is_some_and(|(id, _)| *id == self.id) {
            held.remove(&self.number);
            tracing::debug!(number = %self.number, "command connection closed");
        }
    }
}

pub fn routes() -> Router<Arc<TopShared>> {
    Router::new().route("/api/v1/devices/commands", get(hold))
}

async fn hold(State(shared): State<Arc<TopShared>>, headers: HeaderMap) -> Response {
    let number = match crate::users::vouched_number(&shared, &headers).await {
        Ok(n) => n,
        Err(r) => return r,
    };
    let (tx, rx) = mpsc::channel::<String>(QUEUE);
    let id = shared.push.commands.next.fetch_add(1, Ordering::Relaxed);
    shared.push.commands.held.lock().expect("commands lock").insert(number, (id, tx));
    tracing::info!(%number, "a device holds a command connection");
    let guard = Held {
        shared: shared.clone(),
        number,
        id,
    };
    // First a "ready" event, so the device knows it is held; then wakes.
    let ready = Event::default().event("ready").data(number.to_string());
    let stream = futures_util::stream::unfold((Some(ready), rx, guard), |(first, mut rx, guard)| async move {
        if let Some(ev) = first {
            return Some((Ok::<Event, Infallible>(ev), (None, rx, guard)));
        }
        let payload = rx.recv().await?;
        Some((Ok(Event::default().event("wake").data(payload)), (None, rx, guard)))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}
