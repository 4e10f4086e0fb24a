//! One Redis, or a Redis Cluster, behind one connection type.
//!
//! Every service reaches Redis through [`RedisConn`], chosen by the URL
//! alone, so the same binaries run on a single server and on a cluster:
//!
//! - `redis://host:port` / `rediss://host:port` — one server, through a
//!   [`ConnectionManager`] (multiplexed, reconnects by itself);
//! - `redis+cluster://host1:port,host2:port` (or `rediss+cluster://…`) — a
//!   cluster, through the redis crate's `ClusterConnection`, given any
//!   reachable nodes as seeds; it discovers the others and follows slot
//!   moves and failovers. Credentials before `@` apply to every node.
//!
//! On a cluster a pipeline must stay within one hash slot (the crate
//! refuses it otherwise with a `CROSSSLOT` error): hookline's keys carry a
//! hash tag per partition (`<prefix>:p<N>:{s<k>}`, see `keys.rs`) or per
//! service (`{<prefix>:subs}`), and the code issues cross-partition reads
//! as one request per partition.
//!
//! [`BlockingReader`] is the connection a consumer loop keeps for its own
//! blocking reads (`XREADGROUP … BLOCK`), so they never hold up the shared
//! connection or another loop's reads.

use std::time::Duration;

use redis::{
    Cmd, Pipeline, RedisFuture, RedisResult, Value,
    aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig},
    cluster::ClusterClientBuilder,
    cluster_async::ClusterConnection,
};

/// Where Redis is, parsed from a URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisTarget {
    Single(String),
    /// Seed node URLs (`redis://…` or `rediss://…` each).
    Cluster(Vec<String>),
}

impl RedisTarget {
    /// Parses `redis://`, `rediss://`, `redis+cluster://` or
    /// `rediss+cluster://`; the message names what is wrong.
    pub fn parse(url: &str) -> Result<Self, String> {
        let (scheme, rest) =
            url.split_once("://").ok_or_else(|| format!("redis_url `{url}` has no scheme (redis://host:port)"))?;
        match scheme {
            "redis" | "rediss" => Ok(Self::Single(url.to_owned())),
            "redis+cluster" | "rediss+cluster" => {
                let plain = scheme.trim_end_matches("+cluster");
                let (auth, hosts) = match rest.rsplit_once('@') {
                    Some((auth, hosts)) => (format!("{auth}@"), hosts),
                    None => (String::new(), rest),
                };
                let hosts = hosts.split('/').next().unwrap_or_default();
                let seeds: Vec<String> = hosts
                    .split(',')
                    .map(str::trim)
                    .filter(|h| !h.is_empty())
                    .map(|host| format!("{plain}://{auth}{host}"))
                    .collect();
                if seeds.is_empty() {
                    return Err(format!(
                        "redis_url `{scheme}://…` names no nodes (redis+cluster://host1:6379,host2:6379)"
                    ));
                }
                Ok(Self::Cluster(seeds))
            }
            other => Err(format!(
                "redis_url scheme `{other}` is not one of redis://, rediss://, redis+cluster://, rediss+cluster://"
            )),
        }
    }
}

/// A connection to a single Redis or to a cluster; cheap to clone (clones
/// share one multiplexed connection per node).
#[derive(Clone)]
pub enum RedisConn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl std::fmt::Debug for RedisConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Single(_) => "RedisConn::Single",
            Self::Cluster(_) => "RedisConn::Cluster",
        })
    }
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(cmd, offset, count),
            Self::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

/// Opens a connection to the Redis (or cluster) `url` names, waiting until
/// it answers. `command_timeout` bounds every command, so a connection used
/// for blocking reads needs one longer than their `BLOCK`. Fails only on a
/// malformed URL.
pub async fn connect(url: &str, command_timeout: Duration) -> RedisResult<RedisConn> {
    let target = RedisTarget::parse(url)
        .map_err(|message| redis::RedisError::from((redis::ErrorKind::InvalidClientConfig, "redis_url", message)))?;
    loop {
        let attempt = match &target {
            RedisTarget::Single(url) => single(url, command_timeout).await,
            RedisTarget::Cluster(seeds) => cluster(seeds, command_timeout).await,
        };
        match attempt {
            Ok(conn) => return Ok(conn),
            Err(error) if error.kind() == redis::ErrorKind::InvalidClientConfig => return Err(error),
            Err(error) => {
                tracing::warn!(%error, "redis not reachable yet; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

async fn single(url: &str, command_timeout: Duration) -> RedisResult<RedisConn> {
    let client = redis::Client::open(url)?;
    let config = ConnectionManagerConfig::new()
        .set_response_timeout(Some(command_timeout))
        .set_connection_timeout(Some(command_timeout))
        .set_max_delay(Duration::from_secs(2));
    Ok(RedisConn::Single(client.get_connection_manager_with_config(config).await?))
}

async fn cluster(seeds: &[String], command_timeout: Duration) -> RedisResult<RedisConn> {
    let client = ClusterClientBuilder::new(seeds.to_vec())
        .connection_timeout(command_timeout)
        .response_timeout(command_timeout)
        .retries(6)
        .min_retry_wait(50)
        .max_retry_wait(2_000)
        .build()?;
    Ok(RedisConn::Cluster(client.get_async_connection().await?))
}

/// How much longer than the service's command timeout a blocking read's
/// connection waits for an answer: reads block up to a second.
const BLOCKING_READ_MARGIN: Duration = Duration::from_secs(2);

/// A consumer loop's own connection for blocking reads, opened on first
/// use. Clone the unopened one for each loop.
#[derive(Debug, Clone)]
pub struct BlockingReader {
    url: String,
    timeout: Duration,
    conn: Option<RedisConn>,
}

impl BlockingReader {
    /// For `url`, with the service's `command_timeout` (the margin for the
    /// block is added here).
    pub fn new(url: &str, command_timeout: Duration) -> Self {
        Self { url: url.to_owned(), timeout: command_timeout + BLOCKING_READ_MARGIN, conn: None }
    }

    /// The connection, opened (waiting until Redis answers) the first time.
    pub async fn conn(&mut self) -> RedisResult<&mut RedisConn> {
        let conn = match self.conn.take() {
            Some(conn) => conn,
            None => connect(&self.url, self.timeout).await?,
        };
        Ok(self.conn.insert(conn))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn single_urls_stay_as_they_are() {
        assert_eq!(RedisTarget::parse("redis://h:1/0"), Ok(RedisTarget::Single("redis://h:1/0".into())));
        assert_eq!(RedisTarget::parse("rediss://h:1"), Ok(RedisTarget::Single("rediss://h:1".into())));
    }

    #[test]
    fn cluster_urls_list_their_seed_nodes_with_shared_credentials() {
        assert_eq!(
            RedisTarget::parse("redis+cluster://a:7000, b:7001,c:7002"),
            Ok(RedisTarget::Cluster(vec!["redis://a:7000".into(), "redis://b:7001".into(), "redis://c:7002".into()]))
        );
        assert_eq!(
            RedisTarget::parse("rediss+cluster://user:pw@a:7000,b:7001/"),
            Ok(RedisTarget::Cluster(vec!["rediss://user:pw@a:7000".into(), "rediss://user:pw@b:7001".into()]))
        );
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        assert!(RedisTarget::parse("localhost:6379").unwrap_err().contains("no scheme"));
        assert!(RedisTarget::parse("http://h:1").unwrap_err().contains("redis+cluster://"));
        assert!(RedisTarget::parse("redis+cluster://").unwrap_err().contains("names no nodes"));
    }
}
