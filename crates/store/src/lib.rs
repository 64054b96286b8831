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
use sqlx::{AnyPool, Executor, Row};
use tokio::sync::{mpsc, oneshot};

pub mod accounts;
pub mod channels;
pub mod directory;
mod greetings;
pub mod mailbox;
pub mod portal;
mod presence;
pub mod rendezvous;
mod writer;
mod yellow;
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
        tokio::spawn(writer::writer(pool.clone(), backend, rx));
        let store = Store { pool, backend, jobs: tx };
        store.index_new_profiles().await?;
        Ok(store)
    }

    /// Refreshes the query planner's statistics, as a bulk load should
    /// (PostgreSQL's autovacuum would do it later; until then the planner
    /// guesses, e.g. scans a full-text index for the commonest word).
    /// On PostgreSQL also VACUUM, so that index-only scans of the yellow
    /// pages' postings need not visit the table.
    pub async fn analyze(&self) -> Result<(), StoreError> {
        let sql = match self.backend {
            Backend::Sqlite => "ANALYZE",
            Backend::Postgres => "VACUUM ANALYZE",
        };
        sqlx::query(sql).execute(&self.pool).await?;
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
        yellow::unindex(&mut tx, self.backend, number).await?;
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
