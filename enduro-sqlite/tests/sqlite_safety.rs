//! Bad input to SQLite atoms: table names and keys that try to inject SQL, reserved
//! names, a directory or a file of something else at the database path, a table with the
//! wrong columns, stored data of the wrong type, a database locked by another process;
//! each a clear error with nothing lost, or a name that simply works.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

mod common;

use common::{connect, quoted, stored, stored_version, table_exists};
use enduro_core::Error;
use enduro_sqlite::{SqliteAtom, SqliteStore, sqlite_atom};

/// Every table name in `db`.
fn tables(db: &Path) -> Vec<String> {
    let conn = connect(db);
    let mut statement = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
        .unwrap();
    statement
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// The names of the entries of `dir`.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn odd_table_names_and_keys_work_and_stay_apart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("odd.db");
    let victim = sqlite_atom(42u64, &db, "x").unwrap();
    let names = [
        "hits; DROP TABLE x",
        "ünï cödé 表",
        "with space",
        r#"x"; DROP TABLE x; --"#,
        r#"x" (key TEXT); DROP TABLE "x"; CREATE TABLE "z"#,
        "it's",
        "x'); DROP TABLE x; --",
        "main.x",
        "\"",
        "''",
        "🚀",
    ];
    let keys = [
        "default",
        "k'); DROP TABLE x; --",
        "k\"; DROP TABLE x; --",
        "ünï 表 🚀",
        "",
        " ",
        "a\nb",
        "a\0b",
        "a",
    ];
    for (i, name) in names.iter().enumerate() {
        for (j, key) in keys.iter().enumerate() {
            let atom = SqliteAtom::builder(&db, name)
                .key(*key)
                .open(vec![i, j])
                .unwrap_or_else(|e| panic!("{name:?} / {key:?}: {e}"));
            atom.swap(|v| [v.clone(), vec![7]].concat()).unwrap();
        }
    }
    // Each name is its own table, named exactly so; each key its own row.
    let found = tables(&db);
    for name in names.iter().chain(["x"].iter()) {
        assert!(found.contains(&name.to_string()), "{name:?} in {found:?}");
    }
    assert_eq!(found.len(), names.len() + 1, "{found:?}");
    for (i, name) in names.iter().enumerate() {
        for (j, key) in keys.iter().enumerate() {
            let bytes = stored(&db, name, key).unwrap();
            let value: Vec<usize> = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(value, [i, j, 7], "{name:?} / {key:?}");
            let again = SqliteAtom::builder(&db, name)
                .key(*key)
                .open(Vec::<usize>::new())
                .unwrap();
            assert_eq!(*again.deref(), [i, j, 7]);
        }
    }
    // The victim is intact.
    assert_eq!(*victim.refresh().unwrap(), 42);
    assert_eq!(stored(&db, "x", "default").as_deref(), Some(&b"42"[..]));
}

#[test]
fn reserved_and_impossible_table_names_are_refused_before_anything_is_made() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sub/names.db");
    for (bad, says) in [
        ("sqlite_foo", "reserved"),
        ("SQLITE_MASTER", "reserved"),
        ("Sqlite_", "reserved"),
        ("", "empty"),
        ("a\0b", "NUL"),
    ] {
        let e = sqlite_atom(0u8, &db, bad).unwrap_err();
        assert!(matches!(e, Error::Backend { .. }), "{bad:?}: {e}");
        assert!(e.to_string().contains(says), "{bad:?}: {e}");
        assert!(e.to_string().contains("invalid table name"), "{bad:?}: {e}");
    }
    assert!(!dir.path().join("sub").exists(), "nothing was made");
    // Names that merely look like them are fine.
    for fine in ["sqlite", "my_sqlite_foo", "sqlitefoo"] {
        sqlite_atom(1u8, &db, fine).unwrap();
    }
}

#[test]
fn a_directory_at_the_path_is_refused_and_nothing_is_made() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("a-dir");
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("keep.txt"), "keep").unwrap();
    let before = (entries(dir.path()), entries(&target));
    let e = sqlite_atom(0u8, &target, "t").unwrap_err();
    assert!(matches!(e, Error::InvalidPath { .. }), "{e}");
    assert!(e.to_string().contains("directory"), "{e}");
    assert_eq!((entries(dir.path()), entries(&target)), before);
    // With a trailing slash too.
    let slashed = format!("{}/", target.display());
    let e = sqlite_atom(0u8, &slashed, "t").unwrap_err();
    assert!(e.to_string().contains("directory"), "{e}");
    assert_eq!((entries(dir.path()), entries(&target)), before);
}

#[test]
fn a_file_that_is_no_database_is_refused_and_left_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let contents: [&[u8]; 4] = [
        b"{\"not\": \"a database\"}",
        b"SQLite format 2\0 and more",
        b"SQL",
        &[0u8; 8192],
    ];
    for (i, bytes) in contents.iter().enumerate() {
        let path = dir.path().join(format!("file-{i}.db"));
        std::fs::write(&path, bytes).unwrap();
        let before = entries(dir.path());
        let e = sqlite_atom(0u8, &path, "t").unwrap_err();
        assert!(matches!(e, Error::InvalidPath { .. }), "{e}");
        assert!(e.to_string().contains("not a SQLite database"), "{e}");
        assert!(e.to_string().contains("untouched"), "{e}");
        assert_eq!(std::fs::read(&path).unwrap(), *bytes, "byte for byte");
        assert_eq!(entries(dir.path()), before, "no -wal, no -shm");
    }
    // An empty file is a new database.
    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    assert_eq!(*sqlite_atom(5u8, &empty, "t").unwrap().deref(), 5);
}

#[test]
fn a_path_under_a_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain");
    std::fs::write(&file, "x").unwrap();
    let e = sqlite_atom(0u8, file.join("a.db"), "t").unwrap_err();
    assert!(matches!(e, Error::InvalidPath { .. }), "{e}");
    assert!(e.to_string().contains("is a file, not a directory"), "{e}");
    assert_eq!(std::fs::read(&file).unwrap(), b"x");
}

#[test]
fn missing_parent_directories_are_created_as_for_file_atoms() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("a/b/c/state.db");
    let atom = sqlite_atom(3u8, &db, "t").unwrap();
    atom.swap(|n| n + 1).unwrap();
    assert!(db.is_file());
    assert_eq!(stored(&db, "t", "default").as_deref(), Some(&b"4"[..]));
}

#[test]
fn a_table_with_the_wrong_columns_is_refused_and_left_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wrong.db");
    let conn = connect(&db);
    conn.execute_batch(
        "CREATE TABLE users (key TEXT PRIMARY KEY, name TEXT, version INTEGER);
         INSERT INTO users VALUES ('default', 'ada', 3);
         CREATE TABLE pairs (key TEXT, other TEXT, value BLOB, version INTEGER, \
             incarnation INTEGER, updated_at TEXT, PRIMARY KEY (key, other));
         CREATE VIEW seen AS SELECT 1 AS key;",
    )
    .unwrap();
    drop(conn);
    let e = sqlite_atom(0u8, &db, "users").unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, Error::Backend { .. }), "{e}");
    for says in [
        "`users`",
        "`value`",
        "`incarnation`",
        "`updated_at`",
        "nothing was changed",
    ] {
        assert!(text.contains(says), "says {says}: {text}");
    }
    assert!(!text.contains("`version`, "), "version is there: {text}");
    // The table is as it was.
    let row: (String, String, i64) = connect(&db)
        .query_row("SELECT key, name, version FROM users", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!(row, ("default".into(), "ada".into(), 3));
    // Same name in another case: one table to SQLite.
    let e = sqlite_atom(0u8, &db, "USERS").unwrap_err();
    assert!(e.to_string().contains("lacks the column"), "{e}");
    // A primary key of two columns cannot key rows by `key` alone.
    let e = sqlite_atom(0u8, &db, "pairs").unwrap_err();
    assert!(e.to_string().contains("primary key"), "{e}");
    // A view is no table.
    let e = sqlite_atom(0u8, &db, "seen").unwrap_err();
    assert!(e.to_string().contains("is a view"), "{e}");
}

#[test]
fn stored_data_of_another_type_is_an_error_and_the_row_is_left_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("typed.db");
    sqlite_atom("a string".to_string(), &db, "t").unwrap();
    let version = stored_version(&db, "t", "default");
    let e = sqlite_atom(0u64, &db, "t").unwrap_err();
    assert!(matches!(e, Error::Decode { .. }), "{e}");
    let text = e.to_string();
    assert!(text.contains("u64"), "{text}");
    assert!(
        text.contains("table `t` (row `default`) of the SQLite database `"),
        "names the resource: {text}"
    );
    assert!(text.contains("typed.db"), "{text}");
    assert_eq!(
        stored(&db, "t", "default").as_deref(),
        Some(&b"\"a string\""[..])
    );
    assert_eq!(stored_version(&db, "t", "default"), version);
}

#[test]
fn a_value_edited_by_hand_as_text_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hand.db");
    let atom = sqlite_atom(1u64, &db, "hits").unwrap();
    // As the docs say: a text value, and the version bumped.
    connect(&db)
        .execute(
            "UPDATE hits SET value = '41', version = version + 1 WHERE key = 'default'",
            [],
        )
        .unwrap();
    assert_eq!(*atom.swap(|n| n + 1).unwrap(), 42);
    assert_eq!(stored(&db, "hits", "default").as_deref(), Some(&b"42"[..]));
}

#[test]
fn a_database_locked_by_another_process_fails_clearly_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("locked.db");
    let atom = SqliteAtom::builder(&db, "t")
        .busy_timeout(Duration::from_millis(100))
        .open(1u64)
        .unwrap();
    // Another connection (as another process would) holds the write lock.
    let holder = connect(&db);
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let e = atom.swap(|n| n + 1).unwrap_err();
    assert!(matches!(e, Error::Backend { .. }), "{e}");
    let text = e.to_string();
    assert!(text.contains("locked by another process"), "{text}");
    assert!(text.contains("100ms"), "says how long it waited: {text}");
    assert!(text.contains("nothing was written"), "{text}");
    assert!(text.contains("locked.db"), "{text}");
    assert_eq!(*atom.deref(), 1);
    holder.execute_batch("COMMIT").unwrap();
    assert_eq!(stored(&db, "t", "default").as_deref(), Some(&b"1"[..]));
    // Once the lock is gone, the atom goes on.
    assert_eq!(*atom.swap(|n| n + 1).unwrap(), 2);
}

#[test]
fn the_database_is_in_wal_mode_with_the_documented_schema() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("schema.db");
    let atom = SqliteAtom::builder(&db, "hits")
        .key("k")
        .open(serde_json::json!({"name": "grüße 日本語 🚀", "n": 1}))
        .unwrap();
    atom.swap(|v| v.clone()).unwrap();
    let conn = connect(&db);
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let (text, version, updated, kind): (String, i64, String, String) = conn
        .query_row(
            "SELECT CAST(value AS TEXT), version, updated_at, typeof(value) FROM hits WHERE key = 'k'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!(text, r#"{"n":1,"name":"grüße 日本語 🚀"}"#);
    assert_eq!(kind, "blob");
    assert_eq!(version as u64, atom.version().generation);
    assert_eq!(version, 2);
    assert!(updated.ends_with('Z') && updated.contains('T'), "{updated}");
    // The store's accessors.
    let store = SqliteStore::builder(&db, "hits").key("k").open().unwrap();
    assert_eq!(store.table(), "hits");
    assert_eq!(store.key(), "k");
    assert!(store.path().is_absolute());
    assert!(table_exists(&db, "hits"));
    assert!(quoted("a\"b") == "\"a\"\"b\"");
}

#[test]
fn a_binary_codec_is_stored_as_a_blob() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cbor.db");
    let value = (vec![0u8, 255, 0, 10], "é\0".to_string());
    let atom = SqliteAtom::builder(&db, "t")
        .codec(enduro_core::Cbor)
        .open(value.clone())
        .unwrap();
    assert_eq!(*atom.deref(), value);
    let bytes = stored(&db, "t", "default").unwrap();
    // Not text: bytes a text column would not keep as they are.
    assert!(std::str::from_utf8(&bytes).is_err(), "{bytes:?}");
    drop(atom);
    let again = SqliteAtom::builder(&db, "t")
        .codec(enduro_core::Cbor)
        .open((Vec::<u8>::new(), String::new()))
        .unwrap();
    assert_eq!(*again.deref(), value);
}
