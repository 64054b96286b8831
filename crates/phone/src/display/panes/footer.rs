//! The footer: our own presence status and the last message on one line,
//! the key legend (only keys whose commands the phone knows) on the next.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget};

use super::call::state_colour;
use crate::display::{legend, Snapshot};

/// Our own status: what the region confirmed, else what registration implies.
pub fn own_status(s: &Snapshot) -> &str {
    match (&s.status, s.registered) {
        (Some(st), _) => st,
        (None, Some(true)) => "online",
        (None, _) => "offline",
    }
}

pub fn render(s: &Snapshot, last: Option<&str>, area: Rect, buf: &mut Buffer) {
    let status = own_status(s);
    let first = Line::from(vec![
        Span::raw(" you: "),
        Span::styled(status.to_string(), Style::new().fg(state_colour(status))),
        Span::raw(last.map(|l| format!("  ·  {l}")).unwrap_or_default()),
    ]);
    let keys = legend()
        .iter()
        .map(|(k, what)| format!("{k} {what}"))
        .collect::<Vec<_>>()
        .join("  ");
    let second = Line::styled(format!(" {keys}"), Style::new().add_modifier(Modifier::DIM));
    Paragraph::new(vec![first, second]).render(area, buf);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::display::panes::testing;
    use crate::display::UiEvent;

    #[test]
    fn footer_shows_status_last_message_and_legend() {
        let mut s = Snapshot {
            registered: Some(true),
            ..Snapshot::default()
        };
        let shown = |s: &Snapshot, last| testing::render(200, 2, |area, buf| render(s, last, area, buf));
        let text = shown(&s, None);
        assert!(text.contains("you: online"), "{text}");
        for k in [
            "0-9 dial",
            "Enter call",
            "a answer",
            "h hang up",
            "o/r hold/resume",
            "x/z mute/unmute",
            "m meeting",
            "d dnd",
            "v available",
            "q quit",
        ] {
            assert!(text.contains(k), "{k:?} missing from the legend: {text}");
        }
        s.apply(&UiEvent::Status { state: "meeting".into() });
        let text = shown(&s, Some("status meeting"));
        assert!(text.contains("you: meeting  ·  status meeting"), "{text}");
        s.status = None;
        s.registered = Some(false);
        assert!(shown(&s, None).contains("you: offline"));
    }
}
