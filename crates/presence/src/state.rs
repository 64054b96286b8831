//! A number's presence as shown to others, and the rule that derives it
//! from what the region knows (reachability, calls) and what the user set.

use std::fmt;
use std::str::FromStr;

use crate::PresenceError;

/// What a watcher sees for a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    Online,
    Offline,
    Meeting,
    Dnd,
    OnThePhone,
}

impl State {
    pub const ALL: [State; 5] = [State::Online, State::Offline, State::Meeting, State::Dnd, State::OnThePhone];

    /// The name used in JSON, stdin commands and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Online => "online",
            State::Offline => "offline",
            State::Meeting => "meeting",
            State::Dnd => "dnd",
            State::OnThePhone => "on-the-phone",
        }
    }

    /// Parses [`State::as_str`] names (case-insensitive).
    pub fn parse(s: &str) -> Result<State, PresenceError> {
        State::ALL
            .into_iter()
            .find(|st| st.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| PresenceError::UnknownState(s.chars().take(40).collect()))
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for State {
    type Err = PresenceError;
    fn from_str(s: &str) -> Result<State, PresenceError> {
        State::parse(s)
    }
}

/// A number's presence: its state, since when (unix seconds), and the
/// user's free-text note, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presence {
    pub state: State,
    pub since: u64,
    pub note: Option<String>,
}

impl Presence {
    pub fn offline(since: u64) -> Presence {
        Presence {
            state: State::Offline,
            since,
            note: None,
        }
    }
}

/// The inputs of [`shown_state`]: what the region observed and what the
/// user (or the user's phone) published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Inputs {
    /// Registration fresh and the phone answers now (design §9).
    pub reachable: bool,
    /// The region knows the number is in a call.
    pub in_call: bool,
    /// The state the phone published (PUBLISH), if any.
    pub published: Option<State>,
}

/// Offline unless reachable; if reachable: on the phone if in a call (as the
/// region saw it or as published), else what the user set (meeting, do not
/// disturb, or "appear offline"), else online.
pub fn shown_state(i: Inputs) -> State {
    if !i.reachable {
        return State::Offline;
    }
    if i.in_call || i.published == Some(State::OnThePhone) {
        return State::OnThePhone;
    }
    match i.published {
        Some(s @ (State::Meeting | State::Dnd | State::Offline)) => s,
        _ => State::Online,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_is_refused() {
        for s in State::ALL {
            assert_eq!(State::parse(s.as_str()).unwrap(), s);
        }
        assert_eq!("On-The-Phone".parse::<State>().unwrap(), State::OnThePhone);
        assert!(matches!(State::parse("away"), Err(PresenceError::UnknownState(_))));
    }

    #[test]
    fn derived_rule() {
        let i = |reachable, in_call, published| Inputs {
            reachable,
            in_call,
            published,
        };
        assert_eq!(shown_state(i(false, true, Some(State::Meeting))), State::Offline);
        assert_eq!(shown_state(i(true, false, None)), State::Online);
        assert_eq!(shown_state(i(true, true, Some(State::Meeting))), State::OnThePhone);
        assert_eq!(shown_state(i(true, false, Some(State::OnThePhone))), State::OnThePhone);
        assert_eq!(shown_state(i(true, false, Some(State::Meeting))), State::Meeting);
        assert_eq!(shown_state(i(true, false, Some(State::Dnd))), State::Dnd);
        assert_eq!(shown_state(i(true, false, Some(State::Offline))), State::Offline);
        assert_eq!(shown_state(i(true, false, Some(State::Online))), State::Online);
    }
}
