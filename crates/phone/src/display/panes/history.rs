//! The history pane: the mailbox's summary (missed calls, messages), then
//! the latest calls in and out, numbered as `redial N` takes them (the key
//! `g` redials the first).

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Paragraph, Widget};

pub fn render(lines: &[String], mailbox: Option<&str>, area: Rect, buf: &mut Buffer) {
    let mut shown: Vec<Line> = mailbox
        .map(|m| Line::styled(format!(" {m}"), Style::new().add_modifier(Modifier::BOLD)))
        .into_iter()
        .collect();
    if lines.is_empty() {
        shown.push(Line::styled(" no calls yet", Style::new().add_modifier(Modifier::DIM)));
    } else {
        shown.extend(lines.iter().map(|l| Line::raw(format!(" {l}"))));
    }
    Paragraph::new(shown)
        .block(Block::bordered().title(" history (g: redial 1) "))
        .render(area, buf);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::display::panes::testing;

    #[test]
    fn the_latest_calls_show_numbered() {
        let shown = |l: &[String]| testing::render(50, 5, |area, buf| render(l, None, area, buf));
        assert!(shown(&[]).contains("no calls yet"));
        let text = shown(&[
            "1 13:01 → 886-02-12345678 42 s".into(),
            "2 12:58 ← 886-03-00000001 missed (the caller gave up)".into(),
        ]);
        assert!(text.contains("history (g: redial 1)"), "{text}");
        assert!(text.contains("1 13:01 → 886-02-12345678 42 s"), "{text}");
        assert!(text.find("13:01").unwrap() < text.find("12:58").unwrap(), "{text}");
        let text = testing::render(60, 5, |area, buf| {
            render(&[], Some("mailbox: 1 missed call, 2 messages (2 new)"), area, buf)
        });
        assert!(text.contains("mailbox: 1 missed call, 2 messages (2 new)"), "{text}");
    }
}
