//! `edit`: the value in the user's editor, saved only if nobody committed meanwhile.
//!
//! Two ways, one loop: as JSON through an atom (`compare_and_set`), or, with `--raw`, as
//! the stored text itself through the store (`commit` over the version shown) — for RON
//! and TOML dates, whose values JSON cannot carry, and for anyone who wants the file's
//! own text.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use enduro::store::{Committed, Store};
use enduro::{Atom, Version};
use serde_json::Value;

use crate::commands::{check_no_ops, load, open_atom};
use crate::fail::{CONFLICT, FAILED, Fail, Outcome, USAGE};
use crate::target::Place;
use crate::value;

/// What one round of editing came to.
enum Round {
    Unchanged,
    /// Not taken (not JSON, not the format, a value the format cannot store): why.
    Refused(String),
    Saved(String),
    /// Someone committed since the text was shown.
    Conflict,
}

/// One way of editing: what the editor shows, and how an edited text is saved.
trait Session {
    /// The text the editor opens on.
    fn text(&self) -> String;
    /// The temporary file's suffix, so that editors pick their highlighting.
    fn suffix(&self) -> &'static str;
    fn save(&mut self, edited: &str) -> Outcome<Round>;
    /// Takes up what is stored now, after a conflict.
    fn reload(&mut self) -> Outcome;
}

pub fn edit(place: &Place, raw: bool) -> Outcome {
    let interactive = std::io::stdin().is_terminal();
    if raw {
        return run(&mut RawSession::open(place)?, interactive);
    }
    let stored = load(place)?;
    if let Err(fail) = place.format.check_writable(&stored.value) {
        if !place.format.is_text() {
            return Err(fail);
        }
        // JSON cannot carry this value: edit the stored text itself.
        eprintln!(
            "enduro: note: editing the stored {} text (as JSON, the value would not read \
             back as the program's type)",
            place.format.name()
        );
        return run(&mut RawSession::open(place)?, interactive);
    }
    let atom = open_atom(place, stored, false)?;
    let shown = atom.deref();
    run(&mut JsonSession { atom, shown }, interactive)
}

/// The loop every session runs: editor, save, and on a conflict or a refusal, offer to
/// edit again.
fn run(session: &mut dyn Session, interactive: bool) -> Outcome {
    let editor = editor();
    let mut text = session.text();
    loop {
        let file = tempfile::Builder::new()
            .prefix("enduro-edit-")
            .suffix(session.suffix())
            .tempfile()
            .map_err(|e| Fail::failed(format!("cannot make a temporary file to edit in: {e}")))?;
        std::fs::write(file.path(), &text)
            .map_err(|e| Fail::failed(format!("cannot write `{}`: {e}", file.path().display())))?;
        run_editor(&editor, file.path())?;
        let edited = std::fs::read_to_string(file.path()).map_err(|e| {
            Fail::failed(format!("cannot read back `{}`: {e}", file.path().display()))
        })?;
        match session.save(&edited)? {
            Round::Unchanged => {
                eprintln!("enduro: no change");
                return Ok(());
            }
            Round::Saved(what) => {
                eprintln!("enduro: saved {what}");
                return Ok(());
            }
            Round::Refused(why) => {
                eprintln!("enduro: {why}");
                if !ask(interactive, "Edit again? [Y/n] ") {
                    return Err(Fail::new(USAGE, "nothing was changed"));
                }
                text = edited;
            }
            Round::Conflict => {
                let kept = keep(file)?;
                eprintln!(
                    "enduro: the value changed while you were editing (someone else \
                     committed); nothing was saved. Your text is kept in `{}`; editing \
                     again starts from the new value.",
                    kept.display()
                );
                if !ask(interactive, "Edit again? [Y/n] ") {
                    return Err(Fail::new(
                        CONFLICT,
                        format!(
                            "not saved: the value changed while you were editing; your text \
                             is kept in `{}`",
                            kept.display()
                        ),
                    ));
                }
                session.reload()?;
                text = session.text();
            }
        }
    }
}

/// The value as JSON, saved by the atom's `compare_and_set` (a migration envelope kept).
struct JsonSession {
    atom: Atom<Value>,
    shown: Arc<Value>,
}

impl Session for JsonSession {
    fn text(&self) -> String {
        let (_, inner) = value::unwrap(&self.shown);
        format!("{}\n", value::pretty(inner))
    }

    fn suffix(&self) -> &'static str {
        ".json"
    }

    fn save(&mut self, edited: &str) -> Outcome<Round> {
        let new = match value::parse(edited, "the edited text") {
            Ok(new) => new,
            Err(fail) => return Ok(Round::Refused(fail.message)),
        };
        let (schema, inner) = value::unwrap(&self.shown);
        if &new == inner {
            return Ok(Round::Unchanged);
        }
        match self
            .atom
            .compare_and_set(&self.shown, value::wrap(schema, new))
        {
            Ok(true) => Ok(Round::Saved(format!(
                "{} (generation {})",
                self.atom.resource(),
                self.atom.version().generation
            ))),
            Ok(false) => Ok(Round::Conflict),
            Err(e @ (enduro::Error::Encode { .. } | enduro::Error::Invalid { .. })) => {
                Ok(Round::Refused(e.to_string()))
            }
            Err(e) => Err(e.into()),
        }
    }

    fn reload(&mut self) -> Outcome {
        self.shown = self.atom.deref();
        Ok(())
    }
}

/// The stored text in its own format, saved by the store's compare-and-set over the
/// version it was read at (under a file atom's lock, as any commit).
struct RawSession<'p> {
    place: &'p Place,
    store: Box<dyn Store>,
    bytes: Vec<u8>,
    version: Version,
}

impl<'p> RawSession<'p> {
    fn open(place: &'p Place) -> Outcome<RawSession<'p>> {
        if !place.format.is_text() {
            return Err(Fail::usage(format!(
                "{} is a binary format, which no text editor can edit: leave --raw out to \
                 edit the value as JSON",
                place.format.name()
            )));
        }
        place.must_exist()?;
        let store = place.open()?;
        let mut session = RawSession {
            place,
            store,
            bytes: Vec::new(),
            version: Version::ABSENT,
        };
        session.reload()?;
        Ok(session)
    }
}

impl Session for RawSession<'_> {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }

    fn suffix(&self) -> &'static str {
        match self.place.format {
            crate::format::Format::Toml => ".toml",
            crate::format::Format::Ron => ".ron",
            _ => ".json",
        }
    }

    fn save(&mut self, edited: &str) -> Outcome<Round> {
        if edited.as_bytes() == self.bytes {
            return Ok(Round::Unchanged);
        }
        let format = self.place.format;
        if format.is_blank(edited.as_bytes()) {
            return Ok(Round::Refused("the edited text is empty".into()));
        }
        if let Err(e) = format.decode(edited.as_bytes()) {
            let name = format.name();
            return Ok(Round::Refused(format!(
                "the edited text is not {name}: {e}"
            )));
        }
        let store = &*self.store;
        let committed = store.commit(self.version, &mut |out| {
            out.write_all(edited.as_bytes()).map_err(|e| {
                let message = format!("cannot write the value: {e}");
                enduro::Error::backend(store.resource(), message, Some(Box::new(e)))
            })
        })?;
        Ok(match committed {
            Committed::Done(version) => Round::Saved(format!(
                "{} (generation {})",
                store.resource(),
                version.generation
            )),
            Committed::Conflict => Round::Conflict,
        })
    }

    fn reload(&mut self) -> Outcome {
        let Some(replay) = self.store.load_replay()? else {
            return Err(self.place.not_found());
        };
        check_no_ops(&*self.store, &replay)?;
        self.version = replay.version();
        self.bytes = replay.base.bytes;
        if std::str::from_utf8(&self.bytes).is_err() {
            return Err(Fail::failed(format!(
                "{} does not hold UTF-8 text; is it stored in another format (--format)?",
                self.store.resource()
            )));
        }
        Ok(())
    }
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
fn keep(file: tempfile::NamedTempFile) -> Outcome<PathBuf> {
    file.keep().map(|(_, path)| path).map_err(|e| {
        Fail::failed(format!(
            "the value changed while you were editing, and your text could not be kept: {e}"
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
