//! chromedriver and headless Chromium for browser tests (WebDriver).

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

use fantoccini::ClientBuilder;

use super::{eventually, require};

/// chromedriver on a loopback port, in its own process group (with the
/// browsers it starts), which is stopped by its id when dropped: a failed
/// test leaves no browser behind.
pub struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start() -> Driver {
        let bin = require("chromedriver");
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(bin)
            .args([format!("--port={port}"), "--allowed-ips=127.0.0.1".into()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap();
        let up = eventually(20, || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
        assert!(up, "chromedriver did not start listening");
        Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

/// chromedriver and one headless Chromium session.
pub async fn browser() -> (Driver, fantoccini::Client) {
    let driver = Driver::start();
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({"args": ["--headless", "--no-sandbox", "--disable-gpu", "--window-size=800,900"]}),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let c = ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a browser session");
    (driver, c)
}
