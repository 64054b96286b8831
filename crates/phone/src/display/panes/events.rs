//! The events pane: the latest event lines, the same text the plain-line
//! face prints, newest at the bottom.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::{Block, Paragraph, Widget};

pub fn render(lines: &[String], area: Rect, buf: &mut Buffer) {
    let rows = area.height.saturating_sub(2) as usize;
    let shown: Vec<Line> = lines[lines.len().saturating_sub(rows)..]
        .iter()
        .map(|l| Line::raw(format!(" {l}")))
        .collect();
    Paragraph::new(shown).block(Block::bordered().title(" events ")).render(area, buf);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::display::panes::testing;

    #[test]
    fn the_newest_lines_fit() {
        let lines: Vec<String> = (1..=10).map(|i| format!("line {i}")).collect();
        let text = testing::render(30, 5, |area, buf| render(&lines, area, buf));
        assert!(text.contains("line 10") && text.contains("line 8"), "{text}");
        assert!(!text.contains("line 7"), "{text}");
    }
}
