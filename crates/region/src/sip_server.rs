//! SIP transports: UDP datagrams and TCP streams into the registrar.

use std::net::SocketAddr;
use std::sync::Arc;

use peerdial_sip::message::frame_len;
use peerdial_sip::{Output, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, watch};

use crate::{now_ms, RegionError, Shared};

/// Datagrams larger than this are dropped unread: no SIP request to a
/// registrar needs more, and it bounds what a flood can make us parse.
pub const MAX_DATAGRAM: usize = 16 * 1024;

/// Binds UDP and TCP on the same address (for port 0: the same free port).
pub fn bind(addr: SocketAddr) -> Result<(std::net::UdpSocket, std::net::TcpListener), RegionError> {
    bind_pair(addr)
}

pub(crate) fn bind_pair(addr: SocketAddr) -> Result<(std::net::UdpSocket, std::net::TcpListener), RegionError> {
    let err = |source| RegionError::Bind { addr, source };
    let mut last = None;
    for _ in 0..20 {
        let udp = udp_socket(addr).map_err(err)?;
        let real = udp.local_addr().map_err(err)?;
        match tcp_listener(real) {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) if addr.port() == 0 => last = Some(e),
            Err(e) => return Err(err(e)),
        }
    }
    Err(err(last.expect("tried at least once")))
}

fn udp_socket(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    let s = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    // Bursts of registrations or queries must not overflow the default buffer.
    let _ = s.set_recv_buffer_size(8 << 20);
    let _ = s.set_send_buffer_size(8 << 20);
    s.bind(&addr.into())?;
    Ok(s.into())
}

fn tcp_listener(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let s = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    s.set_reuse_address(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

pub fn spawn(shared: Arc<Shared>, udp: std::net::UdpSocket, tcp: std::net::TcpListener, stop: watch::Receiver<bool>) {
    udp.set_nonblocking(true).expect("nonblocking UDP socket");
    let udp = Arc::new(UdpSocket::from_std(udp).expect("tokio UDP socket"));
    let tcp = TcpListener::from_std(tcp).expect("tokio TCP listener");
    tokio::spawn(udp_loop(shared.clone(), udp, stop.clone()));
    tokio::spawn(tcp_loop(shared, tcp, stop));
}

/// Where an answer goes: back out of the UDP socket, or down a TCP stream.
#[derive(Clone)]
enum Reply {
    Udp(Arc<UdpSocket>, SocketAddr),
    Tcp(mpsc::Sender<Vec<u8>>),
}

impl Reply {
    async fn send(&self, bytes: Vec<u8>) {
        match self {
            Reply::Udp(s, to) => {
                if let Err(e) = s.send_to(&bytes, to).await {
                    tracing::debug!(error = %e, %to, "SIP send failed");
                }
            }
            Reply::Tcp(tx) => {
                let _ = tx.send(bytes).await;
            }
        }
    }
}

/// Acts on the registrar's output: a change is committed to the store
/// before its answer is sent, then published in the zone.
async fn act(shared: &Arc<Shared>, out: Output, reply: Reply) {
    match out {
        Output::Drop => {}
        Output::Reply(bytes) => reply.send(bytes).await,
        Output::Commit {
            change,
            previous,
            reply: bytes,
        } => {
            let shared = shared.clone();
            tokio::spawn(async move {
                let n = change.number();
                match shared.persist(&change).await {
                    Ok(()) => {
                        shared.publish(n);
                        reply.send(bytes).await;
                    }
                    Err(e) => {
                        // Not durable, so not acknowledged: undo, and let the
                        // phone's retransmission try again.
                        tracing::error!(number = %n, error = %e, "binding not stored; REGISTER not acknowledged");
                        shared.registrar.lock().expect("registrar lock").fail_commit(n, previous, &bytes);
                        shared.publish(n);
                    }
                }
            });
        }
    }
}

async fn udp_loop(shared: Arc<Shared>, sock: Arc<UdpSocket>, mut stop: watch::Receiver<bool>) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let (len, src) = tokio::select! {
            r = sock.recv_from(&mut buf) => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::debug!(error = %e, "SIP UDP receive error");
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        if len > MAX_DATAGRAM {
            tracing::debug!(%src, len, "dropping oversize SIP datagram");
            continue;
        }
        let data = &buf[..len];
        if data.iter().all(|b| matches!(b, b'\r' | b'\n' | 0)) {
            continue; // keep-alive
        }
        let out = shared
            .registrar
            .lock()
            .expect("registrar lock")
            .handle(data, Transport::Udp, src, now_ms());
        act(&shared, out, Reply::Udp(sock.clone(), src)).await;
    }
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
    let writer = tokio::spawn(async move {
        while let Some(b) = rx.recv().await {
            if wr.write_all(&b).await.is_err() {
                break;
            }
        }
    });
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    let mut chunk = vec![0u8; 8192];
    'conn: loop {
        // An idle connection is closed after ten minutes.
        let n = match tokio::time::timeout(std::time::Duration::from_secs(600), rd.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        loop {
            // Skip CRLF keep-alives between messages (RFC 5626 3.5.1).
            let skip = buf.iter().take_while(|b| matches!(b, b'\r' | b'\n')).count();
            buf.drain(..skip);
            match frame_len(&buf) {
                Ok(Some(len)) => {
                    let frame: Vec<u8> = buf.drain(..len).collect();
                    let out = shared
                        .registrar
                        .lock()
                        .expect("registrar lock")
                        .handle(&frame, Transport::Tcp, peer, now_ms());
                    act(&shared, out, Reply::Tcp(tx.clone())).await;
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "closing SIP TCP connection that cannot be framed");
                    break 'conn;
                }
            }
        }
    }
    drop(tx);
    let _ = writer.await;
}
