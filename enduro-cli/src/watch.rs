//! `watch`: the value, then one JSON line per committed change, live.

use std::io::Write;
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

use crate::commands::{load, open_atom};
use crate::fail::{Fail, Outcome};
use crate::target::Place;
use crate::value;

pub fn watch(place: &Place, at: Option<&str>) -> Outcome {
    if let Some(pointer) = at {
        value::check_pointer(pointer)?;
    }
    let stored = load(place)?;
    let atom = open_atom(place, stored, true)?;
    let (changes, seen) = mpsc::channel::<Value>();
    atom.add_watch("enduro watch", move |_old: &Value, new: &Value| {
        let _ = changes.send(new.clone());
    });
    let mut out = std::io::stdout().lock();
    let format = place.format;
    if !print(&mut out, &format.for_people(&atom.deref()), at)? {
        return Ok(());
    }
    loop {
        match seen.recv_timeout(Duration::from_millis(200)) {
            Ok(new) => {
                if !print(&mut out, &format.for_people(&new), at)? {
                    return Ok(());
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) if atom.is_released() => {
                eprintln!("enduro: {} was released", atom.resource());
                return Ok(());
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return Ok(()),
        }
    }
}

/// Prints one value as a line; `false` once stdout is closed (the reader went away).
fn print(out: &mut impl Write, stored: &Value, at: Option<&str>) -> Outcome<bool> {
    let (_, inner) = value::unwrap(stored);
    let shown = match at {
        Some(pointer) => inner.pointer(pointer).unwrap_or(&Value::Null),
        None => inner,
    };
    let written = writeln!(out, "{}", value::line(shown)).and_then(|()| out.flush());
    match written {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(Fail::failed(format!("cannot write to stdout: {e}"))),
    }
}
