//! The top's web pages for people (issue 10): `/` is the yellow pages
//! over every region of the tree, `GET /api/v1/yellow` the same as JSON
//! (so a top above country servers can ask them as it asks regions).
//!
//! The top keeps no profiles: each search goes to every joined child in
//! parallel, each with [`DEADLINE`]; a child that is slow, down or answers
//! nonsense is named on the page and left out, and never holds the page
//! up. Filters by country code and area narrow the children asked. The
//! pages are drawn by `peerdial_portal::yellow` (same templates and
//! languages as the regions' portals). These pages sit inside the top's
//! session layer (`peerdial_portal::top::router`), so a person signed in
//! at the top (`signin.rs`) sees their number on them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use peerdial_portal::yellow::{query_of, render_top, Listing, RegionReport, YellowAnswer};
use peerdial_portal::Session;
use tokio::task::JoinSet;

use crate::{Child, TopShared};

/// How long a search waits for each child.
pub const DEADLINE: Duration = Duration::from_millis(1500);
/// Most listings taken from one child.
const PER_CHILD: usize = 50;

pub fn routes() -> Router<Arc<TopShared>> {
    Router::new()
        .route("/", get(page))
        .route("/api/v1/yellow", get(json))
        .route("/dial", get(dialer))
        .merge(peerdial_portal::lang_routes())
}

/// The dialer page: a token, a talker, a callee, progress as it comes.
/// Plain HTML and script over the calls API (text is only ever set as
/// text, never as markup). A person signed in at the top gets a fresh
/// token of their own filled in (the page is then not cached); anyone
/// else pastes one from `POST /api/v1/session`.
async fn dialer(State(shared): State<Arc<TopShared>>, session: Session) -> Response {
    let page = include_str!("dialer.html");
    let signed_in = peerdial_portal::session::current(&shared.store, &session).await;
    let Some(number) = signed_in.and_then(|(n, _)| peerdial_number::Number::from_u64(n as u64).ok()) else {
        return axum::response::Html(page.replace("{{TOKEN}}", "")).into_response();
    };
    match crate::users::mint(&shared, number).await {
        // The token is hex: nothing in it needs escaping.
        Ok((token, _)) => (
            [(axum::http::header::CACHE_CONTROL, "no-store")],
            axum::response::Html(page.replace("{{TOKEN}}", &token)),
        )
            .into_response(),
        Err(e) => peerdial_net::http_server::error(axum::http::StatusCode::SERVICE_UNAVAILABLE, format!("the top's database: {e}")),
    }
}

/// The filters as typed: a country code (3 digits) and an area
/// (`886-02`); digits only, what is not is ignored.
struct Filter {
    country: String,
    area: String,
}

impl Filter {
    fn of(query: &HashMap<String, String>) -> Filter {
        let field = |k: &str, max: usize| {
            query
                .get(k)
                .map(|v| v.trim().chars().take(max).collect::<String>())
                .unwrap_or_default()
        };
        Filter {
            country: field("country", 3),
            area: field("area", 6),
        }
    }

    /// The digits every number searched must start with.
    fn prefix(&self) -> String {
        let area: String = self.area.chars().filter(char::is_ascii_digit).collect();
        let country: String = self.country.chars().filter(char::is_ascii_digit).collect();
        if area.len() > country.len() {
            area
        } else {
            country
        }
    }
}

/// Every child whose numbers may match `prefix`, asked at once.
async fn ask_all(shared: &TopShared, q: &str, prefix: &str) -> (Vec<RegionReport>, Vec<Listing>) {
    let children: Vec<Child> = shared
        .children
        .lock()
        .expect("children lock")
        .values()
        .filter(|c| c.prefix.starts_with(prefix) || prefix.starts_with(&c.prefix))
        .cloned()
        .collect();
    let query = serde_urlencoded::to_string([("q", q), ("area", prefix)]).unwrap_or_default();
    let mut asks = JoinSet::new();
    for c in children {
        let path = format!("/api/v1/yellow?{query}");
        asks.spawn(async move {
            let answer = tokio::time::timeout(DEADLINE, peerdial_net::http_client::request("GET", &c.http, &path, None)).await;
            let outcome = match answer {
                Err(_) => Err(format!("no answer within {} ms", DEADLINE.as_millis())),
                Ok(Err(e)) => Err(e.to_string()),
                Ok(Ok((200, body))) => serde_json::from_str::<YellowAnswer>(&body).map_err(|e| format!("an answer we cannot read: {e}")),
                Ok(Ok((status, _))) => Err(format!("it answered {status}")),
            };
            (c, outcome)
        });
    }
    let (mut reports, mut found) = (Vec::new(), Vec::new());
    while let Some(done) = asks.join_next().await {
        let Ok((c, outcome)) = done else { continue };
        let silent = match outcome {
            Ok(a) => {
                found.extend(
                    a.results
                        .into_iter()
                        // Only numbers of that child, and of the filter.
                        .filter(|l| {
                            let digits: String = l.number.chars().filter(char::is_ascii_digit).collect();
                            digits.starts_with(&c.prefix) && digits.starts_with(prefix)
                        })
                        .take(PER_CHILD)
                        .map(|mut l| {
                            l.portal.get_or_insert_with(|| c.http.trim_end_matches('/').to_string());
                            l
                        }),
                );
                None
            }
            Err(why) => {
                tracing::info!(child = %c.area(), %why, "a child did not answer a yellow pages search");
                Some(why)
            }
        };
        reports.push(RegionReport {
            area: c.area(),
            portal: c.http.trim_end_matches('/').to_string(),
            silent,
        });
    }
    reports.sort_by(|a, b| a.area.cmp(&b.area));
    (reports, found)
}

async fn page(
    State(shared): State<Arc<TopShared>>,
    session: Session,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let (q, filter) = (query_of(&query), Filter::of(&query));
    let (reports, found) = ask_all(&shared, &q, &filter.prefix()).await;
    let who = peerdial_portal::top::who(&shared.store, &session).await;
    render_top(&headers, (&q, &filter.country, &filter.area), reports, found, None, who)
}

async fn json(State(shared): State<Arc<TopShared>>, Query(query): Query<HashMap<String, String>>) -> Response {
    let (q, filter) = (query_of(&query), Filter::of(&query));
    let (_, mut results) = ask_all(&shared, &q, &filter.prefix()).await;
    results.sort_by(|a, b| a.number.cmp(&b.number));
    Json(YellowAnswer { results }).into_response()
}
