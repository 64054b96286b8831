//! The one writer task: every write waiting when a transaction starts
//! rides in it, on the writer's own connection, and each caller is told
//! only after the commit (see the crate's documentation).

use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyPool, Connection};
use tokio::sync::mpsc;

use sqlx::Row;

use crate::{mailbox, Backend, BindingRow, Done, Job, StoreError, Write, MAX_BATCH};

pub(crate) async fn writer(pool: AnyPool, backend: Backend, mut rx: mpsc::Receiver<Job>) {
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
