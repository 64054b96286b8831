//! `--switch sip:NUMBER@ADDR`: the phone as a device of a `peerdial switch`
//! (issue 15) instead of a phone of a region. It registers to the switch
//! with the number and the password `peerdial switch device add` was given
//! (digest, the switch's realm), takes the calls the switch brings it (the
//! switch checked the cloud's key), and places every call through the
//! switch: an INVITE to `sip:CALLEE@switch` with no key, which the switch
//! challenges (digest again), designates at the cloud and carries on.
//!
//! Not here: provisioning, DNS lookups, PASSporTs, greetings and the
//! mailbox, which belong to a region (a switch's device has none of them).

use std::net::SocketAddr;

use peerdial_number::Number;
use peerdial_sip::message::SipUri;

use crate::provision::Identity;
use crate::PhoneError;

/// The switch and our account on it.
#[derive(Clone)]
pub struct SwitchAccount {
    pub number: Number,
    /// The switch's SIP address (UDP).
    pub addr: SocketAddr,
    pub password: String,
}

impl std::fmt::Debug for SwitchAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password.
        write!(f, "sip:{}@{}", self.number.digits(), self.addr)
    }
}

impl SwitchAccount {
    /// `sip:NUMBER@IP:PORT` (the port defaults to 5070, the switch's) and
    /// the device's password.
    pub fn new(uri: &str, password: &str) -> Result<SwitchAccount, PhoneError> {
        let bad = |why: &str| PhoneError::Config(format!("--switch {uri:?}: {why} (give sip:NUMBER@IP:PORT)"));
        let u = SipUri::parse(uri.trim()).map_err(|_| bad("not a sip: URI"))?;
        let user = u.user.ok_or_else(|| bad("no device number"))?;
        let number = Number::parse(user).map_err(|_| bad("the user part is not a number"))?;
        let ip = u
            .host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| bad("the host is not an IP address"))?;
        let addr = SocketAddr::new(ip, u.port.unwrap_or(5070));
        if addr.ip().is_unspecified() || addr.port() == 0 {
            return Err(bad("no address to send to"));
        }
        let password = password.trim_end_matches(['\r', '\n']);
        if password.is_empty() || password.len() > 128 || password.chars().any(char::is_control) {
            return Err(PhoneError::Config("the switch password is 1 to 128 printable characters".into()));
        }
        Ok(SwitchAccount {
            number,
            addr,
            password: password.to_string(),
        })
    }

    /// The identity the phone runs with: the switch as registrar, no region.
    pub(crate) fn identity(&self) -> Identity {
        Identity {
            mac: String::new(),
            number: self.number.to_string(),
            area: self.number.area().to_string(),
            device_secret: String::new(),
            sip_username: self.number.digits(),
            sip_password: self.password.clone(),
            sip_realm: self.addr.to_string(),
            registrar: self.addr,
            region_http: String::new(),
            dns: None,
            register_expires: Some(600),
        }
    }

    /// Where a call to `callee` goes: the switch, which asks the cloud.
    pub(crate) fn uri_for(&self, callee: Number) -> String {
        format!("sip:{}@{}", callee.digits(), self.addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn switch_accounts_parse_and_refuse_bad_input() {
        let a = SwitchAccount::new("sip:886-02-99990004@127.0.0.1:5071", "pw\n").unwrap();
        assert_eq!(a.addr, "127.0.0.1:5071".parse().unwrap());
        assert_eq!(a.password, "pw");
        assert!(!format!("{a:?}").contains("pw"), "the password is never shown");
        let id = a.identity();
        assert_eq!((id.registrar, id.sip_username.as_str()), (a.addr, "8860299990004"));
        assert_eq!(
            SwitchAccount::new("sip:88602999900041@127.0.0.1", "pw").map(|a| a.addr.port()).ok(),
            None
        );
        assert_eq!(SwitchAccount::new("sip:8860299990004@127.0.0.1", "pw").unwrap().addr.port(), 5070);
        for bad in [
            "http://127.0.0.1:5070",
            "sip:127.0.0.1:5070",
            "sip:abc@127.0.0.1",
            "sip:8860299990004@switch.example",
            "sip:8860299990004@0.0.0.0:5070",
        ] {
            assert!(SwitchAccount::new(bad, "pw").is_err(), "{bad}");
        }
        assert!(SwitchAccount::new("sip:8860299990004@127.0.0.1", "").is_err());
    }
}
