//! Conferences hosted by the top (issue 13, first version; see
//! docs/decisions.md): a dialer asks `POST /api/v1/calls` with
//! `"callees": [..]` (two or more) or adds someone to a running
//! conference with `POST /api/v1/calls/{id}/participants` — a connected
//! two-party call too: its two legs move into a new room by re-INVITE
//! (`Conference::adopt`) and the newcomer is called. The top's
//! controller calls each talker with an offer naming its own port on a
//! `peerdial_media::room::Room` (Opus, PCMU, PCMA and telephone-event;
//! the talker picks), adds it to the mixer when it answers, and removes it
//! when it leaves; `peerdial_sip::conference::Conference` decides when it
//! is over. Audio only.
//!
//! It is not the mixer (`peerdial_media::mixer`) nor the matching
//! (`peerdial_directory`): each callee's talker is matched as for a call.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use peerdial_directory::{match_pair, Account, Callee, Wanted};
use peerdial_net::http_server::error;
use peerdial_number::Number;
use serde::Deserialize;
use serde_json::json;

use crate::calls::{admitted, callee_of, leg_of, refusal};
use crate::talkers::talkers_of;
use crate::TopShared;
use peerdial_control::api::{Add, Member, Start, Via};
use peerdial_control::{CallBook, Command, Growable};

/// Talkers in one conference, the dialer's own included.
pub const MAX_TALKERS: usize = 8;
pub use peerdial_control::describe_conf as describe;

/// `POST /api/v1/calls` with `callees`: matches a talker of each callee,
/// then opens the conference. The dialer's talker is the one matched for
/// the first callee.
pub(crate) async fn place(shared: &Arc<TopShared>, me: Number, wanted: &Wanted, callees: &[String]) -> Response {
    if callees.len() < 2 || callees.len() + 1 > MAX_TALKERS {
        return error(
            StatusCode::BAD_REQUEST,
            format!("a conference has 2 to {} callees besides your talker", MAX_TALKERS - 1),
        );
    }
    let mine = match talkers_of(shared, me).await {
        Ok(t) => t,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, format!("the top's database: {e}")),
    };
    let mut legs = Vec::new();
    // Each talker's number, if it is a peerdial number.
    let mut numbers = Vec::new();
    let mut shown = Vec::new();
    for c in callees {
        let theirs = match callee_of(shared, c).await {
            Ok(t) => t,
            Err(r) => return r,
        };
        let pair = match match_pair(&mine, wanted, &theirs) {
            Ok(p) => p,
            Err(r) => return refusal(&r),
        };
        if legs.is_empty() {
            match leg_of(shared, &pair.caller.account).await {
                Ok(l) => legs.push((pair.caller.name.clone(), l)),
                Err(e) => return error(StatusCode::CONFLICT, format!("your talker {:?}: {e}", pair.caller.name)),
            }
            numbers.push(number_of(&pair.caller.account));
        }
        numbers.push(number_of(&pair.callee.account));
        match leg_of(shared, &pair.callee.account).await {
            Ok(l) => legs.push((format!("{c} ({})", pair.callee.name), l)),
            Err(e) => return error(StatusCode::CONFLICT, format!("{c}'s talker {:?}: {e}", pair.callee.name)),
        }
        shown.push(json!({"callee": c, "talker": pair.callee.name}));
    }
    let summary = json!({
        "conference": true,
        "talker": legs[0].0,
        "callees": shown,
    });
    // Every talker a number of one region that joined here: that region
    // hosts it. Mixed conferences stay here.
    let regions: Option<Vec<_>> = numbers
        .iter()
        .map(|n| n.as_deref().and_then(|n| crate::handoff::region_of(shared, n)))
        .collect();
    if let Some(region) = regions
        .filter(|r| r.windows(2).all(|w| w[0] == w[1]))
        .and_then(|r| r.into_iter().next())
    {
        let talkers = legs
            .into_iter()
            .zip(numbers)
            .map(|((who, _), number)| Member {
                who,
                number: number.expect("all numbers"),
            })
            .collect();
        let req = Start {
            talkers: Some(talkers),
            ..Start::default()
        };
        return crate::handoff::start(shared, me, region, req, summary).await;
    }
    let id = shared.dialing.book.open(me, summary.clone());
    shared.dialing.controller.send(Command::Conference { id, legs });
    crate::calls::created(id, summary)
}

fn number_of(account: &Account) -> Option<String> {
    match account {
        Account::Peerdial { number } => Some(number.clone()),
        Account::Sip { .. } => None,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JoinRequest {
    callee: String,
}

/// `POST /api/v1/calls/{id}/participants {"callee": …}`: one more talker
/// in a running conference of the dialer's, or in a connected two-party
/// call, which becomes a conference.
pub(crate) async fn join(
    State(shared): State<Arc<TopShared>>,
    Path(id): Path<u64>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (me, req): (Number, JoinRequest) = match admitted(&shared, &headers, body, CallBook::admit_join).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let mine = match talkers_of(&shared, me).await {
        Ok(t) => t,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, format!("the top's database: {e}")),
    };
    // The newcomer first: a refusal leaves the call as it was.
    let theirs = match callee_of(&shared, &req.callee).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let grow = match shared.dialing.book.growable(id, me) {
        None => return error(StatusCode::NOT_FOUND, format!("you have no call {id}")),
        Some(Growable::No) => {
            return error(
                StatusCode::CONFLICT,
                format!("call {id} is not running: only a connected call or a running conference takes someone more"),
            )
        }
        Some(Growable::Conference) => None,
        Some(Growable::TwoParty(labels)) => Some(labels),
    };
    let answer = newcomer(&shared, id, &req.callee, (&mine, &theirs), grow.clone()).await;
    if grow.is_some() && answer.status() != StatusCode::ACCEPTED {
        // Refused before anyone was called: still a two-party call.
        shared.dialing.book.not_grown(id);
    }
    answer
}

/// Calls the newcomer `callee` (`theirs`: their talkers) into call `id`
/// (`grow`: a two-party call becoming a conference), where it runs.
async fn newcomer(
    shared: &Arc<TopShared>,
    id: u64,
    callee: &str,
    (mine, theirs): (&[peerdial_directory::Talker], &Callee),
    grow: Option<[String; 2]>,
) -> Response {
    if let Some(rc) = shared.dialing.handed.get(id) {
        // The region runs it: the newcomer's peerdial talker, one of that
        // region's numbers first; the region calls another region's
        // number where DNS says it is. A foreign account it cannot call.
        let candidates: Vec<(String, String)> = match theirs {
            Callee::User(ts) => ts
                .iter()
                .filter(|t| t.verified)
                .filter_map(|t| Some((t.name.clone(), number_of(&t.account)?)))
                .collect(),
            Callee::Number(n) => vec![(n.clone(), n.clone())],
        };
        let local = |n: &str| crate::handoff::region_of(shared, n).is_some_and(|(p, _)| p == rc.prefix);
        let found = candidates.iter().find(|(_, n)| local(n)).or_else(|| candidates.first()).cloned();
        let add = match found {
            Some((name, number)) => Add {
                who: format!("{callee} ({name})"),
                number,
                grow: grow.clone(),
                via: None,
            },
            // No peerdial talker: a verified foreign account, which the
            // region calls through its server.
            None => {
                let foreign = match theirs {
                    Callee::User(ts) => ts.iter().find(|t| t.verified && number_of(&t.account).is_none()),
                    Callee::Number(_) => None,
                };
                let Some(t) = foreign else {
                    return error(StatusCode::CONFLICT, format!("{callee} has no verified talker"));
                };
                let leg = match leg_of(shared, &t.account).await {
                    Ok(l) => l,
                    Err(e) => return error(StatusCode::CONFLICT, format!("{callee}'s talker {:?}: {e}", t.name)),
                };
                Add {
                    who: format!("{callee} ({})", t.name),
                    number: leg.uri.clone(),
                    grow: grow.clone(),
                    via: Some(Via {
                        aor: leg.uri,
                        server: leg.next_hop,
                    }),
                }
            }
        };
        return crate::handoff::add(shared, id, &rc, add).await;
    }
    let pair = match match_pair(mine, &Wanted::Any, theirs) {
        Ok(p) => p,
        Err(r) => return refusal(&r),
    };
    let leg = match leg_of(shared, &pair.callee.account).await {
        Ok(l) => l,
        Err(e) => return error(StatusCode::CONFLICT, format!("{callee}'s talker {:?}: {e}", pair.callee.name)),
    };
    let who = format!("{callee} ({})", pair.callee.name);
    match grow {
        Some(labels) => shared.dialing.controller.send(Command::Grow {
            id,
            labels,
            who: who.clone(),
            leg,
        }),
        None => shared.dialing.controller.send(Command::Join { id, who: who.clone(), leg }),
    }
    (StatusCode::ACCEPTED, Json(json!({"id": id, "calling": who}))).into_response()
}
