//! `enduro`: look at and change enduro atoms from a shell — file atoms (plain or journal
//! mode, in JSON, TOML, RON, CBOR or MessagePack), and atoms in PostgreSQL, Redis and
//! SQLite. Changes go through the atoms' own protocol (the lock, the version check), so
//! programs running on the same atom lose nothing.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};

mod commands;
mod edit;
mod fail;
mod format;
mod target;
mod value;
mod watch;

use fail::{Fail, Outcome};
use target::{FromEnv, Place, TargetArgs};

const EXAMPLES: &str = "\
Examples:
  enduro get state.json                      print the value as pretty JSON
  enduro get config.toml --at /server/port   one part of it (a JSON Pointer)
  enduro set state.json '{\"count\": 0}'       replace the value
  enduro set state.json --at /count 0        change one part, keeping the rest
  enduro edit state.json                     edit it in $EDITOR, committed if nobody else did
  enduro watch state.json                    one JSON line per change, live
  enduro info state.json                     format, size, generation, journal, lock
  enduro get --pg postgres://app@db/app --table atoms --key jobs
  enduro get --redis redis://localhost --key hits
  enduro get --sqlite app.db --table atoms

Exit status: 0 ok, 1 failed, 2 usage or invalid input, 3 no atom there,
4 not saved because someone else committed during `edit`.";

/// Look at and change enduro atoms: file atoms (plain or journal mode; JSON, TOML, RON,
/// CBOR, MessagePack) and atoms in PostgreSQL, Redis and SQLite.
///
/// Values are shown and taken as JSON whatever the stored format. Changes go through the
/// atom protocol (lock, version check), so running programs lose none of their swaps.
#[derive(Debug, Parser)]
#[command(name = "enduro", version, after_help = EXAMPLES, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the value as pretty JSON, whatever the stored format (a journal is replayed)
    #[command(
        after_help = "Examples:\n  enduro get state.json\n  enduro get state.json --at /users/0/name\n  enduro get config.toml --raw > backup.toml"
    )]
    Get {
        /// The file atom
        path: Option<PathBuf>,
        #[command(flatten)]
        target: TargetArgs,
        /// Print only this part of the value (a JSON Pointer: /users/0/name)
        #[arg(long, value_name = "POINTER")]
        at: Option<String>,
        /// One line instead of pretty JSON
        #[arg(long)]
        compact: bool,
        /// Print the stored bytes exactly as stored, in their own format
        #[arg(long, conflicts_with_all = ["at", "compact"])]
        raw: bool,
    },
    /// Replace the value, or one part of it, committed through the atom protocol
    #[command(
        override_usage = "enduro set [OPTIONS] PATH VALUE\n       enduro set [OPTIONS] (--pg URL --table T | --redis URL --key K | --sqlite DB --table T) VALUE",
        after_help = "Examples:\n  enduro set state.json '{\"count\": 0, \"names\": []}'\n  enduro set state.json --at /count 41\n  enduro set state.json --at /names/- '\"Ada\"'      (append to an array)\n  curl -s https://example.com/seed.json | enduro set state.json -\n  enduro set --create new.toml '{\"port\": 8080}'"
    )]
    Set {
        /// [PATH] VALUE: the file atom (unless --pg, --redis or --sqlite), then the new
        /// value as JSON, or `-` to read it from stdin
        #[arg(value_name = "[PATH] VALUE", num_args = 1..=2, required = true)]
        args: Vec<OsString>,
        #[command(flatten)]
        target: TargetArgs,
        /// Set only this part of the value (a JSON Pointer; `/list/-` appends), as a swap
        /// on the latest value: other parts changed meanwhile are kept
        #[arg(long, value_name = "POINTER")]
        at: Option<String>,
        /// Make the atom if nothing is stored there yet
        #[arg(long)]
        create: bool,
    },
    /// Edit the value in $VISUAL or $EDITOR; saved only if nobody committed meanwhile
    #[command(
        after_help = "Examples:\n  enduro edit state.json\n  enduro edit config.toml --raw        (the TOML text itself)\n  EDITOR=nano enduro edit --sqlite app.db --table atoms"
    )]
    Edit {
        /// The file atom
        path: Option<PathBuf>,
        #[command(flatten)]
        target: TargetArgs,
        /// Edit the stored text in its own format (JSON, TOML, RON) instead of as JSON;
        /// RON values, and TOML values with dates, are always edited so
        #[arg(long)]
        raw: bool,
    },
    /// Print the value, then one JSON line per committed change, live, until interrupted
    #[command(
        after_help = "Examples:\n  enduro watch state.json\n  enduro watch state.json --at /count | while read -r n; do echo \"now $n\"; done"
    )]
    Watch {
        /// The file atom
        path: Option<PathBuf>,
        #[command(flatten)]
        target: TargetArgs,
        /// Print only this part of each value (a JSON Pointer)
        #[arg(long, value_name = "POINTER")]
        at: Option<String>,
    },
    /// Show what is stored and where: format, size, generation, schema, journal, lock
    #[command(
        after_help = "Examples:\n  enduro info state.json\n  enduro info state.json --json | jq .journal"
    )]
    Info {
        /// The file atom
        path: Option<PathBuf>,
        #[command(flatten)]
        target: TargetArgs,
        /// One JSON object instead of lines for people
        #[arg(long)]
        json: bool,
    },
    /// Compact a file atom's journal now: the data file becomes the value, the journal
    /// starts over
    #[command(after_help = "Examples:\n  enduro compact state.json")]
    Compact {
        /// The file atom
        path: Option<PathBuf>,
        #[command(flatten)]
        target: TargetArgs,
    },
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let env = from_env(&matches);
    match run(cli.command, env) {
        Ok(()) => ExitCode::SUCCESS,
        Err(fail) => {
            let _ = std::io::stdout().flush();
            eprintln!("enduro: error: {fail}");
            ExitCode::from(fail.code)
        }
    }
}

/// Which URL options came from the environment rather than the command line.
fn from_env(matches: &ArgMatches) -> FromEnv {
    let Some((_, sub)) = matches.subcommand() else {
        return FromEnv::default();
    };
    let env = |id| sub.value_source(id) == Some(ValueSource::EnvVariable);
    FromEnv {
        pg: env("pg"),
        redis: env("redis"),
    }
}

fn run(command: Command, env: FromEnv) -> Outcome {
    match command {
        Command::Get {
            path,
            target,
            at,
            compact,
            raw,
        } => {
            let place = Place::from_args(path, &target, env)?;
            commands::get(&place, at.as_deref(), compact, raw)
        }
        Command::Set {
            args,
            target,
            at,
            create,
        } => {
            let mut args = args.into_iter();
            let database = target.pg.is_some() || target.redis.is_some() || target.sqlite.is_some();
            let (path, value) = match (args.next(), args.next()) {
                (Some(path), Some(value)) => (Some(PathBuf::from(path)), value),
                (Some(value), None) if database => (None, value),
                _ => {
                    return Err(Fail::usage(
                        "set takes the PATH of a file atom and the VALUE (or --pg/--redis/--sqlite and the VALUE)",
                    ));
                }
            };
            let value = value
                .into_string()
                .map_err(|_| Fail::usage("the value is not UTF-8 text"))?;
            let place = Place::from_args(path, &target, env)?;
            commands::set(&place, &value, at.as_deref(), create)
        }
        Command::Edit { path, target, raw } => {
            edit::edit(&Place::from_args(path, &target, env)?, raw)
        }
        Command::Watch { path, target, at } => {
            watch::watch(&Place::from_args(path, &target, env)?, at.as_deref())
        }
        Command::Info { path, target, json } => {
            commands::info(&Place::from_args(path, &target, env)?, json)
        }
        Command::Compact { path, target } => {
            commands::compact(&Place::from_args(path, &target, env)?)
        }
    }
}
