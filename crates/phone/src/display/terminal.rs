//! The full-screen face: ratatui on crossterm, in raw mode on the alternate
//! screen, redrawn on every event and at least once a second (the call timer).
//! The terminal is always given back: on close, on drop (a start that
//! failed), and on panic (ratatui's hook restores it before the message).
//!
//! At start the terminal is asked once which picture protocol it speaks
//! (`picker.rs`).

use std::time::{Duration, Instant};

use ratatui::DefaultTerminal;

use super::panes::{self, View};
use super::{Display, Snapshot, UiEvent};

/// A full-screen view in panes.
pub struct TerminalDisplay {
    terminal: DefaultTerminal,
    view: View,
    last_draw: Instant,
    open: bool,
}

impl TerminalDisplay {
    /// Enters raw mode and the alternate screen; an error leaves the
    /// terminal as it was.
    pub fn new() -> std::io::Result<TerminalDisplay> {
        let terminal = ratatui::try_init()?;
        let picker = super::picker::query();
        Ok(TerminalDisplay {
            terminal,
            view: View::new(picker),
            last_draw: Instant::now() - Duration::from_secs(10),
            open: true,
        })
    }

    fn draw(&mut self, s: &Snapshot) {
        self.last_draw = Instant::now();
        let view = &mut self.view;
        if let Err(e) = self.terminal.draw(|f| panes::draw(f, view, s)) {
            tracing::debug!("drawing the screen: {e}");
        }
    }

    fn restore(&mut self) {
        if std::mem::take(&mut self.open) {
            ratatui::restore();
            let _ = crossterm::execute!(std::io::stdout(), crossterm::cursor::Show);
        }
    }
}

impl Display for TerminalDisplay {
    fn event(&mut self, e: &UiEvent, s: &Snapshot) {
        if !matches!(e, UiEvent::Ready { .. }) {
            self.view.push_line(e.line());
        }
        self.draw(s);
    }

    fn redraw(&mut self, s: &Snapshot) {
        self.draw(s);
    }

    fn tick(&mut self, s: &Snapshot) {
        // Twice a second, so the call timer never skips a second.
        if self.last_draw.elapsed() >= Duration::from_millis(500) {
            self.draw(s);
        }
    }

    fn close(&mut self) {
        self.restore();
        // What happened stays on the screen after the phone exits.
        for l in self.view.lines() {
            println!("{l}");
        }
    }
}

impl Drop for TerminalDisplay {
    fn drop(&mut self) {
        self.restore();
    }
}
