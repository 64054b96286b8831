//! The region's side of the web portal ([`peerdial_portal::RegionLink`]):
//! presence as a signed-in number sees it, friends-only policy reloads,
//! greeting uploads and cards (the API's own code in [`crate::greetings`]),
//! counts and disabling for the operator, and vanity numbers.

use std::sync::Arc;

use peerdial_greetings::Kind;
use peerdial_number::Number;
use peerdial_portal::link::{BoxFuture, CardRequest, ChannelView, Counts, Refusal};
use peerdial_portal::RegionLink;
use peerdial_presence::{Policy, WatcherAuth};
use peerdial_sip::digest::Ha1;
use peerdial_store::Write;

use crate::{now_ms, Shared};

/// The portal's handle on the region.
pub struct Link(pub Arc<Shared>);

fn kind(k: &str) -> Kind {
    Kind::parse(k).unwrap_or(Kind::Caller)
}

fn db(e: impl std::fmt::Display) -> Refusal {
    tracing::warn!(error = %e, "portal: region storage failed");
    Refusal::Unavailable
}

/// The picture's own refusals go to the page as they are (it words them
/// in its language); the server's are the region's.
fn picture_refusal(e: crate::greetings::Refused) -> Refusal {
    match e {
        crate::greetings::Refused::Picture(e) => Refusal::Picture(e),
        crate::greetings::Refused::Store(e) => db(e),
        other => Refusal::Text(other.to_string()),
    }
}

fn channel_refusal(e: crate::channels::Refused) -> Refusal {
    match e {
        crate::channels::Refused::Channel(e) => Refusal::Channel(e),
        crate::channels::Refused::Store(e) => db(e),
    }
}

impl Link {
    async fn reload_policy(&self, n: Number) -> Result<(), Refusal> {
        let key = n.as_u64() as i64;
        let only = self.0.store.friends_only(key).await.map_err(db)?;
        let friends = self.0.store.friends(key).await.map_err(db)?;
        let friends = friends.into_iter().filter_map(|f| Number::from_u64(f as u64).ok());
        self.0.presence.set_policy(n, crate::presence::policy(only, friends));
        Ok(())
    }

    async fn disable(&self, n: Number, disabled: bool) -> Result<(), Refusal> {
        let shared = &self.0;
        let key = n.as_u64() as i64;
        shared.store.set_disabled(key, disabled, now_ms() as i64).await.map_err(db)?;
        if disabled {
            shared.disabled.lock().expect("disabled lock").insert(n);
            let had = shared.registrar.lock().expect("registrar lock").remove_credential(n);
            if had.is_some() {
                shared.store.write(Write::DeleteBinding(key)).await.map_err(db)?;
            }
            // A disabled number is not woken by push either.
            shared.push.on_change(&peerdial_sip::Change::Remove(n));
            shared.presence.remove_number(n);
            shared.publish(n);
        } else {
            let row = shared.store.device_by_number(key).await.map_err(db)?;
            let ha1 = row.and_then(|d| {
                Some(Ha1 {
                    md5: crate::state::decode_hex(&d.ha1_md5)?,
                    sha256: crate::state::decode_hex(&d.ha1_sha256)?,
                })
            });
            shared.disabled.lock().expect("disabled lock").remove(&n);
            if let Some(ha1) = ha1 {
                shared.registrar.lock().expect("registrar lock").set_credential(n, ha1);
                shared.publish(n);
                shared.presence.add_number(n);
                self.reload_policy(n).await?;
            }
        }
        tracing::info!(number = %n, disabled, "number disabled or enabled");
        Ok(())
    }
}

impl RegionLink for Link {
    fn provisioned(&self, n: Number) -> bool {
        self.0.provisioned(n)
    }

    fn presence(&self, n: Number, watcher: Number) -> Option<String> {
        self.0
            .presence
            .read(|s| s.presence_for(n, WatcherAuth::Authenticated(watcher)))
            .map(|p| p.state.as_str().to_string())
    }

    fn remote_presence(&self, friends: Vec<Number>, watcher: Number) -> BoxFuture<'_, Vec<Option<String>>> {
        let asks = friends
            .into_iter()
            .map(move |f| crate::presence_api::ask_remote(&self.0, f, watcher));
        Box::pin(futures_util::future::join_all(asks))
    }

    fn friends_only(&self, n: Number) -> bool {
        self.0.presence.read(|s| matches!(s.policy(n), Some(Policy::FriendsOnly(_))))
    }

    fn policy_changed(&self, n: Number) -> BoxFuture<'_, Result<(), Refusal>> {
        Box::pin(self.reload_policy(n))
    }

    fn greeting_etag(&self, n: Number, k: &str) -> Option<String> {
        self.0.greetings.etag(n, kind(k))
    }

    fn upload_greeting(&self, n: Number, k: &str, bytes: Vec<u8>) -> BoxFuture<'_, Result<String, Refusal>> {
        let k = kind(k);
        Box::pin(async move {
            crate::greetings::store_upload(&self.0, n, k, bytes.into())
                .await
                .map(|g| g.etag)
                .map_err(picture_refusal)
        })
    }

    fn card_greeting(&self, n: Number, k: &str, card: CardRequest) -> BoxFuture<'_, Result<String, Refusal>> {
        let k = kind(k);
        Box::pin(async move {
            crate::greetings::store_card(
                &self.0,
                n,
                k,
                card.text,
                Some(card.foreground),
                Some(card.background),
                Some(card.layout),
            )
            .await
            .map(|g| g.etag)
            .map_err(picture_refusal)
        })
    }

    fn preview_card(&self, card: CardRequest) -> BoxFuture<'_, Result<Vec<u8>, Refusal>> {
        Box::pin(async move {
            crate::greetings::draw_card(card.text, Some(card.foreground), Some(card.background), Some(card.layout))
                .await
                .map(|g| g.png)
                .map_err(picture_refusal)
        })
    }

    fn counts(&self) -> Counts {
        Counts {
            numbers: self.0.devices.lock().expect("devices lock").by_mac.len(),
            registered: self.0.zone.read().expect("zone lock").contact_count(),
        }
    }

    fn set_disabled(&self, n: Number, disabled: bool) -> BoxFuture<'_, Result<(), Refusal>> {
        Box::pin(self.disable(n, disabled))
    }

    fn disabled(&self, n: Number) -> bool {
        self.0.disabled.lock().expect("disabled lock").contains(&n)
    }

    fn free_numbers(&self, pattern: &str, ends_with: bool, limit: usize) -> Vec<Number> {
        crate::vanity::free_numbers(&self.0, pattern, ends_with, limit)
    }

    fn reserve_number(&self, owner: Number, new: Number) -> BoxFuture<'_, Result<(), Refusal>> {
        Box::pin(crate::vanity::reserve(self.0.clone(), owner, new))
    }

    fn channels(&self, who: Number) -> Vec<ChannelView> {
        let m = self.0.channels.marquee.lock().expect("marquee");
        let subscribed = m.subscriptions(who);
        m.channels()
            .into_iter()
            .map(|c| ChannelView {
                name: c.name.clone(),
                title: c.title.clone(),
                subscribed: subscribed.contains(&c.name),
            })
            .collect()
    }

    fn set_subscription(&self, who: Number, channel: String, on: bool) -> BoxFuture<'_, Result<(), Refusal>> {
        Box::pin(async move {
            crate::channels::set_subscription(&self.0, who, &channel, on)
                .await
                .map(|_| ())
                .map_err(channel_refusal)
        })
    }

    fn broadcast(&self, text: String, every_minutes: Option<u64>, until: Option<u64>) -> BoxFuture<'_, Result<u64, Refusal>> {
        Box::pin(async move {
            crate::channels::new_broadcast(&self.0, &text, every_minutes, until)
                .await
                .map_err(channel_refusal)
        })
    }
    fn vouch(&self, n: Number) -> Result<String, Refusal> {
        crate::identity::sign(&self.0, n, n, now_ms() / 1000).map_err(|e| Refusal::Text(e.to_string()))
    }
}
