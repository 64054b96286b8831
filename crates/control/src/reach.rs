//! Where a peerdial number's talker is reachable now (issue 13): the
//! contact its region publishes (the NAPTR of order 10), found through a
//! resolver or the tree's directory (`peerdial_resolve::Dns`). The top asks
//! it for every peerdial leg it sends; a region asks it for a newcomer of
//! another region joining a call it runs (design §9: "the region's
//! controller can call any peerdial number it resolves through DNS").
//! The mailbox record alone (order 20, the region's own SIP address)
//! means the phone is offline.
//!
//! It is not a cache of answers nor a resolver: each call asks afresh.

use peerdial_number::Number;
use peerdial_resolve::{Dns, Lookup};
use peerdial_sip::pairing::Leg;

use crate::ControlError;

/// `number`'s talker as a leg to call: its contact and the address to send to.
pub async fn contact(dns: &Dns, number: Number, root: &str) -> Result<Leg, ControlError> {
    let lookup = |e: peerdial_resolve::ResolveError| ControlError::Lookup(e.to_string());
    let server = dns.server_for(number).await.map_err(lookup)?;
    let uri = match peerdial_resolve::lookup(server, number, root).await.map_err(lookup)? {
        // Only the mailbox (order 20) left: the phone is not online.
        Lookup::Found { then, .. } if then.is_empty() => return Err(ControlError::Offline),
        Lookup::Found { uri, .. } => uri,
        Lookup::NoSuchNumber => return Err(ControlError::NoSuchNumber),
    };
    let next_hop =
        peerdial_sip::call::uri_addr(&uri).ok_or_else(|| ControlError::Lookup(format!("its contact {uri:?} is not an address")))?;
    Ok(Leg { uri, next_hop })
}
