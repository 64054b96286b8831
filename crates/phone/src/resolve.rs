//! The phone's DNS lookups: the network's stub client
//! ([`peerdial_resolve`]), re-exported where the phone's modules look for it.

pub use peerdial_resolve::*;
