//! Where the atom is: a file, or a row or key of a database, chosen by the arguments.

use std::path::{Path, PathBuf};
use std::time::Duration;

use enduro::store::Store;

use crate::fail::{Fail, NOT_FOUND, Outcome};
use crate::format::Format;

/// The row of a database table an atom uses unless `--key` says otherwise (as
/// `PgAtom` and `SqliteAtom` do).
const DEFAULT_KEY: &str = "default";

/// The options that say where the atom is, shared by every command.
#[derive(clap::Args, Debug, Clone)]
pub struct TargetArgs {
    /// A PostgreSQL atom: the connection string (postgres://user:password@host:port/db, or
    /// key=value pairs); also read from ENDURO_PG_URL, to keep the password out of `ps`
    #[arg(
        long,
        value_name = "URL",
        env = "ENDURO_PG_URL",
        hide_env_values = true
    )]
    pub pg: Option<String>,
    /// A Redis atom: the server's URL (redis://, rediss://, redis+unix://); also read from
    /// ENDURO_REDIS_URL
    #[arg(
        long,
        value_name = "URL",
        env = "ENDURO_REDIS_URL",
        hide_env_values = true
    )]
    pub redis: Option<String>,
    /// A SQLite atom: the database file
    #[arg(long, value_name = "DB")]
    pub sqlite: Option<PathBuf>,
    /// The table (PostgreSQL, SQLite)
    #[arg(long, value_name = "TABLE")]
    pub table: Option<String>,
    /// The atom's key: its row (PostgreSQL, SQLite; default `default`) or its Redis key
    #[arg(long, value_name = "KEY")]
    pub key: Option<String>,
    /// The stored format [default: from the file's extension, else json]
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub format: Option<Format>,
    /// How long a change waits for another process holding a file atom's lock
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    pub lock_timeout: f64,
}

/// Where the sources of the URL options were: given on the command line, or taken from
/// the environment (which a PATH on the command line overrides).
#[derive(Debug, Clone, Copy, Default)]
pub struct FromEnv {
    pub pg: bool,
    pub redis: bool,
}

/// The atom a command works on.
#[derive(Debug, Clone)]
pub enum Target {
    File {
        path: PathBuf,
    },
    Pg {
        url: String,
        table: String,
        key: String,
    },
    Redis {
        url: String,
        key: String,
    },
    Sqlite {
        db: PathBuf,
        table: String,
        key: String,
    },
}

/// A target with its format and timeouts.
#[derive(Debug, Clone)]
pub struct Place {
    pub target: Target,
    pub format: Format,
    pub lock_timeout: Duration,
}

impl Place {
    /// The place the arguments name: a PATH, or one of `--pg`, `--redis`, `--sqlite`.
    pub fn from_args(path: Option<PathBuf>, args: &TargetArgs, env: FromEnv) -> Outcome<Place> {
        // A URL from the environment yields to a PATH or another database given here.
        let given = |value: &Option<String>, from_env: bool, others: bool| {
            value.clone().filter(|_| !(from_env && others))
        };
        let others_than_pg =
            path.is_some() || args.sqlite.is_some() || (args.redis.is_some() && !env.redis);
        let others_than_redis =
            path.is_some() || args.sqlite.is_some() || (args.pg.is_some() && !env.pg);
        let pg = given(&args.pg, env.pg, others_than_pg);
        let redis = given(&args.redis, env.redis, others_than_redis);
        let chosen = [
            path.is_some(),
            pg.is_some(),
            redis.is_some(),
            args.sqlite.is_some(),
        ];
        let target = match (path, pg, redis, args.sqlite.clone()) {
            _ if chosen.iter().filter(|c| **c).count() > 1 => {
                return Err(Fail::usage(
                    "give one atom: a PATH, or --pg, --redis or --sqlite (not several)",
                ));
            }
            (Some(path), ..) => {
                refuse(args.table.is_some(), "--table", "file atoms")?;
                refuse(args.key.is_some(), "--key", "file atoms")?;
                Target::File { path }
            }
            (_, Some(url), ..) => Target::Pg {
                url,
                table: table(args, "--pg")?,
                key: args.key.clone().unwrap_or_else(|| DEFAULT_KEY.into()),
            },
            (_, _, Some(url), _) => {
                refuse(
                    args.table.is_some(),
                    "--table",
                    "Redis atoms (one key each)",
                )?;
                let key = args.key.clone().ok_or_else(|| {
                    Fail::usage("a Redis atom needs its key: --redis URL --key KEY")
                })?;
                Target::Redis { url, key }
            }
            (_, _, _, Some(db)) => Target::Sqlite {
                db,
                table: table(args, "--sqlite")?,
                key: args.key.clone().unwrap_or_else(|| DEFAULT_KEY.into()),
            },
            _ => {
                return Err(Fail::usage(
                    "which atom? Give the PATH of a file atom, or --pg URL --table TABLE, \
                     --redis URL --key KEY, or --sqlite DB --table TABLE (see `enduro help`)",
                ));
            }
        };
        let format = match (&target, args.format) {
            (_, Some(format)) => format,
            (Target::File { path }, None) => Format::guess(path),
            (_, None) => Format::Json,
        };
        format.check()?;
        if !(args.lock_timeout.is_finite() && args.lock_timeout >= 0.0) {
            return Err(Fail::usage(
                "--lock-timeout takes a number of seconds, e.g. 30 or 0.5",
            ));
        }
        Ok(Place {
            target,
            format,
            lock_timeout: Duration::from_secs_f64(args.lock_timeout),
        })
    }

    /// The place, for messages (never a password).
    pub fn describe(&self) -> String {
        match &self.target {
            Target::File { path } => format!("file `{}`", path.display()),
            Target::Pg { table, key, .. } => format!("PostgreSQL table `{table}`, key `{key}`"),
            Target::Redis { key, .. } => format!("Redis key `{key}`"),
            Target::Sqlite { db, table, key } => {
                format!(
                    "SQLite database `{}`, table `{table}`, key `{key}`",
                    db.display()
                )
            }
        }
    }

    /// The file atom's path, for file-only commands.
    pub fn file(&self) -> Option<&Path> {
        match &self.target {
            Target::File { path } => Some(path),
            _ => None,
        }
    }

    /// Fails with "no atom there" when a file atom's path or a SQLite database file does
    /// not exist: opening its store would create directories, lock files or a database.
    pub fn must_exist(&self) -> Outcome {
        let missing = match &self.target {
            Target::File { path } => !exists(path),
            Target::Sqlite { db, .. } => !exists(db),
            _ => false,
        };
        if missing {
            return Err(self.not_found());
        }
        Ok(())
    }

    pub fn not_found(&self) -> Fail {
        Fail::new(
            NOT_FOUND,
            format!(
                "no atom at {}: nothing is stored there (`enduro set --create` makes one)",
                self.describe()
            ),
        )
    }

    /// Opens the store (a file atom in journal mode when a journal lies beside it).
    pub fn open(&self) -> Outcome<Box<dyn Store>> {
        match &self.target {
            Target::File { path } => Ok(Box::new(
                enduro::FileStore::builder(path)
                    .journal(has_journal(path))
                    .lock_timeout(self.lock_timeout)
                    .open()?,
            )),
            Target::Pg { url, table, key } => open_pg(url, table, key),
            Target::Redis { url, key } => open_redis(url, key),
            Target::Sqlite { db, table, key } => open_sqlite(db, table, key, self.lock_timeout),
        }
    }
}

/// How long the tool waits to connect to a database.
#[cfg(any(feature = "pg", feature = "redis"))]
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[cfg(feature = "pg")]
fn open_pg(url: &str, table: &str, key: &str) -> Outcome<Box<dyn Store>> {
    Ok(Box::new(
        enduro::PgStore::builder(url, table)
            .key(key)
            .connect_timeout(CONNECT_TIMEOUT)
            .max_connections(2)
            .open_blocking()?,
    ))
}

#[cfg(feature = "redis")]
fn open_redis(url: &str, key: &str) -> Outcome<Box<dyn Store>> {
    Ok(Box::new(
        enduro::RedisStore::builder(url, key)
            .connect_timeout(CONNECT_TIMEOUT)
            .open()?,
    ))
}

#[cfg(feature = "sqlite")]
fn open_sqlite(db: &Path, table: &str, key: &str, busy: Duration) -> Outcome<Box<dyn Store>> {
    Ok(Box::new(
        enduro::SqliteStore::builder(db, table)
            .key(key)
            .busy_timeout(busy)
            .open()?,
    ))
}

#[cfg(not(feature = "pg"))]
fn open_pg(_: &str, _: &str, _: &str) -> Outcome<Box<dyn Store>> {
    Err(not_built("PostgreSQL", "pg"))
}

#[cfg(not(feature = "redis"))]
fn open_redis(_: &str, _: &str) -> Outcome<Box<dyn Store>> {
    Err(not_built("Redis", "redis"))
}

#[cfg(not(feature = "sqlite"))]
fn open_sqlite(_: &Path, _: &str, _: &str, _: Duration) -> Outcome<Box<dyn Store>> {
    Err(not_built("SQLite", "sqlite"))
}

/// The error for a backend this build of the tool was made without.
#[cfg(not(all(feature = "pg", feature = "redis", feature = "sqlite")))]
fn not_built(what: &str, feature: &str) -> Fail {
    Fail::usage(format!(
        "this `enduro` was built without {what} atoms; build it with them: `cargo install \
         enduro-cli --features {feature}` (or with the default features)"
    ))
}

fn table(args: &TargetArgs, option: &str) -> Outcome<String> {
    args.table
        .clone()
        .ok_or_else(|| Fail::usage(format!("{option} needs the table too: --table TABLE")))
}

fn refuse(given: bool, option: &str, what: &str) -> Outcome {
    if given {
        return Err(Fail::usage(format!("{option} does not apply to {what}")));
    }
    Ok(())
}

/// Whether something is at `path`, symlinks followed.
fn exists(path: &Path) -> bool {
    std::fs::metadata(path).is_ok()
}

/// Whether a journal lies beside the data file at `path`: then the tool commits in journal
/// mode too (an appended record), as the program does.
fn has_journal(path: &Path) -> bool {
    enduro::FileReport::read(path).is_ok_and(|report| report.journal.is_some())
}
