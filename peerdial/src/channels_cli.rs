//! `peerdial region broadcast …` and `peerdial region channel …`: operator
//! commands on a *running* region, through its authenticated HTTP API
//! (`/api/v1/broadcasts`, `/api/v1/channels`). The operator's password is
//! read from `PEERDIAL_OPERATOR_PASSWORD` or the first line of stdin, never
//! from a flag (flags show up in `ps`).

use std::time::Duration;

use anyhow::{bail, Context, Result};
use base64::Engine;
use clap::{Args, Subcommand};
use serde_json::{json, Value};

/// Where the region is and who the operator is.
#[derive(Args, Debug)]
pub struct OperatorLogin {
    /// The region's HTTP API, e.g. http://127.0.0.1:8080.
    #[arg(long, value_name = "URL")]
    pub region: String,
    /// The operator's name (`peerdial region operator add NAME`).
    #[arg(long, value_name = "NAME")]
    pub operator: String,
}

#[derive(Args, Debug)]
pub struct BroadcastArgs {
    /// The text phones show.
    pub text: String,
    /// Repeat every this many minutes (needs --until).
    #[arg(long, value_name = "MINUTES")]
    pub every: Option<u64>,
    /// Stop repeating at this time: RFC 3339 UTC (2026-12-02T18:00:00Z),
    /// Unix seconds, or +MINUTES from now.
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    #[command(flatten)]
    pub login: OperatorLogin,
}

#[derive(Subcommand, Debug)]
pub enum ChannelAction {
    /// Create a channel on the region.
    Add {
        name: String,
        #[arg(long)]
        title: Option<String>,
        /// Stop taking posts at this time (as broadcast --until).
        #[arg(long, value_name = "TIME")]
        until: Option<String>,
        #[command(flatten)]
        login: OperatorLogin,
    },
    /// Let a number post to a channel (or stop it, with --remove).
    Publisher {
        name: String,
        number: String,
        #[arg(long)]
        remove: bool,
        #[command(flatten)]
        login: OperatorLogin,
    },
    /// Post an item to a channel as the operator.
    Post {
        name: String,
        text: String,
        /// Seconds the item lives (default a day).
        #[arg(long, value_name = "SECONDS")]
        expires_in: Option<u64>,
        #[command(flatten)]
        login: OperatorLogin,
    },
    /// List the region's channels.
    List {
        #[arg(long, value_name = "URL")]
        region: String,
    },
}

fn password() -> Result<String> {
    if let Ok(p) = std::env::var("PEERDIAL_OPERATOR_PASSWORD") {
        return Ok(p);
    }
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("reading the operator's password from stdin")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

async fn call(region: &str, method: &str, path: &str, auth: Option<&OperatorLogin>, body: Option<Value>) -> Result<Value> {
    let authority = peerdial_net::http_client::http_authority(region).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut headers: Vec<(&str, String)> = vec![("Content-Type", "application/json".into())];
    if let Some(l) = auth {
        let creds = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", l.operator, password()?));
        headers.push(("Authorization", format!("Basic {creds}")));
    }
    let h: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let r = peerdial_phone::http::request(authority, method, path, &h, body.as_bytes(), Duration::from_secs(10)).await?;
    let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    if !(200..300).contains(&r.status) {
        let why = v["error"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| String::from_utf8_lossy(&r.body).into_owned());
        bail!("the region answered {}: {}", r.status, peerdial_channels::text::clean(&why));
    }
    Ok(v)
}

/// `--until`: RFC 3339 UTC, Unix seconds, or +MINUTES.
pub fn parse_until(s: &str, now_s: u64) -> Result<u64> {
    if let Some(m) = s.strip_prefix('+') {
        let m: u64 = m.parse().with_context(|| format!("--until {s:?}: +MINUTES"))?;
        return Ok(now_s + m * 60);
    }
    if let Ok(n) = s.parse::<u64>() {
        return Ok(n);
    }
    peerdial_channels::schedule::parse_utc(s)
        .ok_or_else(|| anyhow::anyhow!("--until {s:?}: expected 2026-12-02T18:00:00Z, Unix seconds or +MINUTES"))
}

pub async fn broadcast(a: BroadcastArgs) -> Result<()> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    let until = a.until.as_deref().map(|u| parse_until(u, now)).transpose()?;
    let body = json!({ "text": a.text, "every_minutes": a.every, "until": until });
    let v = call(&a.login.region, "POST", "/api/v1/broadcasts", Some(&a.login), Some(body)).await?;
    println!("broadcast {} sent to the region's online phones", v["id"]);
    if let (Some(every), Some(until)) = (a.every, until) {
        println!("it repeats every {every} min until {until} (Unix seconds)");
    }
    Ok(())
}

pub async fn channel(a: ChannelAction) -> Result<()> {
    match a {
        ChannelAction::Add { name, title, until, login } => {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
            let mut body = json!({ "name": name, "title": title });
            if let Some(u) = until.as_deref().map(|u| parse_until(u, now)).transpose()? {
                body["until"] = json!(u);
            }
            let v = call(&login.region, "POST", "/api/v1/channels", Some(&login), Some(body)).await?;
            println!(
                "channel {} created ({})",
                v["name"].as_str().unwrap_or(&name),
                v["scope"].as_str().unwrap_or("local")
            );
        }
        ChannelAction::Publisher {
            name,
            number,
            remove,
            login,
        } => {
            let method = if remove { "DELETE" } else { "PUT" };
            let v = call(
                &login.region,
                method,
                &format!("/api/v1/channels/{name}/publishers/{number}"),
                Some(&login),
                None,
            )
            .await?;
            println!("publishers of {name}: {}", v["publishers"]);
        }
        ChannelAction::Post {
            name,
            text,
            expires_in,
            login,
        } => {
            let body = json!({ "text": text, "expires_in": expires_in });
            let v = call(
                &login.region,
                "POST",
                &format!("/api/v1/channels/{name}/items"),
                Some(&login),
                Some(body),
            )
            .await?;
            println!("item {} posted to {name}", v["id"]);
        }
        ChannelAction::List { region } => {
            let v = call(&region, "GET", "/api/v1/channels", None, None).await?;
            for c in v["channels"].as_array().into_iter().flatten() {
                let field = |k: &str| peerdial_channels::text::clean(c[k].as_str().unwrap_or_default());
                println!("{}\t{}\t{}", field("name"), field("scope"), field("title"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn until_times() {
        assert_eq!(parse_until("2026-12-02T18:00:00Z", 0).unwrap(), 1_796_234_400);
        assert_eq!(parse_until("1970-01-01T00:00Z", 0).unwrap(), 0);
        assert_eq!(parse_until("+30", 1000).unwrap(), 2800);
        assert_eq!(parse_until("1800000000", 0).unwrap(), 1_800_000_000);
        for bad in ["tomorrow", "2026-13-01T00:00:00Z", "+x"] {
            assert!(parse_until(bad, 0).is_err(), "{bad}");
        }
    }
}
