//! The SIP `Identity` header field (RFC 8224 §4.1):
//!
//! ```text
//! Identity: <compact JWS>;info=<https://region/api/v1/identity/key>;alg=ES256
//! ```

use std::fmt;

use crate::jws::{ALG, MAX_TOKEN};
use crate::passport::check_url;
use crate::{IdentityError, Result};

/// Longest header value accepted (token, URL and parameters).
pub const MAX_HEADER: usize = 8192;

/// A parsed `Identity` header value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityHeader {
    /// The compact JWS (a PASSporT).
    pub token: String,
    /// `info`: where the signer's key can be fetched.
    pub info: String,
    /// `alg`, if given (always ES256 once parsed).
    pub alg: Option<String>,
    /// `ppt`, if given (peerdial sends none).
    pub ppt: Option<String>,
}

impl IdentityHeader {
    /// The header for a token signed by [`crate::Passport::sign`] with key URL `info`.
    pub fn new(token: impl Into<String>, info: impl Into<String>) -> IdentityHeader {
        IdentityHeader {
            token: token.into(),
            info: info.into(),
            alg: Some(ALG.into()),
            ppt: None,
        }
    }

    /// Parses a header value. Whitespace (and SIP line folding) around
    /// `;` and `=` is allowed, parameters come in any order and their names
    /// are case-insensitive; unknown parameters are ignored. Refused: a
    /// missing or non-http(s) `info`, a duplicated parameter, an `alg` other
    /// than ES256, characters outside base64url and `.` in the token, and
    /// anything over 8 KiB.
    pub fn parse(value: &str) -> Result<IdentityHeader> {
        let bad = |m: String| IdentityError::Header(m);
        if value.len() > MAX_HEADER {
            return Err(bad(format!("longer than {MAX_HEADER} bytes")));
        }
        let mut s = Scanner { rest: value };
        s.skip_ws();
        let token = s.take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if token.is_empty() {
            return Err(bad("no token before the parameters".into()));
        }
        if token.len() > MAX_TOKEN {
            return Err(bad(format!("token longer than {MAX_TOKEN} bytes")));
        }
        let (mut info, mut alg, mut ppt) = (None, None, None);
        loop {
            s.skip_ws();
            if s.rest.is_empty() {
                break;
            }
            if !s.eat(';') {
                let c = s.rest.chars().next().unwrap_or(' ');
                return Err(bad(format!("unexpected {c:?} after the token (expected ';')")));
            }
            s.skip_ws();
            let name =
                s.take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '!' | '%' | '*' | '+' | '`' | '\'' | '~'));
            if name.is_empty() {
                return Err(bad("empty parameter".into()));
            }
            s.skip_ws();
            let value = if s.eat('=') {
                s.skip_ws();
                Some(s.value().map_err(bad)?)
            } else {
                None
            };
            let slot = match name.to_ascii_lowercase().as_str() {
                "info" => &mut info,
                "alg" => &mut alg,
                "ppt" => &mut ppt,
                _ => continue, // ident-info-extension: ignored
            };
            let value = value.ok_or_else(|| bad(format!("parameter {name} needs a value")))?;
            if slot.replace(value).is_some() {
                return Err(bad(format!("parameter {name} appears twice")));
            }
        }
        let info = info.ok_or_else(|| bad("missing info=<URL>".into()))?;
        let info = info
            .strip_prefix('<')
            .and_then(|i| i.strip_suffix('>'))
            .ok_or_else(|| bad("info must be a URL in angle brackets".into()))?;
        check_url(info).map_err(|e| bad(format!("info: {e}")))?;
        if let Some(a) = &alg {
            if !a.eq_ignore_ascii_case(ALG) {
                return Err(IdentityError::Unsupported(format!("alg={a} (only ES256)")));
            }
        }
        Ok(IdentityHeader {
            token: token.to_owned(),
            info: info.to_owned(),
            alg: alg.map(str::to_owned),
            ppt: ppt.map(|p| p.trim_matches('"').to_owned()),
        })
    }

    /// Where the key is: the `info` parameter. A phone fetches it only if it
    /// is on the caller's own region (found through DNS).
    pub fn key_url(&self) -> &str {
        &self.info
    }
}

/// The key URL named by an `Identity` header value (`info`, which RFC 8224
/// requires to equal the PASSporT's `x5u`), for the phone to fetch.
pub fn key_url(value: &str) -> Result<String> {
    IdentityHeader::parse(value).map(|h| h.info)
}

impl fmt::Display for IdentityHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{};info=<{}>", self.token, self.info)?;
        if let Some(a) = &self.alg {
            write!(f, ";alg={a}")?;
        }
        if let Some(p) = &self.ppt {
            write!(f, ";ppt={p}")?;
        }
        Ok(())
    }
}

struct Scanner<'a> {
    rest: &'a str,
}

impl<'a> Scanner<'a> {
    /// LWS: spaces, tabs and line folds (CRLF then whitespace).
    fn skip_ws(&mut self) {
        self.rest = self.rest.trim_start_matches([' ', '\t', '\r', '\n']);
    }

    fn eat(&mut self, c: char) -> bool {
        match self.rest.strip_prefix(c) {
            Some(r) => {
                self.rest = r;
                true
            }
            None => false,
        }
    }

    fn take_while(&mut self, f: impl Fn(char) -> bool) -> &'a str {
        let end = self.rest.find(|c: char| !f(c)).unwrap_or(self.rest.len());
        let (taken, rest) = self.rest.split_at(end);
        self.rest = rest;
        taken
    }

    /// A parameter value: `<…>` (kept with its brackets), a quoted string
    /// (kept with its quotes), or a token.
    fn value(&mut self) -> std::result::Result<&'a str, String> {
        let start = self.rest;
        let len = if start.starts_with('<') {
            start.find('>').map(|i| i + 1).ok_or("'<' without '>'")?
        } else if let Some(body) = start.strip_prefix('"') {
            body.find('"').map(|i| i + 2).ok_or("unterminated quoted string")?
        } else {
            start
                .find(|c: char| c.is_ascii_whitespace() || c == ';' || c == ',' || c == '<' || c == '"')
                .unwrap_or(start.len())
        };
        if len == 0 {
            return Err("empty parameter value".into());
        }
        let (v, rest) = start.split_at(len);
        self.rest = rest;
        Ok(v)
    }
}
