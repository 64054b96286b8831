//! Answers outside any call: to a request that matches none (481) or one
//! the phone refuses before a call exists.

use std::net::SocketAddr;

use super::Transmit;
use crate::ids::token as random_token;
use crate::message::{response, top_via};
use crate::validate::{reject_unparseable, validate_request};
use crate::{Message, SipError};

/// A stateless answer to a request that matches no call (481) or that the
/// phone refuses before a call exists (486 busy, 488, 405, 501), with
/// `headers` added. A request that is not valid gets the refusal of
/// [`validate_request`] instead; one that does not parse gets 400 when it
/// can be routed.
pub fn stateless_response(
    data: &[u8],
    source: SocketAddr,
    code: u16,
    reason: &str,
    headers: &[(&str, &str)],
) -> Result<Option<Transmit>, SipError> {
    let msg = match Message::parse(data) {
        Ok(m) => m,
        Err(e) => return Ok(reject_unparseable(data, &e, source).map(|data| Transmit { to: source, data })),
    };
    if !msg.is_request() || msg.method() == Some("ACK") {
        return Ok(None);
    }
    let Some(via) = top_via(&msg) else { return Ok(None) };
    let r = match validate_request(&msg, &[]) {
        Err(refusal) => {
            let mut r = response(&msg, &via, source, refusal.code, &refusal.reason, &random_token(10));
            for (n, v) in refusal.headers {
                r.push(n, v);
            }
            r
        }
        Ok(()) => {
            let mut r = response(&msg, &via, source, code, reason, &random_token(10));
            for (n, v) in headers {
                r.push(n, *v);
            }
            r
        }
    };
    Ok(Some(Transmit {
        to: source,
        data: r.to_bytes(),
    }))
}
