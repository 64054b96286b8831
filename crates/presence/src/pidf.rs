//! PIDF (RFC 3863) with RPID activities (RFC 4480): encoding a number's
//! [`Presence`] for NOTIFY and PUBLISH bodies, and decoding the documents
//! real phones send.
//!
//! The encoder writes what the simplest watchers look for with plain
//! string matching (baresip searches for `<basic>open</basic>` and
//! `<rpid:busy/>`): the PIDF namespace as the default one, RPID under the
//! `rpid` prefix. "In a meeting" is sent as both `meeting` and `busy`, so a
//! watcher that knows only `busy` still shows the user as busy.
//!
//! The decoder accepts any prefixes (it matches local names), several
//! tuples (Kamailio-style aggregated documents: any open tuple means open),
//! and activities in a `person` or a tuple.

use crate::state::{Presence, State};
use crate::xml::{self, escape, Element};
use crate::PresenceError;

/// The media type of PIDF bodies.
pub const CONTENT_TYPE: &str = "application/pidf+xml";
/// Notes longer than this (in characters) are cut.
pub const MAX_NOTE: usize = 256;

/// What a PIDF document says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// The `entity` attribute (`sip:8860212345678@…`), if present.
    pub entity: Option<String>,
    pub state: State,
    pub note: Option<String>,
    /// The first tuple's `<timestamp>`, as unix seconds.
    pub timestamp: Option<u64>,
}

/// Encodes a presence document for `entity` (a `sip:` or `pres:` URI).
pub fn encode(entity: &str, p: &Presence) -> Vec<u8> {
    let basic = if p.state == State::Offline { "closed" } else { "open" };
    let activities: &[&str] = match p.state {
        State::Online | State::Offline => &[],
        State::Meeting => &["meeting", "busy"],
        State::Dnd => &["busy"],
        State::OnThePhone => &["on-the-phone"],
    };
    let mut s = String::with_capacity(600);
    s.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n");
    s.push_str("<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" xmlns:dm=\"urn:ietf:params:xml:ns:pidf:data-model\" xmlns:rpid=\"urn:ietf:params:xml:ns:pidf:rpid\" entity=\"");
    s.push_str(&escape(entity));
    s.push_str("\">\r\n<tuple id=\"t1\"><status><basic>");
    s.push_str(basic);
    s.push_str("</basic></status><timestamp>");
    s.push_str(&format_timestamp(p.since));
    s.push_str("</timestamp></tuple>\r\n");
    if let Some(note) = &p.note {
        s.push_str("<note>");
        s.push_str(&escape(note));
        s.push_str("</note>\r\n");
    }
    s.push_str("<dm:person id=\"p1\">");
    if activities.is_empty() {
        s.push_str("<rpid:activities/>");
    } else {
        s.push_str("<rpid:activities>");
        for a in activities {
            s.push_str("<rpid:");
            s.push_str(a);
            s.push_str("/>");
        }
        s.push_str("</rpid:activities>");
    }
    s.push_str("</dm:person>\r\n</presence>\r\n");
    s.into_bytes()
}

/// What an RPID activity means for the shown state, strongest first.
fn activity_state(name: &str) -> Option<(u8, State)> {
    Some(match name.to_ascii_lowercase().as_str() {
        "on-the-phone" => (0, State::OnThePhone),
        "meeting" | "appointment" | "presentation" | "performance" => (1, State::Meeting),
        "busy" | "dnd" | "do-not-disturb" => (2, State::Dnd),
        // Someone away is not taking calls here: as if closed.
        "away" | "vacation" | "sleeping" | "permanent-absence" => (3, State::Offline),
        _ => return None,
    })
}

/// Decodes a PIDF document into a state. `open` with no known activity is
/// online; `closed` tuples alone are offline (for a PUBLISH: the user chose
/// to appear offline); a document with neither a tuple status nor an
/// activity is offline too.
pub fn decode(body: &[u8]) -> Result<Document, PresenceError> {
    let root = xml::parse(body)?;
    if root.local() != "presence" {
        return Err(PresenceError::Pidf(format!("root element is <{}>, not <presence>", root.name)));
    }
    let (mut open, mut closed) = (false, false);
    let mut timestamp = None;
    let mut note = root.child("note").map(Element::text);
    for tuple in root.elements().filter(|e| e.local() == "tuple") {
        let status = tuple
            .child("status")
            .ok_or_else(|| PresenceError::Pidf("tuple without <status>".into()))?;
        if let Some(basic) = status.child("basic") {
            match basic.text().as_str() {
                "open" => open = true,
                "closed" => closed = true,
                // Not in RFC 3863, but baresip's first PUBLISH says it
                // before its user picks a status. A device that publishes
                // is up; what it states is only "nothing more".
                "unknown" => open = true,
                other => return Err(PresenceError::Pidf(format!("invalid <basic> {:.20}", other))),
            }
        }
        if timestamp.is_none() {
            timestamp = tuple.child("timestamp").and_then(|t| parse_timestamp(&t.text()));
        }
        if note.is_none() {
            note = tuple.child("note").map(Element::text);
        }
    }
    let mut best: Option<(u8, State)> = None;
    let mut seen_activity = false;
    visit(&root, &mut |e| {
        if e.local() != "activities" {
            return;
        }
        for a in e.elements() {
            seen_activity = true;
            // Old "extended status" documents: <es:activity>busy</es:activity>.
            let name = if a.local() == "activity" { a.text() } else { a.local().to_string() };
            if let Some(cand) = activity_state(&name) {
                if best.is_none_or(|b| cand.0 < b.0) {
                    best = Some(cand);
                }
            }
        }
    });
    if note.is_none() {
        visit(&root, &mut |e| {
            if note.is_none() && e.local() == "note" {
                note = Some(e.text());
            }
        });
    }
    let state = if closed && !open {
        State::Offline
    } else if let Some((_, s)) = best {
        s
    } else if open || seen_activity {
        State::Online
    } else {
        State::Offline
    };
    let note = note.map(|n| clean_note(&n)).filter(|n| !n.is_empty());
    Ok(Document {
        entity: root.attr("entity").map(str::to_string),
        state,
        note,
        timestamp,
    })
}

/// A note is shown on displays and terminals: line breaks and tabs become
/// spaces, other control characters (escape sequences!) are dropped, and
/// it is cut to [`MAX_NOTE`] characters.
fn clean_note(n: &str) -> String {
    let spaced: String = n
        .chars()
        .filter_map(|c| match c {
            '\t' | '\n' | '\r' => Some(' '),
            c if c.is_control() => None,
            c => Some(c),
        })
        .collect();
    spaced.trim().chars().take(MAX_NOTE).collect::<String>().trim_end().to_string()
}

fn visit(e: &Element, f: &mut impl FnMut(&Element)) {
    f(e);
    for c in e.elements() {
        visit(c, f);
    }
}

/// Unix seconds as an RFC 3339 UTC timestamp.
pub fn format_timestamp(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", secs / 3600, secs % 3600 / 60, secs % 60)
}

/// Parses an RFC 3339 timestamp (`2024-01-02T03:04:05.6+01:00`) into unix
/// seconds; None when malformed or before 1970.
pub fn parse_timestamp(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes().all(|c| c.is_ascii_digit()).then(|| t.parse().ok())?
    };
    let (y, mo, d, h, mi, se) = (num(0..4)?, num(5..7)?, num(8..10)?, num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.find(|c: char| !c.is_ascii_digit()).unwrap_or(frac.len());
        rest = &frac[n..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (oh, om) = rest[1..].split_once(':')?;
            if oh.len() != 2 || om.len() != 2 {
                return None;
            }
            sign * (oh.parse::<i64>().ok()? * 3600 + om.parse::<i64>().ok()? * 60)
        }
    };
    // days_from_civil.
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if mo > 2 { mo - 3 } else { mo + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let t = days * 86_400 + h * 3600 + mi * 60 + se - offset;
    u64::try_from(t).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENTITY: &str = "sip:8860212345678@2.0.6.8.8.peerdial.internal";

    #[test]
    fn every_state_round_trips_with_note_and_since() {
        for state in State::ALL {
            let p = Presence {
                state,
                since: 1_700_000_123,
                note: Some("back at <3> & \"soon\"".into()),
            };
            let body = encode(ENTITY, &p);
            let d = decode(&body).unwrap();
            assert_eq!(
                (d.state, d.note.as_deref(), d.timestamp, d.entity.as_deref()),
                (state, p.note.as_deref(), Some(p.since), Some(ENTITY))
            );
        }
    }

    #[test]
    fn simple_watchers_find_what_they_match_on() {
        let p = |state| {
            String::from_utf8(encode(
                ENTITY,
                &Presence {
                    state,
                    since: 0,
                    note: None,
                },
            ))
            .unwrap()
        };
        assert!(p(State::Online).contains("<basic>open</basic>"));
        assert!(p(State::Offline).contains("<basic>closed</basic>"));
        assert!(p(State::Dnd).contains("<rpid:busy/>"));
        assert!(p(State::Meeting).contains("<rpid:busy/>") && p(State::Meeting).contains("<rpid:meeting/>"));
        assert!(p(State::OnThePhone).contains("<rpid:on-the-phone/>"));
    }

    #[test]
    fn decodes_what_baresip_publishes() {
        let doc = |basic: &str| {
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\r\n\
<presence xmlns=\"urn:ietf:params:xml:ns:pidf\"\r\n    xmlns:dm=\"urn:ietf:params:xml:ns:pidf:data-model\"\r\n    xmlns:rpid=\"urn:ietf:params:xml:ns:pidf:rpid\"\r\n    entity=\"sip:1@x\">\r\n\
  <dm:person id=\"p4159\"><rpid:activities/></dm:person>\r\n\
  <tuple id=\"t4109\">\r\n    <status>\r\n      <basic>{basic}</basic>\r\n    </status>\r\n    <contact>sip:1@x</contact>\r\n  </tuple>\r\n</presence>\r\n"
            )
        };
        assert_eq!(decode(doc("open").as_bytes()).unwrap().state, State::Online);
        assert_eq!(decode(doc("closed").as_bytes()).unwrap().state, State::Offline);
        assert_eq!(decode(doc("unknown").as_bytes()).unwrap().state, State::Online);
    }

    #[test]
    fn decodes_activities_with_any_prefix_and_several_tuples() {
        let with = |acts: &str| {
            format!(
                "<presence xmlns='urn:ietf:params:xml:ns:pidf' xmlns:p='urn:ietf:params:xml:ns:pidf:data-model' xmlns:r='urn:ietf:params:xml:ns:pidf:rpid' entity='pres:a@b'>\
<tuple id='a'><status><basic>closed</basic></status></tuple>\
<tuple id='b'><status><basic>open</basic></status><note>tuple note</note></tuple>\
<p:person id='x'><r:activities>{acts}</r:activities></p:person></presence>"
            )
        };
        let st = |acts| decode(with(acts).as_bytes()).unwrap().state;
        assert_eq!(st(""), State::Online);
        assert_eq!(st("<r:busy/>"), State::Dnd);
        assert_eq!(st("<r:away/>"), State::Offline);
        assert_eq!(st("<r:appointment/>"), State::Meeting);
        assert_eq!(st("<r:busy/><r:meeting/>"), State::Meeting);
        assert_eq!(st("<r:meeting/><r:on-the-phone/>"), State::OnThePhone);
        assert_eq!(st("<r:other>lunch</r:other>"), State::Online);
        assert_eq!(decode(with("").as_bytes()).unwrap().note.as_deref(), Some("tuple note"));
        // Old extended-status form, and activities with no tuple at all.
        let es = "<presence entity='sip:a@b'><tuple id='1'><status><basic>open</basic>\
<es:activities xmlns:es='urn:ietf:params:xml:ns:pidf:status:rpid-status'><es:activity>busy</es:activity></es:activities></status></tuple></presence>";
        assert_eq!(decode(es.as_bytes()).unwrap().state, State::Dnd);
        let bare = "<presence entity='sip:a@b'><person><activities><on-the-phone/></activities></person></presence>";
        assert_eq!(decode(bare.as_bytes()).unwrap().state, State::OnThePhone);
        assert_eq!(decode(b"<presence entity='sip:a@b'/>").unwrap().state, State::Offline);
    }

    #[test]
    fn malformed_documents_are_errors() {
        for bad in [
            &b"not xml"[..],
            b"<presence><tuple id='1'><status><basic>open</basic></status></presence>",
            b"<notpresence/>",
            b"<presence><tuple id='1'/></presence>",
            b"<presence><tuple id='1'><status><basic>maybe</basic></status></tuple></presence>",
        ] {
            assert!(decode(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn notes_lose_control_characters() {
        let doc = "<presence><note> a&#27;[31m\tb\r\nc&#x9b; </note></presence>";
        assert_eq!(decode(doc.as_bytes()).unwrap().note.as_deref(), Some("a[31m b  c"));
        assert_eq!(decode(b"<presence><note>&#1;</note></presence>").unwrap().note, None);
    }

    proptest::proptest! {
        /// Nothing panics, and what decodes survives our own encoding.
        #[test]
        fn decode_never_panics_and_round_trips(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
            if let Ok(d) = decode(&data) {
                let p = Presence { state: d.state, since: d.timestamp.unwrap_or(0), note: d.note.clone() };
                let again = decode(&encode("sip:x@y", &p)).unwrap();
                proptest::prop_assert_eq!((again.state, again.note), (d.state, d.note));
            }
        }

        #[test]
        fn any_note_round_trips_cleaned(note in "\\PC*", state in 0usize..5) {
            let p = Presence { state: State::ALL[state], since: 5, note: Some(note.clone()) };
            let d = decode(&encode("sip:x@y", &p)).unwrap();
            let want = Some(clean_note(&note)).filter(|n| !n.is_empty());
            proptest::prop_assert_eq!((d.state, d.note), (p.state, want));
        }
    }

    #[test]
    fn long_notes_are_cut() {
        let doc = format!("<presence><note>{}</note></presence>", "é".repeat(1000));
        assert_eq!(decode(doc.as_bytes()).unwrap().note.unwrap().chars().count(), MAX_NOTE);
    }

    #[test]
    fn timestamps() {
        assert_eq!(format_timestamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_timestamp(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(parse_timestamp("2000-02-29T00:00:00Z"), Some(951_782_400));
        assert_eq!(parse_timestamp("2000-02-29T01:00:00.25+01:00"), Some(951_782_400));
        assert_eq!(parse_timestamp("1969-12-31T23:59:59Z"), None);
        assert_eq!(parse_timestamp("2000-13-01T00:00:00Z"), None);
        assert_eq!(parse_timestamp("garbage"), None);
        for t in [0, 1_700_000_000, 4_102_444_800] {
            assert_eq!(parse_timestamp(&format_timestamp(t)), Some(t));
        }
    }
}
