//! `edit`: the value in the user's editor, saved with compare-and-set.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use serde_json::Value;

use crate::commands::{load, open_atom};
use crate::fail::{CONFLICT, FAILED, Fail, Outcome, USAGE};
use crate::target::Place;
use crate::value;

pub fn edit(place: &Place) -> Outcome {
    let stored = load(place)?;
    place.format.check_writable(&stored.value)?;
    let atom = open_atom(place, stored, false)?;
    let resource = atom.resource().to_owned();
    let editor = editor();
    let interactive = std::io::stdin().is_terminal();
    let mut shown: Arc<Value> = atom.deref();
    let mut text = text_of(&shown);
    loop {
        let file = tempfile::Builder::new()
            .prefix("enduro-edit-")
            .suffix(".json")
            .tempfile()
            .map_err(|e| Fail::failed(format!("cannot make a temporary file to edit in: {e}")))?;
        std::fs::write(file.path(), &text)
            .map_err(|e| Fail::failed(format!("cannot write `{}`: {e}", file.path().display())))?;
        run_editor(&editor, file.path())?;
        let edited = std::fs::read_to_string(file.path()).map_err(|e| {
            Fail::failed(format!("cannot read back `{}`: {e}", file.path().display()))
        })?;
        let new = match value::parse(&edited, "the edited text") {
            Ok(new) => new,
            Err(fail) => {
                eprintln!("enduro: {fail}");
                if ask(interactive, "Edit again? [Y/n] ") {
                    text = edited;
                    continue;
                }
                return Err(Fail::new(USAGE, "nothing was changed"));
            }
        };
        let (schema, inner) = value::unwrap(&shown);
        if &new == inner {
            eprintln!("enduro: no change");
            return Ok(());
        }
        match atom.compare_and_set(&shown, value::wrap(schema, new)) {
            Ok(true) => {
                eprintln!(
                    "enduro: saved {resource} (generation {})",
                    atom.version().generation
                );
                return Ok(());
            }
            Ok(false) => {
                let kept = keep(file, &resource)?;
                eprintln!(
                    "enduro: {resource} changed while you were editing (someone else \
                     committed); nothing was saved. Your text is kept in `{}`.",
                    kept.display()
                );
                if !ask(
                    interactive,
                    "Edit again, starting from the new value? [Y/n] ",
                ) {
                    return Err(Fail::new(
                        CONFLICT,
                        format!(
                            "not saved: {resource} changed while you were editing; your text \
                             is kept in `{}`",
                            kept.display()
                        ),
                    ));
                }
                shown = atom.deref();
                text = text_of(&shown);
            }
            Err(e @ (enduro::Error::Encode { .. } | enduro::Error::Invalid { .. })) => {
                eprintln!("enduro: {e}");
                if ask(interactive, "Edit again? [Y/n] ") {
                    text = edited;
                    continue;
                }
                return Err(Fail::new(USAGE, "nothing was changed"));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// What the editor shows: the value (without a migration envelope) as pretty JSON.
fn text_of(stored: &Value) -> String {
    let (_, inner) = value::unwrap(stored);

    format!("{}\n", value::pretty(inner))
}

/// `$VISUAL`, else `$EDITOR`, else `vi`.
fn editor() -> String {
    ["VISUAL", "EDITOR"]
        .iter()
        .filter_map(|name| std::env::var(name).ok())
        .find(|e| !e.trim().is_empty())
        .unwrap_or_else(|| "vi".into())
}

/// Runs the editor on `path` through `sh`, so that `EDITOR="code --wait"` works.
fn run_editor(editor: &str, path: &Path) -> Outcome {
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$@\""))
        .arg("enduro-edit")
        .arg(path)
        .status()
        .map_err(|e| Fail::failed(format!("cannot start the editor `{editor}`: {e}")))?;
    if !status.success() {
        return Err(Fail::new(
            FAILED,
            format!(
                "the editor `{editor}` ended with {status}; nothing was changed (set $EDITOR \
                 to choose another)"
            ),
        ));
    }
    Ok(())
}

/// Keeps the edited file past this run, for a user whose edit was not saved.
fn keep(file: tempfile::NamedTempFile, resource: &str) -> Outcome<std::path::PathBuf> {
    file.keep().map(|(_, path)| path).map_err(|e| {
        Fail::failed(format!(
            "{resource} changed while you were editing, and your text could not be kept: {e}"
        ))
    })
}

/// Asks a yes/no question on the terminal (yes by default); `false` without a terminal.
fn ask(interactive: bool, question: &str) -> bool {
    if !interactive {
        return false;
    }
    eprint!("{question}");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    match std::io::stdin().lock().read_line(&mut answer) {
        Ok(0) | Err(_) => false,
        Ok(_) => matches!(
            answer.trim().to_ascii_lowercase().as_str(),
            "" | "y" | "yes"
        ),
    }
}
