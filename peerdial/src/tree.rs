//! `peerdial top` (a tree node) and `peerdial up` (a whole network on one
//! machine: a top and two regions that join it).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use peerdial_number::Area;
use peerdial_region::{Region, RegionConfig};
use peerdial_top::{Top, TopConfig};
use serde::Deserialize;

/// Every flag is also a key of the TOML file given with --config; flags win.
#[derive(Args, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TopArgs {
    /// TOML file with any of these options as keys.
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    config: Option<PathBuf>,
    /// Folder for the tree state (joined children) and the join token.
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Authoritative DNS for the root (or country) zone, UDP and TCP.
    #[arg(long, value_name = "ADDR:PORT")]
    dns: Option<SocketAddr>,
    /// HTTP API: joins and the directory of regions.
    #[arg(long, value_name = "ADDR:PORT")]
    http: Option<SocketAddr>,
    /// SIP (UDP) of the third-party call controller (default: any free port).
    #[arg(long, value_name = "ADDR:PORT")]
    sip: Option<SocketAddr>,
    /// Token children must present to join (default: generated once and
    /// kept in DIR/join-token).
    #[arg(long, value_name = "TOKEN")]
    join_token: Option<String>,
    /// The root domain of the tree.
    #[arg(long, value_name = "NAME")]
    root_domain: Option<String>,
    /// Serve one country (its 3 digits) instead of the root: a country
    /// server below the top, delegating that country's areas.
    #[arg(long, value_name = "CCC")]
    prefix: Option<String>,
    /// A country server's parent (the top), by its HTTP URL.
    #[arg(long, value_name = "URL")]
    parent: Option<String>,
    /// The token the parent wants.
    #[arg(long, value_name = "TOKEN")]
    parent_token: Option<String>,
    /// Seconds a silent child stays delegated (its secondaries may still serve it).
    #[arg(long, value_name = "SECONDS")]
    grace: Option<u64>,
    /// Database of the identity rendezvous: sqlite:PATH (default DIR/top.db) or postgres://…
    #[arg(long, value_name = "URL")]
    database: Option<String>,
    /// SMS gateway of the rendezvous: codes are POSTed here as JSON
    /// `{"to": MSISDN, "text": …}` (default: printed on stdout).
    #[arg(long, value_name = "URL")]
    sms_webhook: Option<String>,
    /// Seconds a rendezvous submission waits for its other half.
    #[arg(long, value_name = "SECONDS")]
    rendezvous_window: Option<u64>,
    /// PEM file of extra CA certificates to trust for push services
    /// (besides the webpki roots): a private push service, tests.
    #[arg(long, value_name = "FILE")]
    push_ca: Option<PathBuf>,
    /// APNs: the team's token-signing key, the `.p8` file Apple hands out
    /// (with --apns-key-id and --apns-team).
    #[arg(long, value_name = "FILE")]
    apns_key: Option<PathBuf>,
    /// APNs: the key's 10-character id.
    #[arg(long, value_name = "ID")]
    apns_key_id: Option<String>,
    /// APNs: the 10-character team id.
    #[arg(long, value_name = "ID")]
    apns_team: Option<String>,
    /// APNs service URL (default https://api.push.apple.com; the sandbox is
    /// https://api.sandbox.push.apple.com).
    #[arg(long, value_name = "URL")]
    apns_url: Option<String>,
    /// FCM: the Firebase project id (with --fcm-token-file).
    #[arg(long, value_name = "ID")]
    fcm_project: Option<String>,
    /// FCM: a file holding a current OAuth 2 access token, read at each
    /// push (whatever refreshes the token rewrites the file).
    #[arg(long, value_name = "FILE")]
    fcm_token_file: Option<PathBuf>,
    /// FCM service URL (default https://fcm.googleapis.com).
    #[arg(long, value_name = "URL")]
    fcm_url: Option<String>,
}

impl TopArgs {
    fn resolve(self) -> Result<TopConfig> {
        let file: TopArgs = match &self.config {
            Some(p) => {
                let text = std::fs::read_to_string(p).with_context(|| format!("reading config {}", p.display()))?;
                toml::from_str(&text).with_context(|| format!("in config {}", p.display()))?
            }
            None => TopArgs::default(),
        };
        let data = self.data.or(file.data).unwrap_or_else(|| PathBuf::from("data/top"));
        let token = match self.join_token.or(file.join_token) {
            Some(t) => t,
            None => stored_token(&data)?,
        };
        let mut cfg = TopConfig::new(data, token);
        if let Some(d) = self.dns.or(file.dns) {
            cfg.dns = d;
        }
        if let Some(h) = self.http.or(file.http) {
            cfg.http = h;
        }
        if let Some(s) = self.sip.or(file.sip) {
            cfg.sip = s;
        }
        if let Some(r) = self.root_domain.or(file.root_domain) {
            cfg.root_domain = if r.ends_with('.') { r } else { format!("{r}.") };
        }
        cfg.prefix = self.prefix.or(file.prefix).unwrap_or_default();
        cfg.parent = self.parent.or(file.parent);
        cfg.parent_token = self.parent_token.or(file.parent_token);
        if cfg.parent.is_some() != cfg.parent_token.is_some() {
            bail!("--parent and --parent-token go together");
        }
        if cfg.parent.is_some() && cfg.prefix.is_empty() {
            bail!("--parent is for a country server: give its --prefix CCC");
        }
        if let Some(g) = self.grace.or(file.grace) {
            cfg.grace = Duration::from_secs(g);
        }
        let rdv = cfg.rendezvous.get_or_insert_with(Default::default);
        rdv.database = self.database.or(file.database);
        rdv.sms_webhook = self.sms_webhook.or(file.sms_webhook);
        if let Some(w) = self.rendezvous_window.or(file.rendezvous_window) {
            // Phones wait 90 s for an answer: the window must end well before.
            if !(1..=60).contains(&w) {
                bail!("--rendezvous-window must be between 1 and 60 seconds");
            }
            rdv.window = Duration::from_secs(w);
        }
        cfg.push_ca = self.push_ca.or(file.push_ca);
        let https = |what: &str, url: Option<String>, default: &str| -> Result<String> {
            let url = url.unwrap_or_else(|| default.to_string());
            if !url.starts_with("https://") {
                bail!("--{what}-url must be an https:// URL");
            }
            Ok(url)
        };
        cfg.apns = match (
            self.apns_key.or(file.apns_key),
            self.apns_key_id.or(file.apns_key_id),
            self.apns_team.or(file.apns_team),
        ) {
            (Some(key_file), Some(key_id), Some(team_id)) => Some(peerdial_top::ApnsSettings {
                team_id,
                key_id,
                key_file,
                url: https("apns", self.apns_url.or(file.apns_url), "https://api.push.apple.com")?,
            }),
            (None, None, None) => None,
            _ => bail!("--apns-key, --apns-key-id and --apns-team go together"),
        };
        cfg.fcm = match (self.fcm_project.or(file.fcm_project), self.fcm_token_file.or(file.fcm_token_file)) {
            (Some(project), Some(token_file)) => Some(peerdial_top::FcmSettings {
                project,
                token_file,
                url: https("fcm", self.fcm_url.or(file.fcm_url), "https://fcm.googleapis.com")?,
            }),
            (None, None) => None,
            _ => bail!("--fcm-project and --fcm-token-file go together"),
        };
        if rdv.sms_webhook.as_deref().is_some_and(|u| !u.starts_with("http://")) {
            bail!("--sms-webhook must be an http:// URL");
        }
        Ok(cfg)
    }
}

/// A join token made once and kept, so restarts keep accepting children.
fn stored_token(data: &std::path::Path) -> Result<String> {
    let p = data.join("join-token");
    if let Ok(t) = std::fs::read_to_string(&p) {
        return Ok(t.trim().to_string());
    }
    std::fs::create_dir_all(data).with_context(|| format!("creating {}", data.display()))?;
    let token: String = (0..24)
        .map(|_| char::from(b"abcdefghijkmnpqrstuvwxyz23456789"[rand::random::<usize>() % 32]))
        .collect();
    std::fs::write(&p, &token).with_context(|| format!("writing {}", p.display()))?;
    Ok(token)
}

pub async fn run_top(args: TopArgs) -> Result<()> {
    let cfg = args.resolve()?;
    let token = cfg.join_token.clone();
    let top = Top::start(cfg).await.context("starting the tree node")?;
    let zone = top.shared.zone.read().expect("zone lock").origin().to_string();
    let e = top.endpoints;
    println!("peerdial top ready: zone={zone} dns={} http={} sip={}", e.dns, e.http, e.sip);
    println!(
        "  join a region:  peerdial region --area CCC-AA --top http://{} --join-token {token}",
        e.http
    );
    println!("  regions:        curl -s http://{}/api/v1/regions", e.http);
    println!("  yellow pages:   http://{}/ (every region's, searched in parallel)", e.http);
    println!(
        "  rendezvous:     http://{}/api/v1/rendezvous/ (mobile phones: --rendezvous http://{})",
        e.http, e.http
    );
    crate::wait_for_signal().await;
    top.shutdown().await;
    Ok(())
}

#[derive(Args, Debug)]
pub struct UpArgs {
    /// Folder for the network's data (one subfolder per server).
    #[arg(long, value_name = "DIR", default_value = "data/up")]
    data: PathBuf,
    /// The two areas, CCC-AA,CCC-AA.
    #[arg(long, value_name = "LIST", value_delimiter = ',', default_value = "886-02,886-03")]
    areas: Vec<String>,
    /// Put every DNS server on port 53 of its own 127.53.0.x address (the
    /// default when run as root), so real resolvers can walk the tree.
    #[arg(long)]
    port53: bool,
    /// High ports on 127.0.0.1 even as root.
    #[arg(long, conflicts_with = "port53")]
    high_ports: bool,
    /// Start an empty network: remove the servers' and phones' data that
    /// earlier runs left in DIR (only what `up` itself put there).
    #[arg(long)]
    fresh: bool,
}

/// What `up` keeps in its data folder, and all that `--fresh` removes.
fn up_parts(data: &std::path::Path, areas: &[Area]) -> Vec<PathBuf> {
    let mut parts = vec![data.join("top"), data.join("phones"), data.join("switch")];
    parts.extend(areas.iter().map(|a| data.join(format!("region-{a}"))));
    parts
}

/// Removes the parts of an earlier network; refuses while one runs on them.
fn remove_earlier_network(data: &std::path::Path, areas: &[Area]) -> Result<()> {
    let parts: Vec<PathBuf> = up_parts(data, areas).into_iter().filter(|p| p.symlink_metadata().is_ok()).collect();
    if parts.is_empty() {
        println!("--fresh: nothing to remove in {}", data.display());
        return Ok(());
    }
    for region in areas.iter().map(|a| data.join(format!("region-{a}"))).filter(|p| p.is_dir()) {
        peerdial_region::admin::DataLock::acquire(&region)
            .with_context(|| format!("--fresh: is another `peerdial up` running on {}?", data.display()))?;
    }
    for p in parts {
        println!("--fresh: removing {}", p.display());
        // remove_dir_all does not follow symbolic links: a link is removed, not its target.
        let removed = if p.symlink_metadata()?.is_dir() {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
        removed.with_context(|| format!("removing {}", p.display()))?;
    }
    Ok(())
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:").map(|v| v.split_whitespace().next() == Some("0")))
        })
        .unwrap_or(false)
}

/// The operator account `up` makes on each region, and the file (0600, in
/// the region's data folder) that keeps its random password.
const UP_OPERATOR: &str = "operator";
const OPERATOR_PASSWORD_FILE: &str = "operator-password";

/// Makes the operator account on a region's data folder the first time.
async fn operator_account(data: &std::path::Path) -> Result<()> {
    let file = data.join(OPERATOR_PASSWORD_FILE);
    if file.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(data)?;
    let password: String = {
        use rand::Rng;
        let mut r = rand::thread_rng();
        (0..20)
            .map(|_| char::from(b"abcdefghijkmnpqrstuvwxyz23456789"[r.gen_range(0..32)]))
            .collect()
    };
    peerdial_region::admin::add_operator(data, None, UP_OPERATOR, &password).await?;
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&file)?;
    writeln!(f, "{password}")?;
    Ok(())
}

/// A top and two regions in one process, until Ctrl-C.
pub async fn up(args: UpArgs) -> Result<()> {
    if args.areas.len() != 2 {
        bail!("--areas takes two areas");
    }
    let areas: Vec<Area> = args
        .areas
        .iter()
        .map(|a| Area::parse(a).with_context(|| format!("--areas: {a:?}")))
        .collect::<Result<_>>()?;
    if areas[0] == areas[1] {
        bail!("the two areas must differ");
    }
    if args.fresh {
        remove_earlier_network(&args.data, &areas)?;
    }
    let port53 = args.port53 || (is_root() && !args.high_ports);
    let addr = |s: String| -> Result<SocketAddr> { Ok(s.parse()?) };
    // Server i: the top (0) and the regions (1, 2).
    let place = |i: usize, kind: usize| -> String {
        if port53 {
            format!("127.53.0.{}:{}", i + 1, [53, 5060, 8080][kind])
        } else {
            format!("127.0.0.1:{}", [5301 + 2 * i, 5060 + 2 * i, 8081 + i][kind])
        }
    };
    let dns = |i| place(i, 0);
    let sip = |i| place(i, 1);
    let http = |i| place(i, 2);
    let token = stored_token(&args.data.join("top"))?;
    // The mobile network stand-in, and the top's SMS gateway pointed at it.
    let (_sim_stop, sim_rx) = tokio::sync::watch::channel(false);
    let sim = crate::cellular_sim::start(addr(http(3))?, sim_rx)
        .await
        .context("starting the cellular simulator")?;
    let mut tcfg = TopConfig::new(args.data.join("top"), token.clone());
    if let Some(r) = tcfg.rendezvous.as_mut() {
        r.sms_webhook = Some(format!("http://{sim}/sim/v1/sms"));
    }
    tcfg.dns = addr(dns(0))?;
    tcfg.http = addr(http(0))?;
    let top = Top::start(tcfg)
        .await
        .context("starting the top (is another `peerdial up` running? try --high-ports)")?;
    let top_url = format!("http://{}", top.endpoints.http);
    let mut regions = Vec::new();
    for (i, area) in areas.iter().enumerate() {
        let mut cfg = RegionConfig::new(*area, args.data.join(format!("region-{area}")));
        cfg.dns = addr(dns(i + 1))?;
        cfg.sip = addr(sip(i + 1))?;
        cfg.http = addr(http(i + 1))?;
        cfg.top = Some(top_url.clone());
        cfg.join_token = Some(token.clone());
        operator_account(&cfg.data_dir).await?;
        regions.push(Region::start(cfg).await.with_context(|| format!("starting the region of {area}"))?);
    }
    for _ in 0..100 {
        if top.children().len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let zone = top.shared.zone.read().expect("zone lock").origin().to_string();
    println!("peerdial up: top dns={} http={} zone={zone}", top.endpoints.dns, top.endpoints.http);
    for r in &regions {
        let e = r.endpoints;
        println!(
            "peerdial up: region area={} sip={} dns={} http={} control={}",
            r.shared.cfg.area, e.sip, e.dns, e.http, e.control
        );
    }
    let (a, b) = (&regions[0].endpoints, &regions[1].endpoints);
    println!();
    println!("Start a phone in each area (each in its own terminal):");
    // The phones' identities live in up's own folder, so these commands work
    // on every run of the same network (and --fresh forgets them with it).
    let phones = std::path::absolute(args.data.join("phones")).context("the phones' data folder")?;
    for (name, e, mac, port) in [("a", a, "02:00:00:00:0a:01", 5071), ("b", b, "02:00:00:00:0b:01", 5072)] {
        println!(
            "  cargo run --release -- phone --region http://{} --data {} --mac {mac} --sip 127.0.0.1:{port} --top {top_url}",
            e.http,
            phones.join(name).display()
        );
    }
    println!("then dial the other's number (shown on its display); 8 digits reach a neighbour in the same area.");
    println!();
    println!("Mobile phones (identity rendezvous; the mobile network is simulated at http://{sim}):");
    for (name, e, mac, port, msisdn, imsi) in [
        ("A", a, "02:00:00:00:0a:02", 5073, "+886912000001", "466920000000001"),
        ("B", b, "02:00:00:00:0b:02", 5074, "+886912000002", "466920000000002"),
    ] {
        println!(
            "  mobile {name}: cargo run --release -- phone --region http://{} --data {} --mac {mac} --sip 127.0.0.1:{port} --top {top_url} --msisdn {msisdn} --imsi {imsi} --rendezvous {top_url} --cellular http://{sim}",
            e.http,
            phones.join(format!("mobile-{name}")).display()
        );
    }
    println!("then type `cellular-call +886912000002` in the first: the mobile call becomes an internet call.");
    println!();
    println!("Each region's HTTP API also serves (README: HTTP API):");
    println!(
        "  greeting pictures   http://{}/api/v1/greetings/NUMBER/caller|callee  (PUT with the number's SIP credentials)",
        a.http
    );
    println!(
        "  caller identity     http://{}/api/v1/identity/key  (also TXT at the area zone's apex)",
        a.http
    );
    println!(
        "  presence            http://{}/api/v1/presence/NUMBER  (and .../events; SIP SUBSCRIBE at the region's SIP address)",
        a.http
    );
    println!(
        "  channels, marquee   http://{}/api/v1/channels  (phones: subscribe NAME, post NUMBER TEXT, publish CHANNEL TEXT)",
        a.http
    );
    println!(
        "  mailbox             http://{}/api/v1/messages/NUMBER  (the owner's SIP credentials; calls and SIP MESSAGEs to an offline number are kept there, MWI by SUBSCRIBE message-summary)",
        a.http
    );
    println!("  (phones: message NUMBER TEXT, send NUMBER FILE, voicemail NUMBER, messages, read ID, delete ID, play ID)");
    for r in &regions {
        println!("  web portal of {}   http://{}/", r.shared.cfg.area, r.endpoints.http);
    }
    println!("  yellow pages of every region (the top's portal): {top_url}/");
    println!("Each region has an operator account ({UP_OPERATOR}; portal /operator, broadcasts), its password in a file:");
    for r in &regions {
        let file = std::path::absolute(r.shared.cfg.data_dir.join(OPERATOR_PASSWORD_FILE))?;
        println!(
            "  PEERDIAL_OPERATOR_PASSWORD=$(cat {}) cargo run --release -- region broadcast \"hello\" --region http://{} --operator {UP_OPERATOR}",
            file.display(),
            r.endpoints.http
        );
    }
    // One switch (issue 15), its devices added with `switch device add`.
    let sw_data = args.data.join("switch");
    let sw_token = peerdial_top::designate::add_switch(&args.data.join("top"), "up")?;
    let mut scfg = peerdial_switch::SwitchConfig::new(top_url.clone(), sw_token, sw_data.clone());
    (scfg.sip, scfg.http) = ("127.0.0.1:0".parse()?, "127.0.0.1:0".parse()?);
    // No recursive resolver knows this tree: numbers are found through the
    // top's directory, as up's phones do with --top.
    scfg.resolver = None;
    let switch = peerdial_switch::Switch::start(scfg).await.context("starting the switch")?;
    println!("peerdial up: switch sip={} http={}", switch.sip, switch.http);
    println!(
        "A switch (office exchange) at sip:{}: add a device with `echo PASSWORD | peerdial switch device add 886-02-99990001 --data {}`,",
        switch.sip,
        sw_data.display()
    );
    println!(
        "register it there (realm switch.peerdial.internal; our phone: `phone --switch sip:8860299990001@{} --switch-password-file FILE --data DIR`),",
        switch.sip
    );
    println!("and call it from a phone started with --top {top_url} (README: Switches).");
    // A local Web Push service (issue 15), for phones that sleep until pushed.
    let push = crate::push_service::Service::new(&crate::push_service::PushServiceArgs {
        http: "127.0.0.1:0".parse()?,
        subscriber: Vec::new(),
        fail: Vec::new(),
        tls_cert: None,
        tls_key: None,
    })?;
    let push = crate::push_service::serve(push, "127.0.0.1:0".parse()?)
        .await
        .context("starting the push service")?;
    println!("peerdial up: push http://{push}/up/TOPIC");
    println!(
        "A push service (Web Push, loopback stand-in) at http://{push}: a phone started with `--push http://{push}/up/NAME --asleep` sleeps until a call's push wakes it (README: Push wake-up)."
    );
    println!("The top serves the identity rendezvous at {top_url}/api/v1/rendezvous/ (its SMS go to the simulator).");
    println!(
        "The top's dialer (one device dials, another talks): {top_url}/dial, or `cargo run --release -- dial --top {top_url} --token T NUMBER` (a token from POST {top_url}/api/v1/session; README: Dial on one device)."
    );
    if port53 {
        println!();
        println!("Every DNS server is on port 53 of its own address, so a real resolver walks the tree.");
        println!("For unbound: stub-zone: name: \"{zone}\" stub-addr: {}", top.endpoints.dns.ip());
        println!("and give phones --resolver <unbound> instead of --top.");
    } else {
        println!();
        println!("DNS servers are on high ports (not root): phones find each region through the top's");
        println!("directory (--top) and ask that region's DNS directly.");
    }
    println!("Ctrl-C stops everything.");
    crate::wait_for_signal().await;
    eprintln!("shutting down");
    switch.shutdown();
    for r in regions {
        r.shutdown().await;
    }
    top.shutdown().await;
    Ok(())
}
