//! `peerdial bench yellow`: the yellow pages' keyword search over many
//! profiles — searches per second and latency p50/p99 — on SQLite (FTS5)
//! and, given a database URL, PostgreSQL (the store's posting table),
//! each next to a plain `LIKE '%term%'` scan of the same rows as the floor
//! to beat.
//!
//! The profiles are made up from a seeded generator (names, cities,
//! organisations, interests, an introduction; most fields public, 5 %
//! unlisted), loaded through the store in bulk transactions, then searched
//! by a fixed mix of one- and two-term queries drawn from the same
//! vocabulary (whole words and three-letter prefixes), as people type them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use peerdial_store::portal::{search_terms, ProfileRow};
use peerdial_store::Store;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::bench_tools::percentile;

/// First number of the made-up area (886-02).
const BASE: i64 = 8_860_200_000_000;
/// Searches per method at most, whatever the time allows.
const MAX_SEARCHES: usize = 200_000;
/// The slowest searches of a run, shown on stderr.
const SLOWEST: usize = 8;
/// Rows loaded per transaction.
const BATCH: usize = 5_000;

/// A made-up vocabulary: pronounceable words from syllables, fixed by seed.
struct Vocabulary {
    words: Vec<String>,
    cities: Vec<String>,
}

impl Vocabulary {
    fn new(rng: &mut StdRng) -> Vocabulary {
        const SYL: [&str; 24] = [
            "ka", "lo", "mi", "ta", "shi", "ren", "po", "lan", "yu", "chen", "wa", "ni", "so", "ha", "tor", "vel", "an", "zu", "mei",
            "dor", "li", "qin", "ro", "fa",
        ];
        let mut word = |n: usize| (0..n).map(|_| SYL[rng.gen_range(0..SYL.len())]).collect::<String>();
        let mut words: Vec<String> = (0..6000).map(|i| word(2 + i % 3)).collect();
        words.sort();
        words.dedup();
        let cities = (0..300).map(|_| word(3)).collect();
        Vocabulary { words, cities }
    }

    /// A word, the common ones more often (a rough Zipf: index² skew).
    fn word(&self, rng: &mut StdRng) -> &str {
        let x: f64 = rng.gen();
        &self.words[((x * x) * self.words.len() as f64) as usize]
    }

    fn words(&self, rng: &mut StdRng, n: usize) -> String {
        (0..n).map(|_| self.word(rng).to_string()).collect::<Vec<_>>().join(" ")
    }

    fn profile(&self, rng: &mut StdRng, i: i64) -> ProfileRow {
        let city = self.cities[rng.gen_range(0..self.cities.len())].clone();
        ProfileRow {
            number: BASE + i,
            fields: [
                self.words(rng, 2),
                city,
                format!("{} Ltd", self.word(rng)),
                self.words(rng, 3),
                self.words(rng, 10),
            ],
            // Most people show everything; some hide a field or two.
            public_mask: if rng.gen_bool(0.7) { 0b11111 } else { rng.gen_range(0..32) },
            listed: rng.gen_bool(0.95),
        }
    }

    /// What people type: a word, a city and a word, a name word, or the
    /// first three letters of a word.
    fn query(&self, rng: &mut StdRng) -> String {
        match rng.gen_range(0..10) {
            0..=3 => self.word(rng).to_string(),
            4..=6 => format!("{} {}", self.cities[rng.gen_range(0..self.cities.len())], self.word(rng)),
            7 | 8 => self.word(rng).chars().take(3).collect(),
            _ => self.words(rng, 2),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Method {
    FullText,
    Like,
}

struct Outcome {
    searches: usize,
    per_sec: f64,
    p50: f64,
    p99: f64,
    mean_hits: f64,
    /// The slowest searches: milliseconds and the query's terms.
    slowest: Vec<(f64, usize)>,
}

/// `clients` tasks searching the query list, each in its own order, for `seconds` (or
/// until `MAX_SEARCHES`).
async fn run(store: &Store, queries: Arc<Vec<Vec<String>>>, method: Method, clients: usize, seconds: u64) -> Result<Outcome> {
    let (lo, hi) = (BASE, BASE + 99_999_999);
    let start = Instant::now();
    let deadline = start + Duration::from_secs(seconds);
    let per_client = MAX_SEARCHES / clients;
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (store, queries) = (store.clone(), queries.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut hits = 0usize;
            // Each client its own order: with one order at different
            // offsets, clients drift into step and run each query at the
            // same moment, which measures their contention, not a search.
            let mut order: Vec<usize> = (0..queries.len()).collect();
            order.shuffle(&mut StdRng::seed_from_u64(c as u64));
            let mut i = 0;
            while Instant::now() < deadline && lat.len() < per_client {
                let q = order[i % order.len()];
                let terms = &queries[q];
                i += 1;
                let t = Instant::now();
                let rows = match method {
                    Method::FullText => store.search_profiles(terms, lo, hi, 20).await?,
                    Method::Like => store.scan_profiles(terms, lo, hi, 20).await?,
                };
                lat.push((t.elapsed().as_secs_f64() * 1000.0, q));
                hits += rows.len();
            }
            Ok::<_, peerdial_store::StoreError>((lat, hits))
        }));
    }
    let mut lat = Vec::new();
    let mut hits = 0;
    for t in tasks {
        let (l, h) = t.await??;
        lat.extend(l);
        hits += h;
    }
    let elapsed = start.elapsed().as_secs_f64();
    lat.sort_by(|a, b| a.0.total_cmp(&b.0));
    anyhow::ensure!(!lat.is_empty(), "no search finished");
    let slowest = lat.iter().rev().take(SLOWEST).copied().collect();
    let lat: Vec<f64> = lat.into_iter().map(|(ms, _)| ms).collect();
    Ok(Outcome {
        searches: lat.len(),
        per_sec: lat.len() as f64 / elapsed,
        p50: percentile(&lat, 0.5),
        p99: percentile(&lat, 0.99),
        mean_hits: hits as f64 / lat.len() as f64,
        slowest,
    })
}

/// Loads `profiles` made-up profiles in bulk transactions, then refreshes
/// the planner's statistics. The same profiles every time: the generator
/// starts from its seed. A database that holds them already (a kept one)
/// is used as it is; one holding other profiles is refused.
async fn load(store: &Store, vocab: &Vocabulary, profiles: u32) -> Result<()> {
    let held = store.count_profiles(BASE, BASE + 99_999_999).await?;
    if held == i64::from(profiles) {
        eprintln!("the database holds the {profiles} profiles already: not loaded again");
        return Ok(());
    }
    anyhow::ensure!(held == 0, "the database holds {held} other profiles: give it an empty one");
    let mut rng = StdRng::seed_from_u64(7);
    let mut i = 0i64;
    while i < profiles as i64 {
        let n = (profiles as i64 - i).min(BATCH as i64);
        let batch: Vec<ProfileRow> = (i..i + n).map(|k| vocab.profile(&mut rng, k)).collect();
        store.put_profiles(&batch, 0).await?;
        i += n;
    }
    store.analyze().await?;
    Ok(())
}

/// What `peerdial bench yellow` measures and where.
#[derive(clap::Args)]
pub struct YellowArgs {
    #[arg(long, default_value_t = 1_000_000)]
    profiles: u32,
    /// Seconds of searching per database and method.
    #[arg(long, default_value_t = 10)]
    seconds: u32,
    /// Concurrent searching tasks.
    #[arg(long, default_value_t = 4)]
    clients: u32,
    /// A PostgreSQL database URL (an empty database, e.g. from
    /// scripts/pg-throwaway) to measure too.
    #[arg(long, value_name = "URL")]
    postgres: Option<String>,
    /// The SQLite file to use and keep (default: a temporary one); `off`
    /// measures PostgreSQL only. A database that holds the bench's
    /// profiles already is not loaded again.
    #[arg(long, value_name = "PATH")]
    sqlite: Option<String>,
    /// Leave the LIKE scan (the floor) out.
    #[arg(long)]
    no_floor: bool,
}

pub async fn yellow(args: YellowArgs) -> Result<()> {
    let YellowArgs {
        profiles,
        seconds,
        clients,
        postgres,
        sqlite,
        no_floor,
    } = args;
    let dir = tempfile::tempdir()?;
    let mut rng = StdRng::seed_from_u64(2026);
    let vocab = Vocabulary::new(&mut rng);
    let queries: Vec<Vec<String>> = (0..1000).map(|_| search_terms(&vocab.query(&mut rng))).collect();
    let queries = Arc::new(queries);
    let mut backends = Vec::new();
    match sqlite.as_deref() {
        Some("off") => {}
        Some(path) => backends.push(("SQLite (FTS5)", format!("sqlite:{path}"))),
        None => backends.push(("SQLite (FTS5)", format!("sqlite:{}", dir.path().join("yellow.db").display()))),
    }
    if let Some(pg) = postgres {
        backends.push(("PostgreSQL (posting table)", pg));
    }
    println!("| database | search | profiles | searches | searches/s | p50 ms | p99 ms | results per search |");
    println!("|---|---|---|---|---|---|---|---|");
    for (name, url) in backends {
        let store = Store::open(&url).await.with_context(|| format!("opening {name}"))?;
        let t = Instant::now();
        load(&store, &vocab, profiles).await?;
        eprintln!(
            "{name}: {profiles} profiles loaded and analysed in {:.0} s",
            t.elapsed().as_secs_f64()
        );
        let methods = [("full text", Method::FullText), ("LIKE scan (floor)", Method::Like)];
        for (label, method) in methods.into_iter().take(if no_floor { 1 } else { 2 }) {
            let o = run(&store, queries.clone(), method, clients as usize, seconds as u64).await?;
            println!(
                "| {name} | {label} | {profiles} | {} | {:.0} | {:.2} | {:.2} | {:.1} |",
                o.searches, o.per_sec, o.p50, o.p99, o.mean_hits
            );
            let slowest: Vec<String> = o.slowest.iter().map(|(ms, q)| format!("{:?} {ms:.1} ms", queries[*q])).collect();
            eprintln!("{name}, {label}: slowest {}", slowest.join(", "));
        }
    }
    Ok(())
}

/// The `name=value` of a response's Set-Cookie.
fn set_cookie(head: &str) -> Option<String> {
    crate::bench_greetings::header(head, "set-cookie").and_then(|v| v.split(';').next().map(str::to_string))
}

/// The hidden CSRF field's value in a page.
fn csrf_in(page: &str) -> Option<String> {
    let at = page.find("name=\"csrf\" value=\"")? + "name=\"csrf\" value=\"".len();
    Some(page[at..].split('"').next()?.to_string())
}

/// Percent-encodes a query value.
fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            b' ' => "+".to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `peerdial bench pages`: the portal's yellow pages (a search per
/// request) and a signed-in profile page, rendered under concurrent load
/// (wrk, keep-alive), with their p50/p99.
pub async fn pages(profiles: u32, seconds: u32, connections: u32) -> Result<()> {
    use crate::bench_greetings::{http, wrk, wrk_requests};
    let dir = tempfile::tempdir()?;
    let region = crate::bench_tools::start_region(&dir.path().join("region"), |_| {}).await?;
    let addr = region.endpoints.http;
    let mut rng = StdRng::seed_from_u64(2026);
    let vocab = Vocabulary::new(&mut rng);
    let queries: Vec<String> = (0..1000).map(|_| vocab.query(&mut rng)).collect();
    load(&region.shared.store, &vocab, profiles).await?;

    // One person signs in, as in a browser: first password set with the
    // phone's credentials, then the sign-in form with its CSRF token.
    let (user, sip_password) = crate::bench_tools::provision_many(addr, 1).await?.remove(0);
    let cookie = tokio::task::spawn_blocking(move || -> Result<String> {
        let basic = crate::bench_tools::basic(&user, &sip_password);
        let (st, _, body) = http(
            addr,
            "POST",
            "/api/v1/account/password",
            &[("Authorization", basic), ("Content-Type", "application/json".into())],
            br#"{"password": "bench-password-1"}"#,
        )?;
        anyhow::ensure!(st == 200, "setting the password: {st} {}", String::from_utf8_lossy(&body));
        let (_, head, body) = http(addr, "GET", "/signin", &[], b"")?;
        let cookie = set_cookie(&head).context("no session cookie from /signin")?;
        let csrf = csrf_in(&String::from_utf8_lossy(&body)).context("no CSRF field on /signin")?;
        let form = format!("csrf={}&number={user}&password=bench-password-1", encode(&csrf));
        let (st, head, _) = http(
            addr,
            "POST",
            "/signin",
            &[
                ("Cookie", cookie.clone()),
                ("Content-Type", "application/x-www-form-urlencoded".into()),
            ],
            form.as_bytes(),
        )?;
        anyhow::ensure!(st == 303, "sign-in answered {st}");
        Ok(set_cookie(&head).unwrap_or(cookie))
    })
    .await??;
    // The profile page must really be the signed-in one.
    let (st, _, body) = {
        let c = cookie.clone();
        tokio::task::spawn_blocking(move || http(addr, "GET", "/profile", &[("Cookie", c)], b"")).await??
    };
    anyhow::ensure!(
        st == 200 && String::from_utf8_lossy(&body).contains("name=\"display_name\""),
        "not signed in: {st}"
    );

    let yellow: Vec<(String, Vec<(&str, String)>)> = queries.iter().map(|q| (format!("/?q={}", encode(q)), Vec::new())).collect();
    let profile = vec![("/profile".to_string(), vec![("Cookie", cookie)])];
    println!("| page | profiles | connections | requests | requests/s | p50 ms | p99 ms | bad answers |");
    println!("|---|---|---|---|---|---|---|---|");
    for (name, reqs) in [
        ("yellow pages, a keyword search each", &yellow),
        ("profile page, signed in", &profile),
    ] {
        let w = wrk(
            dir.path(),
            "pages",
            addr,
            &wrk_requests(addr, reqs),
            connections,
            seconds,
            false,
            || 0.0,
        )
        .await?;
        println!(
            "| {name} | {profiles} | {connections} | {} | {:.0} | {:.2} | {:.2} | {} |",
            w.requests, w.rate, w.p50, w.p99, w.bad
        );
    }
    region.shutdown().await;
    Ok(())
}
