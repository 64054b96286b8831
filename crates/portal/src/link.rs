//! What the portal asks of the region that mounts it: live state that only
//! the region holds (presence, greetings in memory, the registrar and the
//! zone). The region implements [`RegionLink`]; the portal stays free of
//! the region's types (the region depends on the portal, not the reverse).
//!
//! Everything the portal stores itself (accounts, sessions, profiles,
//! friends) goes straight to the database; a `RegionLink` call follows a
//! stored change so the region's memory agrees.

use std::future::Future;
use std::pin::Pin;

use peerdial_number::Number;

/// A boxed future, so the trait can be used as `dyn RegionLink`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A refusal the user should read, shown in the page's language
/// ([`Refusal::text`]); what the region only has in English is `Text`.
#[derive(Debug)]
pub enum Refusal {
    /// The number is someone else's (or was just taken by a racer).
    Taken(Number),
    /// The number is not of this region's area.
    OutsideArea(Number),
    /// The number is already the asker's.
    AlreadyYours(Number),
    /// The region's database did not answer.
    Unavailable,
    /// A greeting the greetings crate would not take or draw.
    Picture(peerdial_greetings::GreetingError),
    /// A post, subscription or broadcast the channels crate refused.
    Channel(peerdial_channels::ChannelError),
    /// Any other refusal, as the region words it.
    Text(String),
}

impl From<String> for Refusal {
    fn from(s: String) -> Refusal {
        Refusal::Text(s)
    }
}

impl From<&str> for Refusal {
    fn from(s: &str) -> Refusal {
        Refusal::Text(s.to_string())
    }
}

impl Refusal {
    /// What the person reads, in `t`'s language.
    pub fn text(&self, t: &crate::i18n::Msg) -> String {
        let with = |template: &str, n: &Number| template.replace("{n}", &n.to_string());
        match self {
            Refusal::Taken(n) => with(t.number_taken, n),
            Refusal::OutsideArea(n) => with(t.number_outside, n),
            Refusal::AlreadyYours(n) => with(t.number_yours, n),
            Refusal::Unavailable => t.region_busy.to_string(),
            Refusal::Picture(e) => crate::refusals::picture(e, t),
            Refusal::Channel(e) => crate::refusals::channel(e, t),
            Refusal::Text(s) => s.clone(),
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text(&crate::i18n::EN))
    }
}

/// A greeting card to draw (the API's `POST …/card`).
#[derive(Debug, Clone)]
pub struct CardRequest {
    pub text: String,
    pub foreground: String,
    pub background: String,
    pub layout: String,
}

/// Counts the operator sees.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    pub numbers: usize,
    pub registered: usize,
}

/// A channel as a signed-in number sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelView {
    pub name: String,
    pub title: String,
    pub subscribed: bool,
}

pub trait RegionLink: Send + Sync + 'static {
    /// Whether `n` is a provisioned number of this region.
    fn provisioned(&self, n: Number) -> bool;
    /// The presence state of `n` (a number of this region) as `watcher`
    /// may see it: "offline" when its policy does not allow the watcher.
    fn presence(&self, n: Number, watcher: Number) -> Option<String>;
    /// The presence of each of `friends` (numbers of other regions) as
    /// `watcher` may see it, asked of their regions in parallel with a
    /// short deadline; `None` where it could not be learnt.
    fn remote_presence(&self, friends: Vec<Number>, watcher: Number) -> BoxFuture<'_, Vec<Option<String>>>;
    /// Whether `n`'s presence is friends-only.
    fn friends_only(&self, n: Number) -> bool;
    /// `n`'s friends list or friends-only flag changed in the database:
    /// make presence follow (the region reads the stored policy).
    fn policy_changed(&self, n: Number) -> BoxFuture<'_, Result<(), Refusal>>;
    /// The update code of `n`'s greeting (`kind` is "caller" or "callee").
    fn greeting_etag(&self, n: Number, kind: &str) -> Option<String>;
    /// Stores an uploaded picture as `n`'s greeting, with the API's limits
    /// and normalisation; its new update code.
    fn upload_greeting(&self, n: Number, kind: &str, bytes: Vec<u8>) -> BoxFuture<'_, Result<String, Refusal>>;
    /// Draws and stores a greeting card; its new update code.
    fn card_greeting(&self, n: Number, kind: &str, card: CardRequest) -> BoxFuture<'_, Result<String, Refusal>>;
    /// Draws a greeting card without storing it (the page's live preview);
    /// the PNG.
    fn preview_card(&self, card: CardRequest) -> BoxFuture<'_, Result<Vec<u8>, Refusal>>;
    /// Numbers and registrations, for the operator.
    fn counts(&self) -> Counts;
    /// Disables (or re-enables) a number: a disabled number cannot
    /// register and does not resolve.
    fn set_disabled(&self, n: Number, disabled: bool) -> BoxFuture<'_, Result<(), Refusal>>;
    /// Whether `n` is disabled.
    fn disabled(&self, n: Number) -> bool;
    /// Free numbers of the area matching a digit pattern (`contains` or
    /// ending with it), at most `limit`.
    fn free_numbers(&self, pattern: &str, ends_with: bool, limit: usize) -> Vec<Number>;
    /// Moves `owner`'s device to `new`: exactly one of racing owners wins.
    fn reserve_number(&self, owner: Number, new: Number) -> BoxFuture<'_, Result<(), Refusal>>;
    /// The region's channels, with whether `who` subscribes to each.
    fn channels(&self, who: Number) -> Vec<ChannelView>;
    /// Subscribes `who` to a channel (or unsubscribes).
    fn set_subscription(&self, who: Number, channel: String, on: bool) -> BoxFuture<'_, Result<(), Refusal>>;
    /// Sends (and schedules) a broadcast: every `every_minutes` until
    /// `until` (Unix seconds), or once; its id.
    fn broadcast(&self, text: String, every_minutes: Option<u64>, until: Option<u64>) -> BoxFuture<'_, Result<u64, Refusal>>;
    /// The region vouches for `n` (its password or pairing code was just
    /// checked): the `Identity` header value of a PASSporT with orig =
    /// dest = `n`, for sign-in at another server.
    fn vouch(&self, n: Number) -> Result<String, Refusal>;
}

/// A portal with no region behind it (its own tests): nothing is
/// provisioned, nothing is live.
pub struct Standalone;

impl RegionLink for Standalone {
    fn provisioned(&self, _: Number) -> bool {
        false
    }
    fn presence(&self, _: Number, _: Number) -> Option<String> {
        None
    }
    fn remote_presence(&self, friends: Vec<Number>, _: Number) -> BoxFuture<'_, Vec<Option<String>>> {
        Box::pin(async move { vec![None; friends.len()] })
    }
    fn friends_only(&self, _: Number) -> bool {
        false
    }
    fn policy_changed(&self, _: Number) -> BoxFuture<'_, Result<(), Refusal>> {
        Box::pin(async { Ok(()) })
    }
    fn greeting_etag(&self, _: Number, _: &str) -> Option<String> {
        None
    }
    fn upload_greeting(&self, _: Number, _: &str, _: Vec<u8>) -> BoxFuture<'_, Result<String, Refusal>> {
        Box::pin(async { Err("no region".into()) })
    }
    fn card_greeting(&self, _: Number, _: &str, _: CardRequest) -> BoxFuture<'_, Result<String, Refusal>> {
        Box::pin(async { Err("no region".into()) })
    }
    fn preview_card(&self, _: CardRequest) -> BoxFuture<'_, Result<Vec<u8>, Refusal>> {
        Box::pin(async { Err("no region".into()) })
    }
    fn counts(&self) -> Counts {
        Counts::default()
    }
    fn set_disabled(&self, _: Number, _: bool) -> BoxFuture<'_, Result<(), Refusal>> {
        Box::pin(async { Err("no region".into()) })
    }
    fn disabled(&self, _: Number) -> bool {
        false
    }
    fn free_numbers(&self, _: &str, _: bool, _: usize) -> Vec<Number> {
        Vec::new()
    }
    fn reserve_number(&self, _: Number, _: Number) -> BoxFuture<'_, Result<(), Refusal>> {
        Box::pin(async { Err("no region".into()) })
    }
    fn channels(&self, _: Number) -> Vec<ChannelView> {
        Vec::new()
    }
    fn set_subscription(&self, _: Number, _: String, _: bool) -> BoxFuture<'_, Result<(), Refusal>> {
        Box::pin(async { Err("no region".into()) })
    }
    fn broadcast(&self, _: String, _: Option<u64>, _: Option<u64>) -> BoxFuture<'_, Result<u64, Refusal>> {
        Box::pin(async { Err("no region".into()) })
    }
    fn vouch(&self, _: Number) -> Result<String, Refusal> {
        Err("no region".into())
    }
}
