//! The `message-summary` body of RFC 3842 (the MWI event package): an
//! encoder, and a strict parser for what phones and fuzzers send back.
//!
//! ```text
//! Messages-Waiting: yes
//! Message-Account: sip:8860212345678@127.0.0.1:5060
//! Voice-Message: 2/1 (0/0)
//! ```
//!
//! The parser takes the RFC's grammar and nothing looser: the status line
//! first, at most one account line, each RFC 3458 class at most once,
//! counts that fit a `u32`, and then, after a blank line, optional
//! `Name: value` headers (which it skips). It is not a SIP parser: the
//! NOTIFY around the body is `peerdial-sip`'s.

use crate::MailboxError;

/// The most bytes a body may have: a real one is a few hundred.
pub const MAX_BODY: usize = 8192;

/// RFC 3458's message-context classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Class {
    Voice,
    Fax,
    Pager,
    Multimedia,
    Text,
    None,
}

impl Class {
    const ALL: [Class; 6] = [Class::Voice, Class::Fax, Class::Pager, Class::Multimedia, Class::Text, Class::None];

    /// The header name as RFC 3842 writes it.
    pub fn header(self) -> &'static str {
        match self {
            Class::Voice => "Voice-Message",
            Class::Fax => "Fax-Message",
            Class::Pager => "Pager-Message",
            Class::Multimedia => "Multimedia-Message",
            Class::Text => "Text-Message",
            Class::None => "None",
        }
    }
}

/// new/old messages, and of those the urgent ones.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub new: u32,
    pub old: u32,
    pub urgent_new: u32,
    pub urgent_old: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub waiting: bool,
    pub account: Option<String>,
    pub counts: Vec<(Class, Counts)>,
}

impl Summary {
    /// The body, CRLF line ends (the content type is
    /// `application/simple-message-summary`).
    pub fn encode(&self) -> String {
        let mut out = format!("Messages-Waiting: {}\r\n", if self.waiting { "yes" } else { "no" });
        if let Some(a) = &self.account {
            out.push_str(&format!("Message-Account: {a}\r\n"));
        }
        for (class, c) in &self.counts {
            out.push_str(&format!(
                "{}: {}/{} ({}/{})\r\n",
                class.header(),
                c.new,
                c.old,
                c.urgent_new,
                c.urgent_old
            ));
        }
        out
    }

    pub fn parse(body: &[u8]) -> Result<Summary, MailboxError> {
        let bad = |s: &str| MailboxError::BadSummary(s.to_string());
        if body.len() > MAX_BODY {
            return Err(bad("body too long"));
        }
        let text = std::str::from_utf8(body).map_err(|_| bad("not UTF-8"))?;
        let mut lines = text.split("\r\n");
        let (name, value) = header(lines.next().unwrap_or(""))?;
        if !name.eq_ignore_ascii_case("Messages-Waiting") {
            return Err(bad("the first line must be Messages-Waiting"));
        }
        let waiting = match value.to_ascii_lowercase().as_str() {
            "yes" => true,
            "no" => false,
            _ => return Err(bad("Messages-Waiting must be yes or no")),
        };
        let mut s = Summary {
            waiting,
            account: None,
            counts: Vec::new(),
        };
        let mut ended = false;
        for line in lines.by_ref() {
            if line.is_empty() {
                ended = true;
                break;
            }
            let (name, value) = header(line)?;
            if name.eq_ignore_ascii_case("Message-Account") {
                if s.account.is_some() || !s.counts.is_empty() {
                    return Err(bad("Message-Account must come once, before the counts"));
                }
                if !value.contains(':') || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
                    return Err(bad("Message-Account is not a URI"));
                }
                s.account = Some(value.to_string());
                continue;
            }
            let class = Class::ALL
                .into_iter()
                .find(|c| c.header().eq_ignore_ascii_case(name))
                .ok_or_else(|| bad("unknown message class"))?;
            if s.counts.iter().any(|(c, _)| *c == class) {
                return Err(bad("a message class is repeated"));
            }
            s.counts.push((class, counts(value)?));
        }
        if !ended {
            // The body must end with CRLF: the last split piece is empty.
            return Err(bad("the body must end with CRLF"));
        }
        // Optional message headers (RFC 3842 5.2): `Name: value` lines.
        let rest: Vec<&str> = lines.collect();
        for (i, line) in rest.iter().enumerate() {
            if line.is_empty() {
                if i + 1 != rest.len() {
                    return Err(bad("blank line inside the message headers"));
                }
                continue;
            }
            header(line)?;
        }
        Ok(s)
    }
}

fn header(line: &str) -> Result<(&str, &str), MailboxError> {
    let bad = |s: &str| MailboxError::BadSummary(s.to_string());
    let (name, value) = line.split_once(':').ok_or_else(|| bad("a line has no colon"))?;
    let name = name.trim_end_matches([' ', '\t']);
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)) {
        return Err(bad("a header name is not a token"));
    }
    let value = value.trim_matches([' ', '\t']);
    if value.chars().any(|c| c.is_control()) {
        return Err(bad("control character in a value"));
    }
    Ok((name, value))
}

/// `new/old` with an optional ` (urgent-new/urgent-old)`.
fn counts(v: &str) -> Result<Counts, MailboxError> {
    let bad = || MailboxError::BadSummary(format!("bad counts {:?}", v.chars().take(40).collect::<String>()));
    let num = |s: &str| -> Result<u32, MailboxError> {
        let s = s.trim_matches([' ', '\t']);
        if s.is_empty() || s.len() > 10 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        s.parse().map_err(|_| bad())
    };
    let pair = |s: &str| -> Result<(u32, u32), MailboxError> {
        let (a, b) = s.split_once('/').ok_or_else(bad)?;
        Ok((num(a)?, num(b)?))
    };
    let (main, urgent) = match v.split_once('(') {
        Some((m, u)) => (m, Some(u.strip_suffix(')').ok_or_else(bad)?)),
        None => (v, None),
    };
    let (new, old) = pair(main)?;
    let (urgent_new, urgent_old) = match urgent {
        Some(u) => pair(u)?,
        None => (0, 0),
    };
    if urgent_new > new || urgent_old > old {
        return Err(bad());
    }
    Ok(Counts {
        new,
        old,
        urgent_new,
        urgent_old,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_the_rfc_example_and_what_baresip_shows() {
        let body = b"Messages-Waiting: yes\r\nMessage-Account: sip:alice@vmail.example.com\r\nVoice-Message: 2/8 (0/2)\r\n\r\nTo: <alice@atlanta.example.com>\r\nSubject: carol is here\r\n";
        let s = Summary::parse(body).unwrap();
        assert!(s.waiting);
        assert_eq!(s.account.as_deref(), Some("sip:alice@vmail.example.com"));
        assert_eq!(
            s.counts,
            vec![(
                Class::Voice,
                Counts {
                    new: 2,
                    old: 8,
                    urgent_new: 0,
                    urgent_old: 2
                }
            )]
        );
        assert!(!Summary::parse(b"messages-waiting:no\r\n").unwrap().waiting);
    }

    #[test]
    fn rejects_what_the_grammar_does_not_allow() {
        for body in [
            &b""[..],
            b"Voice-Message: 1/0\r\n",
            b"Messages-Waiting: maybe\r\n",
            b"Messages-Waiting: yes",
            b"Messages-Waiting: yes\r\nVoice-Message: 1/0\r\nVoice-Message: 1/0\r\n",
            b"Messages-Waiting: yes\r\nVoice-Message: 1\r\n",
            b"Messages-Waiting: yes\r\nVoice-Message: 1/99999999999\r\n",
            b"Messages-Waiting: yes\r\nVoice-Message: 1/0 (2/0)\r\n",
            b"Messages-Waiting: yes\r\nVoice-Message: -1/0\r\n",
            b"Messages-Waiting: yes\r\nBogus-Message: 1/0\r\n",
            b"Messages-Waiting: yes\r\nVoice-Message: 1/0\r\nMessage-Account: sip:a@b\r\n",
            b"Messages-Waiting: yes\r\nMessage-Account: not a uri\r\n",
            b"Messages-Waiting: yes\r\n\r\nno colon here\r\n",
            b"Messages-Waiting: \xff\r\n",
        ] {
            assert!(Summary::parse(body).is_err(), "{:?}", String::from_utf8_lossy(body));
        }
    }

    fn counts_strategy() -> impl Strategy<Value = Counts> {
        (0u32..1000, 0u32..1000).prop_flat_map(|(new, old)| {
            (0..=new, 0..=old).prop_map(move |(urgent_new, urgent_old)| Counts {
                new,
                old,
                urgent_new,
                urgent_old,
            })
        })
    }

    proptest! {
        #[test]
        fn what_we_encode_parses_back(waiting: bool, account in proptest::option::of("sip:[0-9]{13}@127\\.0\\.0\\.1:[0-9]{4}"),
                                      classes in proptest::sample::subsequence(Class::ALL.to_vec(), 0..6),
                                      counts in proptest::collection::vec(counts_strategy(), 6)) {
            let s = Summary { waiting, account, counts: classes.into_iter().zip(counts).collect() };
            prop_assert_eq!(Summary::parse(s.encode().as_bytes()).unwrap(), s);
        }

        #[test]
        fn never_panics(body in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Summary::parse(&body);
        }
    }
}
