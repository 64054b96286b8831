//! RFC 8599 push parameters on a REGISTER's Contact URI: `pn-provider`,
//! `pn-prid`, `pn-param` (and `pn-purr`, kept but unused).
//!
//! Parsed strictly: an unknown `pn-` name, a duplicate, an empty value, a
//! bad escape, a provider we do not speak or a value that does not fit its
//! provider is an error whose text is safe for a SIP reason phrase (it
//! never echoes the value). Not here: who may register them (the
//! registrar) or where they are kept (the region and the top).
//!
//! The values per provider:
//! - `webpush`: `pn-prid` is the subscription's endpoint (`https://`;
//!   `http://` only to a loopback host), `pn-param` is `<p256dh>.<auth>`, both base64url without
//!   padding (RFC 8291's user agent public key, 65 bytes, and auth secret,
//!   16 bytes);
//! - `apns`: `pn-prid` is the device token (hex), `pn-param` is
//!   `<team id>.<topic>` (RFC 8599 §13.1);
//! - `fcm`: `pn-prid` is the registration token, `pn-param` the project id.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::{PushError, Result};

/// Longest value taken for any parameter.
pub const MAX_VALUE: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Webpush,
    Apns,
    Fcm,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Webpush => "webpush",
            Provider::Apns => "apns",
            Provider::Fcm => "fcm",
        }
    }

    pub fn parse(s: &str) -> Option<Provider> {
        match s.to_ascii_lowercase().as_str() {
            "webpush" => Some(Provider::Webpush),
            "apns" => Some(Provider::Apns),
            "fcm" => Some(Provider::Fcm),
            _ => None,
        }
    }
}

/// A device's push registration. `Debug` hides the values (a device
/// token or a subscription's keys are not for logs).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushParams {
    pub provider: Provider,
    pub prid: String,
    #[serde(default)]
    pub param: Option<String>,
}

impl std::fmt::Debug for PushParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushParams")
            .field("provider", &self.provider)
            .finish_non_exhaustive()
    }
}

fn bad(m: impl Into<String>) -> PushError {
    PushError::Params(m.into())
}

/// Strict `%XX` decoding (RFC 3261 `escaped`); the result must be UTF-8
/// without control characters.
fn unescape(name: &str, v: &str) -> Result<String> {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
            let byte = hex.and_then(|h| u8::from_str_radix(h, 16).ok());
            match byte {
                Some(x) => out.push(x),
                None => return Err(bad(format!("{name} has a bad %-escape"))),
            }
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    let s = String::from_utf8(out).map_err(|_| bad(format!("{name} is not UTF-8")))?;
    if s.chars().any(|c| c.is_control() || c == ' ') {
        return Err(bad(format!("{name} has spaces or control characters")));
    }
    Ok(s)
}

/// Escapes what a SIP URI parameter value cannot carry as is.
fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        let keep = b.is_ascii_alphanumeric() || b"-_.!~*'()[]/:&+$".contains(&b);
        if keep {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl PushParams {
    /// The parameters in a Contact URI's parameter part (`a=b;c;d=e`, with
    /// or without a leading `;`). `Ok(None)`: no `pn-` parameter at all.
    pub fn from_uri_params(params: &str) -> Result<Option<PushParams>> {
        let (mut provider, mut prid, mut param, mut purr) = (None, None, None, None);
        for p in params.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, value) = match p.split_once('=') {
                Some((n, v)) => (n.trim(), Some(v.trim())),
                None => (p, None),
            };
            let lname = name.to_ascii_lowercase();
            if !lname.starts_with("pn-") {
                continue;
            }
            let slot = match lname.as_str() {
                "pn-provider" => &mut provider,
                "pn-prid" => &mut prid,
                "pn-param" => &mut param,
                "pn-purr" => &mut purr,
                _ => {
                    return Err(bad(
                        "unknown push parameter (RFC 8599 defines pn-provider, pn-prid, pn-param, pn-purr)",
                    ))
                }
            };
            if slot.is_some() {
                return Err(bad(format!("{lname} is given twice")));
            }
            let v = value
                .filter(|v| !v.is_empty())
                .ok_or_else(|| bad(format!("{lname} needs a value")))?;
            if v.len() > MAX_VALUE {
                return Err(bad(format!("{lname} is longer than {MAX_VALUE} bytes")));
            }
            *slot = Some(unescape(&lname, v)?);
        }
        let Some(provider) = provider else {
            return match (&prid, &param, &purr) {
                (None, None, None) => Ok(None),
                _ => Err(bad("pn-prid or pn-param without pn-provider")),
            };
        };
        let provider = Provider::parse(&provider).ok_or_else(|| bad("unknown pn-provider (webpush, apns or fcm)"))?;
        let prid = prid.ok_or_else(|| bad("pn-provider without pn-prid"))?;
        let p = PushParams { provider, prid, param };
        p.check()?;
        Ok(Some(p))
    }

    /// Checks the values against their provider.
    pub fn check(&self) -> Result<()> {
        match self.provider {
            Provider::Webpush => {
                crate::webpush::endpoint_uri(&self.prid)?;
                crate::webpush::Subscription::keys_from_param(self.param.as_deref().unwrap_or(""))?;
            }
            Provider::Apns => {
                let ok = self.prid.len() >= 32 && self.prid.len() <= 200 && self.prid.bytes().all(|b| b.is_ascii_hexdigit());
                if !ok {
                    return Err(bad("pn-prid for apns is a hex device token"));
                }
                let Some((team, topic)) = self.param.as_deref().and_then(|p| p.split_once('.')) else {
                    return Err(bad("pn-param for apns is <team id>.<topic>"));
                };
                let team_ok = team.len() == 10 && team.bytes().all(|b| b.is_ascii_alphanumeric());
                let topic_ok = !topic.is_empty() && topic.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b));
                if !(team_ok && topic_ok) {
                    return Err(bad("pn-param for apns is <team id>.<topic>"));
                }
            }
            Provider::Fcm => {
                if !self.prid.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_:".contains(&b)) {
                    return Err(bad("pn-prid for fcm is a registration token"));
                }
                if let Some(p) = &self.param {
                    if !p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                        return Err(bad("pn-param for fcm is a project id"));
                    }
                }
            }
        }
        Ok(())
    }

    /// `;pn-provider=…;pn-prid=…[;pn-param=…]` for a Contact URI.
    pub fn to_uri_params(&self) -> String {
        let mut s = format!(";pn-provider={};pn-prid={}", self.provider.as_str(), escape(&self.prid));
        if let Some(p) = &self.param {
            s.push_str(&format!(";pn-param={}", escape(p)));
        }
        s
    }

    /// A Web Push subscription's `pn-param`: `<p256dh>.<auth>`.
    pub fn webpush_param(p256dh: &[u8], auth: &[u8]) -> String {
        format!("{}.{}", URL_SAFE_NO_PAD.encode(p256dh), URL_SAFE_NO_PAD.encode(auth))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn webpush_param() -> String {
        let k = crate::webpush::UaKeys::generate();
        k.pn_param()
    }

    #[test]
    fn round_trip_and_absence() {
        assert_eq!(PushParams::from_uri_params("transport=udp").unwrap(), None);
        assert_eq!(PushParams::from_uri_params("").unwrap(), None);
        let p = PushParams {
            provider: Provider::Webpush,
            prid: "http://127.0.0.1:9/up/a b?x=1".replace(' ', "%20"),
            param: Some(webpush_param()),
        };
        let text = p.to_uri_params();
        assert!(!text.contains('?') && !text.contains('='.to_string().repeat(2).as_str()));
        let back = PushParams::from_uri_params(&format!("transport=udp{text}")).unwrap().unwrap();
        assert_eq!(back, p);
        let apns = PushParams::from_uri_params(";pn-provider=apns;pn-prid=00fc13adff785122b4ad28809a3420982341241421348097878e577c991de8f0;pn-param=DEF123GHIJ.com.example.app.voip").unwrap().unwrap();
        assert_eq!(apns.provider, Provider::Apns);
        let fcm = PushParams::from_uri_params("pn-provider=fcm;pn-prid=abc:DEF-123_x;pn-param=my-project")
            .unwrap()
            .unwrap();
        assert_eq!(fcm.param.as_deref(), Some("my-project"));
        assert!(!format!("{fcm:?}").contains("abc"));
    }

    #[test]
    fn malformed_is_refused_with_a_clear_reason() {
        let wp = format!("pn-provider=webpush;pn-prid=https://h:1/x;pn-param={}", webpush_param());
        assert!(PushParams::from_uri_params(&wp).is_ok());
        // Plain http:// only to a loopback push service (RFC 8030 §8).
        let local = format!("pn-provider=webpush;pn-prid=http://127.0.0.1:1/x;pn-param={}", webpush_param());
        assert!(PushParams::from_uri_params(&local).is_ok());
        let plain = format!("pn-provider=webpush;pn-prid=http://h:1/x;pn-param={}", webpush_param());
        let e = PushParams::from_uri_params(&plain).unwrap_err().to_string();
        assert!(e.contains("only for a loopback push service; use https://"), "{e}");
        let cases = [
            ("pn-prid=x", "without pn-provider"),
            ("pn-provider=gcm;pn-prid=x", "unknown pn-provider"),
            ("pn-provider=webpush", "without pn-prid"),
            ("pn-provider=webpush;pn-provider=webpush;pn-prid=x", "twice"),
            ("pn-provider=webpush;pn-prid=", "needs a value"),
            ("pn-provider;pn-prid=x", "needs a value"),
            ("pn-provider=webpush;pn-prid=http://h/%zz", "%-escape"),
            ("pn-provider=webpush;pn-prid=http://h/%0a", "control"),
            ("pn-provider=webpush;pn-prid=ftp://h/x;pn-param=a.b", "http"),
            ("pn-provider=webpush;pn-prid=https://h/x", "pn-param"),
            ("pn-provider=webpush;pn-prid=https://h/x;pn-param=AAAA.AAAA", "p256dh"),
            ("pn-provider=apns;pn-prid=xyz;pn-param=T.t", "device token"),
            ("pn-provider=fcm;pn-prid=a b", "spaces"),
            ("pn-foo=1", "unknown push parameter"),
        ];
        for (input, want) in cases {
            let e = PushParams::from_uri_params(input).unwrap_err().to_string();
            assert!(e.contains(want), "{input}: {e}");
            assert!(!e.contains('\r') && !e.contains('\n'));
        }
        let long = format!("pn-provider=fcm;pn-prid={}", "a".repeat(MAX_VALUE + 1));
        assert!(PushParams::from_uri_params(&long).unwrap_err().to_string().contains("longer"));
    }

    proptest::proptest! {
        #[test]
        fn never_panics_and_what_parses_round_trips(s in "(;?(pn-provider|pn-prid|pn-param|pn-purr|pn-x|transport)(=[a-zA-Z0-9%:/._-]{0,40})?){0,5}") {
            if let Ok(Some(p)) = PushParams::from_uri_params(&s) {
                proptest::prop_assert_eq!(PushParams::from_uri_params(&p.to_uri_params()).unwrap(), Some(p));
            }
        }
    }
}
