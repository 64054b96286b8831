//! The call history: the last calls in and out, with when, how long, how
//! they ended and whether the caller's identity verified. Kept in the data
//! folder (`history.jsonl`, one JSON object a line, appended and synced as
//! each call ends), so it survives restarts; the oldest lines go once the
//! file holds twice [`KEEP`]. Shown by `history`, called again by `redial
//! [N]` (the key `g` redials the latest).
//!
//! What this is not: the region's call log of the mailbox (calls to an
//! offline phone), or a contact list.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Calls kept and shown at most.
pub const KEEP: usize = 100;
/// Lines `history` prints.
pub const SHOWN: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    In,
    Out,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub direction: Direction,
    /// The other side: a number as dialed back, or its SIP URI.
    pub peer: String,
    /// Unix seconds when the call started (rang or was dialed).
    pub at: u64,
    /// Talk time; None: not answered.
    pub seconds: Option<f64>,
    /// How it ended, as the phone said it ("hung up", "busy", "missed", …).
    pub outcome: String,
    /// Incoming: whether the caller's identity verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<bool>,
}

impl Entry {
    /// One line for the user; `n` is the number `redial N` takes.
    pub fn line(&self, n: usize) -> String {
        let dir = match self.direction {
            Direction::In => "from",
            Direction::Out => "to",
        };
        let talk = match self.seconds {
            Some(s) => format!("{s:.0} s"),
            None => "not answered".into(),
        };
        let badge = match self.verified {
            Some(true) => " (verified)",
            Some(false) => " (unverified)",
            None => "",
        };
        format!(
            "history {n}: {} {dir} {}{badge}, {talk}, {}",
            utc(self.at),
            peerdial_channels::text::clean(&self.peer),
            self.outcome
        )
    }
}

/// `2026-12-02 18:04` (UTC) from Unix seconds.
pub(crate) fn utc(unix: u64) -> String {
    // The RFC 3339 form presence uses, to the minute.
    let t = peerdial_presence::pidf::format_timestamp(unix);
    t.get(..16).unwrap_or(&t).replacen('T', " ", 1)
}

/// The history file and the calls in it, newest last.
#[derive(Debug)]
pub struct History {
    path: PathBuf,
    entries: Vec<Entry>,
    lines_in_file: usize,
}

impl History {
    /// Reads DIR/history.jsonl; a line that does not parse (a torn last
    /// write) is skipped, never fatal.
    pub fn open(dir: &Path) -> History {
        let path = dir.join("history.jsonl");
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let mut entries: Vec<Entry> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
        let lines_in_file = text.lines().count();
        if entries.len() > KEEP {
            entries.drain(..entries.len() - KEEP);
        }
        let mut h = History {
            path,
            entries,
            lines_in_file,
        };
        // A torn write would swallow the next line appended to it: write
        // the good lines anew first.
        if !text.is_empty() && (!text.ends_with('\n') || h.entries.len() < lines_in_file.min(KEEP)) {
            if let Err(e) = h.rewrite() {
                tracing::warn!("the call history could not be repaired: {e}");
            }
        }
        h
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The `n`th latest call (1: the latest).
    pub fn nth_latest(&self, n: usize) -> Option<&Entry> {
        self.entries.len().checked_sub(n).and_then(|i| self.entries.get(i))
    }

    /// Adds a finished call and writes it down before returning.
    pub fn add(&mut self, e: Entry) -> std::io::Result<()> {
        self.entries.push(e.clone());
        if self.entries.len() > KEEP {
            self.entries.remove(0);
        }
        if self.lines_in_file + 1 > 2 * KEEP {
            return self.rewrite();
        }
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&self.path)?;
        let mut line = serde_json::to_vec(&e).map_err(std::io::Error::other)?;
        line.push(b'\n');
        f.write_all(&line)?;
        f.sync_data()?;
        self.lines_in_file += 1;
        Ok(())
    }

    /// Writes the kept calls to a new file and renames it over the old.
    fn rewrite(&mut self) -> std::io::Result<()> {
        let tmp = self.path.with_extension("jsonl.tmp");
        let mut f = std::fs::File::create(&tmp)?;
        for e in &self.entries {
            let mut line = serde_json::to_vec(e).map_err(std::io::Error::other)?;
            line.push(b'\n');
            f.write_all(&line)?;
        }
        f.sync_all()?;
        std::fs::rename(&tmp, &self.path)?;
        self.lines_in_file = self.entries.len();
        Ok(())
    }

    /// The latest `n` calls as short lines for the display's pane, latest
    /// first: `1 13:01 → 886-02-12345678 42 s`.
    pub fn short_lines(&self, n: usize) -> Vec<String> {
        self.entries
            .iter()
            .rev()
            .take(n)
            .enumerate()
            .map(|(i, e)| {
                let arrow = match e.direction {
                    Direction::In => '←',
                    Direction::Out => '→',
                };
                let talk = e.seconds.map_or_else(|| e.outcome.clone(), |s| format!("{s:.0} s"));
                let time = utc(e.at);
                let hhmm = time.get(11..).unwrap_or_default();
                format!("{} {hhmm} {arrow} {} {talk}", i + 1, peerdial_channels::text::clean(&e.peer))
            })
            .collect()
    }

    /// The lines `history` prints, latest first.
    pub fn lines(&self) -> Vec<String> {
        self.entries
            .iter()
            .rev()
            .take(SHOWN)
            .enumerate()
            .map(|(i, e)| e.line(i + 1))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(i: u64) -> Entry {
        Entry {
            direction: if i.is_multiple_of(2) { Direction::In } else { Direction::Out },
            peer: format!("886-02-{:08}", i),
            at: 1_796_000_000 + i,
            seconds: (!i.is_multiple_of(3)).then_some(i as f64),
            outcome: "hung up".into(),
            verified: i.is_multiple_of(2).then_some(true),
        }
    }

    #[test]
    fn calls_are_kept_across_restarts_and_trimmed_to_the_latest() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = History::open(dir.path());
        assert!(h.entries().is_empty() && h.lines().is_empty());
        for i in 1..=250 {
            h.add(entry(i)).unwrap();
        }
        let h = History::open(dir.path());
        assert_eq!(h.entries().len(), KEEP);
        assert_eq!(h.nth_latest(1).unwrap().peer, "886-02-00000250");
        assert_eq!(h.nth_latest(KEEP).unwrap().peer, "886-02-00000151");
        assert!(h.nth_latest(KEEP + 1).is_none() && h.nth_latest(0).is_none());
        let lines = std::fs::read_to_string(dir.path().join("history.jsonl")).unwrap().lines().count();
        assert!(lines <= 2 * KEEP, "{lines} lines kept");
        assert_eq!(h.short_lines(2)[0], "1 00:57 ← 886-02-00000250 250 s");
        let shown = h.lines();
        assert_eq!(shown.len(), SHOWN);
        assert!(
            shown[0].starts_with("history 1: ") && shown[0].contains("886-02-00000250"),
            "{shown:?}"
        );
    }

    #[test]
    fn a_torn_line_is_skipped_and_lines_say_what_happened() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = History::open(dir.path());
        h.add(entry(2)).unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join("history.jsonl"))
            .unwrap()
            .write_all(b"{\"direction\":\"in\",\"pe")
            .unwrap();
        let mut h = History::open(dir.path());
        assert_eq!(h.entries().len(), 1);
        h.add(entry(3)).unwrap();
        assert_eq!(History::open(dir.path()).entries().len(), 2);
        assert_eq!(
            entry(2).line(1),
            "history 1: 2026-11-30 00:53 from 886-02-00000002 (verified), 2 s, hung up"
        );
        let mut odd = entry(3);
        odd.peer = "sip:\u{1b}]0;x\u{7}evil@h".into();
        assert_eq!(odd.line(2), "history 2: 2026-11-30 00:53 to sip:evil@h, not answered, hung up");
    }

    #[test]
    fn dates_are_utc_civil_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00");
        assert_eq!(utc(1_796_212_800 + 3_660), "2026-12-02 13:01");
    }
}
