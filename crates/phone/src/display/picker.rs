//! Which picture protocol the full-screen display draws greetings with:
//! ratatui-image's query of the terminal (sixel, kitty, iTerm2 and the cell
//! size in pixels), corrected where a terminal's answer promises more than it
//! draws, and Unicode half blocks when the terminal does not answer or
//! output is not a terminal. The choice is logged at debug level
//! (`PEERDIAL_LOG=peerdial_phone::display=debug`):
//! `pictures drawn with sixel (cell 8x17 px)`.
//!
//! What terminals need: xterm speaks sixel when started as a VT340
//! (`xterm -ti vt340`, or `XTerm*decTerminalID: vt340`); its cell size comes
//! from `CSI 16 t` when `allowWindowOps` is on, else from the pixel size it
//! sets on the pty. kitty is drawn with Unicode placeholders, which it has
//! had since 0.28.0: an older kitty (Debian 12 has 0.26.5) answers the
//! graphics query but would show boxes, so it gets half blocks.
//!
//! Not the drawing (the picture pane) nor the key reader.

use std::io::{Read, Write};
use std::sync::mpsc;
use std::time::Duration;

use peerdial_greetings::kitty_without_placeholders;
use ratatui_image::picker::{Picker, ProtocolType};

/// Asks the terminal (already in raw mode); logs the choice.
pub fn query() -> Picker {
    let mut picker = Picker::from_query_stdio().unwrap_or_else(|e| {
        tracing::debug!("terminal graphics query: {e}; drawing pictures with half blocks");
        Picker::halfblocks()
    });
    let mut why = String::new();
    if picker.protocol_type() == ProtocolType::Kitty {
        if let Some(old) = ask_version().as_deref().and_then(kitty_without_placeholders) {
            picker.set_protocol_type(ProtocolType::Halfblocks);
            why = format!(": kitty {old} has no Unicode placeholders (0.28 has)");
        }
    }
    release_query_reader();
    let cell = picker.font_size();
    tracing::debug!(
        "pictures drawn with {} (cell {}x{} px){why}",
        protocol_name(picker.protocol_type()),
        cell.width,
        cell.height
    );
    picker
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

/// The terminal's answer to XTVERSION (`CSI > 0 q`), followed by a status
/// report (DSR) that every terminal answers, read up to that answer; None
/// after a second. Asked only of a terminal that has just answered
/// ratatui-image's query, so the reader ends; if it did not, the DSR of
/// [`release_query_reader`] would end it.
fn ask_version() -> Option<String> {
    let mut out = std::io::stdout();
    out.write_all(b"\x1b[>0q\x1b[5n").ok()?;
    out.flush().ok()?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut answer = Vec::new();
        let mut byte = [0u8; 1];
        while answer.len() < 512 && std::io::stdin().read(&mut byte).is_ok_and(|n| n == 1) {
            answer.push(byte[0]);
            if answer.ends_with(b"\x1b[0n") || answer.ends_with(b"\x1b[3n") {
                break;
            }
        }
        let _ = tx.send(String::from_utf8_lossy(&answer).into_owned());
    });
    rx.recv_timeout(Duration::from_secs(1)).ok()
}

/// When the terminal does not answer the graphics query in time (tmux
/// without passthrough, some consoles), ratatui-image gives up but leaves
/// its reader thread blocked on stdin, where it would swallow the user's
/// first keys. Asking for a plain status report (DSR, which every terminal
/// and tmux itself answer) hands that reader the answer it waits for, and
/// it ends. If no reader is waiting, the key reader drops the answer as an
/// unknown sequence.
fn release_query_reader() {
    let mut out = std::io::stdout();
    let _ = out.write_all(b"\x1b[5n");
    let _ = out.flush();
}
