//! The rendezvous API's request bodies (JSON), parsed and validated into
//! typed requests: MSISDNs in E.164, IMSIs of 15 digits, codes of 6
//! digits, SIP contacts that are plain `sip:` URIs. Unknown fields are
//! refused. Error texts never repeat an IMSI. This is the parser the fuzz
//! target drives; it holds no state.

use serde::Deserialize;

use crate::ids::{Imsi, Msisdn};
use crate::RendezvousError;

/// Largest body the edge should read.
pub const MAX_BODY: usize = 4096;

/// `POST …/devices` and `…/devices/remove`.
#[derive(Debug, Clone)]
pub struct DeviceRequest {
    pub msisdn: Msisdn,
    pub imsi: Imsi,
}

/// `POST …/devices/verify`.
#[derive(Debug, Clone)]
pub struct VerifyRequest {
    pub msisdn: Msisdn,
    pub imsi: Imsi,
    pub code: String,
}

/// `POST …/call`: the caller (its own MSISDN and IMSI) dials `callee`.
#[derive(Debug, Clone)]
pub struct CallRequest {
    pub msisdn: Msisdn,
    pub imsi: Imsi,
    pub callee: Msisdn,
    pub contact: String,
}

/// `POST …/ring`: the callee's SIM (and, as a check, its MSISDN).
#[derive(Debug, Clone)]
pub struct RingRequest {
    pub imsi: Imsi,
    pub msisdn: Option<Msisdn>,
    pub contact: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDevice {
    msisdn: String,
    imsi: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVerify {
    msisdn: String,
    imsi: String,
    code: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCall {
    msisdn: String,
    imsi: String,
    callee: String,
    contact: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRing {
    imsi: String,
    #[serde(default)]
    msisdn: Option<String>,
    contact: String,
}

fn json<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, RendezvousError> {
    if body.len() > MAX_BODY {
        return Err(RendezvousError::Body(format!("the body is over {MAX_BODY} bytes")));
    }
    // serde_json's messages may quote values (an IMSI sent as a number):
    // only "missing field" (our own names) is passed on.
    serde_json::from_slice(body).map_err(|e| {
        let text = e.to_string();
        RendezvousError::Body(match text.find("missing field") {
            Some(i) if e.is_data() => text[i..].split(" at line").next().unwrap_or("missing field").to_string(),
            _ => format!("not the expected JSON object of strings (line {}, column {})", e.line(), e.column()),
        })
    })
}

/// A SIP contact to hand to the other side: `sip:` (or `sips:`), printable
/// ASCII without spaces, angle brackets or quotes, at most 256 bytes.
pub fn contact(s: &str) -> Result<String, RendezvousError> {
    let ok_char = |b: u8| b.is_ascii_graphic() && !matches!(b, b'<' | b'>' | b'"' | b'\\');
    if !(s.starts_with("sip:") || s.starts_with("sips:")) || s.len() > 256 || s.len() < 6 || !s.bytes().all(ok_char) {
        return Err(RendezvousError::Contact(
            "a contact is a sip: URI of printable characters, at most 256 bytes".into(),
        ));
    }
    Ok(s.to_string())
}

pub fn parse_device(body: &[u8]) -> Result<DeviceRequest, RendezvousError> {
    let r: RawDevice = json(body)?;
    Ok(DeviceRequest {
        msisdn: Msisdn::parse(&r.msisdn)?,
        imsi: Imsi::parse(&r.imsi)?,
    })
}

pub fn parse_verify(body: &[u8]) -> Result<VerifyRequest, RendezvousError> {
    let r: RawVerify = json(body)?;
    let code = r.code.trim().to_string();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(RendezvousError::Code("a code is 6 digits".into()));
    }
    Ok(VerifyRequest {
        msisdn: Msisdn::parse(&r.msisdn)?,
        imsi: Imsi::parse(&r.imsi)?,
        code,
    })
}

pub fn parse_call(body: &[u8]) -> Result<CallRequest, RendezvousError> {
    let r: RawCall = json(body)?;
    Ok(CallRequest {
        msisdn: Msisdn::parse(&r.msisdn)?,
        imsi: Imsi::parse(&r.imsi)?,
        callee: Msisdn::parse(&r.callee)?,
        contact: contact(&r.contact)?,
    })
}

pub fn parse_ring(body: &[u8]) -> Result<RingRequest, RendezvousError> {
    let r: RawRing = json(body)?;
    Ok(RingRequest {
        imsi: Imsi::parse(&r.imsi)?,
        msisdn: r.msisdn.as_deref().map(Msisdn::parse).transpose()?,
        contact: contact(&r.contact)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_validated_without_echoing_imsis() {
        let ok =
            br#"{"msisdn":"+886912345678","imsi":"466920123456789","callee":"+886912000002","contact":"sip:886021234567@127.0.0.1:5070"}"#;
        assert_eq!(parse_call(ok).unwrap().callee.as_str(), "+886912000002");
        let bad_imsi = br#"{"msisdn":"+886912345678","imsi":"4669201234567","callee":"+886912000002","contact":"sip:a@b"}"#;
        let e = parse_call(bad_imsi).unwrap_err().to_string();
        assert!(e.contains("15 digits") && !e.contains("4669201234567"), "{e}");
        assert!(parse_ring(br#"{"imsi":"466920123456789","contact":"http://x"}"#).is_err());
        assert!(parse_ring(br#"{"imsi":"466920123456789","contact":"sip:a b@c"}"#).is_err());
        assert!(parse_device(br#"{"msisdn":"+886912345678","imsi":"466920123456789","x":1}"#).is_err());
        assert!(parse_verify(br#"{"msisdn":"+886912345678","imsi":"466920123456789","code":"12345"}"#).is_err());
        assert!(parse_device(b"\xff{").is_err());
        let e = parse_device(br#"{"msisdn":"+886912345678","imsi":466920123456789}"#)
            .unwrap_err()
            .to_string();
        assert!(!e.contains("466920123456789"), "{e}");
        let e = parse_device(br#"{"msisdn":"+886912345678"}"#).unwrap_err().to_string();
        assert!(e.contains("missing field `imsi`"), "{e}");
    }
}
