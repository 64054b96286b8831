//! The call pane: who we are (own number, registration, SIP address), what
//! is being dialed (the number typed and, as soon as it is a whole number,
//! the callee's presence), and the call (peer, state, timer, and for an
//! incoming call whether the caller's identity verified). The peer's
//! picture is the picture pane's.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Widget};

use crate::display::{CallView, Snapshot};

/// The badge for an incoming call's caller: text and colour (none for an
/// outgoing call, whose callee is not checked).
pub fn badge(c: &CallView) -> Option<(&'static str, Color)> {
    match (c.incoming, c.verified) {
        (true, Some(true)) => Some(("✔ verified", Color::Green)),
        (true, Some(false)) => Some(("✘ unverified", Color::Red)),
        (true, None) => Some(("checking caller…", Color::Yellow)),
        (false, _) => None,
    }
}

/// A presence state's colour, shared with the contacts pane.
pub fn state_colour(state: &str) -> Color {
    match state {
        "online" => Color::Green,
        "meeting" => Color::Yellow,
        "dnd" => Color::Red,
        "on-the-phone" => Color::Magenta,
        _ => Color::DarkGray,
    }
}

fn label(s: &str) -> Span<'static> {
    Span::styled(format!(" {s:<8}"), Style::new().add_modifier(Modifier::DIM))
}

pub fn render(s: &Snapshot, area: Rect, buf: &mut Buffer) {
    let reg = match s.registered {
        None => ("registering…", Color::Yellow),
        Some(true) => ("registered", Color::Green),
        Some(false) => ("not registered", Color::Red),
    };
    let mut lines = vec![
        Line::from(vec![
            label("Number"),
            Span::styled(s.number.clone(), Style::new().add_modifier(Modifier::BOLD)),
        ]),
        Line::from(vec![
            label("Region"),
            Span::styled(reg.0, Style::new().fg(reg.1)),
            Span::raw(format!("  (SIP {})", s.sip)),
        ]),
        Line::default(),
    ];
    let mut dial = vec![label("Dial"), Span::raw(format!("{}_", s.input))];
    // A callee's presence matters before the call is up; once it is,
    // the peer is on the phone anyway.
    let before_call = s.call.as_ref().is_none_or(|c| !c.incoming && c.state != "talking");
    if let Some(p) = s.presence.as_ref().filter(|_| before_call) {
        dial.push(Span::raw(format!("   {} is ", p.number)));
        dial.push(Span::styled(p.state.clone(), Style::new().fg(state_colour(&p.state))));
    }
    lines.push(Line::from(dial));
    match &s.call {
        Some(c) => {
            let secs = c.since.elapsed().as_secs();
            let who = if c.incoming { "from" } else { "to" };
            lines.push(Line::from(vec![
                label("Call"),
                Span::styled(c.state.clone(), Style::new().add_modifier(Modifier::BOLD)),
                Span::raw(format!(" {who} {}  {:02}:{:02}", c.peer, secs / 60, secs % 60)),
            ]));
            if let Some((text, colour)) = badge(c) {
                lines.push(Line::from(vec![label(""), Span::styled(text, Style::new().fg(colour))]));
            }
        }
        None => lines.push(Line::from(vec![
            label("Call"),
            Span::raw(match &s.dialing {
                Some(d) => format!("looking up {d}"),
                None => "idle".into(),
            }),
        ])),
    }
    // The second line: a call waiting to be answered, or one on hold.
    if let Some(c) = &s.other {
        let colour = if c.state == "waiting" { Color::Yellow } else { Color::DarkGray };
        let mut line = vec![
            label("Line 2"),
            Span::styled(c.state.clone(), Style::new().fg(colour).add_modifier(Modifier::BOLD)),
            Span::raw(format!(" {} {}", if c.incoming { "from" } else { "to" }, c.peer)),
        ];
        if let Some((text, colour)) = badge(c) {
            line.push(Span::styled(format!("  {text}"), Style::new().fg(colour)));
        }
        lines.push(Line::from(line));
    }
    Paragraph::new(lines)
        .block(Block::bordered().title(" peerdial phone "))
        .render(area, buf);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::display::panes::testing;
    use crate::display::{PresenceView, UiEvent};

    fn snapshot() -> Snapshot {
        Snapshot {
            number: "886-02-11111111".into(),
            registered: Some(true),
            ..Snapshot::default()
        }
    }

    fn shown(s: &Snapshot) -> String {
        testing::render(70, 9, |area, buf| render(s, area, buf))
    }

    #[test]
    fn idle_shows_own_number_and_registration() {
        let mut s = snapshot();
        let text = shown(&s);
        assert!(
            text.contains("886-02-11111111") && text.contains("registered") && text.contains("idle"),
            "{text}"
        );
        s.registered = Some(false);
        assert!(shown(&s).contains("not registered"));
    }

    #[test]
    fn a_typed_number_shows_its_presence() {
        let mut s = snapshot();
        s.input = "22222222".into();
        assert!(!shown(&s).contains("meeting"));
        s.presence = Some(PresenceView {
            number: "886-02-22222222".into(),
            state: "meeting".into(),
        });
        let text = shown(&s);
        assert!(text.contains("22222222_") && text.contains("886-02-22222222 is meeting"), "{text}");
        // Still shown while the call rings, not once it is answered.
        s.call = Some(CallView {
            peer: "886-02-22222222".into(),
            state: "ringing".into(),
            ..CallView::default()
        });
        assert!(shown(&s).contains("is meeting"));
        s.call.as_mut().unwrap().state = "talking".into();
        assert!(!shown(&s).contains("is meeting"));
        // The call ending forgets it.
        s.apply(&UiEvent::Ended {
            peer: "886-02-22222222".into(),
            reason: "hung up".into(),
            seconds: None,
        });
        assert!(!shown(&s).contains("meeting"));
    }

    #[test]
    fn an_incoming_call_shows_peer_state_timer_and_badge() {
        let mut s = snapshot();
        s.call = Some(CallView {
            peer: "886-03-22222222".into(),
            state: "ringing".into(),
            incoming: true,
            ..CallView::default()
        });
        let text = shown(&s);
        assert!(text.contains("ringing from 886-03-22222222  00:00"), "{text}");
        assert!(text.contains("checking caller"), "{text}");
        s.call.as_mut().unwrap().verified = Some(false);
        let text = shown(&s);
        assert!(text.contains("✘ unverified"), "{text}");
        s.call.as_mut().unwrap().verified = Some(true);
        let text = shown(&s);
        assert!(text.contains("✔ verified") && !text.contains("unverified"), "{text}");
        // An outgoing call has no badge.
        let c = s.call.as_mut().unwrap();
        c.incoming = false;
        c.state = "talking".into();
        let text = shown(&s);
        assert!(text.contains("talking to 886-03-22222222") && !text.contains("verified"), "{text}");
    }

    #[test]
    fn a_waiting_call_shows_on_the_second_line_with_its_badge() {
        let mut s = snapshot();
        s.call = Some(CallView {
            peer: "886-03-22222222".into(),
            state: "talking".into(),
            ..CallView::default()
        });
        assert!(!shown(&s).contains("Line 2"));
        s.other = Some(CallView {
            peer: "886-04-33333333".into(),
            state: "waiting".into(),
            incoming: true,
            verified: Some(true),
            ..CallView::default()
        });
        let text = shown(&s);
        assert!(text.contains("talking to 886-03-22222222"), "{text}");
        assert!(
            text.contains("waiting from 886-04-33333333") && text.contains("✔ verified"),
            "{text}"
        );
    }
}
