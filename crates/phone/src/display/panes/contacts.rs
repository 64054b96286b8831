//! The contacts pane: each watched number (`--contacts FILE`, `watch N`)
//! with its name and its presence as its region last said, live.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Widget};

use super::call::state_colour;
use crate::display::ContactView;

pub fn render(contacts: &[ContactView], area: Rect, buf: &mut Buffer) {
    let lines: Vec<Line> = if contacts.is_empty() {
        vec![Line::styled(
            " none: --contacts FILE or watch N",
            Style::new().add_modifier(Modifier::DIM),
        )]
    } else {
        contacts
            .iter()
            .map(|c| {
                Line::from(vec![
                    Span::raw(format!(" {} ", c.number)),
                    Span::styled(format!("{:<13}", c.state), Style::new().fg(state_colour(&c.state))),
                    Span::raw(c.name.clone().unwrap_or_default()),
                ])
            })
            .collect()
    };
    Paragraph::new(lines).block(Block::bordered().title(" contacts ")).render(area, buf);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::display::panes::testing;
    use crate::display::{Snapshot, UiEvent};

    #[test]
    fn contacts_show_with_their_live_states() {
        let mut s = Snapshot::default();
        let shown = |s: &Snapshot| testing::render(60, 6, |area, buf| render(&s.contacts, area, buf));
        assert!(shown(&s).contains("none"));
        s.watching("886-02-33333333", Some("Aunt May".into()));
        s.watching("886-03-44444444", None);
        let text = shown(&s);
        assert!(text.contains("886-02-33333333 unknown") && text.contains("Aunt May"), "{text}");
        for (n, state) in [("886-02-33333333", "meeting"), ("886-03-44444444", "online")] {
            s.apply(&UiEvent::Contact {
                number: n.into(),
                name: None,
                state: state.into(),
            });
        }
        let text = shown(&s);
        assert!(text.contains("886-02-33333333 meeting") && text.contains("Aunt May"), "{text}");
        assert!(text.contains("886-03-44444444 online"), "{text}");
        assert!(!text.contains("unknown"), "{text}");
        // Order stays the order they were added in.
        assert!(text.find("33333333").unwrap() < text.find("44444444").unwrap());
    }
}
