//! The marquee: one line that scrolls the latest broadcast, message or
//! channel item from right to left, over and over, until the next one.
//! The text was cleaned of control characters before it got here (the
//! phone's `channels` module), so it cannot move the cursor or restyle
//! the terminal.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget};
use unicode_width::UnicodeWidthChar;

use crate::display::MarqueeView;

/// Columns scrolled per second.
const SPEED: f64 = 6.0;

/// The visible window of `text` after `elapsed` seconds in `width`
/// columns: it enters at the right edge and leaves at the left.
pub fn window(text: &str, width: usize, elapsed: f64) -> String {
    if width == 0 {
        return String::new();
    }
    let chars: Vec<char> = text.chars().collect();
    let total: usize = chars.iter().map(|c| c.width().unwrap_or(0)).sum::<usize>() + width;
    let offset = ((elapsed * SPEED) as usize) % total.max(1);
    // Pad `width` blanks in front, then skip `offset` columns.
    let mut out = String::new();
    let mut col = 0usize;
    let mut used = 0usize;
    for c in std::iter::repeat_n(' ', width).chain(chars.iter().copied()) {
        let w = c.width().unwrap_or(0);
        if col < offset {
            col += w;
            continue;
        }
        if used + w > width {
            break;
        }
        out.push(c);
        used += w;
    }
    out
}

pub fn render(m: Option<&MarqueeView>, area: Rect, buf: &mut Buffer) {
    let Some(m) = m else {
        return;
    };
    let label = format!(" {} ", m.label);
    let width = (area.width as usize).saturating_sub(label.chars().count());
    let line = Line::from(vec![
        Span::styled(label, Style::new().add_modifier(Modifier::REVERSED)),
        Span::raw(window(&m.text, width, m.since.elapsed().as_secs_f64())),
    ]);
    Paragraph::new(line).render(area, buf);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::display::panes::testing;
    use crate::display::{Snapshot, UiEvent};

    #[test]
    fn the_text_enters_at_the_right_and_scrolls_left() {
        assert_eq!(window("hello", 8, 0.0), "        ");
        assert_eq!(window("hello", 8, 1.0), "  hello");
        assert_eq!(window("hello", 4, 5.0 / SPEED), "ello");
        assert_eq!(window("台北", 4, 4.0 / SPEED), "台北", "wide characters take two columns");
        // After the whole text has passed, it starts again.
        assert_eq!(window("hi", 4, 6.0 / SPEED), window("hi", 4, 0.0));
    }

    #[test]
    fn the_pane_shows_the_label_and_the_moving_text() {
        let mut s = Snapshot::default();
        s.apply(&UiEvent::Marquee {
            channel: Some("news".into()),
            poster: None,
            text: "typhoon".into(),
        });
        let m = s.marquee.as_mut().unwrap();
        m.since -= std::time::Duration::from_secs(30);
        let text = testing::render(20, 1, |area, buf| render(s.marquee.as_ref(), area, buf));
        assert!(text.starts_with(" news "), "{text}");
        s.apply(&UiEvent::Message {
            from: "peerdial 886-02".into(),
            text: "hello".into(),
            via_region: true,
        });
        assert_eq!(s.marquee.as_ref().unwrap().label, "peerdial 886-02");
    }
}
