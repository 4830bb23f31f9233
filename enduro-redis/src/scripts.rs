//! The Lua scripts every store call runs: each reads and writes the atom's hash in one
//! round trip, atomically (Redis runs a script with nothing else in between).
//!
//! The hash has four fields: `value` (the encoded value, any bytes), `gen` (a counter
//! bumped by every commit, from 1), `inc` (the incarnation: a random number chosen when the
//! hash is created, so that a key released and made again never repeats a version) and
//! `tok` (the token of the last commit, so that a commit sent again after a lost answer is
//! recognised instead of applied twice).
//!
//! A commit publishes `gen inc` on the channel `enduro:` and the key, a release
//! `released`, for live atoms (see `listen.rs`).
//!
//! Every script first checks the key's type: a key holding anything but a hash fails with
//! `ENDURO_WRONGTYPE <type>`, and a hash without `gen` and `inc` (not an atom's) with
//! `ENDURO_NOTATOM`, before anything is written.

use redis::Script;

/// The checks every script starts with: the key is absent (`none`) or an atom's hash.
const PRELUDE: &str = r#"
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind ~= 'hash' and kind ~= 'none' then
  return redis.error_reply('ENDURO_WRONGTYPE ' .. kind)
end
local function atom_fields(...)
  local got = redis.call('HMGET', KEYS[1], 'gen', 'inc', ...)
  if kind == 'hash' and (not got[1] or not got[2]) then
    return nil, redis.error_reply('ENDURO_NOTATOM hash')
  end
  return got
end
"#;

/// `load`: `{}` when the key does not exist, else `{value, gen, inc}`.
const LOAD: &str = r#"
local got, err = atom_fields('value')
if err then return err end
if kind == 'none' then return {} end
return {got[3], got[1], got[2]}
"#;

/// `check(known gen ARGV[1], known inc ARGV[2])`: `{}` when the key does not exist,
/// `{gen, inc}` when it is still at the known version, else `{gen, inc, value}`.
const CHECK: &str = r#"
local got, err = atom_fields()
if err then return err end
if kind == 'none' then return {} end
if got[1] == ARGV[1] and got[2] == ARGV[2] then return {got[1], got[2]} end
return {got[1], got[2], redis.call('HGET', KEYS[1], 'value')}
"#;

/// `commit(expected gen ARGV[1], expected inc ARGV[2], value ARGV[3], incarnation for a
/// new hash ARGV[4], token ARGV[5])`: `{1, gen, inc}` when stored (or when the last
/// commit already carries this token: the same commit, sent again), `{0}` on a conflict.
/// Expected gen `0` means "the key must not exist".
const COMMIT: &str = r#"
local got, err = atom_fields('tok')
if err then return err end
if kind == 'none' then
  if ARGV[1] ~= '0' then return {0} end
  redis.call('HSET', KEYS[1], 'value', ARGV[3], 'gen', '1', 'inc', ARGV[4], 'tok', ARGV[5])
  redis.call('PUBLISH', 'enduro:' .. KEYS[1], '1 ' .. ARGV[4])
  return {1, '1', ARGV[4]}
end
if got[3] == ARGV[5] then return {1, got[1], got[2]} end
if got[1] ~= ARGV[1] or got[2] ~= ARGV[2] then return {0} end
redis.call('HSET', KEYS[1], 'value', ARGV[3], 'tok', ARGV[5])
redis.call('HINCRBY', KEYS[1], 'gen', 1)
local gen = redis.call('HGET', KEYS[1], 'gen')
redis.call('PUBLISH', 'enduro:' .. KEYS[1], gen .. ' ' .. got[2])
return {1, gen, got[2]}
"#;

/// `release`: deletes the atom's hash; `1` if there was one.
const RELEASE: &str = r#"
local got, err = atom_fields()
if err then return err end
local deleted = redis.call('DEL', KEYS[1])
if deleted == 1 then redis.call('PUBLISH', 'enduro:' .. KEYS[1], 'released') end
return deleted
"#;

/// The four scripts, hashed once (a store sends `EVALSHA`, and the whole script only
/// when the server does not have it yet, after a restart say).
pub(crate) struct Scripts {
    pub(crate) load: Script,
    pub(crate) check: Script,
    pub(crate) commit: Script,
    pub(crate) release: Script,
}

impl Scripts {
    pub(crate) fn new() -> Self {
        let script = |body: &str| Script::new(&format!("{PRELUDE}{body}"));
        Scripts {
            load: script(LOAD),
            check: script(CHECK),
            commit: script(COMMIT),
            release: script(RELEASE),
        }
    }
}
