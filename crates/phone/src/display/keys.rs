//! Keys of the terminal face. Every key stands for one of the command lines
//! stdin takes (`answer`, `status meeting`, `call N`, …) and goes through
//! [`parse_command`], so keys and lines can never mean different things; a
//! key whose command the phone does not know (yet) does nothing. Digits and
//! separators also edit the number on the keypad (shown by the display).
//!
//! What this is not: drawing (the panes show [`legend`]), or a second
//! command language.

use crossterm::event::{Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use tokio::sync::mpsc;

use super::parse_command;
use crate::Command;

/// The keys, what they do, and a command line each stands for (a digit
/// sends `dtmf D`, Enter `call` with the number typed).
const KEYS: &[(&str, &str, &str)] = &[
    ("0-9", "dial", "dtmf 0"),
    ("Enter", "call", "call 0"),
    ("a", "answer", "answer"),
    ("j", "reject", "reject"),
    ("h", "hang up", "hangup"),
    ("w", "swap", "swap"),
    ("t", "transfer", "transfer 0"),
    ("o/r", "hold/resume", "hold"),
    ("x/z", "mute/unmute", "mute"),
    ("g", "redial", "redial"),
    ("m", "meeting", "status meeting"),
    ("d", "dnd", "status dnd"),
    ("v", "available", "status available"),
    ("p", "pair", "pair"),
    ("y/n", "yes/no", "yes"),
    ("l", "leave a message", "message"),
    ("q", "quit", "quit"),
];

/// The key legend for the footer: only keys whose command the phone knows.
pub fn legend() -> Vec<(&'static str, &'static str)> {
    KEYS.iter()
        .filter(|(_, _, line)| parse_command(line).is_some())
        .map(|(k, what, _)| (*k, *what))
        .collect()
}

/// The command line a letter key stands for.
fn letter_line(c: char) -> Option<&'static str> {
    Some(match c {
        'a' => "answer",
        'j' => "reject",
        'w' => "swap",
        'h' => "hangup",
        'o' => "hold",
        'r' => "resume",
        'x' => "mute",
        'z' => "unmute",
        'g' => "redial",
        'm' => "status meeting",
        'd' => "status dnd",
        'v' => "status available",
        'p' => "pair",
        'y' => "yes",
        'n' => "no",
        'l' => "message",
        'q' => "quit",
        _ => return None,
    })
}

/// The keypad: the number typed so far, and what each key sends.
#[derive(Debug, Default)]
pub struct Keypad {
    input: String,
}

impl Keypad {
    /// The number typed so far.
    pub fn input(&self) -> &str {
        &self.input
    }

    /// The command line `key` stands for (None: none), and whether the
    /// number typed changed.
    pub fn line(&mut self, key: &KeyEvent) -> (Option<String>, bool) {
        if key.kind == KeyEventKind::Release {
            return (None, false);
        }
        match key.code {
            KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => (Some("quit".into()), false),
            KeyCode::Char(c @ ('0'..='9' | '*' | '#' | '+')) => {
                self.input.push(c);
                // In a call a digit is also a tone; outside one it is ignored.
                (Some(format!("dtmf {c}")), true)
            }
            KeyCode::Char('-' | ' ') => {
                self.input.push('-');
                (None, true)
            }
            KeyCode::Backspace => (None, self.input.pop().is_some()),
            KeyCode::Enter if !self.input.is_empty() => {
                let number = std::mem::take(&mut self.input);
                (Some(format!("call {number}")), true)
            }
            KeyCode::Char('t') if !self.input.is_empty() => {
                let number = std::mem::take(&mut self.input);
                (Some(format!("transfer {number}")), true)
            }
            KeyCode::Esc => (Some("hangup".into()), false),
            KeyCode::Char(c) => (letter_line(c).map(str::to_string), false),
            _ => (None, false),
        }
    }

    /// What `key` sends: the number typed (for the display) when it
    /// changed, then the key's command exactly as stdin would parse it.
    pub fn commands(&mut self, key: &KeyEvent) -> Vec<Command> {
        let (line, changed) = self.line(key);
        let mut out = Vec::new();
        if changed {
            out.push(Command::Input(self.input.clone()));
        }
        out.extend(line.as_deref().and_then(parse_command));
        out
    }
}

/// Reads keys until `q` (or Ctrl-C) or until the phone stops listening;
/// a resized terminal is redrawn.
pub fn spawn_keys(tx: mpsc::Sender<Command>) {
    std::thread::spawn(move || {
        let mut pad = Keypad::default();
        while let Ok(ev) = crossterm::event::read() {
            let cmds = match ev {
                Event::Key(k) => pad.commands(&k),
                Event::Resize(..) => vec![Command::Input(pad.input().to_string())],
                _ => continue,
            };
            for c in cmds {
                let quit = matches!(c, Command::Quit);
                if tx.blocking_send(c).is_err() || quit {
                    return;
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    /// Commands compared by what they say (Command holds results that
    /// have no equality).
    fn said(c: &[Command]) -> Vec<String> {
        c.iter().map(|c| format!("{c:?}")).collect()
    }

    #[test]
    fn each_key_sends_the_command_of_its_stdin_line() {
        for (c, line) in [
            ('a', "answer"),
            ('j', "reject"),
            ('w', "swap"),
            ('h', "hangup"),
            ('m', "status meeting"),
            ('d', "status dnd"),
            ('v', "status available"),
            ('p', "pair"),
            ('y', "yes"),
            ('n', "no"),
            ('l', "message"),
            ('q', "quit"),
        ] {
            let mut pad = Keypad::default();
            let sent = pad.commands(&key(KeyCode::Char(c)));
            // A key whose command the phone does not know sends nothing.
            let want: Vec<Command> = parse_command(line).into_iter().collect();
            assert_eq!(said(&sent), said(&want), "key {c:?} is not {line:?}");
        }
        assert!(matches!(
            Keypad::default().commands(&key(KeyCode::Char('m'))).as_slice(),
            [Command::Status(peerdial_presence::State::Meeting)]
        ));
        assert_eq!(
            said(&Keypad::default().commands(&key(KeyCode::Esc))),
            said(&[parse_command("hangup").unwrap()])
        );
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert!(matches!(Keypad::default().commands(&ctrl_c).as_slice(), [Command::Quit]));
        assert!(Keypad::default().commands(&key(KeyCode::Char('k'))).is_empty());
    }

    #[test]
    fn digits_edit_the_number_and_enter_calls_it() {
        let mut pad = Keypad::default();
        for c in "1234".chars() {
            let sent = pad.commands(&key(KeyCode::Char(c)));
            assert_eq!(sent.len(), 2);
            assert_eq!(said(&sent[1..]), said(&[parse_command(&format!("dtmf {c}")).unwrap()]));
        }
        pad.commands(&key(KeyCode::Char('-')));
        pad.commands(&key(KeyCode::Char('9')));
        assert_eq!(pad.input(), "1234-9");
        let sent = pad.commands(&key(KeyCode::Backspace));
        assert!(matches!(sent.as_slice(), [Command::Input(s)] if s == "1234-"));
        let sent = pad.commands(&key(KeyCode::Enter));
        assert_eq!(
            said(&sent),
            said(&[Command::Input(String::new()), parse_command("call 1234-").unwrap()])
        );
        assert_eq!(pad.input(), "");
        // Enter with nothing typed calls no one.
        assert!(pad.commands(&key(KeyCode::Enter)).is_empty());
        // Digits then `t` transfer the call to them; `t` alone does nothing.
        assert!(pad.commands(&key(KeyCode::Char('t'))).is_empty());
        for c in "5678".chars() {
            pad.commands(&key(KeyCode::Char(c)));
        }
        let sent = pad.commands(&key(KeyCode::Char('t')));
        assert_eq!(
            said(&sent),
            said(&[Command::Input(String::new()), parse_command("transfer 5678").unwrap()])
        );
        let mut release = key(KeyCode::Char('5'));
        release.kind = KeyEventKind::Release;
        assert!(pad.commands(&release).is_empty() && pad.input().is_empty());
    }

    #[test]
    fn the_legend_lists_only_keys_the_phone_knows() {
        let l = legend();
        assert!(l.contains(&("a", "answer")) && l.contains(&("m", "meeting")) && l.contains(&("q", "quit")));
        assert_eq!(l.contains(&("p", "pair")), parse_command("pair").is_some());
    }
}
