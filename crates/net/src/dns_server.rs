//! DNS transports: UDP on a few blocking threads (the hot path: no async
//! overhead per query), TCP on tokio with RFC 1035 length framing. Any
//! zone engine that implements [`Answer`] can be served: the region's area
//! zone, or the top server's delegating zone.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use peerdial_dns::Transport;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A zone engine behind the sockets.
pub trait Answer: Send + Sync + 'static {
    /// The response to one query from `source`; `None` sends nothing.
    fn answer(&self, query: &[u8], transport: Transport, source: std::net::SocketAddr) -> Option<Vec<u8>>;

    /// Over TCP a query may have several response messages (a zone transfer).
    fn answer_stream(&self, query: &[u8], source: std::net::SocketAddr) -> Vec<Vec<u8>> {
        self.answer(query, Transport::Tcp, source).into_iter().collect()
    }
}

/// Serves `shared` on the sockets until `stop` changes.
pub fn spawn<A: Answer>(
    shared: Arc<A>,
    threads: usize,
    udp: std::net::UdpSocket,
    tcp: std::net::TcpListener,
    mut stop: watch::Receiver<bool>,
) {
    let stopped = Arc::new(AtomicBool::new(false));
    udp.set_read_timeout(Some(Duration::from_millis(250))).expect("read timeout");
    for i in 0..threads.max(1) {
        let sock = udp.try_clone().expect("clone UDP socket");
        let shared = shared.clone();
        let stopped = stopped.clone();
        std::thread::Builder::new()
            .name(format!("dns-udp-{i}"))
            .spawn(move || udp_thread(&*shared, &sock, &stopped))
            .expect("spawn DNS thread");
    }
    let tcp = TcpListener::from_std(tcp).expect("tokio TCP listener");
    let mut stop2 = stop.clone();
    tokio::spawn(async move {
        let _ = stop.changed().await;
        stopped.store(true, Ordering::Relaxed);
    });
    tokio::spawn(async move {
        loop {
            let (stream, _) = tokio::select! {
                r = tcp.accept() => match r { Ok(x) => x, Err(_) => continue },
                _ = stop2.changed() => return,
            };
            let peer = stream.peer_addr();
            if let Ok(peer) = peer {
                tokio::spawn(tcp_conn(shared.clone(), stream, peer));
            }
        }
    });
}

fn udp_thread<A: Answer>(shared: &A, sock: &std::net::UdpSocket, stopped: &AtomicBool) {
    let mut buf = [0u8; 4096];
    while !stopped.load(Ordering::Relaxed) {
        let (len, src) = match sock.recv_from(&mut buf) {
            Ok(x) => x,
            Err(_) => continue, // timeout: check the stop flag
        };
        let answer = shared.answer(&buf[..len], Transport::Udp, src);
        if let Some(a) = answer {
            let _ = sock.send_to(&a, src);
        }
    }
}

async fn tcp_conn<A: Answer>(shared: Arc<A>, mut stream: TcpStream, peer: std::net::SocketAddr) {
    loop {
        // RFC 7766: idle connections may be closed; 10 s is generous.
        let mut len = [0u8; 2];
        match tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut len)).await {
            Ok(Ok(_)) => {}
            _ => return,
        }
        let mut msg = vec![0u8; u16::from_be_bytes(len) as usize];
        if tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut msg))
            .await
            .is_err()
        {
            return;
        }
        let answers = shared.answer_stream(&msg, peer);
        if answers.is_empty() {
            return;
        }
        for a in answers {
            let mut out = Vec::with_capacity(a.len() + 2);
            out.extend_from_slice(&(a.len() as u16).to_be_bytes());
            out.extend_from_slice(&a);
            if stream.write_all(&out).await.is_err() {
                return;
            }
        }
    }
}
