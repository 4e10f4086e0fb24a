//! The Redis implementation of [`SubscriptionStore`].
//!
//! Layout (all keys share the hash tag `{<prefix>:subs}`, so every script
//! touches one Redis Cluster slot):
//!
//! | key | type | holds |
//! |---|---|---|
//! | `{p:subs}:sub:<id>` | hash | `v` version, `d` record JSON (secrets sealed) |
//! | `{p:subs}:tenant:<t>:subs` | zset (score 0) | the tenant's ids, in id order |
//! | `{p:subs}:all` | set | every subscription id (snapshots) |
//! | `{p:subs}:tenant:<t>:endpoint:<sha256(url)[..16]>` | set | ids per endpoint (conflict check) |
//! | `{p:subs}:tenant:<t>:epoch` | counter | bumped by every write of the tenant |
//! | `{p:subs}:tenant:<t>:event_types` | hash | name -> event type JSON |
//! | `{p:subs}:tenant:<t>:settings` | string | settings JSON |
//! | `{p:subs}:tenants` | set | tenants with a catalog or settings |
//! | `{p:subs}:revision` | counter | the last revision |
//! | `{p:subs}:changes` | stream | one entry per write, id `<revision>-0`; a subscription write names its id and tenant (the record is read at replay), catalog and settings writes carry their JSON |
//! | `{p:subs}:log_id` | string | random id of this log's lifetime |
//!
//! Conflict checks are optimistic: read the tenant epoch and the endpoint's
//! subscriptions, decide in Rust (glob overlap is not Lua's job), then let
//! the write script refuse if the epoch moved; retry a few times.

use std::{collections::HashMap, time::Duration};

use hookline_domain::{EventType, Subscription, SubscriptionId, TenantId, TenantSettings, patterns_overlap};
use hookline_queue::{Durability, DurableWriter, RedisConn};
use redis::{AsyncCommands, Script, streams::StreamRangeReply};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use super::{
    Change, LogPosition, SecretSealer, StoreError, StoredSubscription, SubscriptionStore, WriteRules,
    sealed::SecretsAtRest,
};

const CONFLICT_RETRIES: usize = 8;
const SNAPSHOT_CHUNK: usize = 500;

#[derive(Debug, Clone)]
struct Keys {
    prefix: String,
    base: String,
}

impl Keys {
    fn new(prefix: &str) -> Self {
        Self { prefix: prefix.to_owned(), base: format!("{{{prefix}:subs}}") }
    }
    fn sub(&self, id: SubscriptionId) -> String {
        format!("{}:sub:{id}", self.base)
    }
    fn tenant_index(&self, t: &TenantId) -> String {
        format!("{}:tenant:{t}:subs", self.base)
    }
    fn all(&self) -> String {
        format!("{}:all", self.base)
    }
    fn epoch(&self, t: &TenantId) -> String {
        format!("{}:tenant:{t}:epoch", self.base)
    }
    fn endpoint(&self, t: &TenantId, url: &str) -> String {
        let digest = Sha256::digest(url.as_bytes());
        let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        format!("{}:tenant:{t}:endpoint:{hex}", self.base)
    }
    fn event_types(&self, t: &TenantId) -> String {
        format!("{}:tenant:{t}:event_types", self.base)
    }
    fn settings(&self, t: &TenantId) -> String {
        format!("{}:tenant:{t}:settings", self.base)
    }
    fn tenants(&self) -> String {
        format!("{}:tenants", self.base)
    }
    fn revision(&self) -> String {
        // Shared with fanout, which reads it to fence (see hookline-queue).
        hookline_queue::subscriptions_revision_key(&self.prefix)
    }
    fn changes(&self) -> String {
        format!("{}:changes", self.base)
    }
    fn portal_link(&self, session: &str) -> String {
        format!("{}:portal:opened:{session}", self.base)
    }
    fn log_id(&self) -> String {
        hookline_queue::subscriptions_log_id_key(&self.prefix)
    }
}

/// The stored form of a subscription.
#[derive(Serialize, Deserialize)]
struct Record {
    subscription: Subscription,
    secrets: SecretsAtRest,
}

#[derive(Clone)]
pub(crate) struct RedisStore {
    conn: RedisConn,
    keys: Keys,
    sealer: SecretSealer,
    change_log_len: u64,
    max_event_types: u64,
    position: watch::Receiver<LogPosition>,
    /// Runs the write scripts (waiting for replicas, if asked to).
    writer: DurableWriter,
    put_sub: Script,
    delete_sub: Script,
    put_item: Script,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore").field("keys", &self.keys.base).finish()
    }
}

/// Settings of a [`RedisStore`].
#[derive(Debug, Clone)]
pub(crate) struct RedisStoreConfig {
    pub(crate) url: String,
    pub(crate) key_prefix: String,
    pub(crate) command_timeout: Duration,
    pub(crate) change_log_len: u64,
    /// Event types one tenant's catalog may hold (0: no limit).
    pub(crate) max_event_types: u64,
    /// Replicas a change must reach before it is acknowledged.
    pub(crate) durability: Durability,
}

impl RedisStore {
    /// Connects (retrying in the background if Redis is down) and starts the
    /// change-log tailer. Fails only on a malformed URL.
    pub(crate) async fn connect(config: RedisStoreConfig, sealer: SecretSealer) -> Result<Self, StoreError> {
        let conn = hookline_queue::connect(&config.url, config.command_timeout).await?;
        let writer = DurableWriter::connect(&config.url, config.command_timeout, config.durability, &conn).await?;
        let keys = Keys::new(&config.key_prefix);
        let (tx, rx) = watch::channel(LogPosition::default());
        tokio::spawn(tail_change_log(config.url.clone(), keys.clone(), tx));
        Ok(Self {
            conn,
            keys,
            sealer,
            change_log_len: config.change_log_len,
            max_event_types: config.max_event_types,
            position: rx,
            writer,
            put_sub: Script::new(include_str!("lua/put_subscription.lua")),
            delete_sub: Script::new(include_str!("lua/delete_subscription.lua")),
            put_item: Script::new(include_str!("lua/put_tenant_item.lua")),
        })
    }

    fn encode(&self, rec: &StoredSubscription) -> Result<String, StoreError> {
        let id = rec.subscription.id.to_string();
        let secrets = self.sealer.seal(&rec.secrets, &id).map_err(StoreError::Corrupt)?;
        serde_json::to_string(&Record { subscription: rec.subscription.clone(), secrets })
            .map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    fn decode(&self, json: &str) -> Result<StoredSubscription, StoreError> {
        let record: Record = serde_json::from_str(json).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let secrets =
            self.sealer.open(&record.secrets, &record.subscription.id.to_string()).map_err(StoreError::Corrupt)?;
        Ok(StoredSubscription { subscription: record.subscription, secrets })
    }

    async fn records(&self, ids: &[String]) -> Result<Vec<StoredSubscription>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.hget(format!("{}:sub:{id}", self.keys.base), "d");
        }
        let jsons: Vec<Option<String>> = pipe.query_async(&mut self.conn.clone()).await?;
        jsons.into_iter().flatten().map(|j| self.decode(&j)).collect()
    }

    /// The same-tenant subscriptions to `url` whose event types overlap
    /// `rec`'s, other than `rec` itself.
    async fn find_conflict(&self, rec: &Subscription) -> Result<(String, Option<SubscriptionId>), StoreError> {
        let mut conn = self.conn.clone();
        let (epoch, ids): (Option<String>, Vec<String>) = redis::pipe()
            .get(self.keys.epoch(&rec.tenant))
            .smembers(self.keys.endpoint(&rec.tenant, rec.spec.url.as_str()))
            .query_async(&mut conn)
            .await?;
        let conflict = self.records(&ids).await?.into_iter().find(|other| {
            let o = &other.subscription;
            o.id != rec.id
                && o.spec.url == rec.spec.url
                && o.spec.event_types.iter().any(|a| rec.spec.event_types.iter().any(|b| patterns_overlap(a, b)))
        });
        Ok((epoch.unwrap_or_else(|| "0".into()), conflict.map(|c| c.subscription.id)))
    }

    async fn write_subscription(
        &self,
        previous: Option<&StoredSubscription>,
        next: &StoredSubscription,
        rules: WriteRules,
    ) -> Result<u64, StoreError> {
        let sub = &next.subscription;
        let data = self.encode(next)?;
        let new_endpoint = self.keys.endpoint(&sub.tenant, sub.spec.url.as_str());
        let old_endpoint = previous
            .map(|p| self.keys.endpoint(&p.subscription.tenant, p.subscription.spec.url.as_str()))
            .unwrap_or_else(|| new_endpoint.clone());
        for _ in 0..CONFLICT_RETRIES {
            let expected_epoch = if rules.allow_duplicate_endpoint {
                String::new()
            } else {
                match self.find_conflict(sub).await? {
                    (_, Some(existing)) => return Err(StoreError::Conflict(existing)),
                    (epoch, None) => epoch,
                }
            };
            let mut invocation = self.put_sub.prepare_invoke();
            invocation
                .key(self.keys.sub(sub.id))
                .key(self.keys.tenant_index(&sub.tenant))
                .key(self.keys.all())
                .key(self.keys.epoch(&sub.tenant))
                .key(&old_endpoint)
                .key(&new_endpoint)
                .key(self.keys.revision())
                .key(self.keys.changes())
                .key(self.keys.log_id())
                .arg(sub.id.to_string())
                .arg(previous.map_or(-1, |p| p.subscription.version))
                .arg(expected_epoch)
                .arg(sub.version)
                .arg(&data)
                .arg(self.change_log_len)
                .arg(rules.max_per_tenant)
                .arg(ulid::Ulid::new().to_string())
                .arg(sub.tenant.as_str());
            let outcome: String = self.writer.invoke(&invocation).await?;
            match parse_outcome(&outcome)? {
                Outcome::Epoch => continue,
                Outcome::Limit => return Err(StoreError::TenantLimit(rules.max_per_tenant)),
                other => return other.into_revision(),
            }
        }
        Err(StoreError::Contention)
    }

    async fn put_tenant_item(
        &self,
        kind: &str,
        target: String,
        tenant: &TenantId,
        name: &str,
        json: String,
        create_only: bool,
    ) -> Result<u64, StoreError> {
        let mut invocation = self.put_item.prepare_invoke();
        invocation
            .key(target)
            .key(self.keys.tenants())
            .key(self.keys.revision())
            .key(self.keys.changes())
            .key(self.keys.log_id())
            .arg(kind)
            .arg(tenant.as_str())
            .arg(name)
            .arg(json)
            .arg(self.change_log_len)
            .arg(ulid::Ulid::new().to_string())
            .arg(if create_only { "1" } else { "0" })
            .arg(self.max_event_types);
        let outcome: String = self.writer.invoke(&invocation).await?;
        match parse_outcome(&outcome)? {
            Outcome::Limit => Err(StoreError::CatalogLimit(self.max_event_types)),
            other => other.into_revision(),
        }
    }

    /// One change-log entry. A subscription change names the subscription;
    /// its record is read now (`current`, by id), so it carries the
    /// subscription as it is at replay time, or its deletion if it is gone
    /// (the log's own deletion entry follows; replaying both is harmless).
    /// Entries written by earlier builds carry the record in `d`.
    fn decode_change(
        &self,
        entry: &redis::streams::StreamId,
        current: &HashMap<String, Option<String>>,
    ) -> Result<Change, StoreError> {
        let field = |name: &str| -> Result<String, StoreError> {
            entry.get::<String>(name).ok_or_else(|| StoreError::Corrupt(format!("change {} lacks `{name}`", entry.id)))
        };
        let tenant = || field("t").and_then(|t| TenantId::parse(&t).map_err(|e| StoreError::Corrupt(e.to_string())));
        let id = || {
            field("id").and_then(|id| SubscriptionId::parse(&id, "id").map_err(|e| StoreError::Corrupt(e.to_string())))
        };
        let json_err = |e: serde_json::Error| StoreError::Corrupt(e.to_string());
        match field("k")?.as_str() {
            "sub" if entry.map.contains_key("d") => Ok(Change::Subscription(Box::new(self.decode(&field("d")?)?))),
            "sub" => match current.get(&field("id")?).and_then(Option::as_deref) {
                Some(json) => Ok(Change::Subscription(Box::new(self.decode(json)?))),
                None => Ok(Change::SubscriptionDeleted { id: id()?, tenant: tenant()? }),
            },
            "del" => Ok(Change::SubscriptionDeleted { id: id()?, tenant: tenant()? }),
            "evt" => Ok(Change::EventType {
                tenant: tenant()?,
                event_type: serde_json::from_str(&field("d")?).map_err(json_err)?,
            }),
            "set" => Ok(Change::Settings {
                tenant: tenant()?,
                settings: serde_json::from_str(&field("d")?).map_err(json_err)?,
            }),
            other => Err(StoreError::Corrupt(format!("unknown change kind `{other}`"))),
        }
    }

    /// The stored record JSON of each subscription a page of the change
    /// log names (one pipeline), `None` for those deleted since.
    async fn current_records(
        &self,
        entries: &[redis::streams::StreamId],
    ) -> Result<HashMap<String, Option<String>>, StoreError> {
        let ids: Vec<String> = entries
            .iter()
            .filter(|e| e.get::<String>("k").as_deref() == Some("sub") && !e.map.contains_key("d"))
            .filter_map(|e| e.get::<String>("id"))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.hget(format!("{}:sub:{id}", self.keys.base), "d");
        }
        let jsons: Vec<Option<String>> = pipe.query_async(&mut self.conn.clone()).await?;
        Ok(ids.into_iter().zip(jsons).collect())
    }
}

enum Outcome {
    Ok(u64),
    Version(i64),
    Missing,
    Exists,
    Epoch,
    Limit,
}

impl Outcome {
    fn into_revision(self) -> Result<u64, StoreError> {
        match self {
            Self::Ok(rev) => Ok(rev),
            Self::Version(v) => Err(StoreError::VersionMismatch(v)),
            Self::Missing => Err(StoreError::NotFound),
            Self::Exists => Err(StoreError::AlreadyExists),
            Self::Epoch => Err(StoreError::Contention),
            Self::Limit => Err(StoreError::TenantLimit(0)),
        }
    }
}

fn parse_outcome(text: &str) -> Result<Outcome, StoreError> {
    let bad = || StoreError::Corrupt(format!("unexpected script answer `{text}`"));
    Ok(match text.split_once(':') {
        Some(("ok", rev)) => Outcome::Ok(rev.parse().map_err(|_| bad())?),
        Some(("version", v)) => Outcome::Version(v.parse().map_err(|_| bad())?),
        _ => match text {
            "missing" => Outcome::Missing,
            "exists" => Outcome::Exists,
            "epoch" => Outcome::Epoch,
            "limit" => Outcome::Limit,
            _ => return Err(bad()),
        },
    })
}

fn revision_of(stream_id: &str) -> Option<u64> {
    stream_id.split_once('-').and_then(|(ms, _)| ms.parse().ok())
}

/// The log's position (and its identity, named here if it has none yet):
/// the same read as fanout's and delivery's fence, `hookline_queue::current_fence`.
async fn read_position(conn: &mut impl redis::aio::ConnectionLike, keys: &Keys) -> Result<LogPosition, StoreError> {
    let fence = hookline_queue::current_fence(conn, &keys.prefix).await?;
    Ok(LogPosition { log_id: fence.log_id, revision: fence.revision })
}

/// Follows the change log with a blocking XREAD on a connection of its own,
/// publishing the latest position; re-reads the position every second so a
/// restarted (emptied) Redis is noticed too.
async fn tail_change_log(url: String, keys: Keys, tx: watch::Sender<LogPosition>) {
    const BLOCK: Duration = Duration::from_secs(1);
    let mut conn = match hookline_queue::connect(&url, BLOCK + Duration::from_secs(2)).await {
        Ok(conn) => conn,
        Err(error) => {
            tracing::error!(%error, "change-log tailer cannot connect");
            return;
        }
    };
    let mut backoff = Duration::from_millis(100);
    loop {
        if tx.is_closed() {
            return;
        }
        let position = match read_position(&mut conn, &keys).await {
            Ok(p) => p,
            Err(error) => {
                // The connection reconnects by itself; wait a little.
                tracing::debug!(%error, "change-log tailer cannot read");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        tx.send_if_modified(|current| {
            let changed = *current != position;
            *current = position.clone();
            changed
        });
        let from = format!("{}-0", position.revision);
        let _: Result<Option<redis::streams::StreamReadReply>, _> = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(1)
            .arg("BLOCK")
            .arg(BLOCK.as_millis() as u64)
            .arg("STREAMS")
            .arg(keys.changes())
            .arg(from)
            .query_async(&mut conn)
            .await;
    }
}

impl SubscriptionStore for RedisStore {
    async fn create(&self, rec: &StoredSubscription, rules: WriteRules) -> Result<u64, StoreError> {
        self.write_subscription(None, rec, rules).await
    }

    async fn get(&self, id: SubscriptionId) -> Result<Option<StoredSubscription>, StoreError> {
        let json: Option<String> = self.conn.clone().hget(self.keys.sub(id), "d").await?;
        json.map(|j| self.decode(&j)).transpose()
    }

    async fn list(
        &self,
        tenant: &TenantId,
        after: Option<SubscriptionId>,
        limit: usize,
    ) -> Result<Vec<StoredSubscription>, StoreError> {
        let min = after.map_or_else(|| "-".to_owned(), |id| format!("({id}"));
        let ids: Vec<String> = redis::cmd("ZRANGE")
            .arg(self.keys.tenant_index(tenant))
            .arg(min)
            .arg("+")
            .arg("BYLEX")
            .arg("LIMIT")
            .arg(0)
            .arg(limit)
            .query_async(&mut self.conn.clone())
            .await?;
        self.records(&ids).await
    }

    async fn update(
        &self,
        previous: &StoredSubscription,
        next: &StoredSubscription,
        rules: WriteRules,
    ) -> Result<u64, StoreError> {
        let rules = WriteRules { max_per_tenant: 0, ..rules };
        self.write_subscription(Some(previous), next, rules).await
    }

    async fn delete(&self, current: &StoredSubscription) -> Result<u64, StoreError> {
        let sub = &current.subscription;
        let mut invocation = self.delete_sub.prepare_invoke();
        invocation
            .key(self.keys.sub(sub.id))
            .key(self.keys.tenant_index(&sub.tenant))
            .key(self.keys.all())
            .key(self.keys.epoch(&sub.tenant))
            .key(self.keys.endpoint(&sub.tenant, sub.spec.url.as_str()))
            .key(self.keys.revision())
            .key(self.keys.changes())
            .key(self.keys.log_id())
            .arg(sub.id.to_string())
            .arg(sub.version)
            .arg(self.change_log_len)
            .arg(sub.tenant.as_str())
            .arg(ulid::Ulid::new().to_string());
        let outcome: String = self.writer.invoke(&invocation).await?;
        parse_outcome(&outcome)?.into_revision()
    }

    async fn put_event_type(
        &self,
        tenant: &TenantId,
        event_type: &EventType,
        create_only: bool,
    ) -> Result<u64, StoreError> {
        let json = serde_json::to_string(event_type).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.put_tenant_item("evt", self.keys.event_types(tenant), tenant, event_type.name.as_str(), json, create_only)
            .await
    }

    async fn get_event_type(&self, tenant: &TenantId, name: &str) -> Result<Option<EventType>, StoreError> {
        let json: Option<String> = self.conn.clone().hget(self.keys.event_types(tenant), name).await?;
        json.map(|j| serde_json::from_str(&j).map_err(|e| StoreError::Corrupt(e.to_string()))).transpose()
    }

    async fn list_event_types(&self, tenant: &TenantId) -> Result<Vec<EventType>, StoreError> {
        let all: Vec<(String, String)> = self.conn.clone().hgetall(self.keys.event_types(tenant)).await?;
        let mut types = all
            .into_iter()
            .map(|(_, j)| serde_json::from_str::<EventType>(&j).map_err(|e| StoreError::Corrupt(e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        types.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(types)
    }

    async fn get_settings(&self, tenant: &TenantId) -> Result<TenantSettings, StoreError> {
        let json: Option<String> = self.conn.clone().get(self.keys.settings(tenant)).await?;
        json.map_or_else(
            || Ok(TenantSettings::default()),
            |j| serde_json::from_str(&j).map_err(|e| StoreError::Corrupt(e.to_string())),
        )
    }

    async fn put_settings(&self, tenant: &TenantId, settings: &TenantSettings) -> Result<u64, StoreError> {
        let json = serde_json::to_string(settings).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.put_tenant_item("set", self.keys.settings(tenant), tenant, "", json, false).await
    }

    async fn position(&self) -> Result<LogPosition, StoreError> {
        read_position(&mut self.conn.clone(), &self.keys).await
    }

    async fn snapshot(&self) -> Result<Vec<Change>, StoreError> {
        let mut conn = self.conn.clone();
        let ids: Vec<String> = conn.smembers(self.keys.all()).await?;
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(SNAPSHOT_CHUNK) {
            out.extend(self.records(chunk).await?.into_iter().map(|r| Change::Subscription(Box::new(r))));
        }
        let tenants: Vec<String> = conn.smembers(self.keys.tenants()).await?;
        for t in tenants {
            let tenant = TenantId::parse(&t).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            for event_type in self.list_event_types(&tenant).await? {
                out.push(Change::EventType { tenant: tenant.clone(), event_type });
            }
            out.push(Change::Settings { settings: self.get_settings(&tenant).await?, tenant });
        }
        Ok(out)
    }

    async fn changes_after(&self, revision: u64, limit: usize) -> Result<Vec<(u64, Change)>, StoreError> {
        let reply: StreamRangeReply =
            self.conn.clone().xrange_count(self.keys.changes(), format!("{}-0", revision + 1), "+", limit).await?;
        let Some(first) = reply.ids.first() else {
            let now = self.position().await?;
            return if now.revision == revision { Ok(Vec::new()) } else { Err(StoreError::Truncated) };
        };
        if revision_of(&first.id) != Some(revision + 1) {
            return Err(StoreError::Truncated);
        }
        let current = self.current_records(&reply.ids).await?;
        reply
            .ids
            .iter()
            .map(|entry| {
                let rev =
                    revision_of(&entry.id).ok_or_else(|| StoreError::Corrupt(format!("change id {}", entry.id)))?;
                Ok((rev, self.decode_change(entry, &current)?))
            })
            .collect()
    }

    async fn wait_for_change(&self, seen: &LogPosition, timeout: Duration) -> Result<LogPosition, StoreError> {
        let mut rx = self.position.clone();
        // The tailer's view may not have been read yet (empty log id) or may
        // lag behind `seen`: neither is a move.
        let moved = |p: &LogPosition| !p.log_id.is_empty() && (p.log_id != seen.log_id || p.revision > seen.revision);
        let _ = tokio::time::timeout(timeout, rx.wait_for(moved)).await;
        let latest = rx.borrow().clone();
        if moved(&latest) { Ok(latest) } else { self.position().await }
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let _: String = redis::cmd("PING").query_async(&mut self.conn.clone()).await?;
        Ok(())
    }

    async fn claim_portal_link(&self, session: &str, for_at_least: Duration) -> Result<bool, StoreError> {
        let ms = u64::try_from(for_at_least.as_millis()).unwrap_or(u64::MAX).max(1);
        let set: Option<String> = redis::cmd("SET")
            .arg(self.keys.portal_link(session))
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(ms)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(set.is_some())
    }

    async fn end_portal_session(
        &self,
        tenant: &TenantId,
        session: &str,
        for_at_least: Duration,
    ) -> Result<(), StoreError> {
        let ms = u64::try_from(for_at_least.as_millis()).unwrap_or(u64::MAX).max(1);
        let key = hookline_queue::portal_session_ended_key(&self.keys.prefix, tenant.as_str(), session);
        let _: () = redis::cmd("SET").arg(key).arg(1).arg("PX").arg(ms).query_async(&mut self.conn.clone()).await?;
        Ok(())
    }

    async fn portal_session_ended(&self, tenant: &str, session: &str) -> Result<bool, StoreError> {
        Ok(hookline_queue::portal_session_ended(&mut self.conn.clone(), &self.keys.prefix, tenant, session).await?)
    }
}
