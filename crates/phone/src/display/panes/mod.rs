//! The terminal face's panes, one file each, and the screen that lays them
//! out. A pane draws one concern of the [`Snapshot`] into a rectangle of a
//! ratatui buffer and knows nothing of terminals, so each is tested with
//! ratatui's `TestBackend`; a later feature adds a pane here (and a place in
//! [`draw`]) rather than growing another.
//!
//! - `call.rs`: own number and registration, the number being dialed and
//!   its presence, the call's peer, state, timer and verified badge;
//! - `picture.rs`: the peer's greeting picture (ratatui-image), the peer's
//!   number under it;
//! - `contacts.rs`: watched numbers with their live presence;
//! - `history.rs`: the latest calls in and out (`g` redials the first);
//! - `events.rs`: the latest event lines;
//! - `marquee.rs`: the scrolling line of the latest broadcast, message or
//!   channel item;
//! - `footer.rs`: own status, the last message, the key legend.

pub mod call;
pub mod contacts;
pub mod events;
pub mod footer;
pub mod history;
pub mod marquee;
pub mod picture;

use ratatui::layout::{Constraint, Layout};
use ratatui::Frame;
use ratatui_image::picker::Picker;

use super::Snapshot;

/// Lines kept for the events pane and the footer.
const KEEP_LINES: usize = 100;

/// What the screen keeps between draws: the picture state and recent lines.
pub struct View {
    pub picture: picture::PictureState,
    log: Vec<String>,
}

impl View {
    /// `picker` decides how pictures are drawn (sixel, kitty, half blocks).
    pub fn new(picker: Picker) -> View {
        View {
            picture: picture::PictureState::new(picker),
            log: Vec::new(),
        }
    }

    /// Remembers an event line for the events pane and the footer.
    pub fn push_line(&mut self, line: String) {
        self.log.push(line);
        if self.log.len() > KEEP_LINES {
            self.log.remove(0);
        }
    }

    pub fn lines(&self) -> &[String] {
        &self.log
    }
}

/// Draws the whole screen: the call (with the picture beside it while a
/// call is up) on top, contacts and events below, the footer last.
pub fn draw(frame: &mut Frame, view: &mut View, s: &Snapshot) {
    let [top, middle, ticker, bottom] = Layout::vertical([
        Constraint::Length(14),
        Constraint::Min(3),
        Constraint::Length(1),
        Constraint::Length(2),
    ])
    .areas(frame.area());
    let buf = frame.buffer_mut();
    if s.call.is_some() {
        let [call_area, picture_area] = Layout::horizontal([Constraint::Min(30), Constraint::Length(32)]).areas(top);
        call::render(s, call_area, buf);
        // A waiting caller's face is the one to see: whether to answer.
        let face = s.other.as_ref().filter(|o| o.state == "waiting").or(s.call.as_ref());
        picture::render(face, &mut view.picture, picture_area, buf);
    } else {
        call::render(s, top, buf);
    }
    let [contacts_area, history_area, events_area] =
        Layout::horizontal([Constraint::Percentage(25), Constraint::Percentage(25), Constraint::Percentage(50)]).areas(middle);
    contacts::render(&s.contacts, contacts_area, buf);
    history::render(&s.history, s.mailbox.as_deref(), history_area, buf);
    events::render(&view.log, events_area, buf);
    marquee::render(s.marquee.as_ref(), ticker, buf);
    footer::render(s, view.log.last().map(String::as_str), bottom, buf);
}

#[cfg(test)]
pub(crate) mod testing {
    //! Rendering into ratatui's TestBackend and reading back what a user
    //! would see.

    use ratatui::backend::TestBackend;
    use ratatui::buffer::Buffer;
    use ratatui::layout::Rect;
    use ratatui::Terminal;

    /// The buffer's text, one string per row.
    pub fn rows(buf: &Buffer) -> Vec<String> {
        let w = buf.area.width as usize;
        buf.content()
            .chunks(w)
            .map(|row| row.iter().map(|c| c.symbol()).collect::<String>())
            .collect()
    }

    /// How many cells show `colour` (as text or background): where a
    /// picture was drawn, whatever characters the protocol chose.
    pub fn cells_in(buf: &Buffer, colour: ratatui::style::Color) -> usize {
        buf.content().iter().filter(|c| c.fg == colour || c.bg == colour).count()
    }

    /// Draws `f` into a `w`×`h` buffer and returns its text.
    pub fn render(w: u16, h: u16, f: impl FnOnce(Rect, &mut Buffer)) -> String {
        let mut t = Terminal::new(TestBackend::new(w, h)).expect("test backend");
        t.draw(|frame| {
            let area = frame.area();
            f(area, frame.buffer_mut())
        })
        .expect("draw");
        rows(t.backend().buffer()).join("\n")
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::Arc;

    use ratatui::backend::TestBackend;
    use ratatui::Terminal;

    use super::*;
    use crate::display::{CallView, UiEvent};

    #[test]
    fn the_whole_screen_shows_call_picture_contacts_and_footer() {
        let mut s = Snapshot {
            number: "886-02-11111111".into(),
            sip: "127.0.0.1:5070".parse::<SocketAddr>().unwrap(),
            registered: Some(true),
            ..Snapshot::default()
        };
        let red = image::DynamicImage::ImageRgba8(image::RgbaImage::from_pixel(40, 40, image::Rgba([255, 0, 0, 255])));
        s.call = Some(CallView {
            peer: "886-03-22222222".into(),
            state: "talking".into(),
            incoming: true,
            verified: Some(true),
            picture: Some(Arc::new(red)),
            ..CallView::default()
        });
        let mut view = View::new(Picker::halfblocks());
        for e in [
            UiEvent::Status { state: "meeting".into() },
            UiEvent::Contact {
                number: "886-02-33333333".into(),
                name: Some("Aunt May".into()),
                state: "dnd".into(),
            },
            UiEvent::Caller {
                number: "886-03-22222222".into(),
                unverified: None,
            },
        ] {
            s.apply(&e);
            view.push_line(e.line());
        }
        let mut t = Terminal::new(TestBackend::new(100, 30)).unwrap();
        t.draw(|f| draw(f, &mut view, &s)).unwrap();
        let text = testing::rows(t.backend().buffer()).join("\n");
        let red = testing::cells_in(t.backend().buffer(), ratatui::style::Color::Rgb(255, 0, 0));
        for want in [
            "886-02-11111111",
            "registered",
            "886-03-22222222",
            "verified",
            "talking",
            "Aunt May",
            "dnd",
            "meeting",
            "a answer",
            "caller 886-03-22222222 verified",
        ] {
            assert!(text.contains(want), "{want:?} not on the screen:\n{text}");
        }
        assert!(!text.contains("unverified"), "{text}");
        assert!(red > 20, "no picture drawn:\n{text}");
    }
}
