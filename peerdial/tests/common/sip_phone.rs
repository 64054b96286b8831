//! A bare SIP phone's registration side over UDP or TCP, written by hand
//! so the tests control every byte.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use peerdial_sip::digest::{challenge_nonce, Algorithm, Credentials};
use peerdial_sip::message::{Message as Sip, StartLine};

use super::Device;

/// A SIP phone's registration side, over UDP or TCP.
pub struct Phone {
    pub udp: Option<UdpSocket>,
    pub tcp: Option<TcpStream>,
    pub registrar: SocketAddr,
    pub call_id: String,
    pub cseq: u32,
    pub branch: u32,
}

impl Phone {
    pub fn udp(registrar: SocketAddr) -> Phone {
        Phone::udp_on(registrar, "127.0.0.1:0")
    }

    pub fn udp_on(registrar: SocketAddr, local: &str) -> Phone {
        let s = UdpSocket::bind(local).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        Phone {
            udp: Some(s),
            tcp: None,
            registrar,
            call_id: format!("c{}", rand_id()),
            cseq: 0,
            branch: 0,
        }
    }

    pub fn tcp(registrar: SocketAddr) -> Phone {
        let s = TcpStream::connect(registrar).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        Phone {
            udp: None,
            tcp: Some(s),
            registrar,
            call_id: format!("c{}", rand_id()),
            cseq: 0,
            branch: 0,
        }
    }

    pub fn local(&self) -> SocketAddr {
        match (&self.udp, &self.tcp) {
            (Some(u), _) => u.local_addr().unwrap(),
            (_, Some(t)) => t.local_addr().unwrap(),
            _ => unreachable!(),
        }
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        match (&self.udp, &mut self.tcp) {
            (Some(u), _) => {
                u.send_to(bytes, self.registrar).unwrap();
            }
            (_, Some(t)) => t.write_all(bytes).unwrap(),
            _ => unreachable!(),
        }
    }

    /// The next SIP message received, or None after the read timeout.
    pub fn recv(&mut self) -> Option<Sip> {
        let mut buf = vec![0u8; 65_536];
        match (&self.udp, &mut self.tcp) {
            (Some(u), _) => {
                let (n, _) = u.recv_from(&mut buf).ok()?;
                Some(Sip::parse(&buf[..n]).expect("registrar sent a parseable message"))
            }
            (_, Some(t)) => {
                let mut acc = Vec::new();
                loop {
                    if let Ok(Some(len)) = peerdial_sip::message::frame_len(&acc) {
                        return Some(Sip::parse(&acc[..len]).unwrap());
                    }
                    let n = t.read(&mut buf).ok()?;
                    if n == 0 {
                        return None;
                    }
                    acc.extend_from_slice(&buf[..n]);
                }
            }
            _ => unreachable!(),
        }
    }

    pub fn request(&mut self, user: &str, expires: u32, auth: Option<String>) -> Vec<u8> {
        self.cseq += 1;
        self.branch += 1;
        let local = self.local();
        let transport = if self.udp.is_some() { "UDP" } else { "TCP" };
        let mut s = format!(
            "REGISTER sip:{reg} SIP/2.0\r\nVia: SIP/2.0/{transport} {local};branch=z9hG4bK{}-{};rport\r\nMax-Forwards: 70\r\n\
From: <sip:{user}@{reg}>;tag=t{}\r\nTo: <sip:{user}@{reg}>\r\nCall-ID: {}\r\nCSeq: {} REGISTER\r\n\
Contact: <sip:{user}@{local}>\r\nExpires: {expires}\r\n",
            self.call_id,
            self.branch,
            self.cseq,
            self.call_id,
            self.cseq,
            reg = self.registrar
        );
        if let Some(a) = auth {
            s.push_str(&format!("Authorization: {a}\r\n"));
        }
        s.push_str("Content-Length: 0\r\n\r\n");
        s.into_bytes()
    }

    /// The Authorization header answering `challenge` (a 401) for `dev`.
    pub fn answer(&self, challenge: &Sip, dev: &Device, password: &str, alg: Algorithm) -> String {
        let want = format!("algorithm={}", alg.name());
        let ch = challenge
            .headers
            .iter()
            .find(|(n, v)| n == "WWW-Authenticate" && v.contains(&want))
            .map(|(_, v)| v.clone())
            .expect("challenge for algorithm");
        let nonce = challenge_nonce(&ch).unwrap();
        let uri = format!("sip:{}", self.registrar);
        Credentials::respond(&dev.user, &dev.realm, password, alg, "REGISTER", &uri, &nonce).to_header()
    }

    /// REGISTER with digest: returns the final status code and response.
    pub fn register(&mut self, dev: &Device, password: &str, alg: Algorithm, expires: u32) -> (u16, Sip) {
        let req = self.request(&dev.user, expires, None);
        self.send_raw(&req);
        let r = self.recv().expect("answer to REGISTER");
        assert_eq!(status(&r), 401, "expected a challenge");
        let auth = self.answer(&r, dev, password, alg);
        let req = self.request(&dev.user, expires, Some(auth));
        self.send_raw(&req);
        let r = self.recv().expect("answer to authenticated REGISTER");
        (status(&r), r)
    }
}

pub fn status(m: &Sip) -> u16 {
    match m.start {
        StartLine::Response { code, .. } => code,
        _ => panic!("expected a response, got a request"),
    }
}

fn rand_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1);
    std::process::id() as u64 * 1_000_000 + N.fetch_add(1, Ordering::Relaxed)
}
