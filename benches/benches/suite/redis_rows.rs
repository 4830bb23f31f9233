//! The Redis rows: a blocking atom swapping a counter, against the least code that makes
//! the same change durable with the same safety — a compare-and-set Lua script
//! (`EVALSHA`) that checks a version field and sets the value and the next version in
//! one round trip. One thread per-operation with Criterion; 16 threads sharing one atom
//! against 16 threads with a connection each running the raw script on one key (retried
//! on conflict), with the throughput driver.
//!
//! The server is `REDIS_URL` when set, used as it is configured; otherwise a private
//! throwaway `redis-server` (the tests' harness: `appendonly yes`, `appendfsync always`,
//! so a reply comes only after the command is fsynced). The settings in force are noted
//! under the table.

use enduro_benches::report::{Row, Unit};

/// The Criterion group of the one-thread scenario.
pub const REDIS_1T: &str = "redis_small_1t";

const ID_1T: &str = "redis_small_1t";
const ID_16T: &str = "redis_small_16t";
const SCENARIO_1T: &str = "redis, u64 counter, 1 thread: swap";
const SCENARIO_16T: &str = "redis, u64 counter, 16 threads sharing one atom: swaps/s";
const BASELINE_1T: &str = "raw Lua compare-and-set (EVALSHA: check version, set value + version), \
                           1 connection";
const BASELINE_16T: &str = "the same raw script on the same key, 16 threads with a connection \
                            each, retried on conflict";

/// Both Redis rows, not run, with the reason.
pub fn not_run_rows(reason: &str) -> Vec<Row> {
    vec![
        Row::not_run(
            ID_1T,
            SCENARIO_1T,
            BASELINE_1T,
            Unit::OpsPerSec,
            None,
            reason,
        ),
        Row::not_run(
            ID_16T,
            SCENARIO_16T,
            BASELINE_16T,
            Unit::OpsPerSec,
            None,
            reason,
        ),
    ]
}

#[cfg(feature = "redis")]
pub use measured::*;

#[cfg(feature = "redis")]
#[path = "../../../enduro-redis/tests/common/redis_server.rs"]
#[allow(clippy::unwrap_used)]
mod redis_server;

#[cfg(feature = "redis")]
mod measured {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU64, Ordering};

    use criterion::Criterion;
    use enduro_benches::driver::{Throughput, compare, run_for};
    use enduro_benches::report::{Measured, Row, Unit};
    use redis::{Commands, Connection, Script};

    use super::redis_server;
    use super::*;
    use crate::Timing;
    use crate::ops::Results;

    const THREADS: usize = 16;

    /// Conflicts the raw loops met (each one more round trip), over the whole run.
    static RAW_CONFLICTS: AtomicU64 = AtomicU64::new(0);

    /// The raw compare-and-set: `KEYS[1]` is a hash of `n` (the counter) and `ver` (its
    /// version); with `ver` still `ARGV[1]`, sets `n` to `ARGV[2]` and `ver` to `ARGV[3]`
    /// and returns `{1}`; otherwise returns `{0, n, ver}`, so that a retry needs no
    /// other round trip.
    const RAW_CAS: &str = r#"
local got = redis.call('HMGET', KEYS[1], 'n', 'ver')
if got[2] == ARGV[1] then
  redis.call('HSET', KEYS[1], 'n', ARGV[2], 'ver', ARGV[3])
  return {1}
end
return {0, got[1], got[2]}
"#;

    /// The server the Redis rows run against, and the keys to delete at the end.
    pub struct Server {
        /// The URL, or why there is no server.
        url: Result<String, String>,
        /// How commits are made durable there (`appendonly`, `appendfsync`).
        settings: String,
        /// Kept running until the end of the run (dropping it stops it).
        _private: Option<redis_server::RedisServer>,
        key_prefix: String,
    }

    impl std::fmt::Debug for Server {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Server")
                .field("settings", &self.settings)
                .finish_non_exhaustive()
        }
    }

    /// The keys the rows use, under the run's prefix.
    const KEYS: [&str; 4] = ["enduro_1", "enduro_16", "raw_1", "raw_16"];

    impl Server {
        /// Finds `REDIS_URL` or starts a private server. Failures are kept as the reason
        /// the Redis rows are not run.
        pub fn start() -> Server {
            let mut server = Server {
                url: Err(String::new()),
                settings: String::new(),
                _private: None,
                key_prefix: format!("enduro_bench_{}", std::process::id()),
            };
            server.url = server.connect_or_start();
            if let Err(e) = &server.url {
                eprintln!("enduro-benches: no redis rows: {e}");
            }
            server
        }

        fn connect_or_start(&mut self) -> Result<String, String> {
            let url = match std::env::var("REDIS_URL") {
                Ok(url) if !url.is_empty() => url,
                _ => {
                    if !redis_server::available() {
                        return Err("no `redis-server` to run (install it, or set \
                                    REDIS_SERVER or REDIS_URL)"
                            .into());
                    }
                    let private = redis_server::RedisServer::start()
                        .map_err(|e| format!("cannot start a private redis-server: {e}"))?;
                    let url = private.url(0);
                    self._private = Some(private);
                    url
                }
            };
            self.settings = settings(&mut connect(&url)?);
            Ok(url)
        }

        fn key(&self, name: &str) -> String {
            format!("{}_{name}", self.key_prefix)
        }
    }

    impl Drop for Server {
        fn drop(&mut self) {
            // Leave nothing behind on a server that is not ours to throw away.
            if let Ok(url) = &self.url
                && let Ok(mut conn) = connect(url)
            {
                let keys: Vec<String> = KEYS.iter().map(|name| self.key(name)).collect();
                let _: redis::RedisResult<i64> = conn.del(keys);
            }
        }
    }

    fn connect(url: &str) -> Result<Connection, String> {
        redis::Client::open(url)
            .and_then(|client| client.get_connection())
            .map_err(|e| format!("cannot connect to Redis: {e}"))
    }

    /// `appendonly = yes, appendfsync = always`, or why they are unknown.
    fn settings(conn: &mut Connection) -> String {
        let get = |conn: &mut Connection, name: &str| {
            redis::cmd("CONFIG")
                .arg("GET")
                .arg(name)
                .query::<Vec<String>>(conn)
                .map_err(|e| e.to_string())
                .and_then(|reply| {
                    reply
                        .get(1)
                        .cloned()
                        .ok_or_else(|| format!("no `{name}` in CONFIG GET's reply"))
                })
        };
        match (get(conn, "appendonly"), get(conn, "appendfsync")) {
            (Ok(only), Ok(fsync)) => format!("appendonly = {only}, appendfsync = {fsync}"),
            (Err(e), _) | (_, Err(e)) => format!("settings unknown (CONFIG GET failed: {e})"),
        }
    }

    /// One connection's raw counter: the version it last saw, and the value.
    struct RawCas {
        conn: Connection,
        script: Script,
        key: String,
        n: u64,
        ver: u64,
    }

    impl RawCas {
        /// Connects and reads the counter at `key`.
        fn new(url: &str, key: &str) -> Result<RawCas, String> {
            let mut conn = connect(url)?;
            let (n, ver): (Option<u64>, Option<u64>) = conn
                .hmget(key, &["n", "ver"])
                .map_err(|e| format!("cannot read the raw counter: {e}"))?;
            Ok(RawCas {
                conn,
                script: Script::new(RAW_CAS),
                key: key.to_owned(),
                n: n.unwrap_or(0),
                ver: ver.unwrap_or(0),
            })
        }

        /// Makes the counter at `key` `{n: 0, ver: 0}`.
        fn reset(url: &str, key: &str) -> Result<(), String> {
            let mut conn = connect(url)?;
            redis::pipe()
                .atomic()
                .del(key)
                .hset_multiple(key, &[("n", 0u64), ("ver", 0u64)])
                .query::<()>(&mut conn)
                .map_err(|e| format!("cannot reset the raw counter: {e}"))
        }

        /// Adds one: the script until it succeeds, each conflict bringing the current
        /// value and version.
        fn increment(&mut self) -> Result<(), String> {
            loop {
                let reply: Vec<Option<u64>> = self
                    .script
                    .key(&self.key)
                    .arg(self.ver)
                    .arg(self.n + 1)
                    .arg(self.ver + 1)
                    .invoke(&mut self.conn)
                    .map_err(|e| format!("raw compare-and-set: {e}"))?;
                match reply.as_slice() {
                    [Some(1)] => {
                        self.n += 1;
                        self.ver += 1;
                        return Ok(());
                    }
                    [Some(0), Some(n), Some(ver)] => {
                        RAW_CONFLICTS.fetch_add(1, Ordering::Relaxed);
                        (self.n, self.ver) = (*n, *ver);
                    }
                    other => return Err(format!("raw compare-and-set answered {other:?}")),
                }
            }
        }
    }

    /// The one-thread group: enduro's blocking swap and the raw script.
    pub fn run_per_op(c: &mut Criterion, results: &mut Results, server: &Server, passes: usize) {
        let url = match &server.url {
            Ok(url) => url.clone(),
            Err(e) => return results.skip(REDIS_1T, e),
        };
        let setup = || {
            let key = server.key("enduro_1");
            connect(&url)?
                .del::<_, i64>(&key)
                .map_err(|e| e.to_string())?;
            let atom = enduro::redis_atom(0u64, &url, &key).map_err(|e| e.to_string())?;
            RawCas::reset(&url, &server.key("raw_1"))?;
            let raw = RawCas::new(&url, &server.key("raw_1"))?;
            Ok::<_, String>((atom, raw))
        };
        let (atom, mut raw) = match setup() {
            Ok(setup) => setup,
            Err(e) => return results.skip(REDIS_1T, e),
        };
        let mut group = c.benchmark_group(REDIS_1T);
        crate::ops::alternate(
            &mut group,
            passes,
            "raw",
            || atom.swap(|n| n + 1).expect("enduro redis swap"),
            || raw.increment().expect("raw compare-and-set"),
        );
        group.finish();
    }

    /// Both Redis rows.
    pub fn rows(results: &Results, server: &Server, timing: Timing) -> Vec<Row> {
        if let Err(reason) = &server.url {
            return not_run_rows(reason);
        }
        let note = |row: Row| match &server.url {
            Ok(_) => row.with_note(format!(
                "Redis {}with {}; one hash per atom, each commit one Lua script \
                 (EVALSHA).",
                if server._private.is_some() {
                    "(a private redis-server on 127.0.0.1, its data in the system temp dir) "
                } else {
                    "(REDIS_URL) "
                },
                server.settings
            )),
            Err(_) => row,
        };
        let one = results.row(REDIS_1T, "raw", ID_1T, SCENARIO_1T, BASELINE_1T, None);
        let sixteen = match many_threads(server, timing) {
            Ok(sixteen) => {
                let enduro = match sixteen.commits.filter(|c| *c > 0) {
                    Some(commits) => format!(
                        "{} swaps in {commits} commit scripts: {:.1} swaps per commit on \
                         average (group commit), from the hash's `gen` field",
                        sixteen.swaps,
                        sixteen.swaps as f64 / commits as f64
                    ),
                    None => format!("{} swaps", sixteen.swaps),
                };
                Row::measured(
                    ID_16T,
                    SCENARIO_16T,
                    BASELINE_16T,
                    Unit::OpsPerSec,
                    sixteen.measured,
                    None,
                )
                .with_note(format!(
                    "{enduro}. The raw figure counts successful increments only: {} of them, \
                     after {} conflicts (each retried with the value and version the \
                     failed script returned).",
                    sixteen.raw_increments, sixteen.raw_conflicts
                ))
            }
            Err(reason) => Row::not_run(
                ID_16T,
                SCENARIO_16T,
                BASELINE_16T,
                Unit::OpsPerSec,
                None,
                reason,
            ),
        };
        vec![note(one), sixteen]
    }

    /// What the 16-thread scenario measured.
    struct Sixteen {
        measured: Measured,
        /// enduro's swaps.
        swaps: u64,
        /// The commits they took, if the atom's hash could be read.
        commits: Option<u64>,
        /// The raw loops' successful increments.
        raw_increments: u64,
        /// The raw loops' conflicts.
        raw_conflicts: u64,
    }

    /// 16 threads sharing one blocking atom against 16 connections running the raw
    /// script on one key, in alternating rounds.
    fn many_threads(server: &Server, timing: Timing) -> Result<Sixteen, String> {
        let url = server.url.clone()?;
        let (atom_key, raw_key) = (server.key("enduro_16"), server.key("raw_16"));
        let mut conn = connect(&url)?;
        conn.del::<_, i64>(&atom_key).map_err(|e| e.to_string())?;
        let atom = enduro::redis_atom(0u64, &url, &atom_key).map_err(|e| e.to_string())?;
        RawCas::reset(&url, &raw_key)?;
        // The atom's hash counts its commits in the `gen` field.
        let mut generation = || {
            conn.hget::<_, _, Option<u64>>(&atom_key, "gen")
                .ok()
                .flatten()
        };
        let gen_before = generation();

        let mut enduro = |each| {
            run_for(THREADS, each, |_| {
                let atom = atom.clone();
                move || atom.swap(|n| n + 1).map(drop).map_err(|e| e.to_string())
            })
        };
        let mut raw = |each| -> Result<Throughput, String> {
            // Each thread connects before the start signal (the driver's setup).
            let cas: Vec<Mutex<Option<RawCas>>> = (0..THREADS)
                .map(|_| RawCas::new(&url, &raw_key).map(|r| Mutex::new(Some(r))))
                .collect::<Result<_, _>>()?;
            run_for(THREADS, each, |t| {
                let mut mine = cas[t]
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .take()
                    .expect("one connection per thread");
                move || mine.increment()
            })
        };
        let conflicts_before = RAW_CONFLICTS.load(Ordering::Relaxed);
        let totals = compare(timing.rounds, timing.each, &mut [&mut enduro, &mut raw])?;
        let (enduro_total, raw_total) = (totals[0], totals[1]);
        crate::concurrent::no_lost_updates(*atom.deref(), enduro_total.ops)?;
        let raw_held: Option<u64> = connect(&url)?
            .hget(&raw_key, "n")
            .map_err(|e| e.to_string())?;
        if raw_held != Some(raw_total.ops) {
            return Err(format!(
                "raw lost updates: {} increments succeeded but the key holds {raw_held:?}",
                raw_total.ops
            ));
        }
        eprintln!(
            "enduro-benches: {SCENARIO_16T}: enduro {:.0}/s, raw 16 connections {:.0}/s",
            enduro_total.per_sec(),
            raw_total.per_sec()
        );
        let commits = generation()
            .zip(gen_before)
            .map(|(after, before)| after.saturating_sub(before));
        Ok(Sixteen {
            measured: Measured {
                enduro: enduro_total.per_sec(),
                baseline: raw_total.per_sec(),
            },
            swaps: enduro_total.ops,
            commits,
            raw_increments: raw_total.ops,
            raw_conflicts: RAW_CONFLICTS.load(Ordering::Relaxed) - conflicts_before,
        })
    }
}
