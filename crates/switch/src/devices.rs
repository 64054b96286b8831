//! The devices a switch serves and their SIP credentials:
//! `DIR/devices.json`, written by `peerdial switch device add NUMBER`
//! (password on stdin) and `device disable`/`enable`. Only the digest HA1s
//! (MD5 and SHA-256, for the switch's realm) are kept, never the password.
//! Not here: bindings (in memory; devices register again after a restart).

use std::path::Path;

use peerdial_number::Number;
use peerdial_sip::digest::Ha1;
use serde::{Deserialize, Serialize};

use crate::SwitchError;

/// The digest realm of every switch (a device's HA1 is made for it).
pub const REALM: &str = "switch.peerdial.internal";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Row {
    number: String,
    ha1_md5: String,
    ha1_sha256: String,
    #[serde(default)]
    disabled: bool,
}

/// One device: its number, credential, and whether calls to it are refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub number: Number,
    pub ha1: Ha1,
    pub disabled: bool,
}

fn path(dir: &Path) -> std::path::PathBuf {
    dir.join("devices.json")
}

fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    hex::decode(s).ok()?.try_into().ok()
}

/// The devices in `dir` (none when there is no file yet).
pub fn load(dir: &Path) -> Result<Vec<Device>, SwitchError> {
    let p = path(dir);
    let rows: Vec<Row> = match std::fs::read(&p) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| SwitchError::Devices(format!("{}: {e}", p.display())))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(SwitchError::Devices(format!("{}: {e}", p.display()))),
    };
    rows.into_iter()
        .map(|r| {
            let bad = || SwitchError::Devices(format!("{}: a damaged row for {}", p.display(), r.number));
            Ok(Device {
                number: Number::parse(&r.number).map_err(|_| bad())?,
                ha1: Ha1 {
                    md5: unhex(&r.ha1_md5).ok_or_else(bad)?,
                    sha256: unhex(&r.ha1_sha256).ok_or_else(bad)?,
                },
                disabled: r.disabled,
            })
        })
        .collect()
}

fn save(dir: &Path, devices: &[Device]) -> Result<(), SwitchError> {
    std::fs::create_dir_all(dir).map_err(|e| SwitchError::Devices(format!("{}: {e}", dir.display())))?;
    let rows: Vec<Row> = devices
        .iter()
        .map(|d| Row {
            number: d.number.digits(),
            ha1_md5: hex::encode(d.ha1.md5),
            ha1_sha256: hex::encode(d.ha1.sha256),
            disabled: d.disabled,
        })
        .collect();
    let p = path(dir);
    let tmp = p.with_extension("json.tmp");
    let text = serde_json::to_vec_pretty(&rows).map_err(|e| SwitchError::Devices(e.to_string()))?;
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, &p))
        .map_err(|e| SwitchError::Devices(format!("{}: {e}", p.display())))
}

/// Adds `number` with `password` (or changes its password).
pub fn add(dir: &Path, number: Number, password: &str) -> Result<(), SwitchError> {
    if password.is_empty() || password.len() > 128 || password.chars().any(char::is_control) {
        return Err(SwitchError::Devices("a password is 1 to 128 printable characters".into()));
    }
    let mut devices = load(dir)?;
    devices.retain(|d| d.number != number);
    devices.push(Device {
        number,
        ha1: Ha1::new(&number.digits(), REALM, password),
        disabled: false,
    });
    save(dir, &devices)
}

/// Turns calls to `number` away (403 "callee disabled" at the cloud) or back on.
pub fn set_disabled(dir: &Path, number: Number, disabled: bool) -> Result<(), SwitchError> {
    let mut devices = load(dir)?;
    let d = devices
        .iter_mut()
        .find(|d| d.number == number)
        .ok_or_else(|| SwitchError::Devices(format!("{number} is not a device of this switch")))?;
    d.disabled = disabled;
    save(dir, &devices)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_keep_hashes_only_and_refuse_bad_passwords() {
        let dir = std::env::temp_dir().join(format!("pd-switch-dev-{}", std::process::id()));
        let n = Number::parse("886-02-11110001").unwrap();
        add(&dir, n, "secret-pw").unwrap();
        assert!(!std::fs::read_to_string(path(&dir)).unwrap().contains("secret-pw"));
        let d = load(&dir).unwrap();
        assert_eq!(d[0].ha1, Ha1::new(&n.digits(), REALM, "secret-pw"));
        assert!(add(&dir, n, "").is_err());
        set_disabled(&dir, n, true).unwrap();
        assert!(load(&dir).unwrap()[0].disabled);
        assert!(set_disabled(&dir, Number::parse("886-02-11110002").unwrap(), true).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
