//! Keys pressed during a conference (RFC 4733 telephone events): a key is
//! counted once per event (its RTP timestamp), on its first packet.

use crate::rtp::TelephoneEvent;

/// Press `*` then `6` (within [`KEY_GAP_MS`]) to mute or unmute yourself,
/// as on the common conference services.
pub const MUTE_KEYS: &str = "*6";

/// Most milliseconds between the two keys of [`MUTE_KEYS`].
pub const KEY_GAP_MS: u64 = 3000;

#[derive(Debug, Default)]
pub(super) struct Keys {
    /// The RTP timestamp of the event last counted.
    last_event: Option<u32>,
    /// The previous key and when it was pressed.
    previous: Option<(char, u64)>,
}

impl Keys {
    /// Notes one telephone-event packet; true when it completes
    /// [`MUTE_KEYS`].
    pub(super) fn event(&mut self, timestamp: u32, ev: TelephoneEvent, now: u64) -> bool {
        if self.last_event == Some(timestamp) {
            return false;
        }
        self.last_event = Some(timestamp);
        let Some(key) = ev.key() else { return false };
        let mut chars = MUTE_KEYS.chars();
        let (first, second) = (chars.next(), chars.next());
        let done =
            Some(key) == second && matches!(self.previous, Some((k, at)) if Some(k) == first && now.saturating_sub(at) <= KEY_GAP_MS);
        self.previous = if done { None } else { Some((key, now)) };
        done
    }
}
