//! Operator commands on a region's data folder, and the lock that keeps a
//! running region and such a command from both changing it.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use peerdial_number::Number;
use peerdial_store::Store;

use crate::{now_ms, RegionError};

/// How long, by default, a number given up stays out of the pool
/// (`--quarantine-days`): callers of its old owner should not reach a
/// stranger straight away.
pub const QUARANTINE_DAYS: u32 = 30;

/// An exclusive lock on `DIR/region.lock`, held while a region runs on DIR
/// (released by the kernel when the process ends, even by `kill -9`).
pub struct DataLock {
    _file: File,
}

impl DataLock {
    pub fn acquire(dir: &Path) -> Result<DataLock, RegionError> {
        let path = dir.join("region.lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| RegionError::DataDir {
                path: path.clone(),
                source,
            })?;
        match file.try_lock() {
            Ok(()) => Ok(DataLock { _file: file }),
            Err(TryLockError::WouldBlock) => Err(RegionError::InUse(dir.to_path_buf())),
            Err(TryLockError::Error(source)) => Err(RegionError::DataDir { path, source }),
        }
    }
}

/// Frees `mac` for a new provisioning on a stopped region's data: its device
/// and binding are removed and its number is quarantined. Returns the number.
/// Nothing changes on any error (malformed or unknown MAC, region running).
pub async fn release_mac(data_dir: &Path, database: Option<&str>, mac: &str) -> Result<Number, RegionError> {
    let octets = crate::http::parse_mac(mac).map_err(RegionError::Refused)?;
    let mac = crate::http::mac_text(&octets);
    let url = match database {
        Some(url) => url.to_string(),
        None => {
            let db: PathBuf = data_dir.join("region.db");
            if !db.exists() {
                return Err(RegionError::Refused(format!(
                    "no region database at {} (give the region's --data folder, or --database URL)",
                    db.display()
                )));
            }
            format!("sqlite:{}", db.display())
        }
    };
    if !data_dir.is_dir() {
        return Err(RegionError::Refused(format!("no region data folder {}", data_dir.display())));
    }
    let _lock = DataLock::acquire(data_dir)?;
    let store = Store::open(&url).await?;
    let released = store.release_device(&mac, now_ms() as i64).await;
    store.close().await;
    match released? {
        Some(n) => Number::from_u64(n as u64).map_err(|_| RegionError::BadRow(format!("device {mac}: bad number {n}"))),
        None => Err(RegionError::Refused(format!("MAC {mac} is not provisioned in this region"))),
    }
}

/// Creates (or replaces the password of) an operator account of the
/// portal, on a region's data (running or not: it is one row). Names are
/// 1 to 64 letters, digits, `.`, `_` or `-`.
pub async fn add_operator(data_dir: &Path, database: Option<&str>, name: &str, password: &str) -> Result<(), RegionError> {
    let ok_name = (1..=64).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if !ok_name {
        return Err(RegionError::Refused(format!(
            "invalid operator name {name:?}: 1 to 64 letters, digits, '.', '_' or '-'"
        )));
    }
    let hash = peerdial_portal::hash_password(password).await?;
    std::fs::create_dir_all(data_dir).map_err(|source| RegionError::DataDir {
        path: data_dir.to_path_buf(),
        source,
    })?;
    let url = match database {
        Some(url) => url.to_string(),
        None => format!("sqlite:{}", data_dir.join("region.db").display()),
    };
    let store = Store::open(&url).await?;
    let r = store.put_operator(name, &hash, now_ms() as i64).await;
    store.close().await;
    Ok(r?)
}
