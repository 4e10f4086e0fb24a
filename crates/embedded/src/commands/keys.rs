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
        "SCAN" => scan(db, args),
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
    let keys = args.one_or_more()?;
    Ok(Reply::Int(keys.iter().filter(|k| db.get(k).is_some() && db.remove(k)).count() as i64))
}

fn exists(db: &mut Db, args: &mut Args) -> CommandResult {
    let keys = args.one_or_more()?;
    Ok(Reply::Int(keys.iter().filter(|k| db.get(k).is_some()).count() as i64))
}

fn keys(db: &mut Db, args: &mut Args) -> CommandResult {
    let pattern = args.next()?;
    let mut found: Vec<_> = db.keys().into_iter().filter(|k| glob_match(&pattern, k)).collect();
    found.sort();
    Ok(super::bulks(found))
}

/// `SCAN cursor [MATCH pattern] [COUNT n] [TYPE type]`: everything in one
/// reply (cursor `0`), which the SCAN contract allows.
fn scan(db: &mut Db, args: &mut Args) -> CommandResult {
    args.next()?;
    let (mut pattern, mut kind) = (b"*".to_vec(), None);
    while let Some(option) = args.keyword() {
        match option.as_str() {
            "MATCH" => pattern = args.next()?,
            "COUNT" => {
                args.int()?;
            }
            "TYPE" => kind = Some(String::from_utf8_lossy(&args.next()?).to_lowercase()),
            _ => return Err(CommandError::syntax()),
        }
    }
    let mut found = Vec::new();
    for key in db.keys() {
        let type_ok = kind.as_deref().is_none_or(|k| db.get(&key).is_some_and(|v| v.type_name() == k));
        if type_ok && glob_match(&pattern, &key) {
            found.push(key);
        }
    }
    found.sort();
    Ok(Reply::Array(vec![Reply::bulk("0"), super::bulks(found)]))
}

/// Redis's glob: `*`, `?`, `[abc]` / `[^a-z]` classes and `\` escapes.
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|skip| glob_match(rest, &text[skip..])),
        Some((b'?', rest)) => !text.is_empty() && glob_match(rest, &text[1..]),
        Some((b'[', rest)) => {
            let Some(close) = rest.iter().skip(1).position(|b| *b == b']').map(|p| p + 1) else {
                return text.first() == Some(&b'[') && glob_match(rest, &text[1..]);
            };
            let (class, after) = (&rest[..close], &rest[close + 1..]);
            let (negate, class) = match class.split_first() {
                Some((b'^', c)) => (true, c),
                _ => (false, class),
            };
            let Some(&c) = text.first() else { return false };
            let mut hit = false;
            let mut i = 0;
            while i < class.len() {
                if i + 2 < class.len() && class[i + 1] == b'-' {
                    hit |= (class[i]..=class[i + 2]).contains(&c);
                    i += 3;
                } else {
                    hit |= class[i] == c;
                    i += 1;
                }
            }
            hit != negate && glob_match(after, &text[1..])
        }
        Some((b'\\', rest)) if !rest.is_empty() => text.first() == Some(&rest[0]) && glob_match(&rest[1..], &text[1..]),
        Some((c, rest)) => text.first() == Some(c) && glob_match(rest, &text[1..]),
    }
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

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn globs_match_like_redis() {
        assert!(glob_match(b"hookline:p0:*", b"hookline:p0:{s820}:events"));
        assert!(glob_match(b"*:dlv:*", b"a:dlv:b"));
        assert!(glob_match(b"h?llo", b"hello") && !glob_match(b"h?llo", b"hllo"));
        assert!(glob_match(b"h[a-e]llo", b"hello") && !glob_match(b"h[^e]llo", b"hello"));
        assert!(glob_match(b"a\\*b", b"a*b") && !glob_match(b"a\\*b", b"axb"));
    }
}
