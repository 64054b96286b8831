//! State shared by the region's servers, and start-up loading.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, RwLock};

use peerdial_dns::{TransferPolicy, Transport, Zone, ZoneConfig};
use peerdial_number::Number;
use peerdial_sip::digest::Ha1;
use peerdial_sip::{Change, Registrar, RegistrarConfig};
use peerdial_store::{Store, Write};
use rand::RngCore;

use crate::{change_to_write, now_ms, row_to_binding, Endpoints, RegionConfig, RegionError};

pub struct Device {
    pub number: Number,
    pub secret_hash: [u8; 32],
}

/// Provisioned devices by MAC, and every number taken or being taken.
#[derive(Default)]
pub struct Devices {
    pub by_mac: HashMap<[u8; 6], Device>,
    pub numbers: HashSet<u32>,
}

pub struct Shared {
    pub cfg: RegionConfig,
    pub endpoints: Endpoints,
    pub realm: String,
    pub store: Store,
    pub registrar: Mutex<Registrar>,
    pub zone: RwLock<Zone>,
    pub devices: Mutex<Devices>,
    /// Signs caller identity (PASSporTs); its public half is in the zone.
    pub identity: peerdial_identity::SigningKey,
    pub greetings: crate::greetings::Greetings,
    /// Presence: the agent, liveness, and their I/O.
    pub presence: crate::presence::Edge,
    /// Broadcasts, channels, private channels and the marquee.
    pub channels: crate::channels::Channels,
    /// The mailbox: deposits in progress and the index of stored messages.
    pub mailbox: crate::mailbox::Mailbox,
    /// Numbers an operator disabled: they cannot register or resolve.
    pub disabled: Mutex<HashSet<Number>>,
    /// Watchers from other regions, by their signed identity.
    pub watchers: crate::watchers::SignedWatchers,
    /// The runtime, for work started on the SIP threads.
    pub rt: tokio::runtime::Handle,
    /// Wrong device secrets per client address: (count, window start ms).
    pub http_failures: Mutex<HashMap<std::net::IpAddr, (u32, u64)>>,
    /// The zone's serial after each change, for the NOTIFY sender.
    pub serial: tokio::sync::watch::Sender<u32>,
    /// Changed numbers for the UPDATE sender (with an external primary).
    updates: Option<tokio::sync::mpsc::UnboundedSender<Number>>,
    updates_rx: Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<Number>>>,
    /// Push registrations (RFC 8599) and the queue of what the top must learn.
    pub push: crate::push::PushLink,
}

impl Shared {
    pub async fn load(cfg: RegionConfig, endpoints: Endpoints, store: Store) -> Result<Shared, RegionError> {
        let zone_cfg = ZoneConfig {
            root: cfg.root_domain.clone(),
            area: cfg.area,
            ttl: cfg.ttl,
            negative_ttl: cfg.negative_ttl,
            dns: endpoints.dns,
            sip: endpoints.sip,
            http: endpoints.http,
            // Time-based start keeps the serial rising across restarts.
            serial: (now_ms() / 1000) as u32,
        };
        let mut zone = Zone::new(zone_cfg)?;
        let identity = crate::identity::load_key(&cfg.data_dir)?;
        zone.set_apex_txt(vec![identity.public_key().txt_chunks()]);
        let greetings = crate::greetings::Greetings::load(&store).await?;
        let realm = zone.origin().trim_end_matches('.').to_string();
        let mut rcfg = RegistrarConfig::new(cfg.area, realm.clone(), nonce_key(&cfg)?);
        rcfg.min_expires = cfg.min_expires;
        rcfg.max_expires = cfg.max_expires;
        rcfg.default_expires = cfg.max_expires;
        rcfg.algorithms = cfg.digest.clone();
        // Phones on a TCP flow ping this often (RFC 5626 §5.4).
        rcfg.flow_timer = Some(cfg.keepalive.max(1));
        rcfg.contact_check = Some(crate::push::check_contact);
        let mut registrar = Registrar::new(rcfg);

        let presence = crate::presence::Edge::new(&realm, endpoints.sip, cfg.keepalive);
        let (channels, signals) = crate::channels::Channels::load(&store).await?;
        let mailbox = crate::mailbox::Mailbox::load(&store, cfg.mailbox_limits).await?;
        presence.set_signals(signals);
        let mut numbers = Vec::new();
        let mut devices = Devices::default();
        let disabled: HashSet<Number> = store
            .disabled_numbers()
            .await?
            .into_iter()
            .filter_map(|n| Number::from_u64(n as u64).ok())
            .collect();
        for d in store.devices().await? {
            let bad = |w: &str| RegionError::BadRow(format!("device {}: bad {w}", d.mac));
            let number = Number::from_u64(d.number as u64).map_err(|_| bad("number"))?;
            let mac = crate::http::parse_mac(&d.mac).map_err(|_| bad("mac"))?;
            let ha1 = Ha1 {
                md5: decode_hex(&d.ha1_md5).ok_or_else(|| bad("ha1_md5"))?,
                sha256: decode_hex(&d.ha1_sha256).ok_or_else(|| bad("ha1_sha256"))?,
            };
            let secret_hash = decode_hex(&d.secret_hash).ok_or_else(|| bad("secret_hash"))?;
            if !disabled.contains(&number) {
                registrar.set_credential(number, ha1);
                numbers.push(number);
                if cfg.area.contains(number) {
                    // A provisioned number always resolves (design §9).
                    zone.set_mailbox(number, true)?;
                }
            }
            devices.numbers.insert(number.individual());
            devices.by_mac.insert(mac, Device { number, secret_hash });
        }
        // Retired numbers stay out of the pool until their quarantine ends.
        let since = cfg.quarantined_since(now_ms());
        for n in store.retired_numbers(since).await? {
            match Number::from_u64(n as u64) {
                Ok(n) if cfg.area.contains(n) => {
                    devices.numbers.insert(n.individual());
                }
                _ => tracing::warn!(number = n, "ignoring a retired number outside this area"),
            }
        }
        let now = now_ms();
        let mut live = 0;
        let mut udp_bindings = Vec::new();
        for row in store.bindings().await? {
            let (n, b) = row_to_binding(&row)?;
            if b.expires_at_ms <= now || !cfg.area.contains(n) || disabled.contains(&n) {
                store.write(Write::DeleteBinding(row.number)).await?;
                continue;
            }
            // A phone on a TCP flow has no connection after a restart: it is
            // offline (no order-10 record) until it registers again.
            if b.transport == peerdial_sip::Transport::Udp {
                zone.set(n, Some(&b.uri))?;
                udp_bindings.push((n, b.addr));
            }
            registrar.restore(n, b);
            live += 1;
        }
        tracing::info!(devices = devices.by_mac.len(), bindings = live, "loaded region state");
        crate::presence::load(&presence, &numbers, store.presence_policies().await?, &udp_bindings);
        let updates = match cfg.update_primary {
            Some(_) => {
                let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
                (Some(tx), Some(rx))
            }
            None => (None, None),
        };
        let dns = match (cfg.resolver, &cfg.top) {
            (Some(r), _) => Some(peerdial_resolve::Dns::Resolver(r)),
            (None, Some(t)) => Some(peerdial_resolve::Dns::Top(t.clone())),
            (None, None) => None,
        };
        let watchers = crate::watchers::SignedWatchers::new(cfg.area, identity.public_key().clone(), &cfg.root_domain, dns);
        Ok(Shared {
            cfg,
            endpoints,
            realm,
            store,
            registrar: Mutex::new(registrar),
            zone: RwLock::new(zone),
            devices: Mutex::new(devices),
            identity,
            greetings,
            presence,
            channels,
            mailbox,
            disabled: Mutex::new(disabled),
            watchers,
            rt: tokio::runtime::Handle::current(),
            http_failures: Mutex::new(HashMap::new()),
            serial: tokio::sync::watch::channel(0).0,
            updates: updates.0,
            updates_rx: Mutex::new(updates.1),
            push: Default::default(),
        })
    }

    pub async fn persist(&self, change: &Change) -> Result<(), RegionError> {
        self.store.write(change_to_write(change)).await?;
        Ok(())
    }

    /// Brings the zone in line with the registrar for `n`: its current
    /// binding (order 10) while the phone is reachable (design §9: online
    /// means reachable now) and, while it has a credential (provisioned,
    /// not disabled, not moved), its mailbox (order 20). Reading the
    /// current truth (not the change) keeps the zone right even when
    /// commits for one number finish out of order.
    pub fn publish(&self, n: Number) {
        let reachable = self.presence.is_reachable(n);
        let (uri, provisioned) = {
            let r = self.registrar.lock().expect("registrar lock");
            (r.binding(n).filter(|_| reachable).map(|b| b.uri.clone()), r.has_credential(n))
        };
        let mut zone = self.zone.write().expect("zone lock");
        let changed = zone.set(n, uri.as_deref()).and_then(|a| Ok(zone.set_mailbox(n, provisioned)? || a));
        match changed {
            Ok(true) => {
                self.serial.send_replace(zone.serial());
                if let Some(u) = &self.updates {
                    let _ = u.send(n);
                }
            }
            Ok(false) => {}
            Err(e) => tracing::error!(number = %n, error = %e, "cannot publish binding"),
        }
    }
}

/// The key for stateless digest nonces, kept in the data folder so nonces
/// stay valid across a restart.
fn nonce_key(cfg: &RegionConfig) -> Result<[u8; 32], RegionError> {
    let path = cfg.data_dir.join("nonce.key");
    let io = |source| RegionError::DataDir {
        path: path.clone(),
        source,
    };
    if let Ok(bytes) = std::fs::read(&path) {
        if let Ok(k) = <[u8; 32]>::try_from(bytes.as_slice()) {
            return Ok(k);
        }
    }
    let mut k = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut k);
    std::fs::write(&path, k).map_err(io)?;
    Ok(k)
}

pub fn decode_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let v = hex::decode(s).ok()?;
    v.try_into().ok()
}

impl Shared {
    /// Whether `n` is a number of this region's area that has credentials
    /// here (provisioned, not released or moved).
    pub(crate) fn provisioned(&self, n: Number) -> bool {
        self.cfg.area.contains(n) && self.registrar.lock().expect("registrar lock").has_credential(n)
    }

    pub(crate) fn take_updates(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<Number>> {
        self.updates_rx.lock().expect("updates lock").take()
    }

    /// Who may transfer the zone: with TSIG keys configured, signed
    /// requests only; without, the listed secondaries (by address).
    fn transfer_policy(&self, source: std::net::SocketAddr) -> TransferPolicy {
        if !self.cfg.tsig_keys.is_empty() {
            TransferPolicy::SignedOnly
        } else if self.cfg.secondaries.iter().any(|s| s.ip() == source.ip()) {
            TransferPolicy::Allowed
        } else {
            TransferPolicy::Refused
        }
    }
}

impl peerdial_net::dns_server::Answer for Shared {
    fn answer(&self, query: &[u8], transport: Transport, source: std::net::SocketAddr) -> Option<Vec<u8>> {
        let zone = self.zone.read().expect("zone lock");
        // The hot path: no additional records, so no TSIG to check.
        if query.len() >= 12 && query[10] == 0 && query[11] == 0 {
            return zone.answer(query, transport);
        }
        let now = now_ms() / 1000;
        zone.respond(query, transport, &self.cfg.tsig_keys, self.transfer_policy(source), now)
            .into_iter()
            .next()
    }

    fn answer_stream(&self, query: &[u8], source: std::net::SocketAddr) -> Vec<Vec<u8>> {
        let now = now_ms() / 1000;
        self.zone
            .read()
            .expect("zone lock")
            .respond(query, Transport::Tcp, &self.cfg.tsig_keys, self.transfer_policy(source), now)
    }
}
