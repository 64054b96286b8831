//! Kamailio as a foreign SIP server (a company's or a carrier's):
//! registrar and proxy, accounts in memory, no authentication, and no
//! Record-Route, so requests inside a dialog go straight between the
//! parties. Started on a free loopback port, stopped by PID on drop.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use super::{free_udp_port, require};

pub struct Kamailio {
    child: Child,
    pub addr: SocketAddr,
}

fn config(port: u16) -> String {
    format!(
        r#"#!KAMAILIO
debug=2
log_stderror=yes
children=2
dns=no
rev_dns=no
listen=udp:127.0.0.1:{port}
alias="127.0.0.1:{port}"
mpath="/usr/lib/x86_64-linux-gnu/kamailio/modules/"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "siputils.so"
loadmodule "textops.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "rr.so"
modparam("usrloc", "db_mode", 0)
request_route {{
  if (!mf_process_maxfwd_header("10")) {{ sl_send_reply("483", "Too Many Hops"); exit; }}
  if (is_method("REGISTER")) {{ save("location"); exit; }}
  if (has_totag()) {{
    if (loose_route()) {{ t_relay(); exit; }}
    if (is_method("ACK")) {{ if (t_check_trans()) {{ t_relay(); }} exit; }}
    sl_send_reply("404", "Not Here");
    exit;
  }}
  if (is_method("CANCEL")) {{ if (t_check_trans()) {{ t_relay(); }} exit; }}
  if (!lookup("location")) {{ sl_send_reply("404", "Not Found"); exit; }}
  t_relay();
}}
"#
    )
}

impl Kamailio {
    pub fn start(dir: &Path) -> Kamailio {
        let port = free_udp_port();
        let run = dir.join("run");
        std::fs::create_dir_all(&run).unwrap();
        let cfg = dir.join("kamailio.cfg");
        std::fs::write(&cfg, config(port)).unwrap();
        let log = std::fs::File::create(dir.join("kamailio.log")).unwrap();
        let child = Command::new(require("kamailio"))
            .args([
                "-f",
                cfg.to_str().unwrap(),
                "-DD",
                "-E",
                "-Y",
                run.to_str().unwrap(),
                "-m",
                "64",
                "-M",
                "8",
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Kamailio {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
