//! Listening sockets: UDP and TCP on one address, with buffers large
//! enough for bursts.

use std::net::SocketAddr;

/// Binds UDP and TCP on the same address (for port 0: the same free port).
pub fn bind_pair(addr: SocketAddr) -> std::io::Result<(std::net::UdpSocket, std::net::TcpListener)> {
    let mut last = None;
    for _ in 0..20 {
        let udp = udp_socket(addr)?;
        let real = udp.local_addr()?;
        match tcp_listener(real) {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) if addr.port() == 0 => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.expect("tried at least once"))
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

/// A non-blocking TCP listener whose accept queue takes a burst of
/// connections (a city's phones provisioning after a power cut): 4096, as
/// far as the kernel's somaxconn allows, not std's and tokio's 1024.
pub fn tcp_listener(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let s = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    s.set_reuse_address(true)?;
    s.bind(&addr.into())?;
    s.listen(4096)?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}
