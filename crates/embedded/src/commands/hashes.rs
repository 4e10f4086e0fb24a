//! Hash and set commands.

use crate::{
    db::{Args, CommandError, CommandResult, Db, parse_int},
    resp::Reply,
};

pub(super) fn run(db: &mut Db, name: &str, args: &mut Args) -> Option<CommandResult> {
    Some(match name {
        "HSET" | "HMSET" => hset(db, args, name == "HMSET"),
        "HSETNX" => hsetnx(db, args),
        "HGET" => hget(db, args),
        "HMGET" => hmget(db, args),
        "HGETALL" => hgetall(db, args),
        "HDEL" => hdel(db, args),
        "HINCRBY" => hincrby(db, args),
        "HLEN" => args.next().and_then(|k| Ok(Reply::Int(db.hash(&k)?.map_or(0, |h| h.len()) as i64))),
        "HEXISTS" => hexists(db, args),
        "SADD" => sadd(db, args),
        "SREM" => srem(db, args),
        "SMEMBERS" => smembers(db, args),
        "SCARD" => args.next().and_then(|k| Ok(Reply::Int(db.set(&k)?.map_or(0, |s| s.len()) as i64))),
        "SISMEMBER" => sismember(db, args),
        _ => return None,
    })
}

fn hset(db: &mut Db, args: &mut Args, legacy: bool) -> CommandResult {
    let key = args.next()?;
    let pairs = args.rest();
    if pairs.is_empty() || !pairs.len().is_multiple_of(2) {
        return Err(args.wrong_arity());
    }
    let hash = db.hash_mut(&key)?;
    let mut added = 0;
    let mut pairs = pairs.into_iter();
    while let (Some(field), Some(value)) = (pairs.next(), pairs.next()) {
        if hash.insert(field, value).is_none() {
            added += 1;
        }
    }
    Ok(if legacy { Reply::ok() } else { Reply::Int(added) })
}

fn hsetnx(db: &mut Db, args: &mut Args) -> CommandResult {
    let (key, field, value) = (args.next()?, args.next()?, args.next()?);
    let hash = db.hash_mut(&key)?;
    if hash.contains_key(&field) {
        return Ok(Reply::Int(0));
    }
    hash.insert(field, value);
    Ok(Reply::Int(1))
}

fn hget(db: &mut Db, args: &mut Args) -> CommandResult {
    let (key, field) = (args.next()?, args.next()?);
    args.done().map_err(|_| args.wrong_arity())?;
    Ok(db.hash(&key)?.and_then(|h| h.get(&field)).map_or(Reply::Nil, |v| Reply::Bulk(v.clone())))
}

fn hmget(db: &mut Db, args: &mut Args) -> CommandResult {
    let key = args.next()?;
    let fields = args.one_or_more()?;
    let hash = db.hash(&key)?;
    Ok(Reply::Array(
        fields
            .iter()
            .map(|f| hash.as_ref().and_then(|h| h.get(f)).map_or(Reply::Nil, |v| Reply::Bulk(v.clone())))
            .collect(),
    ))
}

fn hgetall(db: &mut Db, args: &mut Args) -> CommandResult {
    let key = args.next()?;
    let mut out = Vec::new();
    if let Some(hash) = db.hash(&key)? {
        for (field, value) in hash.iter() {
            out.push(Reply::Bulk(field.clone()));
            out.push(Reply::Bulk(value.clone()));
        }
    }
    Ok(Reply::Array(out))
}

fn hdel(db: &mut Db, args: &mut Args) -> CommandResult {
    let key = args.next()?;
    let fields = args.rest();
    let removed = match db.hash(&key)? {
        Some(hash) => fields.iter().filter(|f| hash.remove(*f).is_some()).count(),
        None => 0,
    };
    db.drop_if_empty(&key);
    Ok(Reply::Int(removed as i64))
}

fn hincrby(db: &mut Db, args: &mut Args) -> CommandResult {
    let (key, field, by) = (args.next()?, args.next()?, args.int()?);
    let hash = db.hash_mut(&key)?;
    let current = match hash.get(&field) {
        Some(v) => parse_int(v).map_err(|_| CommandError::new("ERR hash value is not an integer"))?,
        None => 0,
    };
    let next = current.checked_add(by).ok_or_else(|| CommandError::new("ERR increment or decrement would overflow"))?;
    hash.insert(field, next.to_string().into_bytes());
    Ok(Reply::Int(next))
}

fn hexists(db: &mut Db, args: &mut Args) -> CommandResult {
    let (key, field) = (args.next()?, args.next()?);
    Ok(Reply::Int(i64::from(db.hash(&key)?.is_some_and(|h| h.contains_key(&field)))))
}

fn sadd(db: &mut Db, args: &mut Args) -> CommandResult {
    let key = args.next()?;
    let members = args.one_or_more()?;
    let set = db.set_mut(&key)?;
    Ok(Reply::Int(members.into_iter().filter(|m| set.insert(m.clone())).count() as i64))
}

fn srem(db: &mut Db, args: &mut Args) -> CommandResult {
    let key = args.next()?;
    let members = args.rest();
    let removed = match db.set(&key)? {
        Some(set) => members.iter().filter(|m| set.remove(*m)).count(),
        None => 0,
    };
    db.drop_if_empty(&key);
    Ok(Reply::Int(removed as i64))
}

fn smembers(db: &mut Db, args: &mut Args) -> CommandResult {
    let key = args.next()?;
    let mut members: Vec<_> = db.set(&key)?.map(|s| s.iter().cloned().collect()).unwrap_or_default();
    members.sort();
    Ok(super::bulks(members))
}

fn sismember(db: &mut Db, args: &mut Args) -> CommandResult {
    let (key, member) = (args.next()?, args.next()?);
    Ok(Reply::Int(i64::from(db.set(&key)?.is_some_and(|s| s.contains(&member)))))
}
