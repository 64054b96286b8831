//! The region's channels edge (issue 11): broadcasts to every online
//! phone, channels with publishers and subscribers, the private channel of
//! each number, and the marquee a phone polls.
//!
//! Every post is stored before it is acknowledged and before any phone
//! sees it; then the in-memory index ([`peerdial_channels::Marquee`]) and
//! the schedule learn of it. Deliveries go out as SIP MESSAGE through the
//! presence edge's fan-out (so answers and misses are liveness too); their
//! outcomes come back here as [`Signal`]s: a private item whose MESSAGE
//! was answered is delivered, and a phone that comes back gets the private
//! items it missed.
//!
//! The marquee's watermarks are written in batches once a second: a crash
//! can show an item once more, never lose one. What this is not: the HTTP
//! routes ([`crate::channels_api`]) or who may post (checked there, with
//! credentials, signed identities and the friends list).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use peerdial_channels::limit::RateLimit;
use peerdial_channels::{Broadcast, Channel, ChannelError, Delivery, DeliveryEvent, Item, Marquee, Pick, Schedule, Scope, Source, Target};
use peerdial_number::Number;
use peerdial_store::{BroadcastRow, ItemRow, Store};
use tokio::sync::{mpsc, watch};

use crate::{now_ms, RegionError, Shared};

/// Posts one number may make per minute (to channels and private channels).
pub const POSTS_PER_MINUTE: usize = 10;

/// What the presence edge tells the channels edge.
#[derive(Debug, Clone)]
pub enum Signal {
    Delivery(DeliveryEvent),
    /// A number is reachable again.
    Reachable(Number),
    /// A number's phone stopped answering or its flow closed.
    Unreachable(Number),
}

#[derive(Debug, Clone)]
enum Purpose {
    Broadcast(u64),
    /// A private item out for delivery: out of the marquee meanwhile (so
    /// it is not shown twice), back in if the phone does not take it.
    Private {
        owner: Number,
        item: Item,
    },
}

pub struct Channels {
    pub marquee: Mutex<Marquee>,
    limit: Mutex<RateLimit>,
    schedule: Mutex<Schedule>,
    /// Watermarks not yet written: (number, channel) → item.
    seen: Mutex<HashMap<(i64, i64), i64>>,
    deliveries: Mutex<HashMap<u64, Purpose>>,
    next_delivery: AtomicU64,
    signals: Mutex<Option<mpsc::UnboundedReceiver<Signal>>>,
    /// Wakes the relay of global channels early (after a forwarded post).
    pub relay_now: tokio::sync::Notify,
}

fn item_of(r: &ItemRow) -> Option<Item> {
    let source = if r.channel == 0 {
        Source::Private(Number::from_u64(r.owner as u64).ok()?)
    } else {
        Source::Channel(r.channel as u64)
    };
    Some(Item {
        id: r.id as u64,
        source,
        poster: (r.poster != 0).then(|| Number::from_u64(r.poster as u64).ok()).flatten(),
        text: r.text.clone(),
        posted_ms: r.posted_ms as u64,
        expires_ms: r.expires_ms as u64,
    })
}

impl Channels {
    /// Loads channels, publishers, live items, subscriptions, watermarks
    /// and pending broadcasts; returns the channels edge and where the
    /// presence edge sends its signals.
    pub async fn load(store: &Store) -> Result<(Channels, mpsc::UnboundedSender<Signal>), RegionError> {
        let mut m = Marquee::new();
        for c in store.channels().await? {
            let scope = Scope::parse(&c.scope).ok_or_else(|| RegionError::BadRow(format!("channel {}: bad scope", c.name)))?;
            m.add_channel(Channel {
                id: c.id as u64,
                name: c.name.clone(),
                title: c.title,
                scope,
                until_ms: (c.until_ms > 0).then_some(c.until_ms as u64),
            })
            .map_err(|e| RegionError::BadRow(format!("channel {}: {e}", c.name)))?;
        }
        let num = |n: i64| Number::from_u64(n as u64).ok();
        for (c, n) in store.publishers().await? {
            if let Some(n) = num(n) {
                m.add_publisher(c as u64, n);
            }
        }
        let now = now_ms();
        for r in store.live_items(now as i64).await? {
            match item_of(&r) {
                Some(i) => m.add_item(i),
                None => tracing::warn!(item = r.id, "ignoring an item with an invalid number"),
            }
        }
        for (n, c) in store.subscriptions().await? {
            if let Some(n) = num(n) {
                m.subscribe(n, c as u64);
            }
        }
        for (n, c, i) in store.seen().await? {
            if let Some(n) = num(n) {
                m.set_seen(n, c as u64, i as u64);
            }
        }
        let mut schedule = Schedule::new();
        for b in store.pending_broadcasts().await? {
            schedule.add(broadcast_of(&b));
        }
        let (tx, rx) = mpsc::unbounded_channel();
        Ok((
            Channels {
                marquee: Mutex::new(m),
                limit: Mutex::new(RateLimit::new(POSTS_PER_MINUTE)),
                schedule: Mutex::new(schedule),
                seen: Mutex::new(HashMap::new()),
                deliveries: Mutex::new(HashMap::new()),
                next_delivery: AtomicU64::new(1),
                signals: Mutex::new(Some(rx)),
                relay_now: tokio::sync::Notify::new(),
            },
            tx,
        ))
    }

    /// Counts a post against `poster`'s rate.
    pub fn rate(&self, poster: Number) -> Result<(), ChannelError> {
        self.limit.lock().expect("limit").check(poster.as_u64(), now_ms())
    }

    /// The next marquee item for `who`, marked as shown.
    pub fn next(&self, shared: &Arc<Shared>, who: Number) -> Option<Pick> {
        let pick = self.marquee.lock().expect("marquee").next(who, now_ms())?;
        match pick.item.source {
            Source::Channel(c) => {
                let mut seen = self.seen.lock().expect("seen");
                let w = seen.entry((who.as_u64() as i64, c as i64)).or_insert(0);
                *w = (*w).max(pick.item.id as i64);
            }
            Source::Private(_) => {
                let (store, id) = (shared.store.clone(), pick.item.id as i64);
                tokio::spawn(async move {
                    if let Err(e) = store.mark_delivered(id, now_ms() as i64).await {
                        tracing::warn!(error = %e, "could not mark a private item delivered");
                    }
                });
            }
        }
        Some(pick)
    }
}

fn broadcast_of(b: &BroadcastRow) -> Broadcast {
    Broadcast {
        id: b.id as u64,
        text: b.text.clone(),
        every_ms: (b.every_ms > 0).then_some(b.every_ms as u64),
        until_ms: (b.until_ms > 0).then_some(b.until_ms as u64),
        next_ms: b.next_ms as u64,
    }
}

/// Stores an item, then indexes it for the marquee.
pub(crate) async fn store_item(shared: &Shared, row: ItemRow) -> Result<Item, RegionError> {
    let id = shared.store.add_item(&row).await?;
    let item = item_of(&ItemRow { id, ..row }).ok_or_else(|| RegionError::BadRow("new item".into()))?;
    shared.channels.marquee.lock().expect("marquee").add_item(item.clone());
    Ok(item)
}

fn new_row(channel: i64, owner: i64, poster: Option<Number>, text: String, expires_in_ms: u64) -> ItemRow {
    let now = now_ms();
    ItemRow {
        id: 0,
        channel,
        owner,
        poster: poster.map_or(0, |p| p.as_u64() as i64),
        text,
        posted_ms: now as i64,
        expires_ms: (now + expires_in_ms) as i64,
        delivered_ms: 0,
        origin: 0,
    }
}

/// Stores and indexes a channel item (the caller checked who posts).
pub async fn post(
    shared: &Arc<Shared>,
    channel: &Channel,
    poster: Option<Number>,
    text: String,
    expires_in_ms: u64,
) -> Result<Item, RegionError> {
    let item = store_item(shared, new_row(channel.id as i64, 0, poster, text, expires_in_ms)).await?;
    tracing::info!(channel = %channel.name, item = item.id, "channel item posted");
    Ok(item)
}

/// How long a private item waits for its owner.
pub const PRIVATE_EXPIRY_MS: u64 = 30 * 24 * 3_600_000;

/// Stores a private item for `owner` and delivers it at once if the phone
/// is online (the caller checked that `poster` is a friend).
pub async fn post_private(shared: &Arc<Shared>, owner: Number, poster: Number, text: String) -> Result<(Item, bool), RegionError> {
    let row = new_row(0, owner.as_u64() as i64, Some(poster), text, PRIVATE_EXPIRY_MS);
    let item = store_item(shared, row).await?;
    tracing::info!(%owner, %poster, item = item.id, "private item posted");
    let sent = deliver_private(shared, owner, &item);
    Ok((item, sent))
}

/// Sends a private item to its owner's phone if it is reachable.
fn deliver_private(shared: &Arc<Shared>, owner: Number, item: &Item) -> bool {
    let targets = targets(shared, Some(owner));
    if targets.is_empty() {
        return false;
    }
    let d = Delivery {
        id: shared.channels.next_delivery.fetch_add(1, Ordering::Relaxed),
        from_user: item.poster.map_or_else(|| "channels".into(), |p| p.digits()),
        from_name: item.poster.map(|p| p.to_string()),
        text: item.text.clone(),
    };
    shared.channels.marquee.lock().expect("marquee").delivered(owner, item.id);
    let purpose = Purpose::Private { owner, item: item.clone() };
    shared.channels.deliveries.lock().expect("deliveries").insert(d.id, purpose);
    shared.presence.deliver(d, targets);
    true
}

/// Reachable phones (all, or only `only`) with their registered contacts.
fn targets(shared: &Shared, only: Option<Number>) -> Vec<Target> {
    let reachable = shared.presence.reachable();
    let reg = shared.registrar.lock().expect("registrar lock");
    reachable
        .into_iter()
        .filter(|(n, _, _)| only.is_none_or(|o| o == *n))
        .filter_map(|(number, addr, transport)| {
            let b = reg.binding(number)?;
            Some(Target {
                number,
                uri: b.contact.clone(),
                addr,
                transport,
            })
        })
        .collect()
}

/// Stores a broadcast and schedules it; it goes out at once when `first_ms`
/// is now or past. Returns its id.
pub async fn broadcast(shared: &Arc<Shared>, b: Broadcast) -> Result<u64, RegionError> {
    let row = BroadcastRow {
        id: 0,
        text: b.text.clone(),
        every_ms: b.every_ms.unwrap_or(0) as i64,
        until_ms: b.until_ms.unwrap_or(0) as i64,
        next_ms: b.next_ms as i64,
    };
    let id = shared.store.add_broadcast(&row, now_ms() as i64).await? as u64;
    shared.channels.schedule.lock().expect("schedule").add(Broadcast { id, ..b });
    tracing::info!(broadcast = id, "broadcast scheduled");
    run_due(shared).await;
    Ok(id)
}

/// Why a post, subscription or broadcast was not done.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error(transparent)]
    Channel(#[from] ChannelError),
    #[error("could not store it: {0}")]
    Store(#[from] RegionError),
}

impl From<peerdial_store::StoreError> for Refused {
    fn from(e: peerdial_store::StoreError) -> Refused {
        Refused::Store(e.into())
    }
}

/// Subscribes `who` to the channel named `name` (or unsubscribes, with
/// `on` false), stored first; returns `who`'s subscriptions after.
pub async fn set_subscription(shared: &Arc<Shared>, who: Number, name: &str, on: bool) -> Result<Vec<String>, Refused> {
    let id = shared.channels.marquee.lock().expect("marquee").channel(name)?.id;
    shared.store.set_subscription(who.as_u64() as i64, id as i64, on).await?;
    let mut m = shared.channels.marquee.lock().expect("marquee");
    if on {
        m.subscribe(who, id);
    } else {
        m.unsubscribe(who, id);
    }
    Ok(m.subscriptions(who))
}

/// Checks and schedules a broadcast from an operator: the text cleaned,
/// `every_minutes` and `until` (Unix seconds) as the schedule.
pub async fn new_broadcast(shared: &Arc<Shared>, text: &str, every_minutes: Option<u64>, until_s: Option<u64>) -> Result<u64, Refused> {
    let b = Broadcast {
        id: 0,
        text: peerdial_channels::text::post_text(text)?,
        every_ms: every_minutes.map(|m| m.saturating_mul(60_000)),
        until_ms: until_s.map(|s| s.saturating_mul(1000)),
        next_ms: now_ms(),
    };
    b.check()?;
    Ok(broadcast(shared, b).await?)
}

/// Pending broadcasts, for the operator.
pub fn pending(shared: &Shared) -> Vec<Broadcast> {
    shared.channels.schedule.lock().expect("schedule").pending().cloned().collect()
}

/// Starts the deliveries that are due, recording each start first.
async fn run_due(shared: &Arc<Shared>) {
    let due = shared.channels.schedule.lock().expect("schedule").due(now_ms());
    for b in due {
        let next = shared
            .channels
            .schedule
            .lock()
            .expect("schedule")
            .pending()
            .find(|p| p.id == b.id)
            .map_or(0, |p| p.next_ms);
        if let Err(e) = shared.store.broadcast_started(b.id as i64, next as i64, now_ms() as i64).await {
            tracing::error!(broadcast = b.id, error = %e, "could not record a broadcast's delivery; sending anyway");
        }
        let targets = targets(shared, None);
        tracing::info!(broadcast = b.id, phones = targets.len(), "broadcast going out");
        let d = Delivery {
            id: shared.channels.next_delivery.fetch_add(1, Ordering::Relaxed),
            from_user: "broadcast".into(),
            from_name: Some(format!("peerdial {}", shared.cfg.area)),
            text: b.text.clone(),
        };
        shared
            .channels
            .deliveries
            .lock()
            .expect("deliveries")
            .insert(d.id, Purpose::Broadcast(b.id));
        shared.presence.deliver(d, targets);
    }
}

fn on_signal(shared: &Arc<Shared>, s: Signal) {
    match s {
        Signal::Delivery(DeliveryEvent::Answered { delivery, number, code }) => {
            let purpose = shared.channels.deliveries.lock().expect("deliveries").get(&delivery).cloned();
            if let Some(Purpose::Private { owner, item }) = purpose {
                if (200..300).contains(&code) && owner == number {
                    let store = shared.store.clone();
                    tokio::spawn(async move {
                        if let Err(e) = store.mark_delivered(item.id as i64, now_ms() as i64).await {
                            tracing::warn!(error = %e, "could not mark a private item delivered");
                        }
                    });
                } else {
                    // Refused (a phone that takes no text?): the marquee shows it.
                    shared.channels.marquee.lock().expect("marquee").add_item(item);
                }
            }
        }
        Signal::Delivery(DeliveryEvent::Missed { delivery, .. }) => {
            let purpose = shared.channels.deliveries.lock().expect("deliveries").get(&delivery).cloned();
            if let Some(Purpose::Private { item, .. }) = purpose {
                shared.channels.marquee.lock().expect("marquee").add_item(item);
            }
        }
        Signal::Delivery(DeliveryEvent::Done {
            delivery,
            answered,
            missed,
        }) => {
            if let Some(Purpose::Broadcast(id)) = shared.channels.deliveries.lock().expect("deliveries").remove(&delivery) {
                tracing::info!(broadcast = id, answered, missed, "broadcast delivered");
            }
        }
        Signal::Unreachable(n) => shared.publish(n),
        Signal::Reachable(n) => {
            // Its contact goes back into the zone (order 10).
            shared.publish(n);
            let items = shared.channels.marquee.lock().expect("marquee").undelivered(n, now_ms());
            for i in items {
                deliver_private(shared, n, &i);
            }
        }
    }
}

/// Drives the channels edge: due broadcasts, delivery outcomes, watermark
/// batches (once a second) and pruning of expired items (once a minute).
pub async fn run(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let Some(mut rx) = shared.channels.signals.lock().expect("signals").take() else {
        return;
    };
    let mut tick = tokio::time::interval(Duration::from_millis(1_000));
    let mut ticks = 0u64;
    loop {
        tokio::select! {
            Some(s) = rx.recv() => { on_signal(&shared, s); continue; }
            _ = tick.tick() => {}
            _ = stop.changed() => {
                flush_seen(&shared).await;
                return;
            }
        }
        run_due(&shared).await;
        flush_seen(&shared).await;
        ticks += 1;
        if ticks.is_multiple_of(60) {
            let now = now_ms();
            shared.channels.marquee.lock().expect("marquee").prune(now);
            if let Err(e) = shared.store.delete_expired_items(now as i64).await {
                tracing::warn!(error = %e, "could not delete expired items");
            }
        }
    }
}

async fn flush_seen(shared: &Shared) {
    let marks: Vec<(i64, i64, i64)> = {
        let mut seen = shared.channels.seen.lock().expect("seen");
        seen.drain().map(|((n, c), i)| (n, c, i)).collect()
    };
    if marks.is_empty() {
        return;
    }
    if let Err(e) = shared.store.put_seen(&marks).await {
        tracing::warn!(error = %e, count = marks.len(), "could not store marquee watermarks; they are kept for the next try");
        let mut seen = shared.channels.seen.lock().expect("seen");
        for (n, c, i) in marks {
            let w = seen.entry((n, c)).or_insert(0);
            *w = (*w).max(i);
        }
    }
}
