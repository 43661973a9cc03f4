//! Writes the accounts into Redis for Kamailio: one connection manager
//! (reconnecting by itself), what the last pass left there remembered, so
//! a pass sends only the changes, in one `MULTI`/`EXEC`; and read back in
//! full when that memory cannot be trusted (first pass, a failed one, a
//! Redis that lost its data).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::AsyncCommands as _;
use tokio::sync::Mutex;

use super::layout::{
    alias_key, applied, bindings_key, plan, subscriber_key, timer_key, version_key, Held, Holding,
    Plan, INDEX, LAYOUT_VERSION, MARKER, TABLE_VERSIONS,
};
use crate::core::PbxUser;

/// How long connecting, and each reply, may take before the pass fails
/// (and the sync task retries with backoff).
const TIMEOUT: Duration = Duration::from_secs(2);
/// usrloc's index of its per-user sets.
const BINDINGS_INDEX: &str = "location::index::usrdom";

/// Why Redis did not take a pass.
#[derive(Debug, thiserror::Error)]
pub enum KamailioError {
    /// No connection.
    #[error("cannot reach Kamailio's Redis at {url}: {source}")]
    Connect {
        /// The URL, password hidden.
        url: String,
        /// Why.
        #[source]
        source: redis::RedisError,
    },
    /// A command failed.
    #[error("Kamailio's Redis at {url} failed while {what}: {source}")]
    Command {
        /// The URL, password hidden.
        url: String,
        /// What the pass was doing.
        what: &'static str,
        /// Why.
        #[source]
        source: redis::RedisError,
    },
}

/// What the writer counts, for `/metrics`.
#[derive(Debug, Default)]
pub struct Figures {
    /// Accounts Redis holds after the last pass.
    pub accounts: AtomicU64,
    /// Passes that changed something (one transaction each).
    pub transactions: AtomicU64,
    /// Accounts written.
    pub accounts_written: AtomicU64,
    /// Accounts removed.
    pub accounts_removed: AtomicU64,
    /// Registrations (usrloc contacts) of removed users deleted.
    pub bindings_removed: AtomicU64,
    /// Full read-backs of what Redis holds.
    pub reconciles: AtomicU64,
    /// Passes that failed.
    pub failures: AtomicU64,
}

/// The Redis side of the backend.
pub struct Writer {
    client: redis::Client,
    /// For messages and the admin view: no password.
    pub url: String,
    conn: Mutex<Option<ConnectionManager>>,
    /// What Redis holds, as far as the last pass knows (`None`: read it).
    held: Mutex<Option<Holding>>,
    /// The SIP domain's host: the rows' `domain` column (the lookups
    /// ignore it, `use_domain=0`; alias_db builds the new Request-URI
    /// from it).
    domain: String,
    /// Counters.
    pub figures: Figures,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").field("url", &self.url).finish()
    }
}

/// The host of a SIP domain `HOST[:PORT][;params]` (`[v6]` kept whole).
pub fn host_of(domain: &str) -> &str {
    let d = domain.split(';').next().unwrap_or(domain);
    if d.starts_with('[') {
        return d.find(']').map_or(d, |i| &d[..=i]);
    }
    match d.rsplit_once(':') {
        Some((h, port)) if !h.contains(':') && port.parse::<u16>().is_ok() => h,
        _ => d,
    }
}

/// `url` as shown: any password replaced.
pub fn shown(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://<redacted>@{}", &url[..s], &url[at + 1..]),
        _ => url.to_owned(),
    }
}

impl Writer {
    /// A writer for `url` (`redis://[:PASSWORD@]HOST:PORT/DB`), its rows
    /// in the SIP domain `domain` (`HOST[:PORT][;params]`: the host is
    /// kept); connects on the first pass.
    pub fn new(url: &str, domain: &str) -> Result<Writer, redis::RedisError> {
        Ok(Writer {
            client: redis::Client::open(url)?,
            url: shown(url),
            domain: host_of(domain).to_owned(),
            conn: Mutex::new(None),
            held: Mutex::new(None),
            figures: Figures::default(),
        })
    }

    fn failed(&self, what: &'static str) -> impl FnOnce(redis::RedisError) -> KamailioError + '_ {
        move |source| KamailioError::Command {
            url: self.url.clone(),
            what,
            source,
        }
    }

    async fn connection(&self) -> Result<ConnectionManager, KamailioError> {
        let mut c = self.conn.lock().await;
        if let Some(m) = &*c {
            return Ok(m.clone());
        }
        let cfg = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT))
            .set_number_of_retries(1);
        let m = ConnectionManager::new_with_config(self.client.clone(), cfg)
            .await
            .map_err(|source| KamailioError::Connect {
                url: self.url.clone(),
                source,
            })?;
        *c = Some(m.clone());
        Ok(m)
    }

    /// Makes Redis hold exactly `users`' accounts (and no others of the
    /// server's).
    pub async fn apply(&self, users: &[PbxUser]) -> Result<(), KamailioError> {
        let r = self.apply_inner(users).await;
        if r.is_err() {
            self.figures.failures.fetch_add(1, Ordering::Relaxed);
            // Whether the transaction landed is unknown: read it back.
            *self.held.lock().await = None;
        }
        r
    }

    async fn apply_inner(&self, users: &[PbxUser]) -> Result<(), KamailioError> {
        let mut conn = self.connection().await?;
        let mut held = self.held.lock().await;
        let trusted = match &*held {
            Some(_) => {
                let m: Option<String> = conn
                    .get(MARKER)
                    .await
                    .map_err(self.failed("reading the layout marker"))?;
                m.as_deref() == Some(LAYOUT_VERSION)
            }
            None => false,
        };
        if !trusted {
            *held = Some(self.reconcile(&mut conn).await?);
        }
        let Some(held) = held.as_mut() else {
            return Ok(());
        };
        let p = plan(held, users);
        if !p.is_empty() {
            self.execute(&mut conn, &p).await?;
            applied(held, &p);
            let f = &self.figures;
            f.transactions.fetch_add(1, Ordering::Relaxed);
            f.accounts_written
                .fetch_add(p.put.len() as u64, Ordering::Relaxed);
            f.accounts_removed
                .fetch_add(p.remove.len() as u64, Ordering::Relaxed);
        }
        self.figures
            .accounts
            .store(held.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Writes the table versions and the marker, and reads back which
    /// accounts the server's index names, with their passwords.
    async fn reconcile(&self, conn: &mut ConnectionManager) -> Result<Holding, KamailioError> {
        self.figures.reconciles.fetch_add(1, Ordering::Relaxed);
        let mut p = redis::pipe();
        p.atomic();
        for (table, version) in TABLE_VERSIONS {
            p.hset_multiple(
                version_key(table),
                &[
                    ("table_name", (*table).to_owned()),
                    ("table_version", version.to_string()),
                ],
            )
            .ignore();
        }
        p.set(MARKER, LAYOUT_VERSION).ignore();
        p.query_async::<()>(conn)
            .await
            .map_err(self.failed("writing the table versions"))?;
        let index: HashMap<String, String> = conn
            .hgetall(INDEX)
            .await
            .map_err(self.failed("reading the account index"))?;
        let names: Vec<(String, u32)> = index
            .into_iter()
            .filter_map(|(name, ext)| match ext.parse() {
                Ok(e) => Some((name, e)),
                Err(_) => {
                    tracing::warn!(%name, %ext, "account index entry with a bad extension; ignored");
                    None
                }
            })
            .collect();
        let mut p = redis::pipe();
        for (name, _) in &names {
            p.hget(subscriber_key(name), "password");
        }
        let secrets: Vec<Option<String>> = if names.is_empty() {
            Vec::new()
        } else {
            p.query_async(conn)
                .await
                .map_err(self.failed("reading the accounts"))?
        };
        Ok(names
            .into_iter()
            .zip(secrets)
            .map(|((name, extension), secret)| {
                // A missing row never matches a user's secret (never
                // empty): it is written again, or removed.
                let secret = secret.unwrap_or_default();
                (name, Held { extension, secret })
            })
            .collect())
    }

    /// The contacts usrloc holds for each of `names`: (entry key, its
    /// expiry set).
    async fn bindings(
        &self,
        conn: &mut ConnectionManager,
        names: &[String],
    ) -> Result<Vec<(String, String)>, KamailioError> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let mut p = redis::pipe();
        for n in names {
            p.smembers(bindings_key(n));
        }
        let sets: Vec<Vec<String>> = p
            .query_async(conn)
            .await
            .map_err(self.failed("reading the removed users' registrations"))?;
        let entries: Vec<String> = sets.into_iter().flatten().collect();
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let mut p = redis::pipe();
        for e in &entries {
            p.hmget(e, &["partition", "keepalive"]);
        }
        let where_: Vec<(Option<String>, Option<String>)> = p
            .query_async(conn)
            .await
            .map_err(self.failed("reading the removed users' registrations"))?;
        Ok(entries
            .into_iter()
            .zip(where_)
            .map(|(e, (part, ka))| {
                let timer = timer_key(part.as_deref().unwrap_or("0"), ka.as_deref().unwrap_or("0"));
                (e, timer)
            })
            .collect())
    }

    /// One transaction: the accounts to write, the rows to drop, and the
    /// removed users' registrations.
    async fn execute(
        &self,
        conn: &mut ConnectionManager,
        plan: &Plan,
    ) -> Result<(), KamailioError> {
        let bindings = self.bindings(conn, &plan.remove).await?;
        let mut p = redis::pipe();
        p.atomic();
        for e in &plan.drop_aliases {
            p.del(alias_key(*e)).ignore();
        }
        for n in &plan.remove {
            p.del(subscriber_key(n)).ignore();
            p.hdel(INDEX, n).ignore();
            p.del(bindings_key(n)).ignore();
            p.srem(BINDINGS_INDEX, bindings_key(n)).ignore();
        }
        for (entry, timer) in &bindings {
            p.del(entry).ignore();
            p.srem(timer, entry).ignore();
        }
        for u in &plan.put {
            let ext = u.extension.to_string();
            p.hset_multiple(
                subscriber_key(&u.name),
                &[
                    ("username", u.name.as_str()),
                    ("domain", self.domain.as_str()),
                    ("password", u.secret.as_str()),
                ],
            )
            .ignore();
            p.hset_multiple(
                alias_key(u.extension),
                &[
                    ("alias_username", ext.as_str()),
                    ("alias_domain", self.domain.as_str()),
                    ("username", u.name.as_str()),
                    ("domain", self.domain.as_str()),
                ],
            )
            .ignore();
            p.hset(INDEX, &u.name, &ext).ignore();
        }
        p.query_async::<()>(conn)
            .await
            .map_err(self.failed("writing the accounts"))?;
        self.figures
            .bindings_removed
            .fetch_add(bindings.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shown_url_hides_the_password() {
        assert_eq!(
            shown("redis://:hunter2@10.0.0.5:6379/1"),
            "redis://<redacted>@10.0.0.5:6379/1"
        );
        assert_eq!(
            shown("redis://127.0.0.1:6379/0"),
            "redis://127.0.0.1:6379/0"
        );
    }

    #[test]
    fn a_bad_url_is_refused() {
        assert!(Writer::new("http://nowhere", "d").is_err());
        assert!(Writer::new("redis://127.0.0.1:6379/0", "d").is_ok());
    }

    #[test]
    fn the_domain_column_is_the_sip_domains_host() {
        assert_eq!(host_of("sip.example.org"), "sip.example.org");
        assert_eq!(host_of("192.0.2.1:5060"), "192.0.2.1");
        assert_eq!(host_of("192.0.2.1:5061;transport=tls"), "192.0.2.1");
        assert_eq!(host_of("[2001:db8::1]:5060"), "[2001:db8::1]");
    }
}
