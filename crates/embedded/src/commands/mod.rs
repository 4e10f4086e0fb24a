//! Command dispatch: one function per command, grouped by value type.
//!
//! The set is what hookline's services, scripts and tests send (see the
//! crate documentation); anything else gets Redis's "unknown command"
//! error, so a new command in the services shows up in the conformance
//! suite rather than as a silent difference.

mod hashes;
mod keys;
mod lists;
mod streams;
mod strings;
mod zsets;

use crate::{
    db::{Args, Bytes, CommandResult, Db},
    resp::Reply,
};

pub(crate) use streams::resolve_last_ids;

/// Runs one command (not a scripting one: the engine handles those).
pub(crate) fn dispatch(db: &mut Db, command: Vec<Bytes>) -> Reply {
    let mut parts = command.into_iter();
    let Some(name) = parts.next() else { return Reply::error("ERR empty command") };
    let name = String::from_utf8_lossy(&name).to_uppercase();
    let mut args = Args::new(name.clone(), parts.collect());
    let result: Option<CommandResult> = match name.as_str() {
        "PING" => Some(Ok(args.next_opt().map_or(Reply::Status("PONG".into()), Reply::Bulk))),
        "ECHO" => Some(args.next().map(Reply::Bulk)),
        "TIME" => Some(Ok(time())),
        "SELECT" | "CLIENT" | "READONLY" => Some(Ok(Reply::ok())),
        // No replicas: none ever confirms a write (a real Redis without
        // replicas blocks until the timeout; the reply is the same).
        "WAIT" => Some(wait(&mut args)),
        "DBSIZE" => Some(Ok(Reply::Int(db.len() as i64))),
        "FLUSHALL" | "FLUSHDB" => {
            db.clear();
            Some(Ok(Reply::ok()))
        }
        _ => None,
    };
    let result = result
        .or_else(|| keys::run(db, &name, &mut args))
        .or_else(|| strings::run(db, &name, &mut args))
        .or_else(|| hashes::run(db, &name, &mut args))
        .or_else(|| zsets::run(db, &name, &mut args))
        .or_else(|| lists::run(db, &name, &mut args))
        .or_else(|| streams::run(db, &name, &mut args))
        .unwrap_or_else(|| {
            let first = args.peek().map(|a| String::from_utf8_lossy(a).into_owned()).unwrap_or_default();
            Ok(Reply::error(format!(
                "ERR unknown command '{}', with args beginning with: '{first}'",
                name.to_lowercase()
            )))
        });
    result.unwrap_or_else(Reply::from)
}

/// `WAIT numreplicas timeout`; Redis reads the timeout first.
fn wait(args: &mut Args) -> CommandResult {
    let (replicas, timeout) = (args.next()?, args.next()?);
    args.done().map_err(|_| args.wrong_arity())?;
    let timeout = crate::db::parse_int(&timeout)
        .map_err(|_| crate::db::CommandError::new("ERR timeout is not an integer or out of range"))?;
    if timeout < 0 {
        return Err(crate::db::CommandError::new("ERR timeout is negative"));
    }
    crate::db::parse_int(&replicas)?;
    Ok(Reply::Int(0))
}

fn time() -> Reply {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    Reply::Array(vec![Reply::bulk(now.as_secs().to_string()), Reply::bulk(now.subsec_micros().to_string())])
}

/// Bulk strings, as an array reply.
pub(crate) fn bulks(items: impl IntoIterator<Item = Bytes>) -> Reply {
    Reply::Array(items.into_iter().map(Reply::Bulk).collect())
}
