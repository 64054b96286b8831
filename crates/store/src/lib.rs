//! Durable storage of a region: provisioned devices and SIP bindings, in
//! SQLite (the embedded default) or PostgreSQL (a managed, replicated
//! database). One region process serves an area: its registrar and zone
//! live in that process's memory, and the database is their durable copy.
//!
//! Writes go through one writer task that commits them in groups: every
//! write waiting when a transaction starts rides in it, and each caller is
//! told only after the commit. So an acknowledged write is on disk, and
//! thousands of registrations per second cost a handful of fsyncs.
//!
//! This crate knows rows, not SIP or DNS: the region maps its state to rows.

use std::time::Duration;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::Migrator;
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyPool, Connection, Executor, Row};
use tokio::sync::{mpsc, oneshot};

pub mod accounts;
pub mod channels;
pub mod directory;
pub mod mailbox;
pub mod portal;
pub mod rendezvous;
pub use accounts::PairingOutcome;
pub use channels::{BroadcastRow, ChannelRow, ItemRow};
pub use mailbox::{CallRow, MessageRow, NumberStateRow};
pub use portal::{search_terms, ProfileRow, FIELDS};

static SQLITE: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES: Migrator = sqlx::migrate!("./migrations/postgres");

/// Most writes one transaction carries.
const MAX_BATCH: usize = 2048;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported database URL {0:?} (use sqlite:PATH or postgres://…)")]
    UnsupportedUrl(String),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("the store's writer has stopped")]
    WriterGone,
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

/// The backend a database URL names and the URL sqlx connects with
/// (`sqlite:PATH` becomes `sqlite://PATH?mode=rwc`, creating the file).
pub fn connect_url(url: &str) -> Result<(Backend, String), StoreError> {
    Ok(if let Some(path) = url.strip_prefix("sqlite:") {
        let path = path.trim_start_matches("//");
        let url = if path.contains('?') {
            format!("sqlite://{path}")
        } else {
            format!("sqlite://{path}?mode=rwc")
        };
        (Backend::Sqlite, url)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        (Backend::Postgres, url.to_string())
    } else {
        return Err(StoreError::UnsupportedUrl(url.to_string()));
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRow {
    pub mac: String,
    pub number: i64,
    pub secret_hash: String,
    pub ha1_md5: String,
    pub ha1_sha256: String,
    pub ip: String,
    pub created_ms: i64,
    pub updated_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingRow {
    pub number: i64,
    pub uri: String,
    pub contact: String,
    pub transport: String,
    pub addr: String,
    pub expires_ms: i64,
    pub call_id: String,
    pub cseq: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// Inserts a new device. Affects 0 rows when its MAC or number is
    /// taken (by another region process, say): the caller picks again.
    InsertDevice(DeviceRow),
    /// New credentials for a device that proved its secret.
    UpdateCredentials {
        mac: String,
        ha1_md5: String,
        ha1_sha256: String,
        ip: String,
        updated_ms: i64,
    },
    UpsertBinding(BindingRow),
    DeleteBinding(i64),
    /// A mailbox message; what it "affected" is its new id.
    AddMessage(Box<MessageRow>),
    /// `device` confirmed it has `message` (affects 0 rows the second time).
    ConfirmDelivery {
        message: i64,
        device: String,
        at_ms: i64,
    },
}

/// What runs when a write is durable (or has failed).
pub type Callback = Box<dyn FnOnce(Result<u64, StoreError>) + Send>;

enum Done {
    Reply(oneshot::Sender<Result<u64, StoreError>>),
    Call(Callback),
    /// From [`Store::close`]: answer once everything before it is durable,
    /// and give the writer's connection back so the pool can close.
    Close(oneshot::Sender<Result<u64, StoreError>>),
}

impl Done {
    fn finish(self, r: Result<u64, StoreError>) {
        match self {
            Done::Reply(tx) | Done::Close(tx) => {
                let _ = tx.send(r);
            }
            Done::Call(f) => f(r),
        }
    }
}

struct Job {
    write: Write,
    done: Done,
}

/// A handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    jobs: mpsc::Sender<Job>,
}

impl Store {
    /// Opens (creating if needed) the database and brings its schema up to date.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let (backend, url) = connect_url(url)?;
        let mut opts = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(30));
        opts = match backend {
            Backend::Sqlite => opts.max_connections(4).after_connect(|conn, _| {
                Box::pin(async move {
                    // WAL lets the zone loader read while the writer writes;
                    // synchronous=FULL makes each commit survive power loss.
                    conn.execute("PRAGMA page_size=1024").await?;
                    conn.execute("PRAGMA temp_store=MEMORY").await?;
                    conn.execute("PRAGMA journal_mode=WAL").await?;
                    conn.execute("PRAGMA synchronous=FULL").await?;
                    conn.execute("PRAGMA busy_timeout=10000").await?;
                    // Registrations touch random pages of the bindings table:
                    // keep them cached (64 MiB) and checkpoint the WAL less
                    // often (32 MiB), so a page rewritten many times is copied
                    // back once.
                    conn.execute("PRAGMA cache_size=-65536").await?;
                    conn.execute("PRAGMA wal_autocheckpoint=8192").await?;
                    Ok(())
                })
            }),
            Backend::Postgres => opts.max_connections(8),
        };
        let pool = opts.connect(&url).await?;
        match backend {
            Backend::Sqlite => SQLITE.run(&pool).await?,
            Backend::Postgres => POSTGRES.run(&pool).await?,
        }
        let (tx, rx) = mpsc::channel(65_536);
        tokio::spawn(writer(pool.clone(), backend, rx));
        Ok(Store { pool, backend, jobs: tx })
    }

    /// Refreshes the query planner's statistics, as a bulk load should
    /// (PostgreSQL's autovacuum would do it later; until then the planner
    /// guesses, e.g. scans a full-text index for the commonest word).
    pub async fn analyze(&self) -> Result<(), StoreError> {
        sqlx::query("ANALYZE").execute(&self.pool).await?;
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Makes one write durable; returns the rows it affected.
    pub async fn write(&self, write: Write) -> Result<u64, StoreError> {
        let (done, rx) = oneshot::channel();
        self.jobs
            .send(Job {
                write,
                done: Done::Reply(done),
            })
            .await
            .map_err(|_| StoreError::WriterGone)?;
        rx.await.map_err(|_| StoreError::WriterGone)?
    }

    /// Queues a write; `then` runs on the writer task once it is durable
    /// (or has failed). It must be quick: the next group commit waits for it.
    pub async fn submit(&self, write: Write, then: Callback) {
        if let Err(e) = self
            .jobs
            .send(Job {
                write,
                done: Done::Call(then),
            })
            .await
        {
            (e.0.done).finish(Err(StoreError::WriterGone));
        }
    }

    /// [`Store::submit`] from a thread outside the runtime; `then` runs on the
    /// writer task once the write is durable (or has failed). It must be
    /// quick: the next group commit waits for it.
    pub fn submit_blocking(&self, write: Write, then: Callback) {
        if let Err(e) = self.jobs.blocking_send(Job {
            write,
            done: Done::Call(then),
        }) {
            (e.0.done).finish(Err(StoreError::WriterGone));
        }
    }

    pub async fn devices(&self) -> Result<Vec<DeviceRow>, StoreError> {
        let rows = sqlx::query("SELECT mac, number, secret_hash, ha1_md5, ha1_sha256, ip, created_ms, updated_ms FROM devices")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(device_row).collect()
    }

    pub async fn device_by_mac(&self, mac: &str) -> Result<Option<DeviceRow>, StoreError> {
        let row =
            sqlx::query("SELECT mac, number, secret_hash, ha1_md5, ha1_sha256, ip, created_ms, updated_ms FROM devices WHERE mac = $1")
                .bind(mac)
                .fetch_optional(&self.pool)
                .await?;
        row.as_ref().map(device_row).transpose()
    }

    pub async fn bindings(&self) -> Result<Vec<BindingRow>, StoreError> {
        let rows = sqlx::query("SELECT number, uri, contact, transport, addr, expires_ms, call_id, cseq FROM bindings")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(binding_row).collect()
    }

    /// Frees a MAC address for a new provisioning: its device row and its
    /// binding go, and its number enters the quarantine of retired numbers
    /// (one transaction). `None` when the MAC is not provisioned.
    pub async fn release_device(&self, mac: &str, now_ms: i64) -> Result<Option<i64>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let Some(row) = sqlx::query("SELECT number FROM devices WHERE mac = $1")
            .bind(mac)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(None);
        };
        let number: i64 = row.try_get(0)?;
        sqlx::query("DELETE FROM devices WHERE mac = $1")
            .bind(mac)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM bindings WHERE number = $1")
            .bind(number)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM retired_numbers WHERE number = $1")
            .bind(number)
            .execute(&mut *tx)
            .await?;
        // The number's next owner starts afresh: presence visible to everyone,
        // and none of the old owner's password, profile or greetings.
        let mut forget = vec![
            "presence_policy",
            "accounts",
            "profiles",
            "greetings",
            "friends",
            "pairing_codes",
            "portal_sessions",
        ];
        if self.backend == Backend::Sqlite {
            forget.push("profile_search");
        }
        for table in forget {
            let key = match table {
                "profile_search" => "rowid",
                "friends" => "owner",
                _ => "number",
            };
            sqlx::query(&format!("DELETE FROM {table} WHERE {key} = $1"))
                .bind(number)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("INSERT INTO retired_numbers (number, retired_ms) VALUES ($1, $2)")
            .bind(number)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(number))
    }

    /// Numbers retired at or after `since_ms`: still in quarantine.
    pub async fn retired_numbers(&self, since_ms: i64) -> Result<Vec<i64>, StoreError> {
        let rows = sqlx::query("SELECT number FROM retired_numbers WHERE retired_ms >= $1")
            .bind(since_ms)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// Stores (or replaces) a greeting picture; durable when it returns.
    pub async fn put_greeting(&self, number: i64, kind: &str, png: &[u8], etag: &str, now_ms: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO greetings (number, kind, png, etag, updated_ms) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (number, kind) DO UPDATE SET png = excluded.png, etag = excluded.etag, updated_ms = excluded.updated_ms",
        )
        .bind(number)
        .bind(kind)
        .bind(png.to_vec())
        .bind(etag)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Removes a greeting picture; whether there was one.
    pub async fn delete_greeting(&self, number: i64, kind: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("DELETE FROM greetings WHERE number = $1 AND kind = $2")
            .bind(number)
            .bind(kind)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// One greeting picture: its ETag and PNG.
    pub async fn greeting(&self, number: i64, kind: &str) -> Result<Option<(String, Vec<u8>)>, StoreError> {
        let row = sqlx::query("SELECT etag, png FROM greetings WHERE number = $1 AND kind = $2")
            .bind(number)
            .bind(kind)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose()
    }

    /// Every greeting's number, kind and ETag (not the pictures).
    pub async fn greeting_etags(&self) -> Result<Vec<(i64, String, String)>, StoreError> {
        let rows = sqlx::query("SELECT number, kind, etag FROM greetings")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?))).collect()
    }

    /// Stores (or replaces) a number's presence policy and its friends
    /// list (the portal's friends, [`Store::friends`]), in one transaction;
    /// durable when it returns. `friends` are numbers in their integer form.
    pub async fn put_presence_policy(&self, number: i64, friends_only: bool, friends: &[i64], now_ms: i64) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        self.put_friends_only_on(&mut tx, number, friends_only, now_ms).await?;
        sqlx::query("DELETE FROM friends WHERE owner = $1")
            .bind(number)
            .execute(&mut *tx)
            .await?;
        for f in friends {
            sqlx::query("INSERT INTO friends (owner, friend, added_ms) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
                .bind(number)
                .bind(*f)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Sets only whether a number's presence is friends-only (its friends
    /// list stays as it is).
    pub async fn put_friends_only(&self, number: i64, friends_only: bool, now_ms: i64) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        self.put_friends_only_on(&mut tx, number, friends_only, now_ms).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn put_friends_only_on(
        &self,
        tx: &mut sqlx::Transaction<'_, Any>,
        number: i64,
        friends_only: bool,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO presence_policy (number, friends_only, friends, updated_ms) VALUES ($1, $2, '', $3) \
             ON CONFLICT (number) DO UPDATE SET friends_only = excluded.friends_only, updated_ms = excluded.updated_ms",
        )
        .bind(number)
        .bind(friends_only as i64)
        .bind(now_ms)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Every stored presence policy: (number, friends_only, friends), the
    /// friends from the friends lists.
    pub async fn presence_policies(&self) -> Result<Vec<(i64, bool, Vec<i64>)>, StoreError> {
        let rows = sqlx::query("SELECT number, friends_only FROM presence_policy")
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let number: i64 = r.try_get(0)?;
            let only: i64 = r.try_get(1)?;
            out.push((number, only != 0, self.friends(number).await?));
        }
        Ok(out)
    }

    /// Waits for queued writes, then closes the pool.
    pub async fn close(self) {
        let Store { pool, jobs, .. } = self;
        // A marker write that completes only after everything queued before it.
        let (done, rx) = oneshot::channel();
        if jobs
            .send(Job {
                write: Write::DeleteBinding(-1),
                done: Done::Close(done),
            })
            .await
            .is_ok()
        {
            let _ = rx.await;
        }
        // Bounded: a clone of this store still writing would hold the
        // writer's connection again.
        let _ = tokio::time::timeout(Duration::from_secs(10), pool.close()).await;
    }
}

pub(crate) fn device_row(r: &AnyRow) -> Result<DeviceRow, StoreError> {
    Ok(DeviceRow {
        mac: r.try_get(0)?,
        number: r.try_get(1)?,
        secret_hash: r.try_get(2)?,
        ha1_md5: r.try_get(3)?,
        ha1_sha256: r.try_get(4)?,
        ip: r.try_get(5)?,
        created_ms: r.try_get(6)?,
        updated_ms: r.try_get(7)?,
    })
}

fn binding_row(r: &AnyRow) -> Result<BindingRow, StoreError> {
    Ok(BindingRow {
        number: r.try_get(0)?,
        uri: r.try_get(1)?,
        contact: r.try_get(2)?,
        transport: r.try_get(3)?,
        addr: r.try_get(4)?,
        expires_ms: r.try_get(5)?,
        call_id: r.try_get(6)?,
        cseq: r.try_get(7)?,
    })
}

async fn writer(pool: AnyPool, backend: Backend, mut rx: mpsc::Receiver<Job>) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    // One connection for every commit: SQLite drops a connection's page
    // cache whenever another connection has written, so a writer that took
    // any pooled connection would start each commit cold.
    let mut conn: Option<PoolConnection<Any>> = None;
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        let closing = batch.iter().any(|j| matches!(j.done, Done::Close(_)));
        let writes: Vec<&Write> = batch.iter().map(|j| &j.write).collect();
        let started = std::time::Instant::now();
        match commit_on(&pool, &mut conn, backend, &writes).await {
            Ok(counts) => {
                tracing::trace!(size = batch.len(), ms = started.elapsed().as_secs_f64() * 1000.0, "group commit");
                for (job, n) in batch.drain(..).zip(counts) {
                    job.done.finish(Ok(n));
                }
            }
            Err(e) => {
                // One bad write must not fail its neighbours: retry alone.
                tracing::warn!(error = %e, size = batch.len(), "group commit failed; retrying writes one by one");
                for job in batch.drain(..) {
                    let r = commit_on(&pool, &mut conn, backend, &[&job.write]).await.map(|v| v[0]);
                    job.done.finish(r);
                }
            }
        }
        if closing {
            conn = None;
        }
    }
}

/// Commits on the writer's own connection, taking one from the pool when it
/// has none; after a failure the connection is let go, in case it is what
/// broke, and the next commit takes a fresh one.
async fn commit_on(
    pool: &AnyPool,
    conn: &mut Option<PoolConnection<Any>>,
    backend: Backend,
    writes: &[&Write],
) -> Result<Vec<u64>, StoreError> {
    let c = match conn {
        Some(c) => c,
        None => conn.insert(pool.acquire().await?),
    };
    let r = commit(c, backend, writes).await;
    if r.is_err() {
        *conn = None;
    }
    r
}

/// Rows per multi-row statement (8 parameters each, well under SQLite's
/// and PostgreSQL's parameter limits).
const ROWS_PER_STATEMENT: usize = 500;

/// The `n`-th (1-based) bind placeholder. SQLite resolves numbered
/// parameters by a linear scan of their names, which makes a 4,000-parameter
/// statement quadratic; its anonymous `?` are bound by position.
fn placeholder(backend: Backend, n: usize) -> String {
    match backend {
        Backend::Sqlite => "?".to_string(),
        Backend::Postgres => format!("${n}"),
    }
}

async fn commit(conn: &mut PoolConnection<Any>, backend: Backend, writes: &[&Write]) -> Result<Vec<u64>, StoreError> {
    let mut tx = conn.begin().await?;
    let mut counts = vec![0u64; writes.len()];
    // Binding writes are collapsed to the last one per number (the
    // transaction commits only the final state anyway) and sent as a few
    // multi-row statements: one round trip per 500 rows, not per row.
    let mut last: std::collections::HashMap<i64, usize> = std::collections::HashMap::new();
    for (i, w) in writes.iter().enumerate() {
        match w {
            Write::UpsertBinding(b) => {
                last.insert(b.number, i);
                counts[i] = 1;
            }
            Write::DeleteBinding(n) => {
                last.insert(*n, i);
            }
            _ => {}
        }
    }
    let mut upserts: Vec<&BindingRow> = Vec::new();
    let mut deletes: Vec<(i64, usize)> = Vec::new();
    let mut order: Vec<usize> = last.into_values().collect();
    order.sort_unstable();
    for i in order {
        match writes[i] {
            Write::UpsertBinding(b) => upserts.push(b),
            Write::DeleteBinding(n) => deletes.push((*n, i)),
            _ => unreachable!("only binding writes are collapsed"),
        }
    }
    for chunk in deletes.chunks(ROWS_PER_STATEMENT) {
        let placeholders: Vec<String> = (1..=chunk.len()).map(|i| placeholder(backend, i)).collect();
        let sql = format!(
            "DELETE FROM bindings WHERE number IN ({}) RETURNING number",
            placeholders.join(", ")
        );
        let mut q = sqlx::query(&sql);
        for (n, _) in chunk {
            q = q.bind(*n);
        }
        let gone: std::collections::HashSet<i64> = q
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .filter_map(|r| r.try_get::<i64, _>(0).ok())
            .collect();
        for (n, i) in chunk {
            counts[*i] = gone.contains(n) as u64;
        }
    }
    for chunk in upserts.chunks(ROWS_PER_STATEMENT) {
        let rows: Vec<String> = (0..chunk.len())
            .map(|r| {
                format!(
                    "({})",
                    (1..=8).map(|c| placeholder(backend, r * 8 + c)).collect::<Vec<_>>().join(", ")
                )
            })
            .collect();
        let sql = format!(
            "INSERT INTO bindings (number, uri, contact, transport, addr, expires_ms, call_id, cseq) VALUES {} \
             ON CONFLICT (number) DO UPDATE SET uri = excluded.uri, contact = excluded.contact, transport = excluded.transport, \
             addr = excluded.addr, expires_ms = excluded.expires_ms, call_id = excluded.call_id, cseq = excluded.cseq",
            rows.join(", ")
        );
        let mut q = sqlx::query(&sql);
        for b in chunk {
            q = q
                .bind(b.number)
                .bind(b.uri.clone())
                .bind(b.contact.clone())
                .bind(b.transport.clone())
                .bind(b.addr.clone())
                .bind(b.expires_ms)
                .bind(b.call_id.clone())
                .bind(b.cseq);
        }
        q.execute(&mut *tx).await?;
    }
    for (i, w) in writes.iter().enumerate() {
        let q = match w {
            Write::InsertDevice(d) => sqlx::query(
                "INSERT INTO devices (mac, number, secret_hash, ha1_md5, ha1_sha256, ip, created_ms, updated_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
            )
            .bind(d.mac.clone())
            .bind(d.number)
            .bind(d.secret_hash.clone())
            .bind(d.ha1_md5.clone())
            .bind(d.ha1_sha256.clone())
            .bind(d.ip.clone())
            .bind(d.created_ms)
            .bind(d.updated_ms),
            Write::UpdateCredentials {
                mac,
                ha1_md5,
                ha1_sha256,
                ip,
                updated_ms,
            } => sqlx::query("UPDATE devices SET ha1_md5 = $1, ha1_sha256 = $2, ip = $3, updated_ms = $4 WHERE mac = $5")
                .bind(ha1_md5.clone())
                .bind(ha1_sha256.clone())
                .bind(ip.clone())
                .bind(*updated_ms)
                .bind(mac.clone()),
            Write::AddMessage(m) => {
                counts[i] = mailbox::insert_message(m).fetch_one(&mut *tx).await?.try_get::<i64, _>(0)? as u64;
                continue;
            }
            Write::ConfirmDelivery { message, device, at_ms } => {
                sqlx::query("INSERT INTO mailbox_deliveries (message, device, confirmed_ms) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
                    .bind(*message)
                    .bind(device.clone())
                    .bind(*at_ms)
            }
            Write::UpsertBinding(_) | Write::DeleteBinding(_) => continue,
        };
        counts[i] = q.execute(&mut *tx).await?.rows_affected();
    }
    tx.commit().await?;
    Ok(counts)
}
