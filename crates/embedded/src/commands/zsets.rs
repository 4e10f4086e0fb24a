//! Sorted-set commands: ZADD, ZREM, ZCARD, ZSCORE, ZCOUNT, ZRANGE (by
//! rank, BYSCORE, BYLEX, REV, LIMIT, WITHSCORES), ZRANGEBYSCORE,
//! ZREMRANGEBYSCORE, ZPOPMIN.

use crate::{
    db::{Args, Bytes, CommandError, CommandResult, Db, format_float, parse_float, parse_int},
    resp::Reply,
    zset::{LexBound, ScoreBound},
};

pub(super) fn run(db: &mut Db, name: &str, args: &mut Args) -> Option<CommandResult> {
    Some(match name {
        "ZADD" => zadd(db, args),
        "ZREM" => zrem(db, args),
        "ZCARD" => args.next().and_then(|k| Ok(Reply::Int(db.zset(&k)?.map_or(0, |z| z.len()) as i64))),
        "ZSCORE" => zscore(db, args),
        "ZCOUNT" => zcount(db, args),
        "ZRANGE" => zrange(db, args),
        "ZRANGEBYSCORE" => zrangebyscore(db, args),
        "ZREMRANGEBYSCORE" => zremrangebyscore(db, args),
        "ZPOPMIN" => zpopmin(db, args),
        _ => return None,
    })
}

fn zadd(db: &mut Db, args: &mut Args) -> CommandResult {
    let key = args.next()?;
    let mut rest = args.rest().into_iter().peekable();
    let (mut nx, mut xx, mut gt, mut lt, mut ch) = (false, false, false, false, false);
    while let Some(flag) = rest.peek().map(|f| String::from_utf8_lossy(f).to_uppercase()) {
        match flag.as_str() {
            "NX" => nx = true,
            "XX" => xx = true,
            "GT" => gt = true,
            "LT" => lt = true,
            "CH" => ch = true,
            _ => break,
        }
        rest.next();
    }
    let rest: Vec<Bytes> = rest.collect();
    if rest.is_empty() || !rest.len().is_multiple_of(2) {
        return Err(CommandError::syntax());
    }
    let mut pairs = Vec::with_capacity(rest.len() / 2);
    for pair in rest.chunks(2) {
        pairs.push((parse_float(&pair[0])?, pair[1].clone()));
    }
    let zset = db.zset_mut(&key)?;
    let (mut added, mut changed) = (0, 0);
    for (score, member) in pairs {
        match zset.score(&member) {
            None if !xx => {
                zset.insert(member, score);
                added += 1;
            }
            Some(old) if !nx && (!gt || score > old) && (!lt || score < old) && old != score => {
                zset.insert(member, score);
                changed += 1;
            }
            _ => {}
        }
    }
    db.drop_if_empty(&key);
    Ok(Reply::Int(if ch { added + changed } else { added }))
}

fn zrem(db: &mut Db, args: &mut Args) -> CommandResult {
    let key = args.next()?;
    let members = args.rest();
    let removed = match db.zset(&key)? {
        Some(z) => members.iter().filter(|m| z.remove(m)).count(),
        None => 0,
    };
    db.drop_if_empty(&key);
    Ok(Reply::Int(removed as i64))
}

fn zscore(db: &mut Db, args: &mut Args) -> CommandResult {
    let (key, member) = (args.next()?, args.next()?);
    Ok(db.zset(&key)?.and_then(|z| z.score(&member)).map_or(Reply::Nil, |s| Reply::bulk(format_float(s))))
}

fn score_bound(text: &[u8]) -> Result<ScoreBound, CommandError> {
    let bad = || CommandError::new("ERR min or max is not a float");
    match text.strip_prefix(b"(") {
        Some(rest) => Ok(ScoreBound { value: parse_float(rest).map_err(|_| bad())?, exclusive: true }),
        None => Ok(ScoreBound { value: parse_float(text).map_err(|_| bad())?, exclusive: false }),
    }
}

fn lex_bound(text: &[u8]) -> Result<LexBound, CommandError> {
    match text {
        b"-" => Ok(LexBound::Min),
        b"+" => Ok(LexBound::Max),
        [b'[', rest @ ..] => Ok(LexBound::Inclusive(rest.to_vec())),
        [b'(', rest @ ..] => Ok(LexBound::Exclusive(rest.to_vec())),
        _ => Err(CommandError::new("ERR min or max not valid string range item")),
    }
}

fn zcount(db: &mut Db, args: &mut Args) -> CommandResult {
    let (key, min, max) = (args.next()?, score_bound(&args.next()?)?, score_bound(&args.next()?)?);
    Ok(Reply::Int(db.zset(&key)?.map_or(0, |z| z.by_score(min, max, false).len()) as i64))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum By {
    Rank,
    Score,
    Lex,
}

fn zrange(db: &mut Db, args: &mut Args) -> CommandResult {
    let (key, start, stop) = (args.next()?, args.next()?, args.next()?);
    let (mut by, mut rev, mut limit, mut with_scores) = (By::Rank, false, None, false);
    while let Some(option) = args.keyword() {
        match option.as_str() {
            "BYSCORE" => by = By::Score,
            "BYLEX" => by = By::Lex,
            "REV" => rev = true,
            "WITHSCORES" => with_scores = true,
            "LIMIT" => limit = Some((args.int()?, args.int()?)),
            _ => return Err(CommandError::syntax()),
        }
    }
    if limit.is_some() && by == By::Rank {
        return Err(CommandError::new(
            "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
        ));
    }
    // With REV the range is given high end first.
    let (low, high) = if rev && by != By::Rank { (stop, start) } else { (start, stop) };
    let Some(zset) = db.zset(&key)? else { return Ok(Reply::Array(vec![])) };
    let rows = match by {
        By::Rank => {
            let (from, to) = super::lists::index_range(zset.len(), parse_int(&low)?, parse_int(&high)?);
            zset.iter(rev).skip(from).take(to - from).map(|(m, s)| (m.clone(), s)).collect()
        }
        By::Score => zset.by_score(score_bound(&low)?, score_bound(&high)?, rev),
        By::Lex => zset.by_lex(&lex_bound(&low)?, &lex_bound(&high)?, rev),
    };
    Ok(rows_reply(apply_limit(rows, limit), with_scores))
}

fn zrangebyscore(db: &mut Db, args: &mut Args) -> CommandResult {
    let (key, min, max) = (args.next()?, score_bound(&args.next()?)?, score_bound(&args.next()?)?);
    let (mut limit, mut with_scores) = (None, false);
    while let Some(option) = args.keyword() {
        match option.as_str() {
            "WITHSCORES" => with_scores = true,
            "LIMIT" => limit = Some((args.int()?, args.int()?)),
            _ => return Err(CommandError::syntax()),
        }
    }
    let rows = db.zset(&key)?.map(|z| z.by_score(min, max, false)).unwrap_or_default();
    Ok(rows_reply(apply_limit(rows, limit), with_scores))
}

fn zremrangebyscore(db: &mut Db, args: &mut Args) -> CommandResult {
    let (key, min, max) = (args.next()?, score_bound(&args.next()?)?, score_bound(&args.next()?)?);
    let removed = match db.zset(&key)? {
        Some(z) => {
            let doomed = z.by_score(min, max, false);
            for (member, _) in &doomed {
                z.remove(member);
            }
            doomed.len()
        }
        None => 0,
    };
    db.drop_if_empty(&key);
    Ok(Reply::Int(removed as i64))
}

fn zpopmin(db: &mut Db, args: &mut Args) -> CommandResult {
    let key = args.next()?;
    let count = args.next_opt().map(|c| parse_int(&c)).transpose()?.unwrap_or(1).max(0) as usize;
    let popped: Vec<(Bytes, f64)> = match db.zset(&key)? {
        Some(z) => {
            let first: Vec<_> = z.iter(false).take(count).map(|(m, s)| (m.clone(), s)).collect();
            for (member, _) in &first {
                z.remove(member);
            }
            first
        }
        None => Vec::new(),
    };
    db.drop_if_empty(&key);
    Ok(rows_reply(popped, true))
}

fn apply_limit(rows: Vec<(Bytes, f64)>, limit: Option<(i64, i64)>) -> Vec<(Bytes, f64)> {
    match limit {
        None => rows,
        Some((offset, count)) => {
            let skip = offset.max(0) as usize;
            let take = if count < 0 { usize::MAX } else { count as usize };
            rows.into_iter().skip(skip).take(take).collect()
        }
    }
}

fn rows_reply(rows: Vec<(Bytes, f64)>, with_scores: bool) -> Reply {
    let mut out = Vec::with_capacity(rows.len() * if with_scores { 2 } else { 1 });
    for (member, score) in rows {
        out.push(Reply::Bulk(member));
        if with_scores {
            out.push(Reply::bulk(format_float(score)));
        }
    }
    Reply::Array(out)
}
