//! Vanity numbers: an owner picks a free number of the area and the
//! device moves to it.
//!
//! The move is one database transaction ([`peerdial_store::Store::move_number`]):
//! the devices table's UNIQUE number decides a race, the old number enters
//! the quarantine of retired numbers. Then, in memory: the registrar forgets
//! the old number's credential (its next REGISTER gets 403), the binding
//! moves to the new number so the NAPTR follows at once and the old name
//! is NXDOMAIN, presence and greetings follow.
//!
//! The phone learns its new number the way it learns new credentials: a
//! 403 to its REGISTER makes it provision again with its device secret,
//! and the answer carries the device's current number (docs/decisions.md).

use std::sync::Arc;

use peerdial_number::Number;
use peerdial_portal::link::Refusal;
use peerdial_sip::digest::Ha1;
use peerdial_store::Write;
use rand::Rng;

use crate::{now_ms, Shared};

/// Digits of the part of a number an owner chooses.
const INDIVIDUAL: usize = 8;
/// Candidates looked at per search, at most.
const MAX_SCAN: u64 = 200_000;

/// Free numbers of the area whose 8 individual digits contain `pattern`
/// (or end with it); the pattern is 1 to 8 digits (checked by the caller).
pub fn free_numbers(shared: &Shared, pattern: &str, ends_with: bool, limit: usize) -> Vec<Number> {
    let k = pattern.len();
    let Ok(p) = pattern.parse::<u64>() else {
        return Vec::new();
    };
    if k == 0 || k > INDIVIDUAL || !pattern.bytes().all(|b| b.is_ascii_digit()) {
        return Vec::new();
    }
    let area = shared.cfg.area;
    let devices = shared.devices.lock().expect("devices lock");
    let mut out = Vec::new();
    let free_digits = (INDIVIDUAL - k) as u32;
    let span = 10u64.pow(free_digits);
    // Where the pattern sits: at the end first, then further left.
    let positions: Vec<u32> = if ends_with { vec![0] } else { (0..=free_digits).collect() };
    let start = rand::thread_rng().gen_range(0..span);
    let mut scanned = 0;
    for pos in positions {
        let low = 10u64.pow(pos);
        for i in 0..span {
            if out.len() >= limit || scanned >= MAX_SCAN {
                return out;
            }
            scanned += 1;
            let x = (start + i) % span;
            let individual = (x / low) * 10u64.pow(pos + k as u32) + p * low + x % low;
            let individual = individual as u32;
            if !devices.numbers.contains(&individual) {
                let n = Number::new(area, individual);
                if !out.contains(&n) {
                    out.push(n);
                }
            }
        }
    }
    out
}

/// Moves `owner`'s device to `new`. Refusals are for the user to read.
pub async fn reserve(shared: Arc<Shared>, owner: Number, new: Number) -> Result<(), Refusal> {
    if !shared.cfg.area.contains(new) {
        return Err(Refusal::OutsideArea(new));
    }
    if new == owner {
        return Err(Refusal::AlreadyYours(new));
    }
    // Claimed in memory first: a racer in this process loses here; one in
    // another process sharing the database loses on the UNIQUE number.
    {
        let mut d = shared.devices.lock().expect("devices lock");
        if !d.numbers.insert(new.individual()) {
            return Err(Refusal::Taken(new));
        }
    }
    let mut secret = [0u8; 18];
    rand::thread_rng().fill(&mut secret);
    // Nobody knows this password: it only makes the new number provisioned
    // until the phone provisions again and gets credentials of its own.
    let ha1 = Ha1::new(&new.digits(), &shared.realm, &hex::encode(secret));
    let now = now_ms();
    let since = shared.cfg.quarantined_since(now);
    let moved = shared
        .store
        .move_number(
            owner.as_u64() as i64,
            new.as_u64() as i64,
            &hex::encode(ha1.md5),
            &hex::encode(ha1.sha256),
            since,
            now as i64,
        )
        .await;
    match moved {
        Ok(true) => {}
        Ok(false) => return Err(Refusal::Taken(new)),
        Err(e) => {
            shared.devices.lock().expect("devices lock").numbers.remove(&new.individual());
            tracing::warn!(error = %e, "vanity move failed");
            return Err(Refusal::Unavailable);
        }
    }
    {
        let mut d = shared.devices.lock().expect("devices lock");
        for dev in d.by_mac.values_mut() {
            if dev.number == owner {
                dev.number = new;
            }
        }
    }
    let binding = {
        let mut r = shared.registrar.lock().expect("registrar lock");
        let b = r.remove_credential(owner);
        r.set_credential(new, ha1);
        if let Some(b) = &b {
            r.restore(new, b.clone());
        }
        b
    };
    if let Some(b) = &binding {
        if let Err(e) = shared.store.write(Write::UpsertBinding(crate::binding_to_row(new, b))).await {
            tracing::warn!(error = %e, "could not store the moved binding; the phone's next REGISTER brings it back");
        }
    }
    shared.publish(owner);
    shared.publish(new);
    // The push registration moves with the binding: the old number is
    // forgotten at the top, the new one registered.
    shared.push.on_change(&peerdial_sip::Change::Remove(owner));
    if let Some(b) = &binding {
        shared.push.on_change(&peerdial_sip::Change::Upsert(new, b.clone()));
    }
    shared.greetings.rename(owner, new);
    shared.presence.remove_number(owner);
    shared.presence.add_number(new);
    if let Some(b) = &binding {
        shared.presence.binding(new, Some((b.addr, b.transport)));
    }
    let key = new.as_u64() as i64;
    if let (Ok(only), Ok(friends)) = (shared.store.friends_only(key).await, shared.store.friends(key).await) {
        let friends = friends.into_iter().filter_map(|f| Number::from_u64(f as u64).ok());
        shared.presence.set_policy(new, crate::presence::policy(only, friends));
    }
    tracing::info!(old = %owner, %new, "number moved to a vanity number");
    Ok(())
}
