//! `peerdial bench identity`: PASSporT signatures and verifications per
//! second on one core (`Passport::sign`, `Verifier::check` on a whole
//! Identity header), next to OpenSSL's raw ECDSA P-256 (`openssl speed
//! ecdsap256`) on the same core when OpenSSL is installed.
//!
//! Bounded by a count of operations and a time limit, whichever comes
//! first. Not a test: nothing here asserts a time.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use peerdial_identity::{IdentityHeader, Passport, SigningKey, Verifier};
use peerdial_number::Number;
use rand::SeedableRng;

use crate::bench_tools::{area, pin_self, tool, SERVER_CORE};

/// Runs `op` until `count` iterations or `limit` have passed (checked
/// every 64); returns (iterations, seconds).
fn bounded(count: u32, limit: Duration, mut op: impl FnMut(u32) -> Result<()>) -> Result<(u32, f64)> {
    let start = Instant::now();
    let mut done = 0;
    while done < count {
        op(done)?;
        done += 1;
        if done % 64 == 0 && start.elapsed() > limit {
            break;
        }
    }
    Ok((done, start.elapsed().as_secs_f64()))
}

/// `openssl speed -mr ecdsap256` on `core`: (sign/s, verify/s).
fn openssl_speed(seconds: u32, core: Option<&str>) -> Result<(f64, f64)> {
    let openssl = tool("openssl")?;
    let mut cmd = match core {
        Some(c) => {
            let mut cmd = std::process::Command::new("taskset");
            cmd.args(["-c", c]).arg(openssl);
            cmd
        }
        None => std::process::Command::new(openssl),
    };
    let out = cmd
        .args(["speed", "-mr", "-seconds", &seconds.to_string(), "ecdsap256"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // +F4:<index>:<bits>:<sign/s>:<verify/s>
    let line = text
        .lines()
        .find(|l| l.starts_with("+F4:"))
        .with_context(|| format!("openssl speed printed no ECDSA result: {text}"))?;
    let f: Vec<&str> = line.split(':').collect();
    match (f.get(3).and_then(|v| v.parse().ok()), f.get(4).and_then(|v| v.parse().ok())) {
        (Some(s), Some(v)) => Ok((s, v)),
        _ => bail!("unexpected openssl speed line {line:?}"),
    }
}

/// Raw ECDSA P-256 sign and verify of `msg`: (signed, s, verified, s).
fn raw_p256(count: u32, limit: Duration, msg: &[u8]) -> Result<(u32, f64, u32, f64)> {
    use p256::ecdsa::signature::{Signer, Verifier as _};
    use p256::ecdsa::{Signature, SigningKey as RawKey};
    let key = RawKey::random(&mut rand::rngs::StdRng::seed_from_u64(1));
    let mut sig: Signature = key.sign(msg);
    // Each message differs in its last byte, as each token differs.
    let mut m = msg.to_vec();
    let (signed, sign_s) = bounded(count, limit, |i| {
        if let Some(b) = m.last_mut() {
            *b = (i % 251) as u8;
        }
        sig = key.sign(&m);
        Ok(())
    })?;
    let vk = *key.verifying_key();
    let (verified, verify_s) = bounded(count, limit, |_| {
        vk.verify(&m, &sig).map_err(|e| anyhow::anyhow!("raw p256 verify: {e}"))
    })?;
    Ok((signed, sign_s, verified, verify_s))
}

pub fn identity(count: u32, seconds: u32, pin: bool) -> Result<()> {
    let pin = pin && std::thread::available_parallelism().map_or(1, |n| n.get()) >= 2;
    if pin {
        pin_self(SERVER_CORE)?;
    }
    let key = SigningKey::generate(&mut rand::rngs::StdRng::seed_from_u64(9));
    let keys = [key.public_key().clone()];
    let url = format!("http://127.0.0.1:8080/api/v1/identity/{}.jwk", key.public_key().kid());
    let orig = Number::new(area(), 1234);
    let dest = Number::new(area(), 5678);
    let now_s = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    let limit = Duration::from_secs(seconds as u64);

    let mut last = String::new();
    // A fresh `iat` per token, as for real calls (each token differs).
    let (signed, sign_s) = bounded(count, limit, |i| {
        last = Passport::sign(&key, orig, &[dest], now_s + (i % 8) as u64, 60, &url)?;
        Ok(())
    })?;
    let header = IdentityHeader::new(last, url.clone()).to_string();
    let verifier = Verifier::default();
    let now_ms = now_s * 1000 + 8000;
    let mut failed = 0u32;
    let (checked, check_s) = bounded(count, limit, |_| {
        if !verifier.check(Some(&header), orig, dest, &keys, now_ms).is_verified() {
            failed += 1;
        }
        Ok(())
    })?;
    if failed > 0 {
        bail!("{failed} of {checked} verifications failed: the bench's token is wrong");
    }
    // The same curve in the same library without PASSporT around it: what
    // the JSON, base64 and claim checks cost on top of ECDSA.
    let (raw_signed, raw_sign_s, raw_verified, raw_verify_s) = raw_p256(count, limit, header.as_bytes())?;
    let (sign_rate, check_rate) = (signed as f64 / sign_s, checked as f64 / check_s);
    let (raw_sign_rate, raw_verify_rate) = (raw_signed as f64 / raw_sign_s, raw_verified as f64 / raw_verify_s);
    let reference = openssl_speed(seconds.clamp(1, 10), pin.then_some(SERVER_CORE));

    println!("| implementation | operation | operations | seconds | per second (1 core) |\n|---|---|---|---|---|");
    println!(
        "| peerdial-identity (p256, RustCrypto) | PASSporT sign (claims → compact JWS, ES256) | {signed} | {sign_s:.2} | {sign_rate:.0} |"
    );
    println!(
        "| peerdial-identity (p256, RustCrypto) | Identity header check (parse, decode, ES256 verify, claims) | {checked} | {check_s:.2} | {check_rate:.0} |"
    );
    println!("| p256 0.13 (RustCrypto), raw | ECDSA P-256 sign (SHA-256 of a header-sized message) | {raw_signed} | {raw_sign_s:.2} | {raw_sign_rate:.0} |");
    println!("| p256 0.13 (RustCrypto), raw | ECDSA P-256 verify | {raw_verified} | {raw_verify_s:.2} | {raw_verify_rate:.0} |");
    match reference {
        Ok((s, v)) => {
            println!("| OpenSSL `speed ecdsap256` | raw ECDSA P-256 sign | – | {seconds} | {s:.0} |");
            println!("| OpenSSL `speed ecdsap256` | raw ECDSA P-256 verify | – | {seconds} | {v:.0} |");
            println!(
                "\nratio peerdial / OpenSSL: sign {:.2}, verify {:.2}{}",
                sign_rate / s,
                check_rate / v,
                if pin { " (both on core 0)" } else { "" }
            );
        }
        Err(e) => println!("\nno OpenSSL reference: {e}"),
    }
    println!(
        "PASSporT / raw p256: sign {:.2}, verify {:.2}",
        sign_rate / raw_sign_rate,
        check_rate / raw_verify_rate
    );
    Ok(())
}
