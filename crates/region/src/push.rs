//! RFC 8599 push registrations in the region (issue 15).
//!
//! The registrar checks a REGISTER's Contact parameters with
//! [`check_contact`] (malformed `pn-*`: 400 naming the problem, nothing
//! changed). The parameters stay in the binding's Contact URI, so they are
//! stored with it and come back with it at start-up. After every committed
//! binding change [`PushLink::on_change`] compares them with what the top
//! was last told and queues a change; one task ([`run`]) tells the top in
//! order (`POST /api/v1/push/registrations` with the join token), so a
//! registration and its removal cannot overtake each other. When the
//! binding goes (unregister, expiry) the top is told to forget it.
//!
//! Not here: sending pushes (the top does, at wake time).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use peerdial_number::Number;
use peerdial_push::PushParams;
use peerdial_sip::message::SipUri;
use peerdial_sip::{Binding, Change};
use serde_json::json;
use tokio::sync::mpsc;
use tokio::sync::watch;

use crate::Shared;

/// The registrar's Contact check: strict RFC 8599 parameters.
pub(crate) fn check_contact(params: &str) -> Result<(), String> {
    PushParams::from_uri_params(params).map(|_| ()).map_err(|e| e.to_string())
}

fn params_of(b: &Binding) -> Option<PushParams> {
    let uri = SipUri::parse(&b.contact).ok()?;
    PushParams::from_uri_params(uri.params).ok().flatten()
}

type Update = (Number, Option<PushParams>);

pub struct PushLink {
    /// What the top was last told, per number.
    known: Mutex<HashMap<Number, PushParams>>,
    tx: mpsc::UnboundedSender<Update>,
    rx: Mutex<Option<mpsc::UnboundedReceiver<Update>>>,
}

impl Default for PushLink {
    fn default() -> PushLink {
        let (tx, rx) = mpsc::unbounded_channel();
        PushLink {
            known: Mutex::default(),
            tx,
            rx: Mutex::new(Some(rx)),
        }
    }
}

impl PushLink {
    /// A committed binding change: queue what the top must learn.
    pub(crate) fn on_change(&self, change: &Change) {
        let (n, now) = match change {
            Change::Upsert(n, b) => (*n, params_of(b)),
            Change::Remove(n) => (*n, None),
        };
        let mut known = self.known.lock().expect("push lock");
        let changed = match &now {
            Some(p) => known.insert(n, p.clone()).as_ref() != Some(p),
            None => known.remove(&n).is_some(),
        };
        if changed {
            let _ = self.tx.send((n, now));
        }
    }

    /// The push registrations of this number, if any (for status pages).
    pub fn get(&self, n: Number) -> Option<PushParams> {
        self.known.lock().expect("push lock").get(&n).cloned()
    }
}

/// Tells the top about every stored push registration, then each change,
/// one at a time.
pub(crate) async fn run(shared: Arc<Shared>, top: String, token: String, mut stop: watch::Receiver<bool>) {
    let Some(mut rx) = shared.push.rx.lock().expect("push lock").take() else {
        return;
    };
    let loaded: Vec<Change> = {
        let reg = shared.registrar.lock().expect("registrar lock");
        reg.bindings().map(|(n, b)| Change::Upsert(*n, b.clone())).collect()
    };
    for c in &loaded {
        shared.push.on_change(c);
    }
    loop {
        let (n, params) = tokio::select! {
            u = rx.recv() => match u { Some(u) => u, None => return },
            _ = stop.changed() => return,
        };
        let body = json!({"token": token, "number": n.to_string(), "push": params}).to_string();
        for attempt in 0..5u64 {
            match peerdial_net::http_client::request("POST", &top, "/api/v1/push/registrations", Some(&body)).await {
                Ok((200, _)) => {
                    tracing::info!(number = %n, registered = params.is_some(), "told the top about a push registration");
                    break;
                }
                Ok((status, text)) => {
                    tracing::warn!(number = %n, %status, "the top refused a push registration: {text}");
                    break;
                }
                Err(e) => {
                    tracing::warn!(number = %n, "cannot reach the top for a push registration: {e}");
                    tokio::time::sleep(Duration::from_millis(500 << attempt)).await;
                }
            }
        }
    }
}
