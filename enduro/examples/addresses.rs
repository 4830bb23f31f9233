//! A file-backed address book, like the original enduro's: run it twice and the second
//! run starts where the first one ended.
//!
//! ```text
//! cargo run -p enduro --example addresses [PATH]
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Address {
    street: String,
    city: String,
}

type Book = BTreeMap<String, Address>;

fn address(street: &str, city: &str) -> Address {
    Address {
        street: street.into(),
        city: city.into(),
    }
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The whole chain: what enduro says, then each cause underneath.
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
        .unwrap_or_else(|| std::env::temp_dir().join("enduro-addresses.json"));

    let book = enduro::FileAtom::builder(&path)
        .pretty(true)
        .validator(|book: &Book| book.values().all(|a| !a.city.is_empty()))
        .open(Book::new())?;
    println!(
        "address book: {} ({} entries on opening)",
        path.display(),
        book.deref().len()
    );

    book.add_watch("log", |old: &Book, new: &Book| {
        for (name, addr) in new {
            if old.get(name) != Some(addr) {
                println!(
                    "  watch: {name} now lives at {}, {}",
                    addr.street, addr.city
                );
            }
        }
        for name in old.keys().filter(|n| !new.contains_key(*n)) {
            println!("  watch: {name} was removed");
        }
    });

    println!("adding Alan and Grace (each swap returns once the file is on disk)");
    book.swap(|b| {
        let mut b = b.clone();
        b.insert("Alan".into(), address("1 Main St", "Manchester"));
        b
    })?;
    book.swap(|b| {
        let mut b = b.clone();
        b.insert("Grace".into(), address("7 Navy Yard", "Arlington"));
        b
    })?;

    println!("trying an address with no city (the validator refuses it)");
    match book.swap(|b| {
        let mut b = b.clone();
        b.insert("Nobody".into(), address("Nowhere", ""));
        b
    }) {
        Err(enduro::Error::Invalid { .. }) => println!("  refused: the book is unchanged"),
        other => println!("  unexpected: {other:?}"),
    }

    println!("moving Alan");
    book.swap(|b| {
        let mut b = b.clone();
        b.insert("Alan".into(), address("2 Turing Way", "Manchester"));
        b
    })?;

    println!("{} entries now; the file holds:", book.deref().len());
    match std::fs::read_to_string(&path) {
        Ok(text) => print!("{text}"),
        Err(e) => println!("  (cannot read it back: {e})"),
    }
    println!("run again to see the book reopened from {}", path.display());
    Ok(())
}
