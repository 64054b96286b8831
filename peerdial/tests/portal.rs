//! The web portal in a real browser: headless Chromium driven through
//! chromedriver (WebDriver), against a running `peerdial region`.

mod common;

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

use base64::Engine;
use common::*;
use fantoccini::{ClientBuilder, Locator};

/// chromedriver on a loopback port, in its own process group (with the
/// browsers it starts), which is stopped by its id when dropped: a failed
/// test leaves no browser behind.
struct Driver {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_edit_profile_and_search_in_a_browser() {
    let dir = tempfile::tempdir().unwrap();
    let region = Region::start(dir.path(), &[]);
    let dev = provision(region.http, "02:00:00:00:0a:01");

    // The first password, set with the number's SIP credentials.
    let creds = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", dev.user, dev.password));
    let auth = format!("Basic {creds}");
    let resp = http_raw(
        region.http,
        "POST",
        "/api/v1/account/password",
        &[("Content-Type", "application/json"), ("Authorization", &auth)],
        br#"{"password":"kite flying 2026"}"#,
    );
    let (status, j) = parse_http(&resp);
    assert_eq!(status, 200, "{j}");
    let resp = http_raw(
        region.http,
        "POST",
        "/api/v1/account/password",
        &[("Content-Type", "application/json")],
        br#"{"password":"x"}"#,
    );
    assert_eq!(parse_http(&resp).0, 401, "no credentials, no password");

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
    let base = format!("http://{}", region.http);

    // Sign in through the form.
    c.goto(&format!("{base}/signin")).await.unwrap();
    c.find(Locator::Id("number")).await.unwrap().send_keys(&dev.user).await.unwrap();
    c.find(Locator::Id("password"))
        .await
        .unwrap()
        .send_keys("kite flying 2026")
        .await
        .unwrap();
    c.find(Locator::Id("submit")).await.unwrap().click().await.unwrap();
    c.wait()
        .for_element(Locator::Id("save"))
        .await
        .expect("signed in: the profile form");
    assert_eq!(c.current_url().await.unwrap().path(), "/profile");

    // Fill the profile; the organisation stays private.
    for (id, value, public) in [
        ("display_name", "Ada Kite", true),
        ("city", "Taipei", true),
        ("organisation", "Zebracorp", false),
        ("interests", "kites and <b>tea</b>", true),
    ] {
        c.find(Locator::Id(id)).await.unwrap().send_keys(value).await.unwrap();
        if public {
            c.find(Locator::Id(&format!("{id}_public"))).await.unwrap().click().await.unwrap();
        }
    }
    c.find(Locator::Id("listed")).await.unwrap().click().await.unwrap();
    c.find(Locator::Id("save")).await.unwrap().click().await.unwrap();
    if c.wait().for_element(Locator::Id("saved")).await.is_err() {
        panic!("the profile was not saved: {}", c.source().await.unwrap());
    }

    // A visitor's view: the yellow pages.
    c.goto(&format!("{base}/?q=kites")).await.unwrap();
    let result = c.wait().for_element(Locator::Css(".result")).await.expect("one result");
    let text = result.text().await.unwrap();
    assert!(text.contains("Ada Kite") && text.contains("Taipei"), "{text}");
    assert!(text.contains("<b>tea</b>"), "markup shown as text: {text}");
    let source = c.source().await.unwrap();
    assert!(!source.contains("Zebracorp"), "a private field is not in the page");
    let png = c.screenshot().await.unwrap();
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("portal-yellow-pages.png");
    std::fs::write(&shot, png).unwrap();

    c.goto(&format!("{base}/?q=zebracorp")).await.unwrap();
    c.wait()
        .for_element(Locator::Id("no-results"))
        .await
        .expect("a private value finds nobody");
    assert!(c.find_all(Locator::Css(".result")).await.unwrap().is_empty());

    c.close().await.unwrap();
    drop(driver);
    region.stop();
}
