//! `peerdial`: the one binary. Each subcommand is a thin shell over a
//! library crate; this file parses flags and config, sets up logging, and
//! runs until Ctrl-C or SIGTERM.

mod bench;
mod bench_calls;
mod bench_channels;
mod bench_designate;
mod bench_dial;
mod bench_greetings;
mod bench_identity;
mod bench_mailbox;
mod bench_mixer;
mod bench_mixer_janus;
mod bench_presence;
mod bench_push;
mod bench_rendezvous;
mod bench_sound;
mod bench_spine;
mod bench_tools;
mod bench_tree;
mod bench_yellow;
mod cellular_sim;
mod channels_cli;
mod dial;
mod peer_conf;
mod phone;
mod push_service;
mod switch;
mod tree;

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use peerdial_number::Area;
use peerdial_region::{Region, RegionConfig};
use peerdial_sip::digest::Algorithm;
use serde::Deserialize;

#[derive(Parser)]
#[command(name = "peerdial", version, about = "A telephone network whose phone book is the DNS")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once at start-up
enum Command {
    /// Run the region server of one area: provisioning, SIP registrar, DNS zone.
    Region(RegionCommand),
    /// Run the softphone: provision, register, dial by number, talk peer to peer.
    Phone(phone::PhoneArgs),
    /// Run a tree node: the top (root zone) or a country server, which
    /// delegates to the regions that join it.
    Top(TopCommand),
    /// Run an office or home exchange: a registrar for its devices that
    /// joins the cloud and admits calls carrying a key the cloud handed out.
    Switch(switch::SwitchCommand),
    /// Bring up a whole network on this machine: a top and two regions.
    Up(tree::UpArgs),
    /// Run a benchmark next to the third-party peer it is compared with.
    Bench(bench::BenchArgs),
    /// Simulate the mobile network for mobile phones (calls, rings, SMS):
    /// what the identity rendezvous is tried and tested with.
    CellularSim(cellular_sim::SimArgs),
    /// Dial on one device, talk on another: ask the top to connect one of
    /// your talkers with a callee, and follow the call's progress.
    Dial(dial::DialArgs),
    /// A Web Push service on loopback for tests and benchmarks.
    #[command(hide = true)]
    PushService(push_service::PushServiceArgs),
}

/// `peerdial top [FLAGS]` runs a tree node; `peerdial top switch add`
/// makes a switch's token.
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
struct TopCommand {
    #[command(subcommand)]
    action: Option<switch::TopAction>,
    #[command(flatten)]
    args: tree::TopArgs,
}

/// `peerdial region [FLAGS]` runs the server; `peerdial region ACTION`
/// is an operator command on a stopped region's data.
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
struct RegionCommand {
    #[command(subcommand)]
    action: Option<RegionAction>,
    #[command(flatten)]
    args: RegionArgs,
}

#[derive(Subcommand, Debug)]
enum RegionAction {
    /// Free a provisioned MAC address for a new provisioning (its phone lost
    /// its identity). Its old number is quarantined, not reused at once.
    /// The region must be stopped.
    ReleaseMac {
        /// The MAC address, e.g. 02:00:00:00:0a:01.
        mac: String,
        /// The region's data folder.
        #[arg(long, value_name = "DIR")]
        data: PathBuf,
        /// The region's database, if not DIR/region.db.
        #[arg(long, value_name = "URL")]
        database: Option<String>,
    },
    /// Operator accounts of the region's web portal (`/operator`).
    Operator {
        #[command(subcommand)]
        action: OperatorAction,
    },
    /// Send a broadcast to every online phone of a running region, once or
    /// every N minutes until a time.
    Broadcast(channels_cli::BroadcastArgs),
    /// Channels of a running region: create, grant publishers, post, list.
    Channel {
        #[command(subcommand)]
        action: channels_cli::ChannelAction,
    },
}

#[derive(Subcommand, Debug)]
enum OperatorAction {
    /// Create an operator account (or set its password); the password is
    /// read from the first line of stdin.
    Add {
        /// The operator's sign-in name.
        name: String,
        /// The region's data folder.
        #[arg(long, value_name = "DIR")]
        data: PathBuf,
        /// The region's database, if not DIR/region.db.
        #[arg(long, value_name = "URL")]
        database: Option<String>,
    },
}

/// Every flag is also a key of the TOML file given with --config; flags win.
#[derive(Args, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RegionArgs {
    /// TOML file with any of these options as keys (e.g. `area = "886-02"`).
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    config: Option<PathBuf>,
    /// The area this region serves, CCC-AA.
    #[arg(long, value_name = "CCC-AA")]
    area: Option<String>,
    /// Folder for the database and keys.
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// SIP registrar address, UDP and TCP.
    #[arg(long, value_name = "ADDR:PORT")]
    sip: Option<SocketAddr>,
    /// The third-party call controller's SIP address (UDP), for calls the
    /// top hands this region. Default: the --sip IP, a free port.
    #[arg(long, value_name = "ADDR:PORT")]
    control: Option<SocketAddr>,
    /// Authoritative DNS address, UDP and TCP.
    #[arg(long, value_name = "ADDR:PORT")]
    dns: Option<SocketAddr>,
    /// HTTP API address.
    #[arg(long, value_name = "ADDR:PORT")]
    http: Option<SocketAddr>,
    /// Database URL: sqlite:PATH (default: DIR/region.db) or postgres://…
    #[arg(long, value_name = "URL")]
    database: Option<String>,
    /// DNS domain under which numbers are published.
    #[arg(long, value_name = "NAME")]
    root_domain: Option<String>,
    /// TTL in seconds of the published NAPTR records.
    #[arg(long, value_name = "SECONDS")]
    ttl: Option<u32>,
    /// How long resolvers may cache "no such number" (SOA minimum).
    #[arg(long, value_name = "SECONDS")]
    negative_ttl: Option<u32>,
    /// Shortest registration accepted (shorter gets 423 Interval Too Brief).
    #[arg(long, value_name = "SECONDS")]
    min_expires: Option<u32>,
    /// Longest registration granted (and the default).
    #[arg(long, value_name = "SECONDS")]
    max_expires: Option<u32>,
    /// Threads answering DNS over UDP.
    #[arg(long, value_name = "N")]
    dns_threads: Option<usize>,
    /// Seconds between presence keep-alives (OPTIONS) to each phone
    /// registered over UDP; three unanswered ones show it offline.
    #[arg(long, value_name = "SECONDS")]
    keepalive: Option<u32>,
    /// The longest voice message the mailbox records, in seconds.
    #[arg(long, value_name = "SECONDS")]
    voice_max: Option<u32>,
    /// Days a number given up (a vanity move, a released MAC) stays out
    /// of the pool, so its old callers do not reach a stranger (default 30).
    #[arg(long, value_name = "DAYS")]
    quarantine_days: Option<u32>,
    /// Most messages one number's mailbox keeps (default 200); more are
    /// refused ("mailbox full").
    #[arg(long, value_name = "N")]
    mailbox_max_messages: Option<u32>,
    /// Most bytes one number's mailbox keeps (default 64 MiB).
    #[arg(long, value_name = "BYTES")]
    mailbox_max_bytes: Option<u64>,
    /// The largest single message (default 16 MiB). A voice message also
    /// ends when it would not fit (16-bit WAV: 16,000 bytes a second at
    /// 8 kHz).
    #[arg(long, value_name = "BYTES")]
    mailbox_max_message: Option<u64>,
    /// Days a message is kept, read or not (default 30); older ones are
    /// removed.
    #[arg(long, value_name = "DAYS")]
    mailbox_retention_days: Option<u32>,
    /// Digest algorithms offered and accepted, most preferred first (RFC 8760):
    /// md5, sha-256, or both ("sha-256,md5"). Default md5: many deployed
    /// phones fail outright when a challenge names an algorithm they lack.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    digest: Option<Vec<String>>,
    /// TSIG key for zone transfers and NOTIFY, `[hmac-sha256:]NAME:BASE64`
    /// (repeat or comma-separate for several; the first signs NOTIFYs).
    /// With a key, only signed transfer requests are served.
    #[arg(long, value_name = "KEY", value_delimiter = ',')]
    tsig_key: Option<Vec<String>>,
    /// Secondary DNS servers to NOTIFY after each change (ADDR:PORT; repeat
    /// or comma-separate). Without a TSIG key, only they may transfer.
    #[arg(long, value_name = "ADDR:PORT", value_delimiter = ',')]
    secondary: Option<Vec<SocketAddr>>,
    /// Publish to this external primary by RFC 2136 UPDATE, signed with the
    /// first --tsig-key (BIND, Knot, …).
    #[arg(long, value_name = "ADDR:PORT")]
    update_primary: Option<SocketAddr>,
    /// The tree node (top or country server) to join, by its HTTP URL.
    #[arg(long, value_name = "URL")]
    top: Option<String>,
    /// The token the tree node wants from joining regions.
    #[arg(long, value_name = "TOKEN")]
    join_token: Option<String>,
    /// A DNS resolver for other areas' records (the signing keys of
    /// watchers from other regions). Default: ask the --top node where each
    /// area's DNS is; with neither, only this area's watchers are known.
    #[arg(long, value_name = "ADDR:PORT")]
    resolver: Option<SocketAddr>,
}

impl RegionArgs {
    /// Flags over config file over defaults.
    fn resolve(self) -> Result<RegionConfig> {
        let file: RegionArgs = match &self.config {
            Some(p) => {
                let text = std::fs::read_to_string(p).with_context(|| format!("reading config {}", p.display()))?;
                toml::from_str(&text).with_context(|| format!("in config {}", p.display()))?
            }
            None => RegionArgs::default(),
        };
        let area_text = self.area.or(file.area).unwrap_or_else(|| "886-02".into());
        let area = Area::parse(&area_text).with_context(|| format!("--area {area_text:?}"))?;
        let data = self
            .data
            .or(file.data)
            .unwrap_or_else(|| PathBuf::from(format!("data/region-{area}")));
        let mut cfg = RegionConfig::new(area, data);
        macro_rules! take {
            ($($f:ident => $c:ident),*) => {$(
                if let Some(v) = self.$f.or(file.$f) { cfg.$c = v; }
            )*};
        }
        if let Some(keys) = self.tsig_key.or(file.tsig_key) {
            cfg.tsig_keys = keys
                .iter()
                .map(|k| peerdial_dns::TsigKey::parse(k).map_err(anyhow::Error::msg))
                .collect::<Result<_>>()?;
        }
        cfg.secondaries = self.secondary.or(file.secondary).unwrap_or_default();
        cfg.update_primary = self.update_primary.or(file.update_primary);
        if cfg.update_primary.is_some() && cfg.tsig_keys.is_empty() {
            bail!("--update-primary needs a --tsig-key to sign the updates");
        }
        cfg.top = self.top.or(file.top);
        cfg.join_token = self.join_token.or(file.join_token);
        cfg.resolver = self.resolver.or(file.resolver);
        cfg.control = self.control.or(file.control);
        if cfg.top.is_some() != cfg.join_token.is_some() {
            bail!("--top and --join-token go together");
        }
        take!(sip => sip, dns => dns, http => http, database => database, root_domain => root_domain, ttl => ttl,
              negative_ttl => negative_ttl, min_expires => min_expires, max_expires => max_expires, dns_threads => dns_threads, keepalive => keepalive,
              voice_max => voice_max_secs, quarantine_days => quarantine_days);
        if let Some(list) = self.digest.or(file.digest) {
            cfg.digest = list
                .iter()
                .map(|a| Algorithm::from_name(a.trim()).with_context(|| format!("unknown digest algorithm {a:?} (use md5 or sha-256)")))
                .collect::<Result<_>>()?;
            if cfg.digest.is_empty() {
                bail!("--digest needs at least one algorithm");
            }
        }
        if cfg.min_expires == 0 || cfg.min_expires > cfg.max_expires {
            bail!("--min-expires must be between 1 and --max-expires ({})", cfg.max_expires);
        }
        if cfg.keepalive == 0 {
            bail!("--keepalive must be at least 1 second");
        }
        if cfg.voice_max_secs == 0 || cfg.voice_max_secs > 3600 {
            bail!("--voice-max must be between 1 and 3600 seconds");
        }
        let limits = &mut cfg.mailbox_limits;
        if let Some(n) = self.mailbox_max_messages.or(file.mailbox_max_messages) {
            if n == 0 {
                bail!("--mailbox-max-messages must be at least 1");
            }
            limits.max_count = n;
        }
        limits.max_bytes = self.mailbox_max_bytes.or(file.mailbox_max_bytes).unwrap_or(limits.max_bytes);
        limits.max_message = self.mailbox_max_message.or(file.mailbox_max_message).unwrap_or(limits.max_message);
        if limits.max_message == 0 || limits.max_message > limits.max_bytes {
            bail!(
                "--mailbox-max-message ({}) must be at least 1 and at most --mailbox-max-bytes ({})",
                limits.max_message,
                limits.max_bytes
            );
        }
        if let Some(days) = self.mailbox_retention_days.or(file.mailbox_retention_days) {
            if !(1..=3650).contains(&days) {
                bail!("--mailbox-retention-days must be between 1 and 3650");
            }
            limits.retention_ms = days as u64 * 86_400_000;
        }
        if !cfg.root_domain.ends_with('.') {
            cfg.root_domain.push('.');
        }
        Ok(cfg)
    }
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    // Colours only for a terminal: a log file or a pipe gets plain text.
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt()
        .with_ansi(colour)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("PEERDIAL_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        match cli.command {
            Command::Region(RegionCommand { action: None, args }) => run_region(args.resolve()?).await,
            Command::Region(RegionCommand {
                action: Some(RegionAction::ReleaseMac { mac, data, database }),
                ..
            }) => {
                let number = peerdial_region::admin::release_mac(&data, database.as_deref(), &mac)
                    .await
                    .with_context(|| format!("release-mac {mac}"))?;
                println!("released MAC {mac}: it can be provisioned again (and gets a new number);");
                println!(
                    "its old number {number} is retired and stays out of use for the region's --quarantine-days (default {}).",
                    peerdial_region::admin::QUARANTINE_DAYS
                );
                Ok(())
            }
            Command::Region(RegionCommand {
                action:
                    Some(RegionAction::Operator {
                        action: OperatorAction::Add { name, data, database },
                    }),
                ..
            }) => {
                let mut password = String::new();
                std::io::stdin()
                    .read_line(&mut password)
                    .context("reading the password from stdin")?;
                let password = password.trim_end_matches(['\r', '\n']);
                peerdial_region::admin::add_operator(&data, database.as_deref(), &name, password)
                    .await
                    .with_context(|| format!("operator add {name}"))?;
                println!("operator {name} can sign in at the region's portal, /operator");
                Ok(())
            }
            Command::Region(RegionCommand {
                action: Some(RegionAction::Broadcast(a)),
                ..
            }) => channels_cli::broadcast(a).await,
            Command::Region(RegionCommand {
                action: Some(RegionAction::Channel { action }),
                ..
            }) => channels_cli::channel(action).await,
            Command::Phone(args) => {
                let code = phone::run(args).await?;
                std::process::exit(code)
            }
            Command::Top(TopCommand { action: None, args }) => tree::run_top(args).await,
            Command::Top(TopCommand { action: Some(a), .. }) => switch::top_action(a),
            Command::Switch(cmd) => switch::run(cmd).await,
            Command::Up(args) => tree::up(args).await,
            Command::Bench(args) => bench::run(args).await,
            Command::CellularSim(args) => cellular_sim::run(args).await,
            Command::PushService(args) => push_service::run(args).await,
            Command::Dial(args) => std::process::exit(dial::run(args).await?),
        }
    })
}

async fn run_region(cfg: RegionConfig) -> Result<()> {
    let database = cfg.database.clone();
    let region = Region::start(cfg).await.context("starting the region")?;
    let e = region.endpoints;
    let zone = region.shared.zone.read().expect("zone lock").origin().to_string();
    let area = region.shared.cfg.area;
    // One machine-readable line first (tests and scripts read it), then help for people.
    println!(
        "peerdial region ready: area={area} sip={} dns={} http={} control={} zone={zone} database={database}",
        e.sip, e.dns, e.http, e.control
    );
    println!(
        "  SIP registrar   sip:{} (UDP and TCP), realm {}",
        e.sip,
        zone.trim_end_matches('.')
    );
    println!("  DNS (authoritative for {zone})   {}", e.dns);
    println!(
        "  Call controller sip:peerdial@{} (UDP; calls the top hands this region)",
        e.control
    );
    println!("  HTTP API        http://{}/api/v1/", e.http);
    println!(
        "Provision a phone:  curl -s -X POST http://{}/api/v1/provision -d '{{\"mac\":\"02:00:00:00:00:01\"}}'",
        e.http
    );
    println!(
        "Look a number up:   dig @{} -p {} <digits reversed>.{zone} NAPTR",
        e.dns.ip(),
        e.dns.port()
    );
    wait_for_signal().await;
    eprintln!("shutting down: flushing the database");
    region.shutdown().await;
    Ok(())
}

pub(crate) async fn wait_for_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
