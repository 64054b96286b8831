//! The phone's side of presence: a [`Publisher`] of its own state (RFC
//! 3903 PUBLISH) and a [`Watcher`] of another number's (RFC 6665
//! SUBSCRIBE), both sans-I/O like the registration client of the sip
//! crate: `handle…` with messages, `poll_transmit`, `poll_timeout`,
//! `handle_timeout` and `poll_event`, over UDP with its retransmission
//! timers.

mod publisher;
mod watcher;

pub use publisher::{PublishEvent, Publisher, PublisherConfig};
pub use watcher::{WatchEvent, Watcher, WatcherConfig};

use std::net::SocketAddr;

use peerdial_sip::call::{T1, T2};
use peerdial_sip::Transport;

use crate::Transmit;

/// A non-INVITE client transaction over UDP: Timer E retransmissions,
/// Timer F give-up.
pub(crate) struct ClientTx {
    pub cseq: u32,
    pub to: SocketAddr,
    pub data: Vec<u8>,
    pub next: u64,
    pub interval: u64,
    pub deadline: u64,
}

impl ClientTx {
    pub fn start(cseq: u32, to: SocketAddr, data: Vec<u8>, now: u64) -> (ClientTx, Transmit) {
        let t = Transmit {
            to,
            transport: Transport::Udp,
            data: data.clone(),
        };
        (
            ClientTx {
                cseq,
                to,
                data,
                next: now + T1,
                interval: T1,
                deadline: now + 64 * T1,
            },
            t,
        )
    }

    pub fn due(&self) -> u64 {
        self.next.min(self.deadline)
    }

    /// Retransmits if due; `Err(())` once Timer F has fired.
    pub fn on_timeout(&mut self, now: u64) -> Result<Option<Transmit>, ()> {
        if self.deadline <= now {
            return Err(());
        }
        if self.next > now {
            return Ok(None);
        }
        self.interval = (self.interval * 2).min(T2);
        self.next = now + self.interval;
        Ok(Some(Transmit {
            to: self.to,
            transport: Transport::Udp,
            data: self.data.clone(),
        }))
    }
}

pub(crate) use peerdial_sip::client::answer_challenge;

/// Back-off after failures: 5 s doubling to 5 minutes.
pub(crate) fn next_backoff(b: u64) -> u64 {
    (b * 2).clamp(5_000, 300_000)
}
