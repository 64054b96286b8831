//! TSIG (RFC 8945) on raw DNS messages: find and verify the TSIG record
//! of a request, sign responses (the first one with the request's MAC,
//! later ones of a zone transfer with the previous MAC and timers only).
//! HMAC-SHA256 only: BIND, Knot and NSD all speak it.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// RR type 250, class ANY.
const TYPE_TSIG: u16 = 250;
const CLASS_ANY: u16 = 255;
pub const FUDGE: u16 = 300;
pub const ALGORITHM: &str = "hmac-sha256.";

/// TSIG error codes (RFC 8945 section 3).
pub const BADSIG: u16 = 16;
pub const BADKEY: u16 = 17;
pub const BADTIME: u16 = 18;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TsigKey {
    /// Lower-case, with the trailing dot.
    pub name: String,
    pub secret: Vec<u8>,
}

impl TsigKey {
    /// `NAME:BASE64` or `hmac-sha256:NAME:BASE64` (BIND's `-y` form).
    pub fn parse(s: &str) -> Result<TsigKey, String> {
        let parts: Vec<&str> = s.splitn(3, ':').collect();
        let (name, secret) = match parts.as_slice() {
            [alg, name, secret] if alg.eq_ignore_ascii_case("hmac-sha256") => (*name, *secret),
            [name, secret] => (*name, *secret),
            _ => return Err(format!("TSIG key {s:?}: use [hmac-sha256:]NAME:BASE64SECRET")),
        };
        use base64::Engine;
        let secret = base64::engine::general_purpose::STANDARD
            .decode(secret.trim())
            .map_err(|e| format!("TSIG key {name:?}: secret is not base64: {e}"))?;
        if name.is_empty() || secret.is_empty() {
            return Err(format!("TSIG key {s:?}: empty name or secret"));
        }
        let mut name = name.to_ascii_lowercase();
        if !name.ends_with('.') {
            name.push('.');
        }
        Ok(TsigKey { name, secret })
    }

    pub fn secret_base64(&self) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(&self.secret)
    }
}

/// The TSIG record found at the end of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TsigRecord {
    pub key_name: String,
    pub algorithm: String,
    pub time_signed: u64,
    pub fudge: u16,
    pub mac: Vec<u8>,
    pub original_id: u16,
    pub error: u16,
    pub other: Vec<u8>,
    /// Where the TSIG RR starts: the message without it is `msg[..start]`.
    pub start: usize,
}

/// Why a signed request is refused: answer NOTAUTH with this TSIG error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TsigFailure {
    /// Not a well-formed TSIG: FORMERR.
    Malformed,
    BadKey(Box<TsigRecord>),
    BadSig(Box<TsigRecord>),
    BadTime(Box<(TsigRecord, TsigKey)>),
}

/// A verified request: what signing its response needs.
#[derive(Debug, Clone)]
pub struct Verified {
    pub key: TsigKey,
    pub request_mac: Vec<u8>,
}

fn skip_name(m: &[u8], mut p: usize) -> Option<usize> {
    loop {
        let len = *m.get(p)? as usize;
        if len == 0 {
            return Some(p + 1);
        }
        if len & 0xC0 == 0xC0 {
            m.get(p + 1)?;
            return Some(p + 2);
        }
        if len & 0xC0 != 0 {
            return None;
        }
        p += 1 + len;
    }
}

/// Reads a (possibly compressed) name as lower-case text with a trailing dot.
fn read_name(m: &[u8], mut p: usize) -> Option<String> {
    let mut out = String::new();
    for _ in 0..128 {
        let len = *m.get(p)? as usize;
        if len == 0 {
            if out.is_empty() {
                out.push('.');
            }
            return Some(out.to_ascii_lowercase());
        }
        if len & 0xC0 == 0xC0 {
            p = ((len & 0x3F) << 8) | *m.get(p + 1)? as usize;
            continue;
        }
        out.push_str(std::str::from_utf8(m.get(p + 1..p + 1 + len)?).ok()?);
        out.push('.');
        p += 1 + len;
    }
    None
}

fn u16_at(m: &[u8], p: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*m.get(p)?, *m.get(p + 1)?]))
}

/// Finds a TSIG record: it must be the last record of the additional
/// section. `Ok(None)` when the message carries none.
pub fn find(m: &[u8]) -> Result<Option<TsigRecord>, TsigFailure> {
    let counts = |i: usize| u16_at(m, 4 + 2 * i).map(|v| v as usize);
    let (Some(qd), Some(an), Some(ns), Some(ar)) = (counts(0), counts(1), counts(2), counts(3)) else {
        return Err(TsigFailure::Malformed);
    };
    if ar == 0 {
        return Ok(None);
    }
    let mut p = 12;
    for _ in 0..qd {
        p = skip_name(m, p).ok_or(TsigFailure::Malformed)? + 4;
    }
    let total = an + ns + ar;
    for i in 0..total {
        let start = p;
        p = skip_name(m, p).ok_or(TsigFailure::Malformed)?;
        let rtype = u16_at(m, p).ok_or(TsigFailure::Malformed)?;
        let rdlen = u16_at(m, p + 8).ok_or(TsigFailure::Malformed)? as usize;
        let rdata = p + 10;
        p = rdata + rdlen;
        if p > m.len() {
            return Err(TsigFailure::Malformed);
        }
        if rtype != TYPE_TSIG {
            continue;
        }
        if i != total - 1 || p != m.len() {
            // RFC 8945 5.2: anywhere but last is a FORMERR.
            return Err(TsigFailure::Malformed);
        }
        let key_name = read_name(m, start).ok_or(TsigFailure::Malformed)?;
        let mut q = rdata;
        let algorithm = read_name(m, q).ok_or(TsigFailure::Malformed)?;
        q = skip_name(m, q).ok_or(TsigFailure::Malformed)?;
        let b = m.get(q..q + 10).ok_or(TsigFailure::Malformed)?;
        let time_signed = u64::from_be_bytes([0, 0, b[0], b[1], b[2], b[3], b[4], b[5]]);
        let fudge = u16::from_be_bytes([b[6], b[7]]);
        let mac_len = u16::from_be_bytes([b[8], b[9]]) as usize;
        q += 10;
        let mac = m.get(q..q + mac_len).ok_or(TsigFailure::Malformed)?.to_vec();
        q += mac_len;
        let original_id = u16_at(m, q).ok_or(TsigFailure::Malformed)?;
        let error = u16_at(m, q + 2).ok_or(TsigFailure::Malformed)?;
        let other_len = u16_at(m, q + 4).ok_or(TsigFailure::Malformed)? as usize;
        let other = m.get(q + 6..q + 6 + other_len).ok_or(TsigFailure::Malformed)?.to_vec();
        if q + 6 + other_len != p {
            return Err(TsigFailure::Malformed);
        }
        return Ok(Some(TsigRecord {
            key_name,
            algorithm,
            time_signed,
            fudge,
            mac,
            original_id,
            error,
            other,
            start,
        }));
    }
    Ok(None)
}

fn name_wire(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for l in name.trim_end_matches('.').split('.').filter(|l| !l.is_empty()) {
        out.push(l.len() as u8);
        out.extend_from_slice(l.to_ascii_lowercase().as_bytes());
    }
    out.push(0);
    out
}

/// The message as it was before the TSIG was added: the record cut off,
/// ARCOUNT one less, the original ID back.
pub(crate) fn unsigned(m: &[u8], t: &TsigRecord) -> Vec<u8> {
    let mut out = m[..t.start].to_vec();
    out[0..2].copy_from_slice(&t.original_id.to_be_bytes());
    let ar = u16::from_be_bytes([out[10], out[11]]).saturating_sub(1);
    out[10..12].copy_from_slice(&ar.to_be_bytes());
    out
}

/// The TSIG variables (RFC 8945 4.3.3); `timers_only` for later messages of
/// a transfer.
fn variables(key: &str, time: u64, fudge: u16, error: u16, other: &[u8], timers_only: bool) -> Vec<u8> {
    let mut v = Vec::new();
    if !timers_only {
        v.extend(name_wire(key));
        v.extend_from_slice(&CLASS_ANY.to_be_bytes());
        v.extend_from_slice(&0u32.to_be_bytes());
        v.extend(name_wire(ALGORITHM));
    }
    v.extend_from_slice(&time.to_be_bytes()[2..]);
    v.extend_from_slice(&fudge.to_be_bytes());
    if !timers_only {
        v.extend_from_slice(&error.to_be_bytes());
        v.extend_from_slice(&(other.len() as u16).to_be_bytes());
        v.extend_from_slice(other);
    }
    v
}

fn hmac(secret: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut h = HmacSha256::new_from_slice(secret).expect("HMAC takes any key length");
    for p in parts {
        h.update(p);
    }
    h.finalize().into_bytes().to_vec()
}

/// Verifies a signed request against the keys we know.
pub fn verify(m: &[u8], t: &TsigRecord, keys: &[TsigKey], now: u64) -> Result<Verified, TsigFailure> {
    let Some(key) = keys.iter().find(|k| k.name == t.key_name) else {
        return Err(TsigFailure::BadKey(Box::new(t.clone())));
    };
    if t.algorithm != ALGORITHM {
        return Err(TsigFailure::BadKey(Box::new(t.clone())));
    }
    let data = unsigned(m, t);
    let vars = variables(&t.key_name, t.time_signed, t.fudge, t.error, &t.other, false);
    let expected = hmac(&key.secret, &[&data, &vars]);
    // RFC 8945 5.2.2: a truncated MAC must keep at least half (and 10 bytes).
    if t.mac.len() < 16 || t.mac.len() > expected.len() || !bool::from(expected[..t.mac.len()].ct_eq(&t.mac)) {
        return Err(TsigFailure::BadSig(Box::new(t.clone())));
    }
    if now.abs_diff(t.time_signed) > t.fudge as u64 {
        return Err(TsigFailure::BadTime(Box::new((t.clone(), key.clone()))));
    }
    Ok(Verified {
        key: key.clone(),
        request_mac: t.mac.clone(),
    })
}

fn append(m: &mut Vec<u8>, key: &str, time: u64, mac: &[u8], original_id: u16, error: u16, other: &[u8]) {
    let mut rdata = name_wire(ALGORITHM);
    rdata.extend_from_slice(&time.to_be_bytes()[2..]);
    rdata.extend_from_slice(&FUDGE.to_be_bytes());
    rdata.extend_from_slice(&(mac.len() as u16).to_be_bytes());
    rdata.extend_from_slice(mac);
    rdata.extend_from_slice(&original_id.to_be_bytes());
    rdata.extend_from_slice(&error.to_be_bytes());
    rdata.extend_from_slice(&(other.len() as u16).to_be_bytes());
    rdata.extend_from_slice(other);
    m.extend(name_wire(key));
    m.extend_from_slice(&TYPE_TSIG.to_be_bytes());
    m.extend_from_slice(&CLASS_ANY.to_be_bytes());
    m.extend_from_slice(&0u32.to_be_bytes());
    m.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    m.extend(rdata);
    let ar = u16::from_be_bytes([m[10], m[11]]) + 1;
    m[10..12].copy_from_slice(&ar.to_be_bytes());
}

/// Signs a request (what a client, or our NOTIFY sender, does).
pub fn sign_request(mut m: Vec<u8>, key: &TsigKey, now: u64) -> (Vec<u8>, Vec<u8>) {
    let vars = variables(&key.name, now, FUDGE, 0, &[], false);
    let mac = hmac(&key.secret, &[&m, &vars]);
    let id = u16::from_be_bytes([m[0], m[1]]);
    append(&mut m, &key.name, now, &mac, id, 0, &[]);
    (m, mac)
}

/// Signs the first response to a verified request; returns the message
/// and its MAC (which the next message of a transfer chains on).
pub fn sign_response(mut m: Vec<u8>, v: &Verified, now: u64) -> (Vec<u8>, Vec<u8>) {
    let vars = variables(&v.key.name, now, FUDGE, 0, &[], false);
    let prior = (v.request_mac.len() as u16).to_be_bytes();
    let mac = hmac(&v.key.secret, &[&prior, &v.request_mac, &m, &vars]);
    let id = u16::from_be_bytes([m[0], m[1]]);
    append(&mut m, &v.key.name, now, &mac, id, 0, &[]);
    (m, mac)
}

/// Signs a later message of a multi-message response (RFC 8945 5.3.1).
pub fn sign_next(mut m: Vec<u8>, key: &TsigKey, prior_mac: &[u8], now: u64) -> (Vec<u8>, Vec<u8>) {
    let vars = variables(&key.name, now, FUDGE, 0, &[], true);
    let prior = (prior_mac.len() as u16).to_be_bytes();
    let mac = hmac(&key.secret, &[&prior, prior_mac, &m, &vars]);
    let id = u16::from_be_bytes([m[0], m[1]]);
    append(&mut m, &key.name, now, &mac, id, 0, &[]);
    (m, mac)
}

/// Verifies a signed response to a request we signed with `request_mac`.
pub fn verify_response(m: &[u8], key: &TsigKey, request_mac: &[u8]) -> bool {
    let Ok(Some(t)) = find(m) else { return false };
    if t.key_name != key.name || t.error != 0 {
        return false;
    }
    let data = unsigned(m, &t);
    let vars = variables(&t.key_name, t.time_signed, t.fudge, t.error, &t.other, false);
    let prior = (request_mac.len() as u16).to_be_bytes();
    let expected = hmac(&key.secret, &[&prior, request_mac, &data, &vars]);
    expected.ct_eq(&t.mac).into()
}

/// The NOTAUTH answer to a request whose TSIG failed: the header of the
/// request with QR and rcode 9, its question, and a TSIG carrying the error
/// (unsigned for BADKEY/BADSIG, signed for BADTIME, RFC 8945 5.2).
pub fn refusal(req: &[u8], failure: &TsigFailure, now: u64) -> Option<Vec<u8>> {
    let (t, key) = match failure {
        TsigFailure::Malformed => return None,
        TsigFailure::BadKey(t) | TsigFailure::BadSig(t) => (&**t, None),
        TsigFailure::BadTime(tk) => (&tk.0, Some(&tk.1)),
    };
    // Header and question only.
    let qd = u16_at(req, 4)? as usize;
    let mut p = 12;
    for _ in 0..qd {
        p = skip_name(req, p)? + 4;
    }
    let mut m = req.get(..p)?.to_vec();
    m[0..2].copy_from_slice(&t.original_id.to_be_bytes());
    m[2] = 0x80 | (req[2] & 0x79); // QR, opcode, RD
    m[3] = 9; // NOTAUTH
    m[6..12].fill(0);
    let error = match failure {
        TsigFailure::BadKey(_) => BADKEY,
        TsigFailure::BadSig(_) => BADSIG,
        _ => BADTIME,
    };
    match key {
        None => append(&mut m, &t.key_name, t.time_signed, &[], t.original_id, error, &[]),
        Some(k) => {
            // BADTIME carries our time in "other data" and is signed.
            let other = now.to_be_bytes()[2..].to_vec();
            let vars = variables(&k.name, t.time_signed, FUDGE, error, &other, false);
            let prior = (t.mac.len() as u16).to_be_bytes();
            let mac = hmac(&k.secret, &[&prior, &t.mac, &m, &vars]);
            append(&mut m, &k.name, t.time_signed, &mac, t.original_id, error, &other);
        }
    }
    Some(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> TsigKey {
        TsigKey::parse("hmac-sha256:xfr.key:c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0").unwrap()
    }

    fn query() -> Vec<u8> {
        // ID 0x1234, one question: peerdial.internal. SOA IN.
        let mut m = vec![0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        m.extend(name_wire("peerdial.internal."));
        m.extend_from_slice(&[0, 6, 0, 1]);
        m
    }

    #[test]
    fn keys_parse() {
        assert_eq!(key().name, "xfr.key.");
        assert_eq!(TsigKey::parse("k:c2VjcmV0").unwrap().secret, b"secret");
        assert!(TsigKey::parse("k:not base64!").is_err());
        assert!(TsigKey::parse("nokey").is_err());
    }

    #[test]
    fn signed_requests_verify_and_tampering_does_not() {
        let now = 1_700_000_000;
        let (signed, mac) = sign_request(query(), &key(), now);
        let t = find(&signed).unwrap().unwrap();
        assert_eq!(t.mac, mac);
        let v = verify(&signed, &t, &[key()], now + 10).unwrap();
        // The response chains on the request MAC, and the client checks it.
        let mut resp = query();
        resp[2] = 0x84;
        let (resp, _) = sign_response(resp, &v, now);
        assert!(verify_response(&resp, &key(), &mac));
        assert!(!verify_response(&resp, &key(), &[0; 32]));

        let mut bad = signed.clone();
        bad[13] ^= 1; // a byte of the question
        let t = find(&bad).unwrap().unwrap();
        assert!(matches!(verify(&bad, &t, &[key()], now), Err(TsigFailure::BadSig(_))));
        let other = TsigKey::parse("other.key:c2VjcmV0").unwrap();
        let t = find(&signed).unwrap().unwrap();
        assert!(matches!(verify(&signed, &t, &[other], now), Err(TsigFailure::BadKey(_))));
        assert!(matches!(verify(&signed, &t, &[key()], now + 1000), Err(TsigFailure::BadTime(..))));
        let refusal = refusal(&signed, &TsigFailure::BadSig(Box::new(t)), now).unwrap();
        assert_eq!(refusal[3] & 0x0f, 9);
        assert_eq!(find(&refusal).unwrap().unwrap().error, BADSIG);
    }

    #[test]
    fn unsigned_and_malformed_messages() {
        assert_eq!(find(&query()).unwrap(), None);
        let (mut signed, _) = sign_request(query(), &key(), 1);
        signed.truncate(signed.len() - 3);
        assert_eq!(find(&signed), Err(TsigFailure::Malformed));
        assert_eq!(find(&[0; 5]), Err(TsigFailure::Malformed));
    }
}
