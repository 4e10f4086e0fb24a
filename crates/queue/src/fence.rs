//! The fence: where the subscriptions' change log stood when an event was
//! published, so that whatever routes the event (fan-out's match, then
//! delivery's routing of each task) first brings its subscription cache at
//! least that far.
//!
//! A position has two parts: the log's identity (`{p:subs}:log_id`, a new
//! random id whenever the subscription store starts empty: Redis restarted
//! without its data) and the revision within it. Revisions restart at 1 in
//! a new log, so a revision alone would let a cache of the previous log
//! (subscriptions Redis no longer has, with their old URLs and secrets)
//! pass for current; with the identity, it never does.

use redis::aio::ConnectionLike;

use crate::keys::{subscriptions_log_id_key, subscriptions_revision_key};

/// A change-log position; written as `<revision>:<log id>` in the `f`
/// field of event entries and delivery tasks (older builds wrote the
/// revision alone: its log is then unknown, `""`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Fence {
    pub log_id: String,
    pub revision: u64,
}

impl Fence {
    pub fn new(log_id: impl Into<String>, revision: u64) -> Self {
        Self { log_id: log_id.into(), revision }
    }

    /// `f`'s text.
    pub fn encode(&self) -> String {
        let mut text = String::with_capacity(21 + self.log_id.len());
        self.encode_into(&mut text);
        text
    }

    /// Appends `f`'s text to `out` (the packed values that hold it are
    /// written for every event and every task: no `format!` there).
    pub fn encode_into(&self, out: &mut String) {
        out.push_str(itoa::Buffer::new().format(self.revision));
        if !self.log_id.is_empty() {
            out.push(':');
            out.push_str(&self.log_id);
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        let (revision, log_id) = text.split_once(':').unwrap_or((text, ""));
        Some(Self { log_id: log_id.to_owned(), revision: revision.parse().ok()? })
    }

    /// Whether a cache at this position has seen everything the fence asks
    /// for: the same log (or a fence whose log is unknown) and at least its
    /// revision.
    pub fn reached_by(&self, log_id: &str, revision: u64) -> bool {
        (self.log_id.is_empty() || self.log_id == log_id) && revision >= self.revision
    }

    /// The later of two fences of the same log; of different logs, `other`
    /// when it names one and this one does not, else this one (the caller
    /// checks each fence's log on its own).
    pub fn later<'a>(&'a self, other: &'a Self) -> &'a Self {
        match (self.log_id == other.log_id, self.log_id.is_empty(), other.log_id.is_empty()) {
            (true, _, _) => {
                if other.revision > self.revision {
                    other
                } else {
                    self
                }
            }
            (false, true, false) => other,
            _ => self,
        }
    }

    /// The latest of several fences (see [`Self::later`]); the default fence
    /// (revision 0, log unknown) when there are none.
    pub fn latest<'a>(fences: impl IntoIterator<Item = &'a Fence>) -> Fence {
        fences.into_iter().reduce(|a, b| a.later(b)).cloned().unwrap_or_default()
    }
}

/// The change log's current position, read from Redis. The log gets its
/// identity here if it has none yet (a Redis that just started empty):
/// whoever reads first names it, and everyone then sees that name.
pub async fn current_fence(conn: &mut impl ConnectionLike, prefix: &str) -> redis::RedisResult<Fence> {
    let (log_key, revision_key) = (subscriptions_log_id_key(prefix), subscriptions_revision_key(prefix));
    let (log_id, revision): (Option<String>, Option<u64>) =
        redis::cmd("MGET").arg(&log_key).arg(&revision_key).query_async(conn).await?;
    let log_id = match log_id {
        Some(id) => id,
        None => {
            let (named,): (String,) = redis::pipe()
                .cmd("SET")
                .arg(&log_key)
                .arg(new_log_id())
                .arg("NX")
                .ignore()
                .get(&log_key)
                .query_async(conn)
                .await?;
            named
        }
    };
    Ok(Fence { log_id, revision: revision.unwrap_or(0) })
}

/// A new log's identity: 48 random bits as 12 hex digits. It only has to
/// differ from the log before it, and it is written into every fence.
fn new_log_id() -> String {
    format!("{:012x}", ulid::Ulid::new().random() & 0xffff_ffff_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fences_round_trip_and_read_the_revisions_of_older_builds() {
        let fence = Fence::new("01JABC", 42);
        assert_eq!(fence.encode(), "42:01JABC");
        assert_eq!(Fence::parse("42:01JABC"), Some(fence));
        assert_eq!(Fence::parse("7"), Some(Fence::new("", 7)), "an older build's fence: log unknown");
        assert_eq!(Fence::parse("x:1"), None);
    }

    #[test]
    fn a_cache_of_another_log_never_reaches_a_fence() {
        let fence = Fence::new("new", 3);
        assert!(fence.reached_by("new", 3));
        assert!(!fence.reached_by("new", 2));
        assert!(!fence.reached_by("old", 900), "revisions of a previous log mean nothing");
        assert!(Fence::new("", 3).reached_by("old", 3), "a fence of unknown log: the revision alone");
        assert_eq!(Fence::latest(&[Fence::new("a", 5), Fence::new("a", 9)]), Fence::new("a", 9));
        assert_eq!(Fence::latest(&[Fence::new("", 5), Fence::new("a", 1)]), Fence::new("a", 1));
        assert_eq!(Fence::latest(&[]), Fence::default());
        assert_eq!(new_log_id().len(), 12);
    }
}
