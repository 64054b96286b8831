//! The picture pane: the other side's greeting picture in place of the bare
//! number, which stays under it, smaller (dim). Pictures are drawn by
//! ratatui-image with the protocol the terminal answered to at start (sixel,
//! kitty, iTerm2) or with Unicode half blocks. The phone only has a picture
//! for a caller who verified, so this pane does not check.

use std::sync::Arc;

use image::DynamicImage;
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Paragraph, StatefulWidget, Widget};
use ratatui_image::picker::Picker;
use ratatui_image::protocol::StatefulProtocol;
use ratatui_image::{FilterType, Resize, StatefulImage};

use crate::display::CallView;

/// How pictures are drawn, and the picture being shown, encoded for the
/// terminal once (re-encoded only when the pane's size changes).
pub struct PictureState {
    picker: Picker,
    shown: Option<(Arc<DynamicImage>, StatefulProtocol)>,
}

impl PictureState {
    pub fn new(picker: Picker) -> PictureState {
        PictureState { picker, shown: None }
    }

    fn protocol(&mut self, picture: &Arc<DynamicImage>) -> &mut StatefulProtocol {
        let (_, p) = match self.shown.take() {
            Some((shown, p)) if Arc::ptr_eq(&shown, picture) => self.shown.insert((shown, p)),
            _ => self
                .shown
                .insert((picture.clone(), self.picker.new_resize_protocol(picture.as_ref().clone()))),
        };
        p
    }
}

pub fn render(call: Option<&CallView>, state: &mut PictureState, area: Rect, buf: &mut Buffer) {
    let Some(c) = call else {
        state.shown = None;
        return;
    };
    let block = Block::bordered().title(if c.incoming { " caller " } else { " callee " });
    let inner = block.inner(area);
    block.render(area, buf);
    let [picture_area, number_area] = Layout::vertical([Constraint::Min(1), Constraint::Length(1)]).areas(inner);
    match &c.picture {
        // Scaled to the pane either way: a small picture is not a stamp.
        Some(p) => StatefulImage::default()
            .resize(Resize::Scale(Some(FilterType::Triangle)))
            .render(picture_area, buf, state.protocol(p)),
        None => {
            state.shown = None;
            Paragraph::new("no picture")
                .style(Style::new().add_modifier(Modifier::DIM))
                .centered()
                .render(picture_area, buf);
        }
    }
    Paragraph::new(Line::styled(c.peer.clone(), Style::new().add_modifier(Modifier::DIM)))
        .centered()
        .render(number_area, buf);
}

#[cfg(test)]
mod tests {
    use ratatui::style::Color;

    use super::*;
    use crate::display::panes::testing;

    fn call(picture: Option<Arc<DynamicImage>>) -> CallView {
        CallView {
            peer: "886-03-22222222".into(),
            state: "talking".into(),
            incoming: true,
            verified: Some(true),
            picture,
            ..CallView::default()
        }
    }

    #[test]
    fn the_picture_is_drawn_with_the_number_under_it() {
        let red = image::RgbaImage::from_pixel(16, 16, image::Rgba([255, 0, 0, 255]));
        let c = call(Some(Arc::new(DynamicImage::ImageRgba8(red))));
        let mut state = PictureState::new(Picker::halfblocks());
        let mut t = ratatui::Terminal::new(ratatui::backend::TestBackend::new(32, 14)).unwrap();
        t.draw(|f| {
            let area = f.area();
            render(Some(&c), &mut state, area, f.buffer_mut())
        })
        .unwrap();
        let buf = t.backend().buffer();
        let rows = testing::rows(buf);
        let number_row = rows.iter().position(|r| r.contains("886-03-22222222")).expect("number shown");
        let red = Color::Rgb(255, 0, 0);
        // Scaled up to the pane (30×12 cells inside the border).
        assert!(testing::cells_in(buf, red) > 200, "the picture was not drawn:\n{}", rows.join("\n"));
        let last_red_row = buf
            .content()
            .iter()
            .enumerate()
            .filter(|(_, cell)| cell.fg == red || cell.bg == red)
            .map(|(i, _)| i / 32)
            .max();
        assert!(last_red_row < Some(number_row), "the number is not under the picture");
        assert!(rows[0].contains("caller"), "{}", rows.join("\n"));
    }

    #[test]
    fn no_picture_says_so_and_no_call_draws_nothing() {
        let mut state = PictureState::new(Picker::halfblocks());
        let text = testing::render(32, 14, |area, buf| render(Some(&call(None)), &mut state, area, buf));
        assert!(text.contains("no picture") && text.contains("886-03-22222222"), "{text}");
        let text = testing::render(32, 14, |area, buf| render(None, &mut state, area, buf));
        assert!(text.trim().is_empty(), "{text}");
    }
}
