//! First start: ask the region for a number with the device's MAC, and keep
//! what it answers (number, SIP credentials, device secret) in the data
//! folder so later starts reuse it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::PhoneError;

/// What the phone keeps between starts (`DIR/phone.json`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Identity {
    pub mac: String,
    pub number: String,
    pub area: String,
    pub device_secret: String,
    pub sip_username: String,
    pub sip_password: String,
    pub sip_realm: String,
    pub registrar: SocketAddr,
    pub region_http: String,
    #[serde(default)]
    pub dns: Option<SocketAddr>,
    #[serde(default)]
    pub register_expires: Option<u32>,
}

pub fn identity_path(data: &Path) -> PathBuf {
    data.join("phone.json")
}

pub fn load(data: &Path) -> Result<Option<Identity>, PhoneError> {
    let p = identity_path(data);
    match std::fs::read(&p) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| PhoneError::State(format!("{}: {e}", p.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(PhoneError::State(format!("{}: {e}", p.display()))),
    }
}

/// Writes the identity so that a crash mid-write leaves the old one.
pub fn save(data: &Path, id: &Identity) -> Result<(), PhoneError> {
    std::fs::create_dir_all(data).map_err(|e| PhoneError::State(format!("{}: {e}", data.display())))?;
    let p = identity_path(data);
    let tmp = p.with_extension("json.tmp");
    let bytes = serde_json::to_vec_pretty(id).map_err(|e| PhoneError::State(e.to_string()))?;
    let write = || -> std::io::Result<()> {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &p)?;
        std::fs::File::open(data)?.sync_all()
    };
    write().map_err(|e| PhoneError::State(format!("{}: {e}", p.display())))
}

#[derive(Deserialize)]
struct Provisioned {
    number: String,
    sip_username: String,
    sip_password: String,
    #[serde(default)]
    sip_realm: Option<String>,
    device_secret: String,
    area: String,
    #[serde(default)]
    zone: Option<String>,
    registrar: Registrar,
    #[serde(default)]
    dns: Option<SocketAddr>,
    #[serde(default)]
    register_expires: Option<u32>,
}

#[derive(Deserialize)]
struct Registrar {
    udp: SocketAddr,
}

/// Provisions with the region at `base` (`http://host:port`), or
/// re-claims the number when `previous` holds a device secret.
pub async fn provision(base: &str, mac: &str, ip: &str, previous: Option<&Identity>) -> Result<Identity, PhoneError> {
    let mut body = serde_json::json!({
        "mac": mac,
        "ip": ip,
        "number": previous.map(|p| p.number.as_str()).unwrap_or("000-00-00000000"),
    });
    if let Some(p) = previous {
        body["secret"] = serde_json::Value::String(p.device_secret.clone());
    }
    let (status, text) = peerdial_net::http_client::request("POST", base, "/api/v1/provision", Some(&body.to_string()))
        .await
        .map_err(|e| PhoneError::Provision(e.to_string()))?;
    if status != 200 {
        let reason = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
            .unwrap_or(text);
        return Err(PhoneError::Refused { status, reason });
    }
    let p: Provisioned = serde_json::from_str(&text).map_err(|e| PhoneError::Provision(format!("unreadable answer: {e}")))?;
    Ok(Identity {
        mac: mac.to_string(),
        number: p.number,
        area: p.area,
        device_secret: p.device_secret,
        sip_username: p.sip_username,
        sip_password: p.sip_password,
        sip_realm: p
            .sip_realm
            .or(p.zone.map(|z| z.trim_end_matches('.').to_string()))
            .unwrap_or_default(),
        registrar: p.registrar.udp,
        region_http: base.trim_end_matches('/').to_string(),
        dns: p.dns,
        register_expires: p.register_expires,
    })
}

/// What a phone with no identity is told when its MAC already has a number.
pub fn mac_taken_help(mac: &str, region: &str, data: &Path) -> String {
    format!(
        "MAC {mac} already has a number at {region}, but {} holds no identity for it (phone.json, with the device secret that proves it is this phone).\n\
         \x20 Point --data at the folder that holds this phone's identity, or have the region's operator free the MAC: \
         peerdial region release-mac {mac} --data <the region's data folder>",
        data.display()
    )
}

/// The machine's MAC: the first non-loopback interface with a real one.
pub fn machine_mac() -> Option<String> {
    let mut names: Vec<_> = std::fs::read_dir("/sys/class/net").ok()?.flatten().map(|e| e.file_name()).collect();
    names.sort();
    names.into_iter().find_map(|n| {
        let mac = std::fs::read_to_string(Path::new("/sys/class/net").join(&n).join("address")).ok()?;
        let mac = mac.trim().to_string();
        (mac.len() == 17 && mac != "00:00:00:00:00:00").then_some(mac)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_round_trips_and_survives_a_torn_write() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()).unwrap(), None);
        let id = Identity {
            mac: "02:00:00:00:00:01".into(),
            number: "886-02-10000001".into(),
            area: "886-02".into(),
            device_secret: "s".into(),
            sip_username: "8860210000001".into(),
            sip_password: "p".into(),
            sip_realm: "r".into(),
            registrar: "127.0.0.1:5060".parse().unwrap(),
            region_http: "http://127.0.0.1:8080".into(),
            dns: None,
            register_expires: Some(600),
        };
        save(dir.path(), &id).unwrap();
        // A crash after writing the temporary file leaves the old identity.
        std::fs::write(dir.path().join("phone.json.tmp"), b"{torn").unwrap();
        assert_eq!(load(dir.path()).unwrap(), Some(id));
        std::fs::write(identity_path(dir.path()), b"not json").unwrap();
        assert!(load(dir.path()).unwrap_err().to_string().contains("phone.json"));
    }
}
