//! SIP transports: UDP datagrams (on plain threads) and TCP streams (on
//! tokio) into the registrar, and SUBSCRIBE, PUBLISH and responses into
//! the presence edge ([`crate::presence`]), calls to the mailbox
//! ([`crate::mailbox`], over UDP; its texts and `message-summary`
//! subscriptions over both), told apart by the start line.

use std::net::SocketAddr;
use std::sync::Arc;

use peerdial_sip::message::frame_len;
use peerdial_sip::{Output, Transport};
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

use crate::mailbox::Mailbox;
use crate::presence::{kind, Kind};
use crate::{change_to_write, now_ms, RegionError, Shared};

/// Datagrams larger than this are dropped unread: no SIP request to a
/// registrar needs more, and it bounds what a flood can make us parse.
pub const MAX_DATAGRAM: usize = 16 * 1024;

/// Binds UDP and TCP on the same address (for port 0: the same free port).
pub fn bind(addr: SocketAddr) -> Result<(std::net::UdpSocket, std::net::TcpListener), RegionError> {
    peerdial_net::bind_pair(addr).map_err(|source| RegionError::Bind { addr, source })
}

pub fn spawn(shared: Arc<Shared>, udp: std::net::UdpSocket, tcp: std::net::TcpListener, mut stop: watch::Receiver<bool>) {
    // UDP is the hot path: plain threads, like DNS; a commit is acknowledged
    // by a callback on the store's writer, with no task per registration.
    let stopped = Arc::new(AtomicBool::new(false));
    udp.set_read_timeout(Some(std::time::Duration::from_millis(250)))
        .expect("read timeout");
    let udp = Arc::new(udp);
    shared.presence.set_udp(udp.clone());
    shared.mailbox.set_udp(udp.clone());
    for i in 0..2 {
        let (shared, udp, stopped) = (shared.clone(), udp.clone(), stopped.clone());
        std::thread::Builder::new()
            .name(format!("sip-udp-{i}"))
            .spawn(move || udp_thread(&shared, &udp, &stopped))
            .expect("spawn SIP thread");
    }
    let tcp = TcpListener::from_std(tcp).expect("tokio TCP listener");
    let tcp_stop = stop.clone();
    tokio::spawn(async move {
        let _ = stop.changed().await;
        stopped.store(true, Ordering::Relaxed);
    });
    tokio::spawn(tcp_loop(shared, tcp, tcp_stop));
}

fn udp_thread(shared: &Arc<Shared>, sock: &Arc<std::net::UdpSocket>, stopped: &AtomicBool) {
    let mut buf = vec![0u8; 65_536];
    while !stopped.load(Ordering::Relaxed) {
        let (len, src) = match sock.recv_from(&mut buf) {
            Ok(x) => x,
            Err(_) => continue, // timeout: check the stop flag
        };
        if len > MAX_DATAGRAM {
            tracing::debug!(%src, len, "dropping oversize SIP datagram");
            continue;
        }
        let data = &buf[..len];
        if data.iter().all(|b| matches!(b, b'\r' | b'\n' | 0)) {
            continue; // keep-alive
        }
        if Mailbox::claims(data) {
            // A request from a phone is still a sign of life.
            shared.presence.heard_from(src);
            shared.mailbox.request(shared, data, src, Transport::Udp);
            continue;
        }
        match kind(data) {
            Kind::Register => {}
            Kind::Presence => {
                shared.presence.request(shared, data, src, Transport::Udp);
                continue;
            }
            Kind::Response => {
                if !shared.mailbox.response(data, src) {
                    shared.presence.response(data);
                }
                continue;
            }
            Kind::Other => shared.presence.heard_from(src),
        }
        let out = shared
            .registrar
            .lock()
            .expect("registrar lock")
            .handle(data, Transport::Udp, src, now_ms());
        tracing::trace!(%src, len, reply = matches!(out, Output::Reply(_)), commit = matches!(out, Output::Commit { .. }), "SIP datagram");
        match out {
            Output::Drop => {}
            Output::Reply(bytes) => {
                let _ = sock.send_to(&bytes, src);
            }
            Output::Commit { change, previous, reply } => {
                let sock = sock.clone();
                let then = on_commit(shared.clone(), &change, previous, reply, src, move |b| {
                    let _ = sock.send_to(&b, src);
                });
                shared.store.submit_blocking(change_to_write(&change), then);
            }
        }
    }
}

/// Where a TCP answer goes: to the connection writer.
#[derive(Clone)]
struct Reply(mpsc::Sender<Vec<u8>>);

impl Reply {
    async fn send(&self, bytes: Vec<u8>) {
        let _ = self.0.send(bytes).await;
    }
}

/// Acts on the registrar's output: a change is committed to the store
/// before its answer is sent, then published in the zone.
async fn act(shared: &Arc<Shared>, out: Output, reply: Reply, peer: SocketAddr) {
    match out {
        Output::Drop => {}
        Output::Reply(bytes) => reply.send(bytes).await,
        Output::Commit {
            change,
            previous,
            reply: bytes,
        } => {
            let tx = reply.0.clone();
            // The connection's writer drains its queue promptly; if it is
            // full the peer is not reading, and its retransmission asks again.
            let then = on_commit(shared.clone(), &change, previous, bytes, peer, move |b| {
                let _ = tx.try_send(b);
            });
            shared.store.submit(change_to_write(&change), then).await;
        }
    }
}

/// What to do once a binding change is durable: publish it in the zone,
/// acknowledge, and tell presence (the phone is reachable now; over TCP,
/// through the connection from `source`). If it could not be stored it is
/// not acknowledged: undo it, and let the phone's retransmission try again.
fn on_commit(
    shared: Arc<Shared>,
    change: &peerdial_sip::Change,
    previous: Option<peerdial_sip::Binding>,
    reply: Vec<u8>,
    source: SocketAddr,
    send: impl FnOnce(Vec<u8>) + Send + 'static,
) -> peerdial_store::Callback {
    let n = change.number();
    let change_copy = change.clone();
    let bound = match change {
        peerdial_sip::Change::Upsert(_, b) if b.transport == Transport::Tcp => Some((source, Transport::Tcp)),
        peerdial_sip::Change::Upsert(_, b) => Some((b.addr, b.transport)),
        peerdial_sip::Change::Remove(_) => None,
    };
    Box::new(move |r| match r {
        Ok(_) => {
            // Reachable first: the zone publishes a contact only then.
            shared.presence.binding(n, bound);
            shared.publish(n);
            shared.push.on_change(&change_copy);
            send(reply);
            if bound.is_some() {
                // Back online: texts the mailbox kept go to the phone now.
                crate::mailbox_text::deliver(&shared, n);
            }
        }
        Err(e) => {
            tracing::error!(number = %n, error = %e, "binding not stored; REGISTER not acknowledged");
            shared.registrar.lock().expect("registrar lock").fail_commit(n, previous, &reply);
            shared.publish(n);
        }
    })
}

async fn tcp_loop(shared: Arc<Shared>, listener: TcpListener, mut stop: watch::Receiver<bool>) {
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::debug!(error = %e, "SIP TCP accept error");
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        tokio::spawn(tcp_conn(shared.clone(), stream, peer));
    }
}

async fn tcp_conn(shared: Arc<Shared>, stream: TcpStream, peer: SocketAddr) {
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(64);
    shared.presence.tcp_opened(peer, tx.clone());
    let writer = tokio::spawn(async move {
        while let Some(b) = rx.recv().await {
            if wr.write_all(&b).await.is_err() {
                break;
            }
        }
    });
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    let mut chunk = vec![0u8; 8192];
    // A connection that pings is a flow (RFC 5626): silent for two
    // Flow-Timer intervals, its phone is gone. Others are closed after
    // ten idle minutes.
    let mut pinged = false;
    let flow_silence = std::time::Duration::from_secs(2 * shared.cfg.keepalive.max(1) as u64 + 5);
    'conn: loop {
        let idle = if pinged {
            flow_silence
        } else {
            std::time::Duration::from_secs(600)
        };
        let n = match tokio::time::timeout(idle, rd.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        loop {
            // CRLF keep-alives between messages (RFC 5626 3.5.1): a double
            // CRLF ping gets a CRLF pong.
            let skip = buf.iter().take_while(|b| matches!(b, b'\r' | b'\n')).count();
            if buf[..skip].windows(4).any(|w| w == b"\r\n\r\n") {
                pinged = true;
                let _ = tx.try_send(b"\r\n".to_vec());
                shared.presence.heard_from(peer);
            }
            buf.drain(..skip);
            match frame_len(&buf) {
                Ok(Some(len)) => {
                    let frame: Vec<u8> = buf.drain(..len).collect();
                    if Mailbox::claims(&frame) {
                        shared.presence.heard_from(peer);
                        shared.mailbox.request(&shared, &frame, peer, Transport::Tcp);
                        continue;
                    }
                    match kind(&frame) {
                        Kind::Register => {}
                        Kind::Presence => {
                            shared.presence.request(&shared, &frame, peer, Transport::Tcp);
                            continue;
                        }
                        Kind::Response => {
                            if !shared.mailbox.response(&frame, peer) {
                                shared.presence.response(&frame);
                            }
                            continue;
                        }
                        Kind::Other => shared.presence.heard_from(peer),
                    }
                    let out = shared
                        .registrar
                        .lock()
                        .expect("registrar lock")
                        .handle(&frame, Transport::Tcp, peer, now_ms());
                    act(&shared, out, Reply(tx.clone()), peer).await;
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "closing SIP TCP connection that cannot be framed");
                    break 'conn;
                }
            }
        }
    }
    shared.presence.tcp_closed(peer);
    drop(tx);
    let _ = writer.await;
}
