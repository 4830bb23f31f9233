//! Schema evolution: a config file written by an older version of the program is
//! migrated when it opens — `tries` renamed `retries` (schema 0 to 1), then `verbose`
//! added (1 to 2) — and stored once, with its schema, as plain JSON.
//!
//! ```text
//! cargo run --example config_migration [PATH]
//! ```
//!
//! Without PATH it uses a temporary directory. With PATH, a first run writes the old file
//! if there is none; every run prints what it opened and what the file holds.

use enduro::{FileAtom, Migrations};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The config as this version of the program knows it (schema 2).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Config {
    name: String,
    retries: u32,
    verbose: bool,
}

fn migrations() -> Migrations {
    Migrations::new()
        // Step 0, schema 0 to 1: `tries` is now called `retries`.
        .step(|mut config: Value| {
            let config = config
                .as_object_mut()
                .ok_or("the config is not an object")?;
            let tries = config.remove("tries").ok_or("no field `tries` to rename")?;
            config.insert("retries".into(), tries);
            Ok::<_, &str>(Value::Object(std::mem::take(config)))
        })
        // Step 1, schema 1 to 2: a new field, false for configs stored before.
        .step(|mut config: Value| {
            config["verbose"] = json!(false);
            Ok::<_, &str>(config)
        })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let temp = tempfile::tempdir()?;
    let path = match std::env::args_os().nth(1) {
        Some(path) => path.into(),
        None => temp.path().join("config.json"),
    };
    if !path.exists() {
        // What the old program (schema 0) stored.
        std::fs::write(&path, r#"{"name":"pump","tries":3}"#)?;
        println!("old file: {}", std::fs::read_to_string(&path)?);
    }
    let init = Config {
        name: "pump".into(),
        retries: 1,
        verbose: true,
    };
    let config = FileAtom::builder(&path)
        .pretty(true)
        .migrations(migrations())
        .open(init)?;
    println!("opened: {:?}", config.deref());
    config.swap(|c| Config {
        retries: c.retries + 1,
        ..c.clone()
    })?;
    println!("file now:\n{}", std::fs::read_to_string(&path)?);
    Ok(())
}
