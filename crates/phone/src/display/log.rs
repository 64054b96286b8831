//! The plain-line face: one line per event on stdout, exactly
//! [`UiEvent::line`]. Scripts, logs and every integration test read these
//! lines, so their text is part of the phone's interface. It draws no
//! pictures and keeps no screen.

use std::io::Write;

use super::{Display, Snapshot, UiEvent};

/// One line per event on stdout.
pub struct LogDisplay;

impl Display for LogDisplay {
    fn event(&mut self, e: &UiEvent, _s: &Snapshot) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", e.line());
        let _ = out.flush();
    }
}
