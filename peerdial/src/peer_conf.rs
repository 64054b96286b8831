//! Configuration files for the third-party peers the benchmarks and the
//! tests run next to peerdial (../shared/peers.md): NSD, BIND and Knot as
//! TSIG-keyed secondaries of an area zone, and unbound as a resolver with
//! stub zones. One text per peer, so a bench and a test drive the same
//! setup. Each peer keeps its files in `dir`.
#![allow(dead_code)] // each user (the binary, each test) takes what it needs

use std::net::SocketAddr;
use std::path::Path;

/// A secondary of `zone` that transfers from `primary` with TSIG key `xfr`
/// (HMAC-SHA256, base64 `secret`) and accepts its NOTIFYs. Returns the
/// program, its arguments before the config path, and the config text.
pub fn secondary(
    which: &str,
    dir: &Path,
    port: u16,
    primary: SocketAddr,
    zone: &str,
    secret: &str,
) -> (&'static str, &'static [&'static str], String) {
    let (ip, pport, d) = (primary.ip(), primary.port(), dir.display());
    match which {
        "nsd" => (
            "nsd",
            &["-d", "-c"],
            format!(
                "server:\n  ip-address: 127.0.0.1@{port}\n  zonesdir: \"{d}\"\n  database: \"\"\n  zonelistfile: \"{d}/zone.list\"\n  \
                 xfrdfile: \"{d}/xfrd.state\"\n  pidfile: \"{d}/nsd.pid\"\n  username: \"\"\n  logfile: \"{d}/nsd.log\"\n  \
                 xfrd-reload-timeout: 0\n  rrl-ratelimit: 0\n  verbosity: 2\nremote-control:\n  control-enable: no\n\
                 key:\n  name: \"xfr\"\n  algorithm: hmac-sha256\n  secret: \"{secret}\"\n\
                 zone:\n  name: \"{zone}\"\n  zonefile: \"secondary.zone\"\n  request-xfr: {ip}@{pport} xfr\n  allow-notify: {ip} xfr\n"
            ),
        ),
        "knot" => (
            "knotd",
            &["-c"],
            format!(
                "server:\n  rundir: \"{d}\"\n  listen: 127.0.0.1@{port}\ncontrol:\n  listen: \"{d}/knot.sock\"\ndatabase:\n  storage: \"{d}\"\n\
                 key:\n  - id: xfr\n    algorithm: hmac-sha256\n    secret: {secret}\n\
                 remote:\n  - id: primary\n    address: {ip}@{pport}\n    key: xfr\n\
                 acl:\n  - id: notify_from_primary\n    address: {ip}\n    key: xfr\n    action: notify\n\
                 template:\n  - id: default\n    storage: \"{d}\"\n\
                 zone:\n  - domain: {zone}\n    master: primary\n    acl: notify_from_primary\n"
            ),
        ),
        _ => (
            "named",
            &["-g", "-c"],
            format!(
                "options {{ directory \"{d}\"; listen-on port {port} {{ 127.0.0.1; }}; listen-on-v6 {{ none; }}; pid-file \"{d}/named.pid\";\n\
                 recursion no; notify no; dnssec-validation no; session-keyfile \"{d}/session.key\"; managed-keys-directory \"{d}\"; \
                 max-journal-size unlimited; }};\ncontrols {{ }};\n\
                 key \"xfr\" {{ algorithm hmac-sha256; secret \"{secret}\"; }};\nserver {ip} {{ keys {{ xfr; }}; }};\n\
                 zone \"{zone}\" {{ type secondary; primaries port {pport} {{ {ip} key xfr; }}; file \"{d}/secondary.db\"; }};\n"
            ),
        ),
    }
}

/// unbound on 127.0.0.1:`port`, iterating only (no DNSSEC), with a stub
/// zone per (zone, server); `control` adds a local control socket (for
/// `unbound-control flush`).
pub fn unbound(dir: &Path, port: u16, stubs: &[(&str, SocketAddr)], control: bool) -> String {
    let d = dir.display();
    let mut conf = format!(
        "server:\n  interface: 127.0.0.1\n  port: {port}\n  do-not-query-localhost: no\n  username: \"\"\n  chroot: \"\"\n  \
         directory: \"{d}\"\n  pidfile: \"\"\n  use-syslog: no\n  logfile: \"\"\n  verbosity: 0\n  module-config: \"iterator\"\n  \
         access-control: 127.0.0.0/8 allow\n  num-threads: 1\n  so-reuseport: no\n  local-zone: \"internal.\" nodefault\n"
    );
    for (zone, _) in stubs {
        conf.push_str(&format!("  domain-insecure: \"{zone}\"\n"));
    }
    if control {
        conf.push_str(&format!(
            "remote-control:\n  control-enable: yes\n  control-interface: {d}/ctl.sock\n  control-use-cert: no\n"
        ));
    }
    for (zone, addr) in stubs {
        conf.push_str(&format!(
            "stub-zone:\n  name: \"{zone}\"\n  stub-addr: {}@{}\n  stub-prime: no\n",
            addr.ip(),
            addr.port()
        ));
    }
    conf
}
