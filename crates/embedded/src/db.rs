//! The keyspace: typed values, expiry, and the errors Redis gives for
//! misuse (`WRONGTYPE`, bad numbers), worded as Redis words them so the
//! clients' error handling sees the same codes.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    time::{SystemTime, UNIX_EPOCH},
};

use crate::{resp::Reply, stream::Stream, zset::ZSet};

pub(crate) type Bytes = Vec<u8>;

#[derive(Debug)]
pub(crate) enum Value {
    Str(Bytes),
    Hash(HashMap<Bytes, Bytes>),
    Set(HashSet<Bytes>),
    ZSet(ZSet),
    List(VecDeque<Bytes>),
    Stream(Box<Stream>),
}

impl Value {
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Self::Str(_) => "string",
            Self::Hash(_) => "hash",
            Self::Set(_) => "set",
            Self::ZSet(_) => "zset",
            Self::List(_) => "list",
            Self::Stream(_) => "stream",
        }
    }

    /// Redis deletes a collection with its last element (streams stay).
    fn is_empty_collection(&self) -> bool {
        match self {
            Self::Hash(h) => h.is_empty(),
            Self::Set(s) => s.is_empty(),
            Self::ZSet(z) => z.is_empty(),
            Self::List(l) => l.is_empty(),
            Self::Str(_) | Self::Stream(_) => false,
        }
    }
}

#[derive(Debug)]
struct Entry {
    value: Value,
    expires_ms: Option<u64>,
}

/// A command's failure, sent to the client as an error reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct CommandError(pub(crate) String);

impl CommandError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }

    pub(crate) fn wrong_type() -> Self {
        Self::new("WRONGTYPE Operation against a key holding the wrong kind of value")
    }

    pub(crate) fn syntax() -> Self {
        Self::new("ERR syntax error")
    }

    pub(crate) fn not_integer() -> Self {
        Self::new("ERR value is not an integer or out of range")
    }

    pub(crate) fn not_float() -> Self {
        Self::new("ERR value is not a valid float")
    }
}

impl From<CommandError> for Reply {
    fn from(e: CommandError) -> Self {
        Reply::Error(e.0)
    }
}

pub(crate) type CommandResult = Result<Reply, CommandError>;

/// All keys. Commands run one at a time against it (the server holds it
/// behind one lock), which is what makes every command and script atomic.
#[derive(Debug, Default)]
pub(crate) struct Db {
    entries: HashMap<Bytes, Entry>,
    /// The clock of the command being run, read once per command (and
    /// once per script, as Redis does).
    now_ms: u64,
    /// Set when a stream got new entries or lost its key: blocked readers
    /// look again.
    pub(crate) streams_changed: bool,
}

impl Db {
    pub(crate) fn tick(&mut self) {
        self.now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    }

    pub(crate) fn now_ms(&self) -> u64 {
        self.now_ms
    }

    fn live(&mut self, key: &[u8]) -> bool {
        let expired = match self.entries.get(key) {
            None => return false,
            Some(entry) => entry.expires_ms.is_some_and(|at| at <= self.now_ms),
        };
        if expired {
            self.remove(key);
        }
        !expired
    }

    pub(crate) fn get(&mut self, key: &[u8]) -> Option<&Value> {
        if self.live(key) { self.entries.get(key).map(|e| &e.value) } else { None }
    }

    pub(crate) fn get_mut(&mut self, key: &[u8]) -> Option<&mut Value> {
        if self.live(key) { self.entries.get_mut(key).map(|e| &mut e.value) } else { None }
    }

    /// The value at `key`, created by `make` when missing.
    pub(crate) fn get_or_insert(&mut self, key: &[u8], make: impl FnOnce() -> Value) -> &mut Value {
        self.live(key);
        &mut self.entries.entry(key.to_vec()).or_insert_with(|| Entry { value: make(), expires_ms: None }).value
    }

    /// Replaces the value and clears any expiry (like SET).
    pub(crate) fn put(&mut self, key: &[u8], value: Value) {
        self.entries.insert(key.to_vec(), Entry { value, expires_ms: None });
    }

    pub(crate) fn remove(&mut self, key: &[u8]) -> bool {
        match self.entries.remove(key) {
            Some(entry) => {
                if matches!(entry.value, Value::Stream(_)) {
                    self.streams_changed = true;
                }
                true
            }
            None => false,
        }
    }

    /// Drops `key` if its collection is now empty.
    pub(crate) fn drop_if_empty(&mut self, key: &[u8]) {
        if self.entries.get(key).is_some_and(|e| e.value.is_empty_collection()) {
            self.entries.remove(key);
        }
    }

    pub(crate) fn expiry(&mut self, key: &[u8]) -> Option<Option<u64>> {
        if self.live(key) { self.entries.get(key).map(|e| e.expires_ms) } else { None }
    }

    pub(crate) fn set_expiry(&mut self, key: &[u8], at_ms: Option<u64>) {
        if let Some(entry) = self.entries.get_mut(key) {
            entry.expires_ms = at_ms;
        }
        if at_ms.is_some_and(|at| at <= self.now_ms) {
            self.remove(key);
        }
    }

    pub(crate) fn keys(&mut self) -> Vec<Bytes> {
        self.purge_expired();
        self.entries.keys().cloned().collect()
    }

    pub(crate) fn len(&mut self) -> usize {
        self.purge_expired();
        self.entries.len()
    }

    pub(crate) fn clear(&mut self) {
        self.entries.clear();
        self.streams_changed = true;
    }

    /// Frees expired keys nobody reads any more (Redis's active expiry).
    pub(crate) fn purge_expired(&mut self) {
        let now = self.now_ms;
        self.entries.retain(|_, e| e.expires_ms.is_none_or(|at| at > now));
    }
}

/// Typed access to a key: `Ok(None)` when missing, `WRONGTYPE` when it
/// holds another kind of value.
macro_rules! typed {
    ($read:ident, $write:ident, $variant:ident, $ty:ty, $make:expr) => {
        impl Db {
            pub(crate) fn $read(&mut self, key: &[u8]) -> Result<Option<&mut $ty>, CommandError> {
                match self.get_mut(key) {
                    None => Ok(None),
                    Some(Value::$variant(v)) => Ok(Some(v)),
                    Some(_) => Err(CommandError::wrong_type()),
                }
            }

            pub(crate) fn $write(&mut self, key: &[u8]) -> Result<&mut $ty, CommandError> {
                match self.get_or_insert(key, || Value::$variant($make)) {
                    Value::$variant(v) => Ok(v),
                    _ => Err(CommandError::wrong_type()),
                }
            }
        }
    };
}

typed!(hash, hash_mut, Hash, HashMap<Bytes, Bytes>, HashMap::new());
typed!(set, set_mut, Set, HashSet<Bytes>, HashSet::new());
typed!(zset, zset_mut, ZSet, ZSet, ZSet::default());
typed!(list, list_mut, List, VecDeque<Bytes>, VecDeque::new());
typed!(stream, stream_mut, Stream, Box<Stream>, Box::default());

impl Db {
    pub(crate) fn string(&mut self, key: &[u8]) -> Result<Option<&Bytes>, CommandError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Str(s)) => Ok(Some(s)),
            Some(_) => Err(CommandError::wrong_type()),
        }
    }
}

/// Command arguments, read front to back.
#[derive(Debug)]
pub(crate) struct Args {
    items: std::vec::IntoIter<Bytes>,
    name: String,
}

impl Args {
    pub(crate) fn new(name: String, rest: Vec<Bytes>) -> Self {
        Self { items: rest.into_iter(), name }
    }

    pub(crate) fn wrong_arity(&self) -> CommandError {
        CommandError::new(format!("ERR wrong number of arguments for '{}' command", self.name.to_lowercase()))
    }

    pub(crate) fn next(&mut self) -> Result<Bytes, CommandError> {
        self.items.next().ok_or_else(|| self.wrong_arity())
    }

    pub(crate) fn next_opt(&mut self) -> Option<Bytes> {
        self.items.next()
    }

    /// The next argument upper-cased, for keywords.
    pub(crate) fn keyword(&mut self) -> Option<String> {
        self.items.next().map(|b| String::from_utf8_lossy(&b).to_uppercase())
    }

    pub(crate) fn int(&mut self) -> Result<i64, CommandError> {
        parse_int(&self.next()?)
    }

    /// The next argument, left in place.
    pub(crate) fn peek(&self) -> Option<&Bytes> {
        self.items.as_slice().first()
    }

    pub(crate) fn remaining(&self) -> usize {
        self.items.len()
    }

    pub(crate) fn rest(&mut self) -> Vec<Bytes> {
        self.items.by_ref().collect()
    }

    /// The remaining arguments, at least one of them.
    pub(crate) fn one_or_more(&mut self) -> Result<Vec<Bytes>, CommandError> {
        let rest = self.rest();
        if rest.is_empty() { Err(self.wrong_arity()) } else { Ok(rest) }
    }

    pub(crate) fn done(&self) -> Result<(), CommandError> {
        if self.items.len() == 0 { Ok(()) } else { Err(CommandError::syntax()) }
    }
}

pub(crate) fn parse_int(bytes: &[u8]) -> Result<i64, CommandError> {
    std::str::from_utf8(bytes).ok().and_then(|s| s.parse().ok()).ok_or_else(CommandError::not_integer)
}

pub(crate) fn parse_float(bytes: &[u8]) -> Result<f64, CommandError> {
    let text = std::str::from_utf8(bytes).map_err(|_| CommandError::not_float())?;
    match text.to_ascii_lowercase().as_str() {
        "inf" | "+inf" => Ok(f64::INFINITY),
        "-inf" => Ok(f64::NEG_INFINITY),
        _ => text.parse::<f64>().ok().filter(|f| !f.is_nan()).ok_or_else(CommandError::not_float),
    }
}

/// A float as Redis prints it: integers without a fraction.
pub(crate) fn format_float(f: f64) -> String {
    if f.is_infinite() { if f > 0.0 { "inf".into() } else { "-inf".into() } } else { format!("{f}") }
}
