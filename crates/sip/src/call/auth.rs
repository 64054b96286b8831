//! A caller's answer to a digest challenge (401 or 407) to its INVITE
//! (RFC 3261 22.2): the INVITE once more, with a new CSeq and branch and
//! the credentials set by [`Call::set_credentials`]. Once per call: a
//! second challenge ends the call as any refusal does. Not here: digest
//! itself (`digest.rs`, `client::answer_challenge`), challenges to
//! in-dialog requests.

use crate::ids::branch;
use crate::message::Message;

use super::{Call, RetransmitKind, Role, State};

/// The credentials a caller answers a challenge with, and whether it did.
#[derive(Debug, Clone, Default)]
pub(super) struct InviteAuth {
    creds: Option<(String, String)>,
    answered: bool,
}

impl Call {
    /// A caller's user name and password, for a 401/407 to its INVITE
    /// (a device calling out through its switch). Never sent unasked.
    pub fn set_credentials(&mut self, user: &str, password: &str) {
        self.auth.creds = Some((user.to_string(), password.to_string()));
    }

    /// A challenge to our INVITE (already acknowledged): sends the INVITE
    /// again with credentials; `false` when there are none to send, or
    /// this is a second challenge.
    pub(super) fn answer_invite_challenge(&mut self, msg: &Message, code: u16, now: u64) -> bool {
        if !matches!(code, 401 | 407)
            || self.auth.answered
            || self.role != Role::Caller
            || self.cancel_wanted
            || !matches!(self.state, State::Calling | State::Ringing)
        {
            return false;
        }
        let Some((user, password)) = self.auth.creds.clone() else {
            return false;
        };
        let Some((name, value)) = crate::client::answer_challenge(msg, code, &user, &password, "INVITE", &self.remote_uri) else {
            return false;
        };
        self.auth.answered = true;
        self.cseq = self.cseq.max(self.invite_cseq) + 1;
        self.invite_cseq = self.cseq;
        self.invite_branch = branch();
        let b = self.invite_branch.clone();
        let mut invite = self.request("INVITE", &b, self.invite_cseq);
        for (n, v) in &self.extra {
            invite.push(n, v.clone());
        }
        invite.push(name, value);
        if !self.local_sdp.is_empty() {
            invite.push("Content-Type", "application/sdp");
            invite.body = self.local_sdp.clone();
        }
        let data = invite.to_bytes();
        self.invite = invite;
        self.send_reliably(RetransmitKind::Invite, data, self.remote_addr, false, now);
        true
    }
}
