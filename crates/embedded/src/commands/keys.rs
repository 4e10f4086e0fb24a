//! Commands on keys of any type: existence, deletion, expiry.

use crate::{
    db::{Args, CommandError, CommandResult, Db, parse_int},
    resp::Reply,
};

pub(super) fn run(db: &mut Db, name: &str, args: &mut Args) -> Option<CommandResult> {
    Some(match name {
        "DEL" | "UNLINK" => del(db, args),
        "EXISTS" => exists(db, args),
        "TYPE" => args.next().map(|k| Reply::Status(db.get(&k).map_or("none", |v| v.type_name()).into())),
        "KEYS" => keys(db, args),
        "EXPIRE" => expire(db, args, 1000, false),
        "PEXPIRE" => expire(db, args, 1, false),
        "EXPIREAT" => expire(db, args, 1000, true),
        "PEXPIREAT" => expire(db, args, 1, true),
        "PERSIST" => args.next().map(|k| {
            let had = db.expiry(&k).flatten().is_some();
            db.set_expiry(&k, None);
            Reply::Int(i64::from(had))
        }),
        "TTL" => ttl(db, args, 1000),
        "PTTL" => ttl(db, args, 1),
        _ => return None,
    })
}

fn del(db: &mut Db, args: &mut Args) -> CommandResult {
    let keys = args.rest();
    if keys.is_empty() {
        return Err(args.wrong_arity());
    }
    Ok(Reply::Int(keys.iter().filter(|k| db.get(k).is_some() && db.remove(k)).count() as i64))
}

fn exists(db: &mut Db, args: &mut Args) -> CommandResult {
    let keys = args.rest();
    if keys.is_empty() {
        return Err(args.wrong_arity());
    }
    Ok(Reply::Int(keys.iter().filter(|k| db.get(k).is_some()).count() as i64))
}

/// `KEYS pattern`: only `*` and a literal prefix followed by `*` are
/// supported (what tests use to look around).
fn keys(db: &mut Db, args: &mut Args) -> CommandResult {
    let pattern = args.next()?;
    let prefix = match pattern.split_last() {
        Some((b'*', prefix)) if !prefix.contains(&b'*') && !prefix.contains(&b'?') && !prefix.contains(&b'[') => {
            prefix.to_vec()
        }
        _ if !pattern.iter().any(|b| matches!(b, b'*' | b'?' | b'[')) => {
            return Ok(super::bulks(db.get(&pattern).map(|_| pattern.clone())));
        }
        _ => return Err(CommandError::new("ERR KEYS: only literal prefixes followed by `*` are supported here")),
    };
    let mut found: Vec<_> = db.keys().into_iter().filter(|k| k.starts_with(&prefix)).collect();
    found.sort();
    Ok(super::bulks(found))
}

/// EXPIRE / PEXPIRE / EXPIREAT / PEXPIREAT with NX | XX | GT | LT.
fn expire(db: &mut Db, args: &mut Args, unit_ms: i64, absolute: bool) -> CommandResult {
    let key = args.next()?;
    let amount = args.int()?;
    let condition = args.keyword();
    args.done()?;
    let at = if absolute {
        amount.saturating_mul(unit_ms)
    } else {
        (db.now_ms() as i64).saturating_add(amount.saturating_mul(unit_ms))
    };
    let at = at.max(0) as u64;
    let Some(current) = db.expiry(&key) else { return Ok(Reply::Int(0)) };
    let allowed = match condition.as_deref() {
        None => true,
        Some("NX") => current.is_none(),
        Some("XX") => current.is_some(),
        // No expiry counts as an infinite one.
        Some("GT") => current.is_some_and(|c| at > c),
        Some("LT") => current.is_none_or(|c| at < c),
        Some(other) => return Err(CommandError::new(format!("ERR Unsupported option {other}"))),
    };
    if allowed {
        db.set_expiry(&key, Some(at));
    }
    Ok(Reply::Int(i64::from(allowed)))
}

fn ttl(db: &mut Db, args: &mut Args, unit_ms: u64) -> CommandResult {
    let key = args.next()?;
    Ok(Reply::Int(match db.expiry(&key) {
        None => -2,
        Some(None) => -1,
        Some(Some(at)) => (at.saturating_sub(db.now_ms()).div_ceil(unit_ms)) as i64,
    }))
}

/// `EX seconds` / `PX ms` after SET, as an absolute expiry.
pub(super) fn expiry_option(db: &Db, option: &str, amount: &[u8]) -> Result<u64, CommandError> {
    let n = parse_int(amount)?;
    if n <= 0 {
        return Err(CommandError::new("ERR invalid expire time in 'set' command"));
    }
    let unit = if option == "EX" { 1000 } else { 1 };
    Ok(db.now_ms() + n as u64 * unit)
}
