//! The matching rule (issue 13): which of the caller's talkers and which
//! of the callee's are connected, and through which server. In order: the
//! designated talker (if the dialer named one, only it); a peerdial region
//! both have a number in; a foreign SIP server both have an account on;
//! else any peerdial number of each across regions (the network's own
//! direct call). Only verified talkers take part.

use serde::Serialize;

use crate::talker::{Account, Talker};

/// Which of the caller's talkers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wanted {
    /// The talker with this name.
    Named(String),
    Any,
}

/// Who is called: a user's talkers (as the store lists them), or a bare
/// peerdial number (a talker of nobody we know).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Callee {
    User(Vec<Talker>),
    Number(String),
}

/// The server whose controller connects the pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Route {
    /// The region of this area controls it (both numbers are there).
    Region { area: String },
    /// The foreign server both accounts are on.
    Foreign { server: String },
    /// Numbers in two regions: the caller's region controls it.
    Across { area: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Why {
    SameRegion,
    SameServer,
    AcrossRegions,
}

impl Why {
    pub fn text(self) -> &'static str {
        match self {
            Why::SameRegion => "both talkers have numbers in the same peerdial region",
            Why::SameServer => "both talkers have accounts on the same SIP server",
            Why::AcrossRegions => "no common server: peerdial numbers in two regions",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    pub caller: Talker,
    pub callee: Talker,
    pub route: Route,
    pub why: Why,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("you have no talker named {0:?}")]
    NotOwned(String),
    #[error("your talker {0:?} is not verified yet")]
    Unverified(String),
    #[error("you have no verified talker")]
    NoTalker,
    #[error("no talker of the callee is reachable")]
    CalleeUnreachable,
    #[error("no route: your talker and the callee's share no server, and they are not both peerdial numbers")]
    NoRoute,
}

/// Pairs one of `mine` (the caller's talkers) with one of the callee's.
pub fn match_pair(mine: &[Talker], wanted: &Wanted, callee: &Callee) -> Result<Pair, Refusal> {
    let ours: Vec<&Talker> = match wanted {
        Wanted::Named(name) => {
            let t = mine
                .iter()
                .find(|t| &t.name == name)
                .ok_or_else(|| Refusal::NotOwned(name.clone()))?;
            if !t.verified {
                return Err(Refusal::Unverified(name.clone()));
            }
            vec![t]
        }
        Wanted::Any => mine.iter().filter(|t| t.verified).collect(),
    };
    if ours.is_empty() {
        return Err(Refusal::NoTalker);
    }
    let bare;
    let theirs: Vec<&Talker> = match callee {
        Callee::User(ts) => ts.iter().filter(|t| t.verified).collect(),
        Callee::Number(n) => {
            bare = Talker {
                id: 0,
                owner: n.clone(),
                name: n.clone(),
                account: Account::Peerdial { number: n.clone() },
                verified: true,
            };
            vec![&bare]
        }
    };
    if theirs.is_empty() {
        return Err(Refusal::CalleeUnreachable);
    }
    let pair = |a: &Talker, b: &Talker, route, why| Pair {
        caller: a.clone(),
        callee: b.clone(),
        route,
        why,
    };
    for a in &ours {
        for b in &theirs {
            if let (Some(ra), Some(rb)) = (a.account.region(), b.account.region()) {
                if ra == rb {
                    return Ok(pair(a, b, Route::Region { area: ra }, Why::SameRegion));
                }
            }
        }
    }
    for a in &ours {
        for b in &theirs {
            if let (Some(sa), Some(sb)) = (a.account.server(), b.account.server()) {
                if sa == sb {
                    let route = Route::Foreign { server: sa.to_string() };
                    return Ok(pair(a, b, route, Why::SameServer));
                }
            }
        }
    }
    for a in &ours {
        for b in &theirs {
            if let (Some(ra), Some(_)) = (a.account.region(), b.account.region()) {
                return Ok(pair(a, b, Route::Across { area: ra }, Why::AcrossRegions));
            }
        }
    }
    Err(Refusal::NoRoute)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(id: i64, owner: &str, name: &str, n: &str) -> Talker {
        Talker {
            id,
            owner: owner.into(),
            name: name.into(),
            account: Account::peerdial(n).unwrap(),
            verified: true,
        }
    }

    fn sip(id: i64, owner: &str, name: &str, aor: &str, server: &str) -> Talker {
        Talker {
            id,
            owner: owner.into(),
            name: name.into(),
            account: Account::sip(aor, server).unwrap(),
            verified: true,
        }
    }

    const A: &str = "886-02-00000001";
    const B: &str = "886-02-00000002";
    const KAM: &str = "127.0.0.1:5070";
    const OTHER: &str = "127.0.0.1:5080";

    #[test]
    fn the_designated_talker_is_used_on_its_server() {
        let mine = [num(1, A, "phone", "886-02-11111111"), sip(2, A, "desk phone", "sip:a@kam", KAM)];
        let theirs = Callee::User(vec![num(3, B, "tv", "886-02-22222222"), sip(4, B, "talker", "sip:b@kam", KAM)]);
        let p = match_pair(&mine, &Wanted::Named("desk phone".into()), &theirs).unwrap();
        assert_eq!((p.caller.id, p.callee.id, p.why), (2, 4, Why::SameServer));
        assert_eq!(p.route, Route::Foreign { server: KAM.into() });
    }

    #[test]
    fn any_prefers_a_shared_region_then_a_shared_server_then_across_regions() {
        let mine = [sip(2, A, "desk", "sip:a@kam", KAM), num(1, A, "phone", "886-02-11111111")];
        let theirs = Callee::User(vec![sip(4, B, "talker", "sip:b@kam", KAM), num(3, B, "tv", "886-02-22222222")]);
        let p = match_pair(&mine, &Wanted::Any, &theirs).unwrap();
        assert_eq!((p.caller.id, p.callee.id, p.why), (1, 3, Why::SameRegion));
        assert_eq!(p.route, Route::Region { area: "886-02".into() });

        let theirs = Callee::User(vec![num(3, B, "tv", "886-03-22222222"), sip(4, B, "talker", "sip:b@kam", KAM)]);
        let p = match_pair(&mine, &Wanted::Any, &theirs).unwrap();
        assert_eq!((p.caller.id, p.callee.id, p.why), (2, 4, Why::SameServer));

        let theirs = Callee::User(vec![sip(4, B, "talker", "sip:b@other", OTHER), num(3, B, "tv", "886-03-22222222")]);
        let p = match_pair(&mine, &Wanted::Any, &theirs).unwrap();
        assert_eq!((p.caller.id, p.callee.id, p.why), (1, 3, Why::AcrossRegions));
        assert_eq!(p.route, Route::Across { area: "886-02".into() });

        // A bare number is a peerdial talker of its own.
        let p = match_pair(&mine, &Wanted::Any, &Callee::Number("886-02-33333333".into())).unwrap();
        assert_eq!((p.caller.id, p.why), (1, Why::SameRegion));
        assert_eq!(
            p.callee.account,
            Account::Peerdial {
                number: "886-02-33333333".into()
            }
        );
    }

    #[test]
    fn refusals_say_why() {
        let mut mine = vec![sip(2, A, "desk", "sip:a@kam", KAM)];
        let theirs = Callee::User(vec![sip(4, B, "talker", "sip:b@other", OTHER)]);
        assert_eq!(
            match_pair(&mine, &Wanted::Named("tv".into()), &theirs),
            Err(Refusal::NotOwned("tv".into()))
        );
        assert_eq!(match_pair(&mine, &Wanted::Any, &theirs), Err(Refusal::NoRoute));
        assert_eq!(
            match_pair(&mine, &Wanted::Any, &Callee::Number("886-02-33333333".into())),
            Err(Refusal::NoRoute)
        );
        assert_eq!(
            match_pair(&mine, &Wanted::Any, &Callee::User(vec![])),
            Err(Refusal::CalleeUnreachable)
        );
        let mut unverified = sip(5, B, "talker", "sip:b@kam", KAM);
        unverified.verified = false;
        assert_eq!(
            match_pair(&mine, &Wanted::Any, &Callee::User(vec![unverified])),
            Err(Refusal::CalleeUnreachable)
        );
        mine[0].verified = false;
        assert_eq!(
            match_pair(&mine, &Wanted::Named("desk".into()), &theirs),
            Err(Refusal::Unverified("desk".into()))
        );
        assert_eq!(match_pair(&mine, &Wanted::Any, &theirs), Err(Refusal::NoTalker));
        assert_eq!(match_pair(&[], &Wanted::Any, &theirs), Err(Refusal::NoTalker));
    }
}
