//! Stream commands: XADD, XLEN, XRANGE, XREVRANGE, XDEL, XTRIM, XREAD,
//! XREADGROUP, XACK, XGROUP, XAUTOCLAIM, XPENDING, XINFO GROUPS.
//!
//! XREAD and XREADGROUP never block here: with nothing to return they
//! answer a nil array and the server waits for a write and asks again
//! (see `server.rs`).

use std::ops::Bound;

use crate::{
    db::{Args, Bytes, CommandError, CommandResult, Db, parse_int},
    resp::Reply,
    stream::{Fields, PendingEntry, Stream, StreamId},
};

pub(super) fn run(db: &mut Db, name: &str, args: &mut Args) -> Option<CommandResult> {
    Some(match name {
        "XADD" => xadd(db, args),
        "XLEN" => args.next().and_then(|k| Ok(Reply::Int(db.stream(&k)?.map_or(0, |s| s.entries.len()) as i64))),
        "XRANGE" => xrange(db, args, false),
        "XREVRANGE" => xrange(db, args, true),
        "XDEL" => xdel(db, args),
        "XTRIM" => xtrim(db, args),
        "XREAD" => xread(db, args),
        "XREADGROUP" => xreadgroup(db, args),
        "XACK" => xack(db, args),
        "XGROUP" => xgroup(db, args),
        "XAUTOCLAIM" => xautoclaim(db, args),
        "XCLAIM" => xclaim(db, args),
        "XPENDING" => xpending(db, args),
        "XINFO" => xinfo(db, args),
        _ => return None,
    })
}

fn entry_reply(id: StreamId, fields: Option<&Fields>) -> Reply {
    let fields = fields.map_or(Reply::NilArray, |f| {
        Reply::Array(f.iter().flat_map(|(k, v)| [Reply::Bulk(k.clone()), Reply::Bulk(v.clone())]).collect())
    });
    Reply::Array(vec![Reply::bulk(id.to_string()), fields])
}

fn no_group(key: &[u8], group: &[u8], suffix: &str) -> CommandError {
    CommandError::new(format!(
        "NOGROUP No such key '{}' or consumer group '{}'{suffix}",
        String::from_utf8_lossy(key),
        String::from_utf8_lossy(group)
    ))
}

/// `MAXLEN|MINID [=|~] threshold [LIMIT n]`, after the keyword.
enum Trim {
    MaxLen(usize),
    MinId(StreamId),
}

fn trim_spec(keyword: &str, args: &mut Args) -> Result<Trim, CommandError> {
    let mut threshold = args.next()?;
    if threshold == b"~" || threshold == b"=" {
        threshold = args.next()?;
    }
    Ok(if keyword == "MAXLEN" {
        Trim::MaxLen(
            usize::try_from(parse_int(&threshold)?)
                .map_err(|_| CommandError::new("ERR The MAXLEN argument must be >= 0."))?,
        )
    } else {
        Trim::MinId(StreamId::parse(&threshold, 0)?)
    })
}

fn apply_trim(stream: &mut Stream, trim: &Trim) -> usize {
    match trim {
        Trim::MaxLen(n) => stream.trim_max_len(*n),
        Trim::MinId(id) => stream.trim_min_id(*id),
    }
}

fn xadd(db: &mut Db, args: &mut Args) -> CommandResult {
    let key = args.next()?;
    let (mut no_mkstream, mut trim) = (false, None);
    let id = loop {
        let word = args.next()?;
        match String::from_utf8_lossy(&word).to_uppercase().as_str() {
            "NOMKSTREAM" => no_mkstream = true,
            keyword @ ("MAXLEN" | "MINID") => trim = Some(trim_spec(keyword, args)?),
            "LIMIT" => {
                args.next()?;
            }
            "*" => break None,
            _ => break Some(StreamId::parse(&word, 0)?),
        }
    };
    let rest = args.rest();
    if rest.is_empty() || !rest.len().is_multiple_of(2) {
        return Err(CommandError::new("ERR wrong number of arguments for 'xadd' command"));
    }
    if no_mkstream && db.stream(&key)?.is_none() {
        return Ok(Reply::Nil);
    }
    let fields: Fields = rest.chunks(2).map(|p| (p[0].clone(), p[1].clone())).collect();
    let now = db.now_ms();
    let stream = db.stream_mut(&key)?;
    let id = stream.add(id, fields, now)?;
    if let Some(trim) = &trim {
        apply_trim(stream, trim);
    }
    db.streams_changed = true;
    Ok(Reply::bulk(id.to_string()))
}

/// A range end of XRANGE: `-`, `+`, `id`, or `(id` (exclusive).
fn range_bound(text: &[u8], start: bool) -> Result<Bound<StreamId>, CommandError> {
    Ok(match text {
        b"-" => Bound::Included(StreamId::MIN),
        b"+" => Bound::Included(StreamId::MAX),
        [b'(', rest @ ..] => Bound::Excluded(StreamId::parse(rest, if start { 0 } else { u64::MAX })?),
        _ => Bound::Included(StreamId::parse(text, if start { 0 } else { u64::MAX })?),
    })
}

fn xrange(db: &mut Db, args: &mut Args, rev: bool) -> CommandResult {
    let key = args.next()?;
    let (mut a, mut b) = (args.next()?, args.next()?);
    if rev {
        std::mem::swap(&mut a, &mut b);
    }
    let (start, end) = (range_bound(&a, true)?, range_bound(&b, false)?);
    let count = match args.keyword().as_deref() {
        Some("COUNT") => usize::try_from(args.int()?).unwrap_or(0),
        Some(_) => return Err(CommandError::syntax()),
        None => usize::MAX,
    };
    let Some(stream) = db.stream(&key)? else { return Ok(Reply::Array(vec![])) };
    let range = stream.range(start, end);
    let rows: Vec<Reply> = if rev {
        range.rev().take(count).map(|(id, f)| entry_reply(*id, Some(f))).collect()
    } else {
        range.take(count).map(|(id, f)| entry_reply(*id, Some(f))).collect()
    };
    Ok(Reply::Array(rows))
}

fn xdel(db: &mut Db, args: &mut Args) -> CommandResult {
    let key = args.next()?;
    let ids = args.rest().iter().map(|id| StreamId::parse(id, 0)).collect::<Result<Vec<_>, _>>()?;
    let Some(stream) = db.stream(&key)? else { return Ok(Reply::Int(0)) };
    Ok(Reply::Int(ids.iter().filter(|id| stream.entries.remove(id).is_some()).count() as i64))
}

fn xtrim(db: &mut Db, args: &mut Args) -> CommandResult {
    let key = args.next()?;
    let keyword = args.keyword().ok_or_else(|| args.wrong_arity())?;
    if keyword != "MAXLEN" && keyword != "MINID" {
        return Err(CommandError::syntax());
    }
    let trim = trim_spec(&keyword, args)?;
    let Some(stream) = db.stream(&key)? else { return Ok(Reply::Int(0)) };
    Ok(Reply::Int(apply_trim(stream, &trim) as i64))
}

/// `[COUNT n] [BLOCK ms] [NOACK] STREAMS k1 .. kn id1 .. idn`.
struct ReadOptions {
    count: usize,
    no_ack: bool,
    streams: Vec<(Bytes, Bytes)>,
}

fn read_options(args: &mut Args) -> Result<ReadOptions, CommandError> {
    let (mut count, mut no_ack) = (usize::MAX, false);
    loop {
        match args.keyword().as_deref() {
            Some("COUNT") => count = usize::try_from(args.int()?).unwrap_or(0).max(1),
            Some("BLOCK") => {
                args.int()?;
            }
            Some("NOACK") => no_ack = true,
            Some("STREAMS") => break,
            _ => return Err(CommandError::syntax()),
        }
    }
    let rest = args.rest();
    if rest.is_empty() || !rest.len().is_multiple_of(2) {
        return Err(CommandError::new(
            "ERR Unbalanced 'xread' list of streams: for each stream key an ID or '$' must be specified.",
        ));
    }
    let (keys, ids) = rest.split_at(rest.len() / 2);
    Ok(ReadOptions { count, no_ack, streams: keys.iter().cloned().zip(ids.iter().cloned()).collect() })
}

/// Replaces XREAD's `$` ids by each stream's current last id, so a read
/// retried after waiting still means "after what was there at first".
pub(crate) fn resolve_last_ids(db: &mut Db, command: &mut [Bytes]) {
    let Some(at) = command.iter().position(|a| a.eq_ignore_ascii_case(b"STREAMS")) else { return };
    let n = (command.len() - at - 1) / 2;
    for i in 0..n {
        if command[at + 1 + n + i] == b"$" {
            let key = command[at + 1 + i].clone();
            let last = db.stream(&key).ok().flatten().map_or(StreamId::MIN, |s| s.last_id);
            command[at + 1 + n + i] = last.to_string().into_bytes();
        }
    }
}

fn xread(db: &mut Db, args: &mut Args) -> CommandResult {
    let options = read_options(args)?;
    let mut out = Vec::new();
    for (key, id) in &options.streams {
        let Some(stream) = db.stream(key)? else { continue };
        let after = if id == b"$" { stream.last_id } else { StreamId::parse(id, 0)? };
        let rows: Vec<Reply> = stream
            .range(Bound::Excluded(after), Bound::Unbounded)
            .take(options.count)
            .map(|(id, f)| entry_reply(*id, Some(f)))
            .collect();
        if !rows.is_empty() {
            out.push(Reply::Array(vec![Reply::Bulk(key.clone()), Reply::Array(rows)]));
        }
    }
    Ok(if out.is_empty() { Reply::NilArray } else { Reply::Array(out) })
}

fn xreadgroup(db: &mut Db, args: &mut Args) -> CommandResult {
    if args.keyword().as_deref() != Some("GROUP") {
        return Err(CommandError::syntax());
    }
    let (group, consumer) = (args.next()?, args.next()?);
    let options = read_options(args)?;
    let now = db.now_ms();
    let mut out = Vec::new();
    let mut any = false;
    for (key, id) in &options.streams {
        let missing = || no_group(key, &group, " in XREADGROUP with GROUP option");
        let stream = db.stream(key)?.ok_or_else(missing)?;
        let rows: Vec<Reply> = if id == b">" {
            let taken = stream.read_new(&group, &consumer, options.count, options.no_ack, now).ok_or_else(missing)?;
            taken.iter().map(|(id, f)| entry_reply(*id, Some(f))).collect()
        } else {
            let after = StreamId::parse(id, 0)?;
            let history = stream.read_pending(&group, &consumer, after, options.count, now).ok_or_else(missing)?;
            any = true;
            history.iter().map(|(id, f)| entry_reply(*id, f.as_ref())).collect()
        };
        any |= !rows.is_empty();
        out.push(Reply::Array(vec![Reply::Bulk(key.clone()), Reply::Array(rows)]));
    }
    Ok(if any { Reply::Array(out) } else { Reply::NilArray })
}

fn xack(db: &mut Db, args: &mut Args) -> CommandResult {
    let (key, group) = (args.next()?, args.next()?);
    let ids = args.rest().iter().map(|id| StreamId::parse(id, 0)).collect::<Result<Vec<_>, _>>()?;
    if ids.is_empty() {
        return Err(args.wrong_arity());
    }
    let Some(group) = db.stream(&key)?.and_then(|s| s.groups.get_mut(&group)) else { return Ok(Reply::Int(0)) };
    Ok(Reply::Int(ids.iter().filter(|id| group.pending.remove(id).is_some()).count() as i64))
}

fn xgroup(db: &mut Db, args: &mut Args) -> CommandResult {
    let sub = args.keyword().ok_or_else(|| args.wrong_arity())?;
    let key = args.next()?;
    match sub.as_str() {
        "CREATE" => {
            let (group, id) = (args.next()?, args.next()?);
            let mk_stream = matches!(args.keyword().as_deref(), Some("MKSTREAM"));
            if db.stream(&key)?.is_none() && !mk_stream {
                return Err(CommandError::new(
                    "ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically.",
                ));
            }
            let stream = db.stream_mut(&key)?;
            let last_delivered = if id == b"$" { stream.last_id } else { StreamId::parse(&id, 0)? };
            if stream.groups.contains_key(&group) {
                return Err(CommandError::new("BUSYGROUP Consumer Group name already exists"));
            }
            let fresh = stream.group_at(last_delivered);
            stream.groups.insert(group, fresh);
            Ok(Reply::ok())
        }
        "DESTROY" => {
            let group = args.next()?;
            Ok(Reply::Int(i64::from(db.stream(&key)?.is_some_and(|s| s.groups.remove(&group).is_some()))))
        }
        "CREATECONSUMER" | "DELCONSUMER" | "SETID" => {
            let (group, value) = (args.next()?, args.next()?);
            let now = db.now_ms();
            let stream = db.stream(&key)?.ok_or_else(|| no_group(&key, &group, ""))?;
            let last_id = stream.last_id;
            let set_to = match sub.as_str() {
                "SETID" if value == b"$" => Some(stream.group_at(last_id)),
                "SETID" => Some(stream.group_at(StreamId::parse(&value, 0)?)),
                _ => None,
            };
            let g = stream.groups.get_mut(&group).ok_or_else(|| no_group(&key, &group, ""))?;
            Ok(match sub.as_str() {
                "CREATECONSUMER" => Reply::Int(i64::from(g.consumers.insert(value, now).is_none())),
                "DELCONSUMER" => {
                    let before = g.pending.len();
                    g.pending.retain(|_, p| p.consumer != value);
                    g.consumers.remove(&value);
                    Reply::Int((before - g.pending.len()) as i64)
                }
                _ => {
                    if let Some(reset) = set_to {
                        (g.last_delivered, g.entries_read) = (reset.last_delivered, reset.entries_read);
                    }
                    Reply::ok()
                }
            })
        }
        _ => Err(CommandError::new(format!("ERR unknown subcommand '{}'", sub.to_lowercase()))),
    }
}

fn xautoclaim(db: &mut Db, args: &mut Args) -> CommandResult {
    let (key, group, consumer) = (args.next()?, args.next()?, args.next()?);
    let min_idle = u64::try_from(args.int()?).unwrap_or(0);
    let start = StreamId::parse(&args.next()?, 0)?;
    let (mut count, mut just_id) = (100usize, false);
    while let Some(option) = args.keyword() {
        match option.as_str() {
            "COUNT" => count = usize::try_from(args.int()?).unwrap_or(1).max(1),
            "JUSTID" => just_id = true,
            _ => return Err(CommandError::syntax()),
        }
    }
    let now = db.now_ms();
    let stream = db.stream(&key)?.ok_or_else(|| no_group(&key, &group, ""))?;
    let Stream { entries, groups, .. } = &mut **stream;
    let g = groups.get_mut(&group).ok_or_else(|| no_group(&key, &group, ""))?;
    g.consumers.insert(consumer.clone(), now);
    let candidates: Vec<StreamId> = g.pending.range(start..).map(|(id, _)| *id).collect();
    let (mut claimed, mut deleted, mut next) = (Vec::new(), Vec::new(), StreamId::MIN);
    let mut budget = count.saturating_mul(10);
    for id in &candidates {
        if claimed.len() == count || budget == 0 {
            next = *id;
            break;
        }
        budget -= 1;
        let Some(pending) = g.pending.get_mut(id) else { continue };
        if now.saturating_sub(pending.delivered_ms) < min_idle {
            continue;
        }
        let Some(fields) = entries.get(id) else {
            g.pending.remove(id);
            deleted.push(Reply::bulk(id.to_string()));
            continue;
        };
        *pending = PendingEntry {
            consumer: consumer.clone(),
            delivered_ms: now,
            deliveries: pending.deliveries + u64::from(!just_id),
        };
        claimed.push(if just_id { Reply::bulk(id.to_string()) } else { entry_reply(*id, Some(fields)) });
    }
    Ok(Reply::Array(vec![Reply::bulk(next.to_string()), Reply::Array(claimed), Reply::Array(deleted)]))
}

/// `XCLAIM key group consumer min-idle id [id ...] [JUSTID]`: the entries
/// (of those ids) pending at least `min-idle` move to `consumer`; ids whose
/// entry was deleted leave the pending list and are not replied.
fn xclaim(db: &mut Db, args: &mut Args) -> CommandResult {
    let (key, group, consumer) = (args.next()?, args.next()?, args.next()?);
    let min_idle = u64::try_from(args.int()?).unwrap_or(0);
    let (mut ids, mut just_id) = (Vec::new(), false);
    while let Some(word) = args.next_opt() {
        if word.eq_ignore_ascii_case(b"JUSTID") {
            just_id = true;
        } else if ids.is_empty() || !just_id {
            ids.push(StreamId::parse(&word, 0)?);
        } else {
            return Err(CommandError::syntax());
        }
    }
    if ids.is_empty() {
        return Err(args.wrong_arity());
    }
    let now = db.now_ms();
    let stream = db.stream(&key)?.ok_or_else(|| no_group(&key, &group, ""))?;
    let Stream { entries, groups, .. } = &mut **stream;
    let g = groups.get_mut(&group).ok_or_else(|| no_group(&key, &group, ""))?;
    g.consumers.insert(consumer.clone(), now);
    let mut claimed = Vec::new();
    for id in ids {
        let Some(pending) = g.pending.get_mut(&id) else { continue };
        if now.saturating_sub(pending.delivered_ms) < min_idle {
            continue;
        }
        let Some(fields) = entries.get(&id) else {
            g.pending.remove(&id);
            continue;
        };
        *pending = PendingEntry {
            consumer: consumer.clone(),
            delivered_ms: now,
            deliveries: pending.deliveries + u64::from(!just_id),
        };
        claimed.push(if just_id { Reply::bulk(id.to_string()) } else { entry_reply(id, Some(fields)) });
    }
    Ok(Reply::Array(claimed))
}

fn xpending(db: &mut Db, args: &mut Args) -> CommandResult {
    let (key, group) = (args.next()?, args.next()?);
    let now = db.now_ms();
    let stream = db.stream(&key)?.ok_or_else(|| no_group(&key, &group, ""))?;
    let g = stream.groups.get(&group).ok_or_else(|| no_group(&key, &group, ""))?;
    if args.remaining() == 0 {
        if g.pending.is_empty() {
            return Ok(Reply::Array(vec![Reply::Int(0), Reply::Nil, Reply::Nil, Reply::NilArray]));
        }
        let mut per_consumer = std::collections::BTreeMap::<&Bytes, i64>::new();
        for p in g.pending.values() {
            *per_consumer.entry(&p.consumer).or_default() += 1;
        }
        let first = g.pending.keys().next().map(|id| Reply::bulk(id.to_string())).unwrap_or(Reply::Nil);
        let last = g.pending.keys().next_back().map(|id| Reply::bulk(id.to_string())).unwrap_or(Reply::Nil);
        let consumers = per_consumer
            .into_iter()
            .map(|(c, n)| Reply::Array(vec![Reply::Bulk(c.clone()), Reply::bulk(n.to_string())]))
            .collect();
        return Ok(Reply::Array(vec![Reply::Int(g.pending.len() as i64), first, last, Reply::Array(consumers)]));
    }
    // XPENDING key group [IDLE ms] start end count [consumer]
    let mut first = args.next()?;
    let mut min_idle = 0;
    if first.eq_ignore_ascii_case(b"IDLE") {
        min_idle = u64::try_from(args.int()?).unwrap_or(0);
        first = args.next()?;
    }
    let (start, end) = (range_bound(&first, true)?, range_bound(&args.next()?, false)?);
    let count = usize::try_from(args.int()?).unwrap_or(0);
    let consumer = args.next_opt();
    let rows = g
        .pending
        .range((start, end))
        .filter(|(_, p)| consumer.as_ref().is_none_or(|c| &p.consumer == c))
        .filter(|(_, p)| now.saturating_sub(p.delivered_ms) >= min_idle)
        .take(count)
        .map(|(id, p)| {
            Reply::Array(vec![
                Reply::bulk(id.to_string()),
                Reply::Bulk(p.consumer.clone()),
                Reply::Int(now.saturating_sub(p.delivered_ms) as i64),
                Reply::Int(p.deliveries as i64),
            ])
        })
        .collect();
    Ok(Reply::Array(rows))
}

fn xinfo(db: &mut Db, args: &mut Args) -> CommandResult {
    let sub = args.keyword().ok_or_else(|| args.wrong_arity())?;
    if sub != "GROUPS" {
        return Err(CommandError::new(format!("ERR XINFO {sub} is not supported by the embedded backend")));
    }
    let key = args.next()?;
    let stream = db.stream(&key)?.ok_or_else(|| CommandError::new("ERR no such key"))?;
    let mut names: Vec<&Bytes> = stream.groups.keys().collect();
    names.sort();
    let rows = names
        .into_iter()
        .map(|name| {
            let g = &stream.groups[name];
            Reply::Array(vec![
                Reply::bulk("name"),
                Reply::Bulk(name.clone()),
                Reply::bulk("consumers"),
                Reply::Int(g.consumers.len() as i64),
                Reply::bulk("pending"),
                Reply::Int(g.pending.len() as i64),
                Reply::bulk("last-delivered-id"),
                Reply::bulk(g.last_delivered.to_string()),
                Reply::bulk("entries-read"),
                Reply::Int(g.entries_read as i64),
                Reply::bulk("lag"),
                Reply::Int(stream.lag(g) as i64),
            ])
        })
        .collect();
    Ok(Reply::Array(rows))
}
