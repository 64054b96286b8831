//! `peerdial switch` (an office or home exchange, `peerdial-switch`), its
//! device commands, and `peerdial top switch add` (a switch's token).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use peerdial_number::Number;
use peerdial_switch::{Switch, SwitchConfig};

/// `peerdial switch [FLAGS]` runs the switch; `peerdial switch device …`
/// manages its devices.
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SwitchCommand {
    #[command(subcommand)]
    action: Option<SwitchAction>,
    #[command(flatten)]
    args: SwitchArgs,
}

#[derive(Args, Debug)]
pub struct SwitchArgs {
    /// The cloud (the top's HTTP URL) the switch joins.
    #[arg(long, value_name = "URL")]
    cloud: Option<String>,
    /// The switch's token (from `peerdial top switch add NAME`).
    #[arg(long, value_name = "TOKEN", env = "PEERDIAL_SWITCH_TOKEN")]
    token: Option<String>,
    /// SIP (UDP) for devices and callers; one IP address (callers are told it).
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:5070")]
    sip: SocketAddr,
    /// HTTP the cloud asks (accept a call); one IP address.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:8070")]
    http: SocketAddr,
    /// Folder with devices.json.
    #[arg(long, value_name = "DIR", default_value = "data/switch")]
    data: PathBuf,
    /// Seconds a key the cloud hands out stays good.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    key_lifetime: u64,
    /// DNS resolver for devices' calls to numbers with no switch (NAPTR,
    /// as a phone looks them up; default: /etc/resolv.conf's).
    #[arg(long, value_name = "ADDR:PORT", conflicts_with = "lookup_via_cloud")]
    resolver: Option<SocketAddr>,
    /// Find such numbers through the cloud's directory (which names the
    /// number's region, whose DNS is then asked) instead of a DNS
    /// resolver, as a phone with `--top` does; for trees no recursive
    /// resolver knows (`peerdial up`).
    #[arg(long)]
    lookup_via_cloud: bool,
    /// Seconds between joins (the heartbeat).
    #[arg(long, value_name = "SECONDS", default_value_t = 20)]
    heartbeat: u64,
}

#[derive(Subcommand, Debug)]
enum SwitchAction {
    /// The devices this switch serves.
    Device {
        #[command(subcommand)]
        action: DeviceAction,
    },
}

#[derive(Subcommand, Debug)]
enum DeviceAction {
    /// Add a device (or set its password): the password is read from the
    /// first line of stdin. A running switch picks it up within 2 s.
    Add {
        number: String,
        #[arg(long, value_name = "DIR", default_value = "data/switch")]
        data: PathBuf,
    },
    /// Turn calls to a device away ("callee disabled").
    Disable {
        number: String,
        #[arg(long, value_name = "DIR", default_value = "data/switch")]
        data: PathBuf,
    },
    /// Take calls for a disabled device again.
    Enable {
        number: String,
        #[arg(long, value_name = "DIR", default_value = "data/switch")]
        data: PathBuf,
    },
}

fn number(s: &str) -> Result<Number> {
    Number::parse(s).with_context(|| format!("{s:?} is not a number"))
}

pub async fn run(cmd: SwitchCommand) -> Result<()> {
    match cmd.action {
        Some(SwitchAction::Device { action }) => device(action),
        None => serve(cmd.args).await,
    }
}

fn device(action: DeviceAction) -> Result<()> {
    match action {
        DeviceAction::Add { number: n, data } => {
            let n = number(&n)?;
            let mut password = String::new();
            std::io::stdin()
                .read_line(&mut password)
                .context("reading the password from stdin")?;
            peerdial_switch::devices::add(&data, n, password.trim_end_matches(['\r', '\n']))?;
            println!("device {n} can register (realm {})", peerdial_switch::devices::REALM);
        }
        DeviceAction::Disable { number: n, data } => {
            let n = number(&n)?;
            peerdial_switch::devices::set_disabled(&data, n, true)?;
            println!("calls to {n} are turned away");
        }
        DeviceAction::Enable { number: n, data } => {
            let n = number(&n)?;
            peerdial_switch::devices::set_disabled(&data, n, false)?;
            println!("{n} takes calls again");
        }
    }
    Ok(())
}

async fn serve(a: SwitchArgs) -> Result<()> {
    let (Some(cloud), Some(token)) = (a.cloud, a.token) else {
        bail!("peerdial switch needs --cloud URL and --token TOKEN (from `peerdial top switch add NAME`)");
    };
    if !cloud.starts_with("http://") {
        bail!("--cloud must be an http:// URL");
    }
    if !(1..=600).contains(&a.key_lifetime) {
        bail!("--key-lifetime must be between 1 and 600 seconds");
    }
    let mut cfg = SwitchConfig::new(cloud, token, a.data);
    cfg.sip = a.sip;
    cfg.http = a.http;
    cfg.key_lifetime_ms = a.key_lifetime * 1000;
    cfg.heartbeat = std::time::Duration::from_secs(a.heartbeat.max(1));
    if a.resolver.is_some() {
        cfg.resolver = a.resolver;
    }
    if a.lookup_via_cloud {
        cfg.resolver = None;
    }
    let cloud = cfg.cloud.clone();
    let s = Switch::start(cfg).await.context("starting the switch")?;
    println!("peerdial switch ready: sip={} http={} cloud={cloud}", s.sip, s.http);
    println!("  add a device:  echo PASSWORD | peerdial switch device add NUMBER --data DIR");
    println!("  phones register to sip:{} (realm {})", s.sip, peerdial_switch::devices::REALM);
    crate::wait_for_signal().await;
    s.shutdown();
    Ok(())
}

/// `peerdial top switch add NAME --data DIR`.
#[derive(Subcommand, Debug)]
pub enum TopAction {
    /// Switches that may join this top.
    Switch {
        #[command(subcommand)]
        action: TopSwitchAction,
    },
}

#[derive(Subcommand, Debug)]
pub enum TopSwitchAction {
    /// Make a token for switch NAME (printed once; a new one replaces the
    /// old). A running top accepts it at once.
    Add {
        name: String,
        #[arg(long, value_name = "DIR", default_value = "data/top")]
        data: PathBuf,
    },
}

pub fn top_action(a: TopAction) -> Result<()> {
    let TopAction::Switch {
        action: TopSwitchAction::Add { name, data },
    } = a;
    let token = peerdial_top::designate::add_switch(&data, &name)?;
    println!("{token}");
    eprintln!("switch {name}: peerdial switch --cloud http://TOP --token {token} …");
    Ok(())
}
