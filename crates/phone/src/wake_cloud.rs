//! The cloud's command connection on the phone (issue 15, C3): with
//! `--wake-by-cloud` the phone holds `GET /api/v1/devices/commands` on
//! `--top` open, signed in with a PASSporT its region makes for its own
//! number, and reads Server-Sent Events from it. An `event: wake` carries
//! the same payload a push would (the caller, its address, the two cloud
//! tokens); `wake.rs` checks it exactly as it checks a decrypted push. The
//! connection is made again when it drops, with a back-off (1 s doubling
//! to 30 s; back to 1 s once the cloud says "ready").
//!
//! HTTP/1.0 is asked for, so the stream comes close-delimited (no chunk
//! framing between its lines); `peerdial_net::sse` reads the events.
//!
//! Not here: what a wake does (`wake.rs`).

use std::time::Duration;

use peerdial_number::Number;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use crate::wake::WakeCommand;
use crate::{caller_id, Command, Identity};

/// The longest line taken from the cloud.
const MAX_LINE: usize = peerdial_net::sse::MAX_DATA;
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Holds the command connection until the phone goes away.
pub(crate) async fn hold(top: String, id: Identity, own: Number, tx: tokio::sync::mpsc::Sender<Command>) {
    let mut backoff = Duration::from_secs(1);
    let mut said_why = None::<String>;
    loop {
        let why = match once(&top, &id, own, &tx, &mut backoff).await {
            Ok(()) => "the cloud closed the command connection".to_string(),
            Err(e) => e,
        };
        if tx.is_closed() {
            return;
        }
        // One line per kind of trouble, not one per retry.
        if said_why.as_deref() != Some(why.as_str()) {
            let _ = tx
                .send(Command::Wake(WakeCommand::Note(format!("cloud commands: {why}; trying again"))))
                .await;
            said_why = Some(why);
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// One connection: `Ok` when the cloud ended it, `Err` why it failed.
async fn once(
    top: &str,
    id: &Identity,
    own: Number,
    tx: &tokio::sync::mpsc::Sender<Command>,
    backoff: &mut Duration,
) -> Result<(), String> {
    let authority = peerdial_net::http_client::http_authority(top).map_err(|e| e.to_string())?;
    let identity = caller_id::passport(id, own)
        .await
        .map_err(|e| format!("no PASSporT for the cloud: {e}"))?;
    let stream = tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(authority))
        .await
        .map_err(|_| format!("{authority} did not answer"))?
        .map_err(|e| format!("{authority}: {e}"))?;
    let mut stream = BufReader::new(stream);
    let request = format!(
        "GET /api/v1/devices/commands HTTP/1.0\r\nHost: {authority}\r\nAccept: text/event-stream\r\nIdentity: {identity}\r\nX-Peerdial-From: {}\r\n\r\n",
        own.digits()
    );
    stream.get_mut().write_all(request.as_bytes()).await.map_err(|e| e.to_string())?;
    let mut line = String::new();
    read_line(&mut stream, &mut line).await?;
    let status = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or("not an HTTP answer")?;
    loop {
        read_line(&mut stream, &mut line).await?;
        if line.trim_end().is_empty() {
            break;
        }
    }
    if status != 200 {
        return Err(format!("the cloud answered {status}"));
    }
    let mut event = peerdial_net::sse::Lines::default();
    loop {
        read_line(&mut stream, &mut line).await?;
        if line.is_empty() {
            return Ok(());
        }
        let Some((kind, data)) = event.line(line.trim_end_matches(['\r', '\n'])) else {
            continue;
        };
        let command = match kind.as_str() {
            "ready" => {
                // Its data names us; what is printed is our own number,
                // never the cloud's text.
                *backoff = Duration::from_secs(1);
                WakeCommand::Note(format!("cloud commands: held at {top} for {own}"))
            }
            "wake" => WakeCommand::Commanded(data.into_bytes()),
            _ => continue,
        };
        if tx.send(Command::Wake(command)).await.is_err() {
            return Ok(());
        }
    }
}

async fn read_line(stream: &mut BufReader<tokio::net::TcpStream>, line: &mut String) -> Result<(), String> {
    line.clear();
    let mut limited = (&mut *stream).take(MAX_LINE as u64);
    limited.read_line(line).await.map_err(|e| e.to_string())?;
    if line.len() >= MAX_LINE && !line.ends_with('\n') {
        return Err("a line from the cloud is too long".into());
    }
    Ok(())
}
