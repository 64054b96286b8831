//! The portal's pages over HTTP, as a browser without JavaScript uses
//! them: forms, cookies, redirects. (The region-level browser test is in
//! peerdial/tests/portal.rs.)

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use peerdial_number::{Area, Number};
use peerdial_portal::{hash_password, router, PortalConfig};
use peerdial_store::Store;
use tower::ServiceExt;

const PASSWORD: &str = "correct horse";

fn area() -> Area {
    Area::new(886, 2).unwrap()
}

fn number(i: u32) -> Number {
    Number::new(area(), i)
}

struct Site {
    _dir: tempfile::TempDir,
    url: String,
    store: Store,
    app: Router,
}

async fn open_at(dir: tempfile::TempDir) -> Site {
    let url = format!("sqlite:{}", dir.path().join("region.db").display());
    let store = Store::open(&url).await.unwrap();
    let app = router(PortalConfig {
        store: store.clone(),
        database: url.clone(),
        area: area(),
        link: std::sync::Arc::new(peerdial_portal::Standalone),
    })
    .await
    .unwrap();
    Site {
        _dir: dir,
        url,
        store,
        app,
    }
}

async fn site() -> Site {
    let s = open_at(tempfile::tempdir().unwrap()).await;
    for i in [1, 2] {
        let h = hash_password(PASSWORD).await.unwrap();
        s.store.set_password_hash(number(i).as_u64() as i64, &h, 1).await.unwrap();
    }
    s
}

/// A browser: keeps cookies, comes from one address.
struct Browser {
    cookies: HashMap<String, String>,
    from: SocketAddr,
    lang: &'static str,
}

struct Page {
    status: StatusCode,
    location: Option<String>,
    set_cookies: Vec<String>,
    body: String,
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Browser {
    fn new(from: &str) -> Browser {
        Browser {
            cookies: HashMap::new(),
            from: from.parse().unwrap(),
            lang: "en",
        }
    }

    async fn send(&mut self, app: &Router, method: &str, path: &str, form: Option<&[(&str, &str)]>) -> Page {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::ACCEPT_LANGUAGE, self.lang);
        if !self.cookies.is_empty() {
            let c: Vec<String> = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
            req = req.header(header::COOKIE, c.join("; "));
        }
        let body = match form {
            Some(f) => {
                req = req.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
                let pairs: Vec<String> = f.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect();
                Body::from(pairs.join("&"))
            }
            None => Body::empty(),
        };
        let mut req = req.body(body).unwrap();
        req.extensions_mut().insert(ConnectInfo(self.from));
        let resp = app.clone().oneshot(req).await.unwrap();
        let mut set_cookies = Vec::new();
        for c in resp.headers().get_all(header::SET_COOKIE) {
            let c = c.to_str().unwrap();
            set_cookies.push(c.to_string());
            let (kv, attrs) = c.split_once(';').unwrap_or((c, ""));
            let (k, v) = kv.split_once('=').unwrap();
            if attrs.contains("Max-Age=0") || v.is_empty() {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_string(), v.to_string());
            }
        }
        let status = resp.status();
        let location = resp.headers().get(header::LOCATION).map(|l| l.to_str().unwrap().to_string());
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
        Page {
            status,
            location,
            set_cookies,
            body: String::from_utf8(body.to_vec()).unwrap(),
        }
    }

    async fn get(&mut self, app: &Router, path: &str) -> Page {
        self.send(app, "GET", path, None).await
    }

    async fn post(&mut self, app: &Router, path: &str, form: &[(&str, &str)]) -> Page {
        self.send(app, "POST", path, Some(form)).await
    }

    async fn sign_in(&mut self, app: &Router, n: Number, password: &str) -> Page {
        let form = self.get(app, "/signin").await;
        let token = csrf_of(&form.body);
        let digits = n.digits();
        self.post(app, "/signin", &[("csrf", &token), ("number", &digits), ("password", password)])
            .await
    }
}

fn csrf_of(html: &str) -> String {
    let start = html.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
    html[start..].split('"').next().unwrap().to_string()
}

async fn save_profile(b: &mut Browser, app: &Router, extra: &[(&str, &str)]) -> Page {
    let token = csrf_of(&b.get(app, "/profile").await.body);
    let mut form = vec![("csrf", token.as_str())];
    form.extend_from_slice(extra);
    b.post(app, "/profile", &form).await
}

#[tokio::test]
async fn private_fields_never_reach_the_yellow_pages_and_text_is_escaped() {
    let s = site().await;
    let mut b = Browser::new("127.0.0.1:5000");
    let r = b.sign_in(&s.app, number(1), PASSWORD).await;
    assert_eq!((r.status, r.location.as_deref()), (StatusCode::SEE_OTHER, Some("/profile")));
    let r = save_profile(
        &mut b,
        &s.app,
        &[
            ("display_name", "<script>alert(1)</script>"),
            ("display_name_public", "on"),
            ("city", "Taipei"),
            ("city_public", "on"),
            ("organisation", "Zebracorp"),
            ("interests", "kites"),
            ("interests_public", "on"),
            ("listed", "on"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("id=\"saved\""));
    assert!(r.body.contains("Zebracorp"), "the owner sees the private value");

    let mut visitor = Browser::new("127.0.0.2:5000");
    let found = visitor.get(&s.app, "/?q=kites").await;
    assert_eq!(found.status, StatusCode::OK);
    assert!(
        found.body.contains("&#60;script&#62;alert(1)&#60;/script&#62;") || found.body.contains("&lt;script&gt;"),
        "{}",
        found.body
    );
    // The page has a script of its own (live presence); the field's is text.
    assert!(!found.body.contains("<script>alert"), "a field's markup is shown as text");
    assert!(found.body.contains("Taipei"));
    assert!(found.body.contains(&format!("/api/v1/greetings/{}/caller", number(1).digits())));
    assert!(!found.body.contains("Zebracorp"), "a private value is not in the page");
    let none = visitor.get(&s.app, "/?q=zebracorp").await;
    assert!(
        none.body.contains("id=\"no-results\"") && !none.body.contains("<section class=\"result\""),
        "searching a private value finds nothing"
    );
    assert!(!visitor.get(&s.app, "/").await.body.contains("Zebracorp"));
    for q in ["%22", "NEAR(kites", "*", "((((", "kites%22%20OR%20%22", "-", "%27"] {
        let r = visitor.get(&s.app, &format!("/?q={q}")).await;
        assert_eq!(r.status, StatusCode::OK, "{q}");
    }
}

#[tokio::test]
async fn posts_without_the_right_csrf_token_change_nothing() {
    let s = site().await;
    let mut b = Browser::new("127.0.0.1:5000");
    // Sign-in without a token: refused, not signed in.
    b.get(&s.app, "/signin").await;
    let digits = number(1).digits();
    let r = b.post(&s.app, "/signin", &[("number", &digits), ("password", PASSWORD)]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body.contains("security token"));
    assert_eq!(b.get(&s.app, "/profile").await.location.as_deref(), Some("/signin"));

    b.sign_in(&s.app, number(1), PASSWORD).await;
    save_profile(&mut b, &s.app, &[("city", "Tainan"), ("city_public", "on"), ("listed", "on")]).await;
    for form in [vec![("city", "Forged")], vec![("csrf", "0000"), ("city", "Forged")]] {
        let r = b.post(&s.app, "/profile", &form).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        let r = b.post(&s.app, "/signout", &form).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
    }
    let page = b.get(&s.app, "/profile").await;
    assert!(
        page.body.contains("Tainan") && !page.body.contains("Forged"),
        "still signed in, profile unchanged"
    );
}

#[tokio::test]
async fn sign_in_is_rate_limited_per_number_and_per_address() {
    let s = site().await;
    let mut b = Browser::new("127.0.0.1:5000");
    for _ in 0..peerdial_portal::limit::PER_NUMBER {
        let r = b.sign_in(&s.app, number(1), "wrong password").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert!(r.body.contains("Wrong number or password"));
    }
    let r = b.sign_in(&s.app, number(1), PASSWORD).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "even the right password waits");
    assert!(r.body.contains("Too many wrong passwords for this number"), "{}", r.body);
    // Another number from the same address is still checked…
    let r = b.sign_in(&s.app, number(2), PASSWORD).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    // …until the address has had too many wrong ones too.
    let mut c = Browser::new("127.0.0.9:5000");
    for i in 0..peerdial_portal::limit::PER_ADDRESS {
        c.sign_in(&s.app, number(100 + i), "wrong password").await;
    }
    let r = c.sign_in(&s.app, number(2), PASSWORD).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.body.contains("from your address"));
}

#[tokio::test]
async fn sessions_survive_a_restart_and_sign_out_ends_them() {
    let s = site().await;
    let mut b = Browser::new("127.0.0.1:5000");
    let r = b.sign_in(&s.app, number(1), PASSWORD).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let set = r
        .set_cookies
        .iter()
        .find(|c| c.starts_with(peerdial_portal::COOKIE))
        .expect("a new session id on sign-in");
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Lax"), "{set}");
    let cookie = b.cookies.get(peerdial_portal::COOKIE).cloned().expect("a session cookie");
    let Site { _dir, url, store, app } = s;
    drop(app);
    store.close().await;

    let s = open_at(_dir).await;
    assert_eq!(s.url, url);
    let page = b.get(&s.app, "/profile").await;
    assert_eq!(page.status, StatusCode::OK, "still signed in after the restart");
    assert!(page.body.contains(&number(1).to_string()));
    let token = csrf_of(&page.body);
    let r = b.post(&s.app, "/signout", &[("csrf", &token)]).await;
    assert_eq!(r.location.as_deref(), Some("/"));
    // The old cookie, replayed, is worth nothing.
    let mut thief = Browser::new("127.0.0.3:5000");
    thief.cookies.insert(peerdial_portal::COOKIE.into(), cookie);
    assert_eq!(thief.get(&s.app, "/profile").await.location.as_deref(), Some("/signin"));
}

#[tokio::test]
async fn pages_speak_the_browsers_language_and_switch() {
    let s = site().await;
    let mut b = Browser::new("127.0.0.1:5000");
    b.lang = "zh-TW,zh;q=0.9";
    let page = b.get(&s.app, "/signin").await;
    assert!(page.body.contains("<html lang=\"zh-Hant\">") && page.body.contains("登入"));
    let r = b.get(&s.app, "/lang/en?back=/signin").await;
    assert_eq!(r.location.as_deref(), Some("/signin"));
    assert!(b.get(&s.app, "/signin").await.body.contains("Sign in"));
    assert_eq!(b.get(&s.app, "/lang/en?back=//evil.example").await.location.as_deref(), Some("/"));
}

async fn with_code(app: &Router, code: String) -> (Browser, Page) {
    let mut b = Browser::new("127.0.0.1:5100");
    let token = csrf_of(&b.get(app, "/signin").await.body);
    let digits = number(1).digits();
    let r = b
        .post(app, "/signin", &[("csrf", &token), ("number", &digits), ("code", &code)])
        .await;
    (b, r)
}

#[tokio::test]
async fn pairing_codes_work_once_and_expire_and_every_new_form_checks_csrf() {
    let s = site().await;
    let key = number(1).as_u64() as i64;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let (code, _) = peerdial_portal::pairing::issue(&s.store, key, now).await.unwrap();
    let (mut b, r) = with_code(&s.app, code.clone()).await;
    assert_eq!(r.location.as_deref(), Some("/profile"), "{}", r.body);
    // Signed in: every form of the account pages refuses a post without its token.
    for path in [
        "/account/password",
        "/friends/add",
        "/friends/policy",
        "/greetings/card",
        "/number",
        "/operator/number",
    ] {
        let r = b
            .post(&s.app, path, &[("friend", "886-02-00000009"), ("new", "a long password")])
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}");
    }
    let (_, r) = with_code(&s.app, code).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.body.contains("already used"), "{}", r.body);
    let (old, _) = peerdial_portal::pairing::issue(&s.store, key, now - 6 * 60 * 1000).await.unwrap();
    let (_, r) = with_code(&s.app, old).await;
    assert!(r.body.contains("expired"), "{}", r.body);
    let (mut b, r) = with_code(&s.app, "12a456".into()).await;
    assert!(r.body.contains("Wrong number or pairing code"), "{}", r.body);
    assert_eq!(b.get(&s.app, "/profile").await.location.as_deref(), Some("/signin"));
}
