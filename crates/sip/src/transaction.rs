//! A non-INVITE client transaction over UDP (RFC 3261 §17.1.2), as a
//! timer core: the first send, Timer E retransmissions (T1 doubling up to
//! T2) and Timer F's give-up at 64×T1. The owner keeps it until the
//! request's final answer arrives (matched by the owner, e.g. by Call-ID
//! and CSeq) and sends what [`ClientTx::on_timeout`] returns.
//!
//! Not here: building the request, matching answers, reliable transports
//! (over TCP a request is sent once and only Timer F applies).

use std::net::SocketAddr;

use crate::call::{T1, T2};
use crate::{Outbound, Transport};

#[derive(Debug, Clone)]
pub struct ClientTx {
    pub cseq: u32,
    pub to: SocketAddr,
    pub transport: Transport,
    pub data: Vec<u8>,
    pub next: u64,
    pub interval: u64,
    pub deadline: u64,
}

impl ClientTx {
    /// The transaction over UDP, and its first send.
    pub fn start(cseq: u32, to: SocketAddr, data: Vec<u8>, now: u64) -> (ClientTx, Outbound) {
        ClientTx::start_over(Transport::Udp, cseq, to, data, now)
    }

    /// The transaction over `transport`: over TCP nothing is
    /// retransmitted (RFC 3261 17.1.2.2: Timer E is for unreliable
    /// transports), only Timer F runs.
    pub fn start_over(transport: Transport, cseq: u32, to: SocketAddr, data: Vec<u8>, now: u64) -> (ClientTx, Outbound) {
        let t = Outbound {
            to,
            transport,
            data: data.clone(),
        };
        let deadline = now + 64 * T1;
        let next = match transport {
            Transport::Udp => now + T1,
            Transport::Tcp => deadline,
        };
        (
            ClientTx {
                cseq,
                to,
                transport,
                data,
                next,
                interval: T1,
                deadline,
            },
            t,
        )
    }

    /// When [`ClientTx::on_timeout`] has something to do.
    pub fn due(&self) -> u64 {
        self.next.min(self.deadline)
    }

    /// Retransmits if due; `Err(())` once Timer F has fired.
    #[allow(clippy::result_unit_err)]
    pub fn on_timeout(&mut self, now: u64) -> Result<Option<Outbound>, ()> {
        if self.deadline <= now {
            return Err(());
        }
        if self.next > now {
            return Ok(None);
        }
        self.interval = (self.interval * 2).min(T2);
        self.next = now + self.interval;
        Ok(Some(Outbound {
            to: self.to,
            transport: self.transport,
            data: self.data.clone(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timer_e_doubles_to_t2_and_timer_f_gives_up_at_64_t1() {
        let to: SocketAddr = "127.0.0.1:5060".parse().unwrap();
        let (mut tx, first) = ClientTx::start(7, to, b"NOTIFY".to_vec(), 1_000);
        assert_eq!((first.to, first.data.as_slice()), (to, &b"NOTIFY"[..]));
        // Simulated time: jump from one due time to the next.
        let mut sent_at = Vec::new();
        let ended = loop {
            assert!(tx.on_timeout(tx.due() - 1).is_ok_and(|t| t.is_none()), "nothing early");
            let now = tx.due();
            match tx.on_timeout(now) {
                Ok(Some(t)) => {
                    assert_eq!(t.data, b"NOTIFY");
                    sent_at.push(now - 1_000);
                }
                Ok(None) => unreachable!("due means something to do"),
                Err(()) => break now - 1_000,
            }
        };
        assert_eq!(
            sent_at,
            vec![500, 1_500, 3_500, 7_500, 11_500, 15_500, 19_500, 23_500, 27_500, 31_500]
        );
        assert_eq!(ended, 32_000);
    }

    #[test]
    fn over_tcp_nothing_is_retransmitted_and_timer_f_still_ends_it() {
        let to: SocketAddr = "127.0.0.1:5060".parse().unwrap();
        let (mut tx, first) = ClientTx::start_over(Transport::Tcp, 1, to, b"MESSAGE".to_vec(), 1_000);
        assert_eq!(first.transport, Transport::Tcp);
        assert_eq!(tx.due(), 33_000, "only Timer F");
        assert!(tx.on_timeout(32_999).is_ok_and(|t| t.is_none()));
        assert!(tx.on_timeout(33_000).is_err());
    }
}
