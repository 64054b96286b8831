//! Channels, their items and the marquee rotation.
//!
//! A phone asks its region for the next item every few seconds and gets
//! exactly one (or none): an undelivered item of its private channel
//! first, then the oldest unseen, unexpired item of the next subscribed
//! channel after the one it was served last (so one busy channel cannot
//! starve the others). What a phone has been shown is a watermark per
//! (number, channel), the highest item id shown there: items are served in
//! id order, so everything at or below it was shown, and a re-post (a new,
//! higher id) shows again. A private item is shown once, by the marquee or
//! by a SIP MESSAGE the phone answered.
//!
//! This is an index kept in memory for speed; the region stores every
//! change first and loads the index at start. It checks no identity:
//! callers say who posts, and [`Marquee::may_post`] says whether that one
//! may.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};

use peerdial_number::Number;

use crate::ChannelError;

/// Items kept per channel (the oldest go first).
pub const MAX_ITEMS: usize = 10_000;
/// Undelivered private items kept per owner.
pub const MAX_PRIVATE: usize = 1_000;
/// The longest an item may live.
pub const MAX_EXPIRY_MS: u64 = 30 * 24 * 3_600_000;
pub const MIN_EXPIRY_MS: u64 = 60_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Kept by this region, for its phones.
    Local,
    /// Kept by the top, for everyone; regions relay it.
    Global,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Local => "local",
            Scope::Global => "global",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        match s {
            "local" => Some(Scope::Local),
            "global" => Some(Scope::Global),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel {
    pub id: u64,
    pub name: String,
    pub title: String,
    pub scope: Scope,
    /// When it stops taking posts (None: never).
    pub until_ms: Option<u64>,
}

/// Where an item was posted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    Channel(u64),
    /// The private channel of this owner.
    Private(Number),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub id: u64,
    pub source: Source,
    /// Who posted it (`None`: an operator).
    pub poster: Option<Number>,
    pub text: String,
    pub posted_ms: u64,
    pub expires_ms: u64,
}

/// What the marquee hands a phone, and what to remember about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pick {
    pub item: Item,
    /// The channel's name (`None` for the private channel).
    pub channel: Option<String>,
}

struct ChannelState {
    meta: Channel,
    items: VecDeque<Item>,
    publishers: HashSet<Number>,
}

#[derive(Default)]
pub struct Marquee {
    channels: HashMap<u64, ChannelState>,
    by_name: HashMap<String, u64>,
    subs: HashMap<Number, BTreeSet<u64>>,
    seen: HashMap<(Number, u64), u64>,
    cursor: HashMap<Number, u64>,
    private: HashMap<Number, VecDeque<Item>>,
}

/// Channel names: what a phone types (`subscribe news`).
pub fn check_name(name: &str) -> Result<(), ChannelError> {
    let ok = (1..=32).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(ChannelError::BadName(crate::text::clean(name).chars().take(40).collect()))
    }
}

/// How long an item lives when its poster does not say.
pub const DEFAULT_EXPIRY_MS: u64 = 24 * 3_600_000;

/// A post's text and expiry as an API takes them (`expires_in` in
/// seconds, a day by default): the text cleaned, the expiry checked, in ms.
pub fn check_item(text: &str, expires_in_s: Option<u64>) -> Result<(String, u64), ChannelError> {
    let text = crate::text::post_text(text)?;
    let expires = check_expiry(expires_in_s.map_or(DEFAULT_EXPIRY_MS, |s| s.saturating_mul(1000)))?;
    Ok((text, expires))
}

/// An expiry in milliseconds from now, checked.
pub fn check_expiry(ms: u64) -> Result<u64, ChannelError> {
    if (MIN_EXPIRY_MS..=MAX_EXPIRY_MS).contains(&ms) {
        Ok(ms)
    } else {
        Err(ChannelError::BadExpiry)
    }
}

impl Marquee {
    pub fn new() -> Marquee {
        Marquee::default()
    }

    pub fn add_channel(&mut self, c: Channel) -> Result<(), ChannelError> {
        check_name(&c.name)?;
        if self.by_name.contains_key(&c.name) {
            return Err(ChannelError::Exists(c.name));
        }
        self.by_name.insert(c.name.clone(), c.id);
        self.channels.insert(
            c.id,
            ChannelState {
                meta: c,
                items: VecDeque::new(),
                publishers: HashSet::new(),
            },
        );
        Ok(())
    }

    pub fn channel(&self, name: &str) -> Result<&Channel, ChannelError> {
        self.by_name
            .get(name)
            .and_then(|id| self.channels.get(id))
            .map(|c| &c.meta)
            .ok_or_else(|| ChannelError::UnknownChannel(crate::text::clean(name).chars().take(40).collect()))
    }

    /// Every channel, by name.
    pub fn channels(&self) -> Vec<&Channel> {
        let mut v: Vec<&Channel> = self.channels.values().map(|c| &c.meta).collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    pub fn add_publisher(&mut self, channel: u64, who: Number) {
        if let Some(c) = self.channels.get_mut(&channel) {
            c.publishers.insert(who);
        }
    }

    pub fn remove_publisher(&mut self, channel: u64, who: Number) {
        if let Some(c) = self.channels.get_mut(&channel) {
            c.publishers.remove(&who);
        }
    }

    /// Whether `who` may post to the channel named `name` at `now`
    /// (`who` None: an operator, who may post anywhere). Returns the channel.
    pub fn may_post(&self, name: &str, who: Option<Number>, now: u64) -> Result<&Channel, ChannelError> {
        let c = self.channel(name)?;
        if c.scope == Scope::Global {
            return Err(ChannelError::Relayed(c.name.clone()));
        }
        if c.until_ms.is_some_and(|u| u <= now) {
            return Err(ChannelError::Ended(c.name.clone()));
        }
        match who {
            None => Ok(c),
            Some(n) if self.channels[&c.id].publishers.contains(&n) => Ok(c),
            Some(n) => Err(ChannelError::NotPublisher(n, c.name.clone())),
        }
    }

    pub fn publishers(&self, channel: u64) -> Vec<Number> {
        let mut v: Vec<Number> = self
            .channels
            .get(&channel)
            .map(|c| c.publishers.iter().copied().collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Adds a stored item (posted now, or loaded at start).
    pub fn add_item(&mut self, item: Item) {
        match item.source {
            Source::Channel(id) => {
                if let Some(c) = self.channels.get_mut(&id) {
                    // Ids only grow; an older one loaded late goes in order.
                    let at = c.items.partition_point(|i| i.id < item.id);
                    c.items.insert(at, item);
                    if c.items.len() > MAX_ITEMS {
                        c.items.pop_front();
                    }
                }
            }
            Source::Private(owner) => {
                let q = self.private.entry(owner).or_default();
                let at = q.partition_point(|i| i.id < item.id);
                q.insert(at, item);
                if q.len() > MAX_PRIVATE {
                    q.pop_front();
                }
            }
        }
    }

    /// A private item reached its owner's phone (a MESSAGE was answered).
    pub fn delivered(&mut self, owner: Number, item: u64) {
        if let Some(q) = self.private.get_mut(&owner) {
            q.retain(|i| i.id != item);
        }
    }

    /// The owner's private items not delivered yet, oldest first.
    pub fn undelivered(&self, owner: Number, now: u64) -> Vec<Item> {
        self.private
            .get(&owner)
            .map(|q| q.iter().filter(|i| i.expires_ms > now).cloned().collect())
            .unwrap_or_default()
    }

    pub fn subscribe(&mut self, who: Number, channel: u64) -> bool {
        self.channels.contains_key(&channel) && self.subs.entry(who).or_default().insert(channel)
    }

    pub fn unsubscribe(&mut self, who: Number, channel: u64) -> bool {
        self.subs.get_mut(&who).is_some_and(|s| s.remove(&channel))
    }

    /// The names of the channels `who` subscribes to.
    pub fn subscriptions(&self, who: Number) -> Vec<String> {
        let mut v: Vec<String> = self
            .subs
            .get(&who)
            .map(|s| {
                s.iter()
                    .filter_map(|id| self.channels.get(id))
                    .map(|c| c.meta.name.clone())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Restores a watermark loaded at start.
    pub fn set_seen(&mut self, who: Number, channel: u64, item: u64) {
        let w = self.seen.entry((who, channel)).or_insert(0);
        *w = (*w).max(item);
    }

    /// The next item for `who`, marked as shown. The caller stores the
    /// mark: for a channel item the watermark `(who, channel, item.id)`,
    /// for a private one that it was delivered.
    pub fn next(&mut self, who: Number, now: u64) -> Option<Pick> {
        if let Some(q) = self.private.get_mut(&who) {
            while let Some(i) = q.pop_front() {
                if i.expires_ms > now {
                    return Some(Pick { item: i, channel: None });
                }
            }
        }
        let subs = self.subs.get(&who)?;
        let after = self.cursor.get(&who).copied().unwrap_or(0);
        // Channels after the last one served, then from the start.
        let order = subs.range(after + 1..).chain(subs.range(..=after));
        for &id in order {
            let Some(c) = self.channels.get(&id) else { continue };
            let mark = self.seen.get(&(who, id)).copied().unwrap_or(0);
            let from = c.items.partition_point(|i| i.id <= mark);
            if let Some(item) = c.items.range(from..).find(|i| i.expires_ms > now) {
                let pick = Pick {
                    item: item.clone(),
                    channel: Some(c.meta.name.clone()),
                };
                self.seen.insert((who, id), item.id);
                self.cursor.insert(who, id);
                return Some(pick);
            }
        }
        None
    }

    /// Drops expired items (call now and then; `next` skips them anyway).
    pub fn prune(&mut self, now: u64) {
        for c in self.channels.values_mut() {
            c.items.retain(|i| i.expires_ms > now);
        }
        self.private.retain(|_, q| {
            q.retain(|i| i.expires_ms > now);
            !q.is_empty()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Number {
        Number::parse(s).unwrap()
    }

    fn setup() -> (Marquee, Number) {
        let mut m = Marquee::new();
        for (id, name) in [(1, "news"), (2, "ads"), (3, "dating")] {
            m.add_channel(Channel {
                id,
                name: name.into(),
                title: name.into(),
                scope: if id == 3 { Scope::Global } else { Scope::Local },
                until_ms: (id == 2).then_some(500),
            })
            .unwrap();
        }
        (m, n("886-02-10000001"))
    }

    fn item(id: u64, source: Source, text: &str, expires: u64) -> Item {
        Item {
            id,
            source,
            poster: None,
            text: text.into(),
            posted_ms: 0,
            expires_ms: expires,
        }
    }

    fn texts(m: &mut Marquee, who: Number, now: u64) -> Vec<String> {
        std::iter::from_fn(|| m.next(who, now).map(|p| p.item.text)).take(50).collect()
    }

    #[test]
    fn private_first_then_fair_rotation_over_subscriptions_unseen_first() {
        let (mut m, me) = setup();
        for (id, ch, t) in [(10, 1, "n1"), (11, 1, "n2"), (12, 1, "n3"), (13, 2, "a1"), (14, 3, "d1")] {
            m.add_item(item(id, Source::Channel(ch), t, 1_000));
        }
        m.add_item(item(15, Source::Private(me), "p1", 1_000));
        assert_eq!(m.next(me, 0).unwrap().item.text, "p1", "private items need no subscription");
        assert_eq!(m.next(me, 0), None, "no subscriptions: nothing public");
        assert!(m.subscribe(me, 1) && m.subscribe(me, 2) && !m.subscribe(me, 99));
        assert!(!m.subscribe(me, 1), "already subscribed");
        assert_eq!(texts(&mut m, me, 0), ["n1", "a1", "n2", "n3"], "news and ads take turns");
        // Seen items are not shown again; a re-post (new id) is.
        m.add_item(item(16, Source::Channel(1), "n1", 1_000));
        assert_eq!(texts(&mut m, me, 0), ["n1"]);
        // Another phone has its own watermarks.
        let other = n("886-02-10000002");
        m.subscribe(other, 2);
        assert_eq!(texts(&mut m, other, 0), ["a1"]);
        assert_eq!(m.subscriptions(me), ["ads", "news"]);
        assert!(m.unsubscribe(me, 1));
        m.add_item(item(17, Source::Channel(1), "n5", 1_000));
        assert_eq!(texts(&mut m, me, 0), Vec::<String>::new(), "unsubscribed channels are not shown");
    }

    #[test]
    fn expired_items_are_skipped_and_pruned() {
        let (mut m, me) = setup();
        m.subscribe(me, 1);
        m.add_item(item(1, Source::Channel(1), "old", 100));
        m.add_item(item(2, Source::Channel(1), "new", 1_000));
        m.add_item(item(3, Source::Private(me), "gone", 100));
        assert_eq!(texts(&mut m, me, 500), ["new"]);
        m.prune(500);
        assert!(m.undelivered(me, 0).is_empty());
    }

    #[test]
    fn private_items_delivered_by_message_are_not_shown_again() {
        let (mut m, me) = setup();
        m.add_item(item(5, Source::Private(me), "hello", 1_000));
        m.add_item(item(6, Source::Private(me), "again", 1_000));
        assert_eq!(m.undelivered(me, 0).len(), 2);
        m.delivered(me, 5);
        assert_eq!(texts(&mut m, me, 0), ["again"]);
    }

    #[test]
    fn publishers_and_names() {
        let (mut m, me) = setup();
        assert!(matches!(m.may_post("news", Some(me), 0), Err(ChannelError::NotPublisher(..))));
        m.add_publisher(1, me);
        assert_eq!(m.may_post("news", Some(me), 0).unwrap().id, 1);
        assert!(m.may_post("news", None, 0).is_ok(), "operators post anywhere");
        assert!(matches!(m.may_post("nope", None, 0), Err(ChannelError::UnknownChannel(_))));
        assert!(m.may_post("ads", None, 499).is_ok());
        assert!(
            matches!(m.may_post("ads", None, 500), Err(ChannelError::Ended(_))),
            "an ended channel takes no posts"
        );
        assert!(
            matches!(m.may_post("dating", None, 0), Err(ChannelError::Relayed(_))),
            "global channels are posted on the top"
        );
        for bad in ["", "News", "a b", "-x", &"x".repeat(33), "\x1b[2J"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(matches!(
            m.add_channel(Channel {
                id: 9,
                name: "news".into(),
                title: String::new(),
                scope: Scope::Local,
                until_ms: None
            }),
            Err(ChannelError::Exists(_))
        ));
        // The watermark restored at start hides what was shown before.
        m.subscribe(me, 1);
        m.add_item(item(1, Source::Channel(1), "a", 1_000));
        m.add_item(item(2, Source::Channel(1), "b", 1_000));
        m.set_seen(me, 1, 1);
        assert_eq!(texts(&mut m, me, 0), ["b"]);
    }
}
