//! Server-Sent Events (the WHATWG event-stream format), read line by
//! line: a client's side, for a stream it reads itself. Fields other than
//! `event` and `data` (`id`, `retry`, comments) are skipped; an event's
//! data is capped at [`MAX_DATA`] bytes (the rest is dropped).
//!
//! Not here: the connection, or serving events (axum does).

/// The most data one event keeps.
pub const MAX_DATA: usize = 16 * 1024;

/// Server-Sent Events, line by line: `event:` and `data:` fields until a
/// blank line ends the event (comments and other fields are skipped).
#[derive(Default, Debug)]
pub struct Lines {
    kind: String,
    /// `None` until the event's first `data` line (which may be empty).
    data: Option<String>,
}

impl Lines {
    /// Takes one line (no line ending); the event `(kind, data)` a blank
    /// line completes. An event with no data is no event (as a browser
    /// does); one without a kind is a `message`.
    pub fn line(&mut self, line: &str) -> Option<(String, String)> {
        if line.is_empty() {
            let ev = std::mem::take(self);
            let kind = if ev.kind.is_empty() { "message".into() } else { ev.kind };
            return ev.data.map(|d| (kind, d));
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => self.kind = value.chars().take(64).collect(),
            "data" => match &mut self.data {
                None => self.data = Some(capped(value, MAX_DATA).to_string()),
                Some(d) if d.len() + 1 + value.len() <= MAX_DATA => {
                    d.push('\n');
                    d.push_str(value);
                }
                Some(_) => {}
            },
            _ => {}
        }
        None
    }
}

/// The longest prefix of `v` within `room` bytes, on a character boundary.
fn capped(v: &str, room: usize) -> &str {
    let mut end = v.len().min(room);
    while !v.is_char_boundary(end) {
        end -= 1;
    }
    &v[..end]
}

#[cfg(test)]
mod tests {
    use super::Lines;

    #[test]
    fn events_are_read_line_by_line_and_comments_skipped() {
        let mut s = Lines::default();
        let mut got = Vec::new();
        for l in [
            ": keep-alive",
            "",
            "event: ready",
            "data: 886-02-1",
            "",
            "event:wake",
            "data:{\"a\":1}",
            "data: 2",
            "",
            "event: nothing",
            "retry: 5",
            "",
            "data",
            "data: x",
            "",
        ] {
            got.extend(s.line(l));
        }
        assert_eq!(
            got,
            vec![
                ("ready".to_string(), "886-02-1".to_string()),
                ("wake".to_string(), "{\"a\":1}\n2".to_string()),
                ("message".to_string(), "\nx".to_string()),
            ]
        );
    }
}
