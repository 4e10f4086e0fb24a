//! The engine: the keyspace plus the Lua interpreter that runs scripts
//! against it. One command or one whole script runs at a time.
//!
//! Scripts run on Lua 5.1, as in Redis, with what Redis gives them:
//! `KEYS`, `ARGV`, `redis.call` / `redis.pcall` / `redis.error_reply` /
//! `redis.status_reply` / `redis.sha1hex`, and `cjson`. Values cross
//! between Lua and replies by Redis's rules (nil and false <-> nil, numbers
//! truncated to integers, tables <-> arrays up to the first nil, `{err=}`
//! and `{ok=}` tables <-> error and status replies).

use std::collections::HashMap;

use mlua::{Function, Lua, LuaSerdeExt, Table, Value};
use sha1::{Digest, Sha1};

use crate::{
    commands,
    db::{Args, Bytes, CommandError, Db, format_float},
    resp::Reply,
};

pub(crate) struct Engine {
    db: Db,
    lua: Lua,
    scripts: HashMap<String, Function>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("scripts", &self.scripts.len()).finish_non_exhaustive()
    }
}

impl Engine {
    pub(crate) fn new() -> mlua::Result<Self> {
        let lua = Lua::new();
        install_redis_api(&lua)?;
        Ok(Self { db: Db::default(), lua, scripts: HashMap::new() })
    }

    /// Runs one command, script or not.
    pub(crate) fn execute(&mut self, command: Vec<Bytes>) -> Reply {
        self.db.tick();
        let is = |names: &[&str]| {
            command.first().is_some_and(|c| names.iter().any(|n| c.eq_ignore_ascii_case(n.as_bytes())))
        };
        let (eval, by_sha, script) = (is(&["EVAL", "EVAL_RO"]), is(&["EVALSHA", "EVALSHA_RO"]), is(&["SCRIPT"]));
        if !(eval || by_sha || script) {
            return commands::dispatch(&mut self.db, command);
        }
        let name = String::from_utf8_lossy(&command[0]).to_uppercase();
        let mut args = Args::new(name, command.into_iter().skip(1).collect());
        let result = if script { self.script(&mut args) } else { self.eval(&mut args, by_sha) };
        result.unwrap_or_else(Reply::from)
    }

    pub(crate) fn db(&mut self) -> &mut Db {
        &mut self.db
    }

    fn load(&mut self, body: &[u8]) -> Result<String, CommandError> {
        let sha = sha1_hex(body);
        if !self.scripts.contains_key(&sha) {
            let function = self
                .lua
                .load(body)
                .set_name("@user_script")
                .into_function()
                .map_err(|e| CommandError::new(format!("ERR Error compiling script (new function): {e}")))?;
            self.scripts.insert(sha.clone(), function);
        }
        Ok(sha)
    }

    fn eval(&mut self, args: &mut Args, by_sha: bool) -> Result<Reply, CommandError> {
        let script = args.next()?;
        let sha = if by_sha {
            let sha = String::from_utf8_lossy(&script).to_lowercase();
            if !self.scripts.contains_key(&sha) {
                return Err(CommandError::new("NOSCRIPT No matching script. Please use EVAL."));
            }
            sha
        } else {
            self.load(&script)?
        };
        let numkeys =
            usize::try_from(args.int()?).map_err(|_| CommandError::new("ERR Number of keys can't be negative"))?;
        let rest = args.rest();
        if numkeys > rest.len() {
            return Err(CommandError::new("ERR Number of keys can't be greater than number of args"));
        }
        let (keys, argv) = rest.split_at(numkeys);
        let function = self.scripts[&sha].clone();
        let lua_error = |e: mlua::Error| CommandError::new(format!("ERR {e}"));
        set_global_strings(&self.lua, "KEYS", keys).map_err(lua_error)?;
        set_global_strings(&self.lua, "ARGV", argv).map_err(lua_error)?;

        // The keyspace goes into the interpreter for the call, so that
        // `redis.call` can reach it, and comes back after.
        self.lua.set_app_data(std::mem::take(&mut self.db));
        let result = function.call::<Value>(());
        self.db = self.lua.remove_app_data::<Db>().expect("the keyspace is put back after every script");
        match result {
            Ok(value) => Ok(to_reply(&value)),
            Err(error) => Err(script_error(&error, &sha)),
        }
    }

    fn script(&mut self, args: &mut Args) -> Result<Reply, CommandError> {
        match args.keyword().as_deref() {
            Some("LOAD") => {
                let body = args.next()?;
                Ok(Reply::bulk(self.load(&body)?))
            }
            Some("EXISTS") => Ok(Reply::Array(
                args.rest()
                    .iter()
                    .map(|sha| {
                        Reply::Int(i64::from(self.scripts.contains_key(&String::from_utf8_lossy(sha).to_lowercase())))
                    })
                    .collect(),
            )),
            Some("FLUSH") => {
                self.scripts.clear();
                Ok(Reply::ok())
            }
            _ => Err(CommandError::new("ERR SCRIPT: only LOAD, EXISTS and FLUSH are supported")),
        }
    }
}

/// `name = {items...}` as Lua strings. Each string goes into the table as
/// it is made: a handle held on the Rust side takes a Lua stack slot, and
/// a script may get tens of thousands of arguments (a fan-out to 10,000
/// subscriptions).
fn set_global_strings(lua: &Lua, name: &str, items: &[Bytes]) -> mlua::Result<()> {
    let table = lua.create_table_with_capacity(items.len(), 0)?;
    for (i, item) in items.iter().enumerate() {
        table.raw_set(i + 1, lua.create_string(item)?)?;
    }
    lua.globals().set(name, table)
}

fn sha1_hex(body: &[u8]) -> String {
    Sha1::digest(body).iter().map(|b| format!("{b:02x}")).collect()
}

/// A script failure as Redis reports it: an error from `redis.call` keeps
/// its code (`WRONGTYPE`, `NOGROUP`, ...), a Lua error becomes `ERR`.
fn script_error(error: &mlua::Error, sha: &str) -> CommandError {
    let mut root = error;
    while let mlua::Error::CallbackError { cause, .. } = root {
        root = cause;
    }
    let message = match root {
        mlua::Error::RuntimeError(message) => message.clone(),
        other => other.to_string(),
    };
    let has_code =
        message.split(' ').next().is_some_and(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_uppercase()));
    let message = if has_code { message } else { format!("ERR {message}") };
    CommandError::new(format!("{message} script: {sha}, on @user_script."))
}

fn install_redis_api(lua: &Lua) -> mlua::Result<()> {
    let redis = lua.create_table()?;
    redis.set("call", lua.create_function(|lua, args: mlua::Variadic<Value>| redis_call(lua, &args, true))?)?;
    redis.set("pcall", lua.create_function(|lua, args: mlua::Variadic<Value>| redis_call(lua, &args, false))?)?;
    redis.set("error_reply", lua.create_function(|lua, message: mlua::LuaString| single(lua, "err", message))?)?;
    redis.set("status_reply", lua.create_function(|lua, message: mlua::LuaString| single(lua, "ok", message))?)?;
    redis.set("sha1hex", lua.create_function(|_, body: mlua::LuaString| Ok(sha1_hex(&body.as_bytes())))?)?;
    redis.set("log", lua.create_function(|_, _: mlua::Variadic<Value>| Ok(()))?)?;
    for (name, level) in [("LOG_DEBUG", 0), ("LOG_VERBOSE", 1), ("LOG_NOTICE", 2), ("LOG_WARNING", 3)] {
        redis.set(name, level)?;
    }
    lua.globals().set("redis", redis)?;

    let cjson = lua.create_table()?;
    cjson.set(
        "decode",
        lua.create_function(|lua, text: mlua::LuaString| {
            let json: serde_json::Value = serde_json::from_slice(&text.as_bytes())
                .map_err(|e| mlua::Error::RuntimeError(format!("ERR cjson.decode: {e}")))?;
            lua.to_value(&json)
        })?,
    )?;
    cjson.set(
        "encode",
        lua.create_function(|lua, value: Value| {
            let json: serde_json::Value = lua.from_value(value)?;
            Ok(json.to_string())
        })?,
    )?;
    lua.globals().set("cjson", cjson)?;
    Ok(())
}

/// `redis.call` (errors raise) and `redis.pcall` (errors come back as
/// `{err=...}`).
fn redis_call(lua: &Lua, args: &[Value], raise: bool) -> mlua::Result<Value> {
    let mut command = Vec::with_capacity(args.len());
    for arg in args {
        command.push(match arg {
            Value::String(s) => s.as_bytes().to_vec(),
            Value::Integer(i) => i.to_string().into_bytes(),
            Value::Number(n) => format_float(*n).into_bytes(),
            _ => {
                return Err(mlua::Error::RuntimeError(
                    "ERR Lua redis lib command arguments must be strings or integers".into(),
                ));
            }
        });
    }
    if command.is_empty() {
        return Err(mlua::Error::RuntimeError(
            "ERR Please specify at least one argument for this redis lib call".into(),
        ));
    }
    let reply = {
        let mut db = lua
            .app_data_mut::<Db>()
            .ok_or_else(|| mlua::Error::RuntimeError("ERR redis.call outside a script".into()))?;
        commands::dispatch(&mut db, command)
    };
    match reply {
        Reply::Error(message) if raise => Err(mlua::Error::RuntimeError(message)),
        reply => to_lua(lua, reply),
    }
}

fn to_lua(lua: &Lua, reply: Reply) -> mlua::Result<Value> {
    Ok(match reply {
        Reply::Int(n) => Value::Integer(n),
        Reply::Bulk(bytes) => Value::String(lua.create_string(bytes)?),
        Reply::Nil | Reply::NilArray => Value::Boolean(false),
        Reply::Status(s) => Value::Table(single(lua, "ok", s)?),
        Reply::Error(e) => Value::Table(single(lua, "err", e)?),
        Reply::Array(items) => {
            let table = lua.create_table_with_capacity(items.len(), 0)?;
            for (i, item) in items.into_iter().enumerate() {
                table.raw_set(i + 1, to_lua(lua, item)?)?;
            }
            Value::Table(table)
        }
    })
}

/// `{key = text}`: how scripts see status and error replies.
fn single(lua: &Lua, key: &str, text: impl mlua::IntoLua) -> mlua::Result<Table> {
    let table = lua.create_table()?;
    table.set(key, text)?;
    Ok(table)
}

fn to_reply(value: &Value) -> Reply {
    match value {
        Value::Boolean(true) => Reply::Int(1),
        Value::Integer(n) => Reply::Int(*n),
        Value::Number(n) => Reply::Int(n.trunc() as i64),
        Value::String(s) => Reply::Bulk(s.as_bytes().to_vec()),
        Value::Table(t) => {
            if let Ok(Value::String(e)) = t.raw_get::<Value>("err") {
                return Reply::Error(e.to_string_lossy());
            }
            if let Ok(Value::String(s)) = t.raw_get::<Value>("ok") {
                return Reply::Status(s.to_string_lossy());
            }
            let mut items = Vec::new();
            for i in 1.. {
                match t.raw_get::<Value>(i) {
                    Ok(Value::Nil) | Err(_) => break,
                    Ok(v) => items.push(to_reply(&v)),
                }
            }
            Reply::Array(items)
        }
        _ => Reply::Nil,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn run(engine: &mut Engine, parts: &[&str]) -> Reply {
        engine.execute(parts.iter().map(|p| p.as_bytes().to_vec()).collect())
    }

    #[test]
    fn scripts_see_keys_argv_and_redis_replies() {
        let mut e = Engine::new().unwrap();
        let script = "redis.call('SET', KEYS[1], ARGV[1]); return {redis.call('GET', KEYS[1]), redis.call('INCR', KEYS[2]), redis.call('GET', 'missing'), 3.9}";
        assert_eq!(
            run(&mut e, &["EVAL", script, "2", "a", "n", "hello"]),
            Reply::Array(vec![Reply::bulk("hello"), Reply::Int(1), Reply::Nil, Reply::Int(3)])
        );
    }

    #[test]
    fn numbers_truncate_and_tables_stop_at_the_first_nil() {
        let mut e = Engine::new().unwrap();
        assert_eq!(
            run(&mut e, &["EVAL", "return {1.9, -2.5, 'x', true}", "0"]),
            Reply::Array(vec![Reply::Int(1), Reply::Int(-2), Reply::bulk("x"), Reply::Int(1)])
        );
        assert_eq!(run(&mut e, &["EVAL", "return {1, nil, 3}", "0"]), Reply::Array(vec![Reply::Int(1)]));
    }

    #[test]
    fn errors_keep_their_code_and_evalsha_needs_a_loaded_script() {
        let mut e = Engine::new().unwrap();
        run(&mut e, &["SET", "s", "1"]);
        let Reply::Error(message) = run(&mut e, &["EVAL", "return redis.call('HGET', KEYS[1], 'f')", "1", "s"]) else {
            panic!()
        };
        assert!(message.starts_with("WRONGTYPE"), "{message}");
        let Reply::Error(message) = run(&mut e, &["EVAL", "return redis.pcall('HGET', KEYS[1], 'f')", "1", "s"]) else {
            panic!()
        };
        assert!(message.starts_with("WRONGTYPE"), "{message}");
        let Reply::Error(message) = run(&mut e, &["EVALSHA", "0000000000000000000000000000000000000000", "0"]) else {
            panic!()
        };
        assert!(message.starts_with("NOSCRIPT"));
        let Reply::Bulk(sha) = run(&mut e, &["SCRIPT", "LOAD", "return 7"]) else { panic!() };
        assert_eq!(run(&mut e, &["EVALSHA", &String::from_utf8(sha).unwrap(), "0"]), Reply::Int(7));
    }

    #[test]
    fn cjson_decodes_objects() {
        let mut e = Engine::new().unwrap();
        assert_eq!(
            run(&mut e, &["EVAL", "return cjson.decode(ARGV[1])['name']", "0", r#"{"name":"x"}"#]),
            Reply::bulk("x")
        );
    }
}
