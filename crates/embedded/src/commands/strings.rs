//! String commands: GET, SET (NX | XX, EX | PX), SETRANGE, INCR family, MGET.

use crate::{
    db::{Args, CommandError, CommandResult, Db, Value, parse_int},
    resp::Reply,
};

pub(super) fn run(db: &mut Db, name: &str, args: &mut Args) -> Option<CommandResult> {
    Some(match name {
        "GET" => get(db, args),
        "MGET" => mget(db, args),
        "SET" => set(db, args),
        "SETRANGE" => set_range(db, args),
        "INCR" => incr_by(db, args, Some(1)),
        "DECR" => incr_by(db, args, Some(-1)),
        "INCRBY" => incr_by(db, args, None),
        _ => return None,
    })
}

fn get(db: &mut Db, args: &mut Args) -> CommandResult {
    let key = args.next()?;
    args.done().map_err(|_| args.wrong_arity())?;
    Ok(db.string(&key)?.map_or(Reply::Nil, |v| Reply::Bulk(v.clone())))
}

fn mget(db: &mut Db, args: &mut Args) -> CommandResult {
    let keys = args.rest();
    Ok(Reply::Array(
        keys.iter().map(|k| db.string(k).ok().flatten().map_or(Reply::Nil, |v| Reply::Bulk(v.clone()))).collect(),
    ))
}

fn set(db: &mut Db, args: &mut Args) -> CommandResult {
    let key = args.next()?;
    let value = args.next()?;
    let (mut nx, mut xx, mut expires) = (false, false, None);
    while let Some(option) = args.keyword() {
        match option.as_str() {
            "NX" => nx = true,
            "XX" => xx = true,
            "EX" | "PX" => expires = Some(super::keys::expiry_option(db, &option, &args.next()?)?),
            _ => return Err(CommandError::syntax()),
        }
    }
    let exists = db.get(&key).is_some();
    if (nx && exists) || (xx && !exists) {
        return Ok(Reply::Nil);
    }
    db.put(&key, Value::Str(value));
    db.set_expiry(&key, expires);
    Ok(Reply::ok())
}

/// Overwrites bytes from `offset`, padding with zero bytes when the value
/// is shorter; the expiry stays. Replies the new length.
fn set_range(db: &mut Db, args: &mut Args) -> CommandResult {
    let key = args.next()?;
    let offset = usize::try_from(args.int()?).map_err(|_| CommandError::new("ERR offset is out of range"))?;
    let bytes = args.next()?;
    args.done().map_err(|_| args.wrong_arity())?;
    // Redis's limit: a string is at most 512 MB.
    if offset.saturating_add(bytes.len()) > 512 * 1024 * 1024 {
        return Err(CommandError::new("ERR string exceeds maximum allowed size (proto-max-bulk-len)"));
    }
    let existing = db.string(&key)?.cloned();
    if existing.is_none() && bytes.is_empty() {
        return Ok(Reply::Int(0));
    }
    let mut value = existing.unwrap_or_default();
    if value.len() < offset + bytes.len() {
        value.resize(offset + bytes.len(), 0);
    }
    value[offset..offset + bytes.len()].copy_from_slice(&bytes);
    let length = value.len() as i64;
    let expiry = db.expiry(&key).flatten();
    db.put(&key, Value::Str(value));
    db.set_expiry(&key, expiry);
    Ok(Reply::Int(length))
}

fn incr_by(db: &mut Db, args: &mut Args, fixed: Option<i64>) -> CommandResult {
    let key = args.next()?;
    let by = match fixed {
        Some(n) => n,
        None => args.int()?,
    };
    let current = match db.string(&key)? {
        Some(v) => parse_int(v)?,
        None => 0,
    };
    let next = current.checked_add(by).ok_or_else(|| CommandError::new("ERR increment or decrement would overflow"))?;
    let expiry = db.expiry(&key).flatten();
    db.put(&key, Value::Str(next.to_string().into_bytes()));
    db.set_expiry(&key, expiry);
    Ok(Reply::Int(next))
}
