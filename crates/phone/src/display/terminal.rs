//! The full-screen face: ratatui on crossterm, in raw mode on the alternate
//! screen, redrawn on every event and at least once a second (the call timer).
//! The terminal is always given back: on close, on drop (a start that
//! failed), and on panic (ratatui's hook restores it before the message).
//!
//! At start the terminal is asked once which picture protocol it speaks
//! (sixel, kitty, iTerm2) and its font size; a terminal that does not
//! answer, or output that is not a terminal, gets Unicode half blocks. The
//! choice is logged at debug level (`PEERDIAL_LOG=peerdial_phone::display=debug`):
//! `pictures drawn with sixel (cell 8x17 px)`. xterm speaks sixel when started
//! as a VT340 (`xterm -ti vt340`); its cell size comes from `CSI 16 t` when
//! `allowWindowOps` is on, else from the pty's pixel size, which xterm sets.

use std::time::{Duration, Instant};

use ratatui::DefaultTerminal;
use ratatui_image::picker::{Picker, ProtocolType};

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
        let picker = Picker::from_query_stdio().unwrap_or_else(|e| {
            tracing::debug!("terminal graphics query: {e}; drawing pictures with half blocks");
            Picker::halfblocks()
        });
        release_query_reader();
        let cell = picker.font_size();
        tracing::debug!(
            "pictures drawn with {} (cell {}x{} px)",
            protocol_name(picker.protocol_type()),
            cell.width,
            cell.height
        );
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

/// The protocol as users know it (what the debug log names).
fn protocol_name(p: ProtocolType) -> &'static str {
    match p {
        ProtocolType::Sixel => "sixel",
        ProtocolType::Kitty => "kitty",
        ProtocolType::Iterm2 => "iterm2",
        ProtocolType::Halfblocks => "half blocks",
    }
}

/// When the terminal does not answer the graphics query in time (tmux
/// without passthrough, some consoles), ratatui-image gives up but leaves
/// its reader thread blocked on stdin, where it would swallow the user's
/// first keys. Asking for a plain status report (DSR, which every terminal
/// and tmux itself answer) hands that reader the answer it waits for, and
/// it ends. If no reader is waiting, the key reader drops the answer as an
/// unknown sequence.
fn release_query_reader() {
    use std::io::Write;
    let mut out = std::io::stdout();
    let _ = out.write_all(b"\x1b[5n");
    let _ = out.flush();
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
