//! The yellow pages: the area's search page (`/`), the same search as JSON
//! for the top (`GET /api/v1/yellow?q=`), and the top's page that shows
//! every region's answers together ([`render_top`]; the top asks the
//! regions, this module only draws what they said).
//!
//! Only public fields ever leave the server: a result carries the fields
//! its owner marked public, and its presence only when that is public too
//! (friends-only presence is never shown to the anonymous searcher).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use peerdial_number::Number;
use peerdial_store::{search_terms, ProfileRow, FIELDS};
use serde::{Deserialize, Serialize};
use tower_sessions::Session;

use crate::i18n::{self, Msg};
use crate::pages::{page, unavailable, Page};
use crate::Portal;

/// Most results a search shows.
pub const MAX_RESULTS: i64 = 50;
/// Longest query taken, in characters.
pub const MAX_QUERY: usize = 200;

pub(crate) fn routes() -> Router<Arc<Portal>> {
    Router::new().route("/", get(yellow)).route("/api/v1/yellow", get(yellow_json))
}

/// One person found, as a region tells the top.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Listing {
    /// `886-02-12345678`.
    pub number: String,
    /// Public fields only, by their names in [`FIELDS`].
    pub fields: BTreeMap<String, String>,
    /// Presence, when its owner made it public.
    #[serde(default)]
    pub presence: Option<String>,
    /// The portal of the person's region; set by a top that passes a
    /// country server's answers on (a region leaves it out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub portal: Option<String>,
}

/// A region's (or a country server's) answer to `GET /api/v1/yellow`.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct YellowAnswer {
    pub results: Vec<Listing>,
}

/// The query, cut to [`MAX_QUERY`] characters.
pub fn query_of(query: &HashMap<String, String>) -> String {
    query.get("q").map(|q| q.chars().take(MAX_QUERY).collect()).unwrap_or_default()
}

async fn search(portal: &Portal, q: &str) -> Result<Vec<ProfileRow>, Response> {
    let terms = search_terms(q);
    let (lo, hi) = portal.range();
    // Typed something, but nothing searchable in it: nobody matches.
    if terms.is_empty() && !q.trim().is_empty() {
        return Ok(Vec::new());
    }
    portal.store.search_profiles(&terms, lo, hi, MAX_RESULTS).await.map_err(unavailable)
}

fn public_fields(r: &ProfileRow) -> impl Iterator<Item = (usize, String)> + '_ {
    (0..FIELDS.len())
        .filter(|&i| r.is_public(i) && !r.fields[i].is_empty())
        .map(|i| (i, r.fields[i].clone()))
}

fn listing(portal: &Portal, r: &ProfileRow) -> Option<Listing> {
    let n = Number::from_u64(r.number as u64).ok()?;
    let presence = (!portal.link.friends_only(n)).then(|| portal.link.presence(n, n)).flatten();
    Some(Listing {
        number: n.to_string(),
        fields: public_fields(r).map(|(i, v)| (FIELDS[i].to_string(), v)).collect(),
        presence,
        portal: None,
    })
}

async fn yellow_json(State(portal): State<Arc<Portal>>, Query(query): Query<HashMap<String, String>>) -> Response {
    let rows = match search(&portal, &query_of(&query)).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let results = rows.iter().filter_map(|r| listing(&portal, r)).collect();
    Json(YellowAnswer { results }).into_response()
}

/// One result as a page shows it (`templates/result.html`).
struct Entry {
    number: String,
    digits: String,
    /// The person's region's portal; empty on that region's own page.
    portal: String,
    presence: Option<String>,
    fields: Vec<(&'static str, String)>,
}

/// A listing as a page shows it, labels in the page's language.
fn entry(t: &'static Msg, l: Listing, portal: String) -> Option<Entry> {
    let n = Number::parse(&l.number).ok()?;
    let fields = FIELDS
        .iter()
        .enumerate()
        .filter_map(|(i, name)| Some((t.fields[i], l.fields.get(*name)?.clone())))
        .collect();
    Some(Entry {
        number: n.to_string(),
        digits: n.digits(),
        portal,
        presence: l.presence,
        fields,
    })
}

#[derive(Template, WebTemplate)]
#[template(path = "yellow.html")]
struct Yellow {
    p: Page,
    q: String,
    results: Vec<Entry>,
    error: Option<String>,
}

async fn yellow(
    State(portal): State<Arc<Portal>>,
    session: Session,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let p = page(&portal, &session, &headers, "/", false).await;
    let q = query_of(&query);
    let rows = match search(&portal, &q).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let results = rows
        .iter()
        .filter_map(|r| entry(p.t, listing(&portal, r)?, String::new()))
        .collect();
    Yellow {
        p,
        q,
        results,
        error: None,
    }
    .into_response()
}

/// What the top heard from one region.
#[derive(Debug, Clone)]
pub struct RegionReport {
    /// `886-02`.
    pub area: String,
    /// The region's portal (`http://host:port`), for links and pictures.
    pub portal: String,
    /// Why it is missing from the results (slow, down, a bad answer).
    pub silent: Option<String>,
}

#[derive(Template, WebTemplate)]
#[template(path = "top_yellow.html")]
struct TopYellow {
    p: Page,
    q: String,
    country: String,
    area: String,
    reports: Vec<RegionReport>,
    results: Vec<Entry>,
    error: Option<String>,
}

/// The top's yellow pages: what each region answered (each listing with
/// its region's `portal`), merged in number order, and which regions did
/// not answer.
pub fn render_top(
    headers: &HeaderMap,
    (q, country, area): (&str, &str, &str),
    reports: Vec<RegionReport>,
    mut found: Vec<Listing>,
    error: Option<String>,
    who: Option<(String, String)>,
) -> Response {
    let t: &'static Msg = i18n::choose(headers);
    let (signed_in, csrf) = who.map_or((None, String::new()), |(n, c)| (Some(n), c));
    found.sort_by(|a, b| a.number.cmp(&b.number));
    let results = found
        .into_iter()
        .filter_map(|mut f| {
            let portal = f.portal.take()?;
            entry(t, f, portal)
        })
        .collect();
    TopYellow {
        p: Page {
            t,
            csrf,
            signed_in,
            path: "/",
        },
        q: q.into(),
        country: country.into(),
        area: area.into(),
        reports,
        results,
        error,
    }
    .into_response()
}
