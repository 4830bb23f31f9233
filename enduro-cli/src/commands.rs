//! `get`, `set`, `info` and `compact`.

use std::io::{IsTerminal, Read, Write};

use enduro::Atom;
use enduro::store::{Replay, Store};
use serde_json::Value;

use crate::fail::{Fail, NOT_FOUND, Outcome};
use crate::target::Place;
use crate::value;

/// What is stored at a place, read and decoded: the store, the stored bytes, the value.
pub struct Stored {
    pub store: Box<dyn Store>,
    pub bytes: Vec<u8>,
    pub value: Value,
    pub generation: u64,
}

/// Reads the atom at `place` through its store, to change it: "no atom there" (exit 3)
/// when nothing is stored, an error when a journal ends in ops (only the program can apply
/// them) or the bytes do not decode.
pub fn load(place: &Place) -> Outcome<Stored> {
    place.must_exist()?;
    let store = place.open()?;
    let Some(replay) = store.load_replay()? else {
        return Err(place.not_found());
    };
    check_no_ops(&*store, &replay)?;
    let resource = store.resource();
    let bytes = replay.base.bytes;
    let value = decoded(place, &resource, &bytes)?;
    Ok(Stored {
        store,
        bytes,
        value,
        generation: replay.base.version.generation,
    })
}

/// What a look at a place found: for a file atom, read without opening its store (no
/// lock file made, nothing repaired, no lock waited for).
pub struct Peeked {
    pub resource: String,
    pub bytes: Vec<u8>,
    pub value: Value,
    pub generation: u64,
}

/// Reads the atom at `place` to look at it; see [`load`] for the errors.
pub fn peek(place: &Place) -> Outcome<Peeked> {
    let Some(path) = place.file() else {
        let stored = load(place)?;
        return Ok(Peeked {
            resource: stored.store.resource(),
            bytes: stored.bytes,
            value: stored.value,
            generation: stored.generation,
        });
    };
    place.must_exist()?;
    peek_report(place, &mut enduro::FileReport::read(path)?)
}

/// What `report` (of the file atom at `place`) holds, decoded; its value's bytes are taken
/// out of it.
fn peek_report(place: &Place, report: &mut enduro::FileReport) -> Outcome<Peeked> {
    let resource = format!("file `{}`", report.path.display());
    let Some(bytes) = report.value.take() else {
        if report.data_len.is_none() {
            return Err(place.not_found());
        }
        let ops = report.journal.as_ref().map_or(0, |j| j.ops);
        return Err(ends_in_ops(&resource, ops, "the journal"));
    };
    let value = decoded(place, &resource, &bytes)?;
    Ok(Peeked {
        resource,
        bytes,
        value,
        generation: report.generation,
    })
}

pub fn check_no_ops(store: &dyn Store, replay: &Replay) -> Outcome {
    match replay.ops.first() {
        Some(first) => Err(ends_in_ops(
            &store.resource(),
            replay.ops.len() as u64,
            &first.at,
        )),
        None => Ok(()),
    }
}

fn ends_in_ops(resource: &str, ops: u64, at: &str) -> Fail {
    Fail::failed(format!(
        "{resource} ends in {ops} op(s) written by `apply` (in {at}): only the program that \
         defines them can apply them, so the tool cannot tell the value; the program replays \
         them when it opens the atom, and compacts them away in time"
    ))
}

/// The stored bytes decoded, or why not: empty (no value yet, exit 3), or not the format.
fn decoded(place: &Place, resource: &str, bytes: &[u8]) -> Outcome<Value> {
    if place.format.is_blank(bytes) {
        return Err(Fail::new(
            NOT_FOUND,
            format!("{resource} holds no value yet (it is empty); `enduro set` writes one"),
        ));
    }
    place.format.decode(bytes).map_err(|e| {
        Fail::failed(format!(
            "{resource} does not hold {} that reads: {e}; nothing was changed. If it is \
             stored in another format, say which with --format (json, toml, ron, cbor, \
             msgpack)",
            place.format.name()
        ))
    })
}

/// Opens the atom of a store known to hold a value, writing what the tool writes.
pub fn open_atom(place: &Place, stored: Stored, live: bool) -> Outcome<Atom<Value>> {
    let options = place
        .format
        .options(place.format.looks_pretty(&stored.bytes))?;
    Ok(Atom::open(stored.store, stored.value, options.live(live))?)
}

pub fn get(place: &Place, at: Option<&str>, compact: bool, raw: bool) -> Outcome {
    let stored = peek(place)?;
    let mut out = std::io::stdout().lock();
    if raw {
        if !place.format.is_text() && out.is_terminal() {
            return Err(Fail::usage(format!(
                "{} is binary ({}); send --raw into a file or a pipe, or leave --raw out \
                 to see it as JSON",
                stored.resource,
                place.format.name()
            )));
        }
        return write_out(&mut out, &stored.bytes);
    }
    if place.format == crate::format::Format::Ron {
        eprintln!(
            "enduro: note: JSON has no names for RON's structs and enum variants (`Slow(3)` \
             shows as `[3]`); `--raw` shows the stored text"
        );
    }
    let readable = place.format.for_people(&stored.value);
    let (_, inner) = value::unwrap(&readable);
    let shown = match at {
        Some(pointer) => value::at(inner, pointer)?,
        None => inner,
    };
    let text = if compact {
        value::line(shown)
    } else {
        value::pretty(shown)
    };
    write_out(&mut out, format!("{text}\n").as_bytes())
}

/// Writes to stdout; a closed pipe (`enduro get x | head -1`) is not an error.
fn write_out(out: &mut impl Write, bytes: &[u8]) -> Outcome {
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Fail::failed(format!("cannot write to stdout: {e}"))),
    }
}

pub fn set(place: &Place, text: &str, at: Option<&str>, create: bool) -> Outcome {
    let text = if text == "-" {
        let mut input = String::new();
        std::io::stdin()
            .read_to_string(&mut input)
            .map_err(|e| Fail::usage(format!("cannot read the value from stdin: {e}")))?;
        input
    } else {
        text.to_owned()
    };
    let new = value::parse(&text, "the value")?;
    let whole = at.is_none_or(str::is_empty);
    let stored = match load(place) {
        Ok(stored) => stored,
        Err(fail) if fail.code == NOT_FOUND && create => {
            if !whole {
                return Err(Fail::usage(
                    "nothing is stored there yet, so there is no part to set: give the whole \
                     value (without --at)",
                ));
            }
            return create_with(place, new);
        }
        Err(fail) => return Err(fail),
    };
    place.format.check_writable(&stored.value)?;
    let atom = open_atom(place, stored, false)?;
    atom.try_swap(|current: &Value| -> Outcome<Value> {
        let (schema, inner) = value::unwrap(current);
        let changed = match at {
            Some(pointer) if !whole => {
                let mut inner = inner.clone();
                value::put(&mut inner, pointer, new.clone())?;
                inner
            }
            _ => new.clone(),
        };
        Ok(value::wrap(schema, changed))
    })?;
    Ok(())
}

/// Makes the atom with `value` (or sets it, if someone made it meanwhile).
fn create_with(place: &Place, value: Value) -> Outcome {
    place.format.check_writable(&value)?;
    let store = place.open()?;
    let atom = Atom::open(store, value.clone(), place.format.options(false)?)?;
    if *atom.deref() != value {
        atom.try_swap(|current: &Value| -> Outcome<Value> {
            let (schema, _) = value::unwrap(current);
            Ok(value::wrap(schema, value.clone()))
        })?;
    }
    Ok(())
}

pub fn compact(place: &Place) -> Outcome {
    let Some(path) = place.file() else {
        return Err(Fail::usage(format!(
            "only file atoms in journal mode have a journal to compact; {} keeps one value",
            place.describe()
        )));
    };
    place.must_exist()?;
    let before = enduro::FileReport::read(path)?;
    let store = enduro::FileStore::builder(path)
        .lock_timeout(place.lock_timeout)
        .open()?;
    if store.compact()? {
        let records = before.journal.map_or(0, |j| j.values + j.ops);
        eprintln!(
            "enduro: compacted the journal of {} ({records} records)",
            store.resource()
        );
    } else {
        eprintln!(
            "enduro: {} has no journal records to compact",
            store.resource()
        );
    }
    Ok(())
}

pub fn info(place: &Place, json: bool) -> Outcome {
    let mut fields: Vec<(&str, Value)> = Vec::new();
    let (peeked, report) = match place.file() {
        Some(path) => {
            place.must_exist()?;
            // The report, even when the value cannot be told (ops, or bytes that do not
            // decode): then the schema says why.
            let mut report = enduro::FileReport::read(path)?;
            (peek_report(place, &mut report), Some(report))
        }
        None => (peek(place), None),
    };
    match &report {
        Some(report) => {
            fields.push(("path", report.path.display().to_string().into()));
            fields.push(("format", place.format.name().into()));
            fields.push(("size", report.data_len.unwrap_or(0).into()));
            fields.push(("generation", report.generation.into()));
        }
        None => {
            let peeked = peeked
                .as_ref()
                .map_err(|f| Fail::new(f.code, f.message.clone()))?;
            fields.push(("atom", peeked.resource.clone().into()));
            fields.push(("format", place.format.name().into()));
            fields.push(("size", peeked.bytes.len().into()));
            // A database's version counter: it only grows (PostgreSQL's from a random
            // start, so that versions never repeat across re-creation).
            fields.push(("generation", peeked.generation.into()));
        }
    }
    match &peeked {
        Ok(peeked) => {
            let (schema, _) = value::unwrap(&peeked.value);
            fields.push(("schema", schema.unwrap_or(0).into()));
        }
        Err(fail) => fields.push(("schema", format!("unknown: {}", fail.message).into())),
    }
    if let Some(report) = &report {
        fields.push(("journal", journal_field(report, json)));
        let pending: Vec<Value> = report
            .pending
            .iter()
            .map(|p| p.display().to_string().into())
            .collect();
        fields.push(("pending", pending.into()));
        let lock = match report.lock {
            enduro::LockState::Free => "free",
            enduro::LockState::Held => "held by another process (committing now, or stuck)",
            enduro::LockState::Missing => "no lock file (the next commit makes one)",
            enduro::LockState::Unreadable => "unknown (this user may not read the lock file)",
            enduro::LockState::Damaged => {
                "damaged (the next open or commit repairs it from the data file)"
            }
            _ => "unknown",
        };
        fields.push(("lock", lock.into()));
    }
    let mut out = std::io::stdout().lock();
    if json {
        let object: serde_json::Map<String, Value> =
            fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        let text = format!("{}\n", value::pretty(&Value::Object(object)));
        return write_out(&mut out, text.as_bytes());
    }
    let mut text = String::new();
    for (name, field) in fields {
        let shown = match (name, field) {
            ("size", Value::Number(n)) => format!("{n} bytes"),
            ("pending", Value::Array(items)) if items.is_empty() => "none".into(),
            ("pending", Value::Array(items)) => format!(
                "{} (left by a crash or being written now; the next open or commit removes it)",
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            ("schema", Value::Number(n)) if n.as_u64() == Some(0) => "0 (no migrations)".into(),
            (_, Value::String(s)) => s,
            (_, other) => other.to_string(),
        };
        text.push_str(&format!("{:<12}{shown}\n", format!("{name}:")));
    }
    write_out(&mut out, text.as_bytes())
}

/// The journal, for `info`: words for people, an object for `--json`.
fn journal_field(report: &enduro::FileReport, json: bool) -> Value {
    let Some(journal) = &report.journal else {
        return if json {
            Value::Null
        } else {
            "none (plain mode)".into()
        };
    };
    if json {
        return serde_json::json!({
            "path": journal.path.display().to_string(),
            "file_size": journal.file_len,
            "used": journal.used,
            "applies": journal.applies,
            "values": journal.values,
            "ops": journal.ops,
            "records": journal.values + journal.ops,
            "ends_in_ops": journal.ends_in_ops,
        });
    }
    if !journal.applies {
        return format!(
            "`{}` does not apply to the data file (a leftover: the next commit starts it over)",
            journal.path.display()
        )
        .into();
    }
    format!(
        "{} records ({} values, {} ops), {} bytes used of {}; `{}`",
        journal.values + journal.ops,
        journal.values,
        journal.ops,
        journal.used,
        journal.file_len,
        journal.path.display()
    )
    .into()
}
