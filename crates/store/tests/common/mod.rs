//! Shared by the store's test files: rows to write and a fresh database
//! per backend (SQLite always; PostgreSQL when the test command gives
//! one).
// Each test file uses its own part of this.
#![allow(dead_code)]

use peerdial_store::{BindingRow, DeviceRow};
use sqlx::Connection;

pub fn device(mac: &str, number: i64) -> DeviceRow {
    DeviceRow {
        mac: mac.into(),
        number,
        secret_hash: "h".into(),
        ha1_md5: "m".into(),
        ha1_sha256: "s".into(),
        ip: "192.0.2.1".into(),
        created_ms: 1,
        updated_ms: 1,
    }
}

pub fn binding(number: i64, port: u16) -> BindingRow {
    BindingRow {
        number,
        uri: format!("sip:{number}@192.0.2.1:{port}"),
        contact: "sip:x@y".into(),
        transport: "udp".into(),
        addr: format!("192.0.2.1:{port}"),
        expires_ms: 99,
        call_id: "c".into(),
        cseq: 1,
    }
}

/// A fresh database for one test: a SQLite file, or a new PostgreSQL database.
pub async fn databases() -> Vec<(String, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().unwrap();
    let mut out = vec![(format!("sqlite:{}", dir.path().join("t.db").display()), Some(dir))];
    match std::env::var("PEERDIAL_TEST_POSTGRES") {
        Ok(admin) => {
            let name = format!("peerdial_t{}", std::process::id() as u64 * 1000 + rand_suffix());
            let mut c = sqlx::PgConnection::connect(&admin).await.expect("connect to test PostgreSQL");
            sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut c).await.unwrap();
            let base = admin.rsplit_once('/').unwrap().0.to_string();
            out.push((format!("{base}/{name}"), None));
        }
        Err(_) if std::env::var("PEERDIAL_REQUIRE_POSTGRES").is_ok() => panic!("PEERDIAL_TEST_POSTGRES is not set"),
        Err(_) => eprintln!("PEERDIAL_TEST_POSTGRES not set: PostgreSQL part skipped (the test command sets it)"),
    }
    out
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}
