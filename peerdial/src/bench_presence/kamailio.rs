//! Kamailio 5.6 as the reference presence server of `peerdial bench
//! presence`: presence + presence_xml in memory (`subs_db_mode 0`,
//! `publ_cache 2`), no authentication, started on its own port and
//! directory (pinned to the server core when asked) and stopped by its PID.
//! Not a general Kamailio wrapper: bench.rs has the registrar one.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Result};

use crate::bench_tools::{free_port, kamailio_mpath, tool, SERVER_CORE};

/// Kamailio 5.6 as a presence server, configured as in
/// ../shared/peer-configs/kamailio-presence.cfg (in-memory modes) on its
/// own port and directory.
pub(super) struct KamailioPresence {
    child: std::process::Child,
    pub(super) pid: u32,
    pub(super) addr: SocketAddr,
}

impl KamailioPresence {
    pub(super) fn start(dir: &Path, pin: bool) -> Result<KamailioPresence> {
        let port = free_port()?;
        std::fs::create_dir_all(dir)?;
        let mpath = kamailio_mpath()?;
        let d = dir.display();
        let cfg = format!(
            r#"#!KAMAILIO
#!define DBURL "sqlite://{d}/pres.sqlite"
debug=0
log_stderror=yes
children=2
dns=no
rev_dns=no
maxbuffer=4194304
listen=udp:127.0.0.1:{port}
alias="127.0.0.1:{port}"
mpath="{mpath}"
loadmodule "db_sqlite.so"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "siputils.so"
loadmodule "textops.so"
loadmodule "presence.so"
loadmodule "presence_xml.so"
modparam("presence", "db_url", DBURL)
modparam("presence", "server_address", "sip:127.0.0.1:{port}")
modparam("presence", "subs_db_mode", 0)
modparam("presence", "publ_cache", 2)
modparam("presence_xml", "db_url", DBURL)
modparam("presence_xml", "force_active", 1)
request_route {{
  if (!mf_process_maxfwd_header("10")) {{ sl_send_reply("483","Too Many Hops"); exit; }}
  if (is_method("PUBLISH|SUBSCRIBE")) route(PRESENCE);
  if (is_method("ACK")) exit;
  sl_send_reply("405","Method Not Allowed"); exit;
}}
route[PRESENCE] {{
  if (!t_newtran()) {{ sl_reply_error(); exit; }}
  if (is_method("PUBLISH")) handle_publish(); else handle_subscribe();
  t_release(); exit;
}}
"#
        );
        std::fs::write(dir.join("kamailio.cfg"), cfg)?;
        let mut cmd = if pin {
            let mut c = std::process::Command::new("taskset");
            c.args(["-c", SERVER_CORE]).arg(tool("kamailio")?);
            c
        } else {
            std::process::Command::new(tool("kamailio")?)
        };
        let mut child = cmd
            .args([
                "-f",
                "kamailio.cfg",
                "-DD",
                "-E",
                "-Y",
                ".",
                "-P",
                "kamailio.pid",
                "-m",
                "512",
                "-M",
                "16",
            ])
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("kamailio.log"))?)
            .spawn()?;
        let pid = child.id();
        std::thread::sleep(Duration::from_secs(2));
        if let Ok(Some(st)) = child.try_wait() {
            let log = std::fs::read_to_string(dir.join("kamailio.log")).unwrap_or_default();
            bail!("Kamailio exited ({st}): {log}");
        }
        Ok(KamailioPresence {
            child,
            pid,
            addr: format!("127.0.0.1:{port}").parse()?,
        })
    }

    pub(super) fn stop(mut self) {
        super::stop_by_pid(&mut self.child, Duration::from_secs(10));
    }
}
