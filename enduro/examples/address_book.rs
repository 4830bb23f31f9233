//! An address book changed by ops: each `apply` appends the small op (`Add` or `Remove`)
//! to the journal with one flush, not the whole book; opening replays the ops after the
//! last snapshot. Run it twice and the second run starts where the first one ended.
//!
//! ```text
//! cargo run -p enduro --example address_book [PATH]
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;

use enduro::{Apply, FileAtom};
use serde::{Deserialize, Serialize};

/// The book: names to addresses.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Book(BTreeMap<String, String>);

/// One change to the book. Stored as it is (JSON, in the journal), so keep its shape
/// readable by every later version of the program.
#[derive(Debug, Serialize, Deserialize)]
enum Edit {
    Add { name: String, address: String },
    Remove { name: String },
}

impl Apply for Book {
    type Op = Edit;

    // Deterministic: replayed at every open, and by every other process.
    fn apply(&mut self, edit: &Edit) {
        match edit {
            Edit::Add { name, address } => {
                self.0.insert(name.clone(), address.clone());
            }
            Edit::Remove { name } => {
                self.0.remove(name);
            }
        }
    }
}

fn add(name: &str, address: &str) -> Edit {
    Edit::Add {
        name: name.into(),
        address: address.into(),
    }
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            let mut cause = std::error::Error::source(&e);
            while let Some(e) = cause {
                eprintln!("  caused by: {e}");
                cause = e.source();
            }
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), enduro::Error> {
    let path = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("enduro-address-book.json"));
    let open = || {
        FileAtom::builder(&path)
            .journal(true) // commits append to .NAME.enduro-journal
            .ops() // ... the op, not the whole book
            .validator(|book: &Book| book.0.values().all(|a| !a.is_empty()))
            .open(Book::default())
    };

    let book = open()?;
    let before = book.deref().0.len();
    println!(
        "address book: {} ({before} entries on opening)",
        path.display()
    );
    book.add_watch("log", |old: &Book, new: &Book| {
        for (name, address) in &new.0 {
            if old.0.get(name) != Some(address) {
                println!("  watch: {name} now lives at {address}");
            }
        }
        for name in old.0.keys().filter(|n| !new.0.contains_key(*n)) {
            println!("  watch: {name} was removed");
        }
    });

    println!("adding Ada and Grace, then moving Ada (each apply: one record, one flush)");
    book.apply(add("Ada", "12 St James's Square, London"))?;
    book.apply(add("Grace", "1 Navy Yard, Arlington"))?;
    book.apply(add("Ada", "Ockham Park, Surrey"))?;
    let run = before / 2 + 1;
    let guest = format!("Guest {run}");
    book.apply(add(&guest, "The Guest House, Bath"))?;
    println!("removing Grace");
    book.apply(Edit::Remove {
        name: "Grace".into(),
    })?;

    println!("an empty address is refused by the validator, and changes nothing:");
    match book.apply(add("Nobody", "")) {
        Err(e) => println!("  {e}"),
        Ok(_) => return Err(enduro::Error::Invalid { reason: None }),
    }

    // A second handle, as another process would open it: it replays the snapshot and
    // the ops after it to the same book.
    let again = open()?;
    assert_eq!(
        *again.deref(),
        *book.deref(),
        "a fresh open replays the ops"
    );
    let journal = enduro::FileStore::open(&path)?.journal_path().to_path_buf();
    println!(
        "{} entries now: {:?}\nthe data file is the last snapshot; the ops since are in {}",
        book.deref().0.len(),
        book.deref().0.keys().collect::<Vec<_>>(),
        journal.display()
    );
    Ok(())
}
