//! The book of calls' progress: each call's summary and its events as the
//! dialer reads them (`{"event": …, "text": …}`), written by the
//! controller task, read by an HTTP API that long-polls it
//! ([`CallBook::wait`]). The top keeps one for its dialers (with their
//! per-user limits); a region keeps one for the calls the top hands it.
//!
//! It is not an HTTP handler: each server words its own API around it.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use peerdial_number::Number;
use peerdial_sip::conference::ConfProgress;
use peerdial_sip::pairing::{Progress, Side};
use serde_json::Value;
use tokio::sync::Notify;

/// Calls a user may have being set up or running at once.
pub const MAX_LIVE: usize = 2;
/// New calls a user may place per minute.
pub const MAX_PER_MINUTE: usize = 10;
/// How long a finished call's record stays readable.
const KEEP_MS: u64 = 10 * 60 * 1000;
/// The longest a reader may wait for news.
pub const MAX_WAIT_SECS: u64 = 25;

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

struct Record {
    owner: Number,
    summary: Value,
    events: Vec<Value>,
    over_at: Option<u64>,
}

/// What may be done to add one more talker to a call.
pub enum Growable {
    /// Over, or not connected yet.
    No,
    Conference,
    /// Connected: it becomes a conference; the labels of its two talkers.
    TwoParty([String; 2]),
}

/// One reading of a call: its summary, the events after the reader's
/// mark, and whether it is over.
pub struct View {
    pub summary: Value,
    pub events: Vec<Value>,
    pub over: bool,
}

/// Every call's progress; filled by the controller.
#[derive(Default)]
pub struct CallBook {
    calls: Mutex<HashMap<u64, Record>>,
    placed: Mutex<HashMap<Number, VecDeque<u64>>>,
    changed: Notify,
    next: AtomicU64,
}

impl CallBook {
    /// One event of a two-party call.
    pub fn push(&self, id: u64, p: Progress) {
        let over = matches!(p, Progress::Failed { .. } | Progress::Ended { .. });
        let mut ev = serde_json::to_value(&p).unwrap_or(Value::Null);
        ev["text"] = Value::String(describe(&p));
        self.push_value(id, ev, over);
    }

    /// One event of a conference.
    pub fn push_conf(&self, id: u64, p: &ConfProgress) {
        let over = matches!(p, ConfProgress::Ended { .. });
        let mut ev = serde_json::to_value(p).unwrap_or(Value::Null);
        ev["text"] = Value::String(describe_conf(p));
        self.push_value(id, ev, over);
    }

    /// One event (with its `text`) for call `id`; `over`: the last one.
    pub fn push_value(&self, id: u64, ev: Value, over: bool) {
        if let Some(r) = self.calls.lock().expect("calls").get_mut(&id) {
            r.events.push(ev);
            if over {
                r.over_at = Some(now_ms());
            }
        }
        self.changed.notify_waiters();
    }

    /// Whether call `id` of `owner` can take one more talker, and how. A
    /// connected two-party call is marked a conference here, so a second
    /// request joins the conference it is becoming.
    pub fn growable(&self, id: u64, owner: Number) -> Option<Growable> {
        let mut calls = self.calls.lock().expect("calls");
        let r = calls.get_mut(&id).filter(|r| r.owner == owner)?;
        if r.over_at.is_some() {
            return Some(Growable::No);
        }
        if r.summary["conference"] == true {
            return Some(Growable::Conference);
        }
        if !r.events.iter().any(|e| e["event"] == "connected") {
            return Some(Growable::No);
        }
        let text = |k: &str| r.summary[k].as_str().unwrap_or_default().to_string();
        let labels = [text("talker"), format!("{} ({})", text("callee"), text("callee_talker"))];
        r.summary["conference"] = Value::Bool(true);
        Some(Growable::TwoParty(labels))
    }

    /// Undoes [`CallBook::growable`]'s mark when the newcomer was refused
    /// before anyone was called (a call handed to a region): the call is
    /// two-party again, and the next newcomer grows it.
    pub fn not_grown(&self, id: u64) {
        if let Some(r) = self.calls.lock().expect("calls").get_mut(&id) {
            r.summary["conference"] = Value::Bool(false);
        }
    }

    /// Admits a new call of `owner`, or says why not (429).
    pub fn admit(&self, owner: Number, now: u64) -> Result<(), String> {
        let live = self
            .calls
            .lock()
            .expect("calls")
            .values()
            .filter(|r| r.owner == owner && r.over_at.is_none())
            .count();
        if live >= MAX_LIVE {
            return Err(format!("you already have {live} calls being set up or running"));
        }
        self.admit_join(owner, now)
    }

    /// Counts a request against `owner`'s calls a minute (a new call, or
    /// someone added to a conference), or says why not (429).
    pub fn admit_join(&self, owner: Number, now: u64) -> Result<(), String> {
        let mut placed = self.placed.lock().expect("placed");
        placed.retain(|_, q| {
            while q.front().is_some_and(|t| now.saturating_sub(*t) >= 60_000) {
                q.pop_front();
            }
            !q.is_empty()
        });
        let q = placed.entry(owner).or_default();
        if q.len() >= MAX_PER_MINUTE {
            return Err(format!("at most {MAX_PER_MINUTE} calls a minute: try again shortly"));
        }
        q.push_back(now);
        Ok(())
    }

    /// A new call of `owner`; its id.
    pub fn open(&self, owner: Number, summary: Value) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let now = now_ms();
        let mut calls = self.calls.lock().expect("calls");
        calls.retain(|_, r| r.over_at.is_none_or(|t| now.saturating_sub(t) < KEEP_MS));
        calls.insert(
            id,
            Record {
                owner,
                summary,
                events: Vec::new(),
                over_at: None,
            },
        );
        id
    }

    /// The call's summary and events after `after`, if `owner` placed it.
    pub fn view(&self, id: u64, owner: Number, after: usize) -> Option<View> {
        let calls = self.calls.lock().expect("calls");
        let r = calls.get(&id).filter(|r| r.owner == owner)?;
        Some(View {
            summary: r.summary.clone(),
            events: r.events.iter().skip(after).cloned().collect(),
            over: r.over_at.is_some(),
        })
    }

    /// [`CallBook::view`], waiting up to `wait_secs` (at most
    /// [`MAX_WAIT_SECS`]) for an event after `after` or the end.
    pub async fn wait(&self, id: u64, owner: Number, after: usize, wait_secs: u64) -> Option<View> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(wait_secs.min(MAX_WAIT_SECS));
        loop {
            let changed = self.changed.notified();
            let v = self.view(id, owner, after)?;
            if !v.events.is_empty() || v.over || tokio::time::Instant::now() >= deadline {
                return Some(v);
            }
            let _ = tokio::time::timeout_at(deadline, changed).await;
        }
    }
}

/// One progress line of a two-party call as a dialer shows it.
pub fn describe(p: &Progress) -> String {
    match p {
        Progress::CallingTalker => "calling your talker".into(),
        Progress::TalkerAnswered => "your talker answered".into(),
        Progress::CallingCallee => "calling the callee".into(),
        Progress::Ringing => "ringing".into(),
        Progress::Connected => "connected".into(),
        Progress::Ended { by } => match by {
            Some(Side::Talker) => "ended: your talker hung up".into(),
            Some(Side::Callee) => "ended: the callee hung up".into(),
            None => "ended: hung up by the dialer".into(),
        },
        Progress::Failed { reason, .. } => format!("failed: {reason}"),
    }
}

/// One progress line of a conference as a dialer shows it.
pub fn describe_conf(p: &ConfProgress) -> String {
    match p {
        ConfProgress::Calling { who } => format!("calling {who}"),
        ConfProgress::Ringing { who } => format!("{who}: ringing"),
        ConfProgress::Joined { who } => format!("{who} joined"),
        ConfProgress::Failed { who, reason } => format!("{who} failed: {reason}"),
        ConfProgress::Left { who } => format!("{who} left"),
        ConfProgress::Ended { reason } => format!("ended: {reason}"),
    }
}
