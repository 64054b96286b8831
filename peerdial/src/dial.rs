//! `peerdial dial`: a dialer on the command line (issue 13). It asks the
//! top to connect one of the user's talkers with a callee
//! (`POST /api/v1/calls`) and prints the call's progress as lines until
//! it connects and ends, or fails; Ctrl-C cancels the call
//! (`DELETE /api/v1/calls/{id}`). Two or more callees ask for a
//! conference (`"callees"`), whose lines name each talker as it is
//! called, joins, fails or leaves. The user's token comes from
//! `POST /api/v1/session` on the top.

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::{json, Value};

#[derive(Args, Debug)]
pub struct DialArgs {
    /// The top's HTTP URL, e.g. http://127.0.0.1:8081.
    #[arg(long, value_name = "URL")]
    top: String,
    /// The user's bearer token (from POST /api/v1/session on the top).
    #[arg(long, value_name = "TOKEN", env = "PEERDIAL_TOKEN", hide_env_values = true)]
    token: String,
    /// Which of your talkers rings first: its name, or "any".
    #[arg(long, value_name = "NAME", default_value = "any")]
    talker: String,
    /// Return once connected instead of waiting for the call to end.
    #[arg(long)]
    no_wait: bool,
    /// The callee: a user's or a peerdial number. Two or more make a
    /// conference the top hosts (each hears everyone but itself).
    #[arg(required = true, num_args = 1..)]
    callees: Vec<String>,
}

fn parse(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or(Value::Null)
}

fn reason(body: &Value, raw: &str) -> String {
    body.get("error")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| raw.trim().to_string())
}

/// Exit status: 0 connected (and, without --no-wait, ended), 1 failed.
pub async fn run(a: DialArgs) -> Result<i32> {
    let auth = format!("Bearer {}", a.token);
    let headers = [("Authorization", auth.as_str())];
    let conference = a.callees.len() > 1;
    let req = if conference {
        json!({"talker": a.talker, "callees": a.callees})
    } else {
        json!({"talker": a.talker, "callee": a.callees[0]})
    }
    .to_string();
    let (status, body) = peerdial_net::http_client::request_with("POST", &a.top, "/api/v1/calls", &headers, Some(&req))
        .await
        .context("asking the top for the call")?;
    let v = parse(&body);
    if status != 201 {
        bail!("refused ({status}): {}", reason(&v, &body));
    }
    let id = v["id"].as_u64().context("the top's answer has no call id")?;
    if conference {
        let with: Vec<String> = v["callees"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                format!(
                    "{}'s {:?}",
                    c["callee"].as_str().unwrap_or("?"),
                    c["talker"].as_str().unwrap_or("?")
                )
            })
            .collect();
        println!(
            "conference: your {:?} with {}",
            v["talker"].as_str().unwrap_or("?"),
            with.join(", ")
        );
    } else {
        println!(
            "matched: your {:?} with {}'s {:?} ({})",
            v["talker"].as_str().unwrap_or("?"),
            v["callee"].as_str().unwrap_or("?"),
            v["callee_talker"].as_str().unwrap_or("?"),
            v["reason"].as_str().unwrap_or("?")
        );
    }
    let path = format!("/api/v1/calls/{id}");
    let mut after = 0u64;
    let mut connected = false;
    let mut joined = 0;
    // Bounded: a call is answered within minutes or fails; a long call
    // polls every 25 s.
    loop {
        let poll = format!("{path}?after={after}&wait=25");
        let next = tokio::select! {
            r = peerdial_net::http_client::request_with("GET", &a.top, &poll, &headers, None) => r,
            _ = tokio::signal::ctrl_c() => {
                let _ = peerdial_net::http_client::request_with("DELETE", &a.top, &path, &headers, None).await;
                println!("cancelling");
                continue;
            }
        };
        let (status, body) = next.context("asking the top for progress")?;
        let v = parse(&body);
        if status != 200 {
            bail!("progress ({status}): {}", reason(&v, &body));
        }
        for ev in v["events"].as_array().into_iter().flatten() {
            println!("{}", ev["text"].as_str().unwrap_or("?"));
            match ev["event"].as_str() {
                Some("connected") => connected = true,
                // A conference is connected once two talkers are in.
                Some("joined") => {
                    joined += 1;
                    connected |= joined >= 2;
                }
                Some("failed") if !conference => return Ok(1),
                _ => {}
            }
        }
        after = v["next"].as_u64().unwrap_or(after);
        if v["over"].as_bool() == Some(true) {
            return Ok(if connected { 0 } else { 1 });
        }
        if connected && a.no_wait {
            return Ok(0);
        }
    }
}
