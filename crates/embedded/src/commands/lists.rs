//! List commands: RPUSH, LPUSH, LPOP (with a count), LLEN, LRANGE.

use crate::{
    db::{Args, CommandResult, Db},
    resp::Reply,
};

pub(super) fn run(db: &mut Db, name: &str, args: &mut Args) -> Option<CommandResult> {
    Some(match name {
        "RPUSH" | "LPUSH" => push(db, args, name == "LPUSH"),
        "LPOP" => lpop(db, args),
        "LLEN" => args.next().and_then(|k| Ok(Reply::Int(db.list(&k)?.map_or(0, |l| l.len()) as i64))),
        "LRANGE" => lrange(db, args),
        _ => return None,
    })
}

fn push(db: &mut Db, args: &mut Args, front: bool) -> CommandResult {
    let key = args.next()?;
    let items = args.one_or_more()?;
    let list = db.list_mut(&key)?;
    for item in items {
        if front { list.push_front(item) } else { list.push_back(item) }
    }
    Ok(Reply::Int(list.len() as i64))
}

fn lpop(db: &mut Db, args: &mut Args) -> CommandResult {
    let key = args.next()?;
    let count = args.next_opt().map(|c| crate::db::parse_int(&c)).transpose()?;
    let Some(list) = db.list(&key)? else {
        return Ok(if count.is_some() { Reply::NilArray } else { Reply::Nil });
    };
    let reply = match count {
        None => list.pop_front().map_or(Reply::Nil, Reply::Bulk),
        Some(n) => super::bulks((0..n.max(0)).map_while(|_| list.pop_front()).collect::<Vec<_>>()),
    };
    db.drop_if_empty(&key);
    Ok(reply)
}

fn lrange(db: &mut Db, args: &mut Args) -> CommandResult {
    let (key, start, stop) = (args.next()?, args.int()?, args.int()?);
    let Some(list) = db.list(&key)? else { return Ok(Reply::Array(vec![])) };
    let (from, to) = index_range(list.len(), start, stop);
    Ok(super::bulks(list.iter().skip(from).take(to.saturating_sub(from)).cloned().collect::<Vec<_>>()))
}

/// Redis's inclusive `start..=stop` with negative indexes from the end, as
/// a half-open range clamped to `len`. A start before the first element
/// starts at it; a stop before it makes the range empty (`-2 -2` of one
/// element is nothing).
pub(super) fn index_range(len: usize, start: i64, stop: i64) -> (usize, usize) {
    let len = len as i64;
    let from_end = |i: i64| if i < 0 { len + i } else { i };
    let (start, stop) = (from_end(start).max(0), from_end(stop).min(len - 1));
    if stop < 0 || start > stop || start >= len { (0, 0) } else { (start as usize, stop as usize + 1) }
}
