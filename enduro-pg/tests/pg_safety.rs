//! PostgreSQL safety: table names that try to inject SQL, passwords kept out of errors and
//! `Debug`, values with NUL, non-ASCII text and 64 MiB, the readable schema, and the
//! blocking API inside a tokio runtime, and the upgrade of a table made by enduro 0.1.
#![allow(clippy::unwrap_used)]

use std::io::Write;

mod common;

use common::pg_cluster::database_url;
use common::{assert_no_secret, password_of, unique_key};
use enduro_core::{Codec, CodecError, Error};
use enduro_pg::{PgAtom, PgStore};

/// Runs `f` on a private runtime with a pool of `url`, for reading around enduro.
fn sql<R>(url: &str, f: impl AsyncFnOnce(&enduro_pg::PgStore) -> R) -> R {
    let runtime = common::current_thread();
    runtime.block_on(async {
        let store = PgStore::builder(url, "enduro_sql_helper")
            .open()
            .await
            .unwrap();
        f(&store).await
    })
}

/// The `value` column of row `key` in `table` (a quoted name), read with plain SQL.
fn stored_text(url: &str, quoted_table: &str, key: &str) -> Option<String> {
    let query = format!("SELECT value FROM {quoted_table} WHERE key = $1");
    let key = key.to_owned();
    sql(url, async move |store| {
        let client = store.pool().get().await.unwrap();
        client
            .query_opt(&query, &[&key])
            .await
            .unwrap()
            .map(|row| row.get::<_, String>(0))
    })
}

/// Whether a table with exactly this (unquoted) name exists in schema `public`.
fn table_exists(url: &str, name: &str) -> bool {
    let name = name.to_owned();
    sql(url, async move |store| {
        let client = store.pool().get().await.unwrap();
        client
            .query_one(
                "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename = $1",
                &[&name],
            )
            .await
            .unwrap()
            .get::<_, i64>(0)
            == 1
    })
}

#[test]
fn injected_table_names_run_nothing_but_our_statements() {
    let Some(url) = database_url() else { return };
    let victim = format!("y_{}", std::process::id());
    let guard = PgAtom::builder(&url, &victim)
        .key("guard")
        .open(42u64)
        .unwrap();
    let names = [
        format!(r#"x"; DROP TABLE {victim}; --"#),
        format!(r#"{victim}"; DROP TABLE {victim}; --"#),
        format!(r#"x'); DROP TABLE {victim}; --"#),
        format!(r#"x" (key text); DROP TABLE "{victim}"; CREATE TABLE "z"#),
        format!("x\"\"; DROP TABLE {victim};"),
    ];
    for name in &names {
        let atom = PgAtom::builder(&url, name)
            .key(format!("k'); DROP TABLE {victim}; --"))
            .drop_table_on_release(true)
            .open(vec![1u8])
            .unwrap();
        atom.swap(|v| [v.clone(), vec![2]].concat()).unwrap();
        assert!(table_exists(&url, name), "a table named exactly {name:?}");
        assert_eq!(*atom.refresh().unwrap(), [1, 2]);
        atom.release().unwrap();
        assert!(!table_exists(&url, name), "{name:?} dropped on release");
        assert!(table_exists(&url, &victim), "{name:?} dropped the victim");
    }
    // A schema-qualified name whose table part tries the same.
    let name = format!(r#"public.x"; DROP TABLE {victim}; --"#);
    let atom = PgAtom::builder(&url, &name).open(1u8).unwrap();
    atom.swap(|n| n + 1).unwrap();
    assert!(table_exists(
        &url,
        &format!(r#"x"; DROP TABLE {victim}; --"#)
    ));
    atom.release().unwrap();
    // The victim is intact, value and all.
    assert_eq!(*guard.refresh().unwrap(), 42);
    assert_eq!(
        stored_text(&url, &format!("\"{victim}\""), "guard").as_deref(),
        Some("42")
    );
    // Names that cannot be one table are refused before anything runs.
    for bad in ["", "a.b.c", "a..b", "x\0y", &"n".repeat(64)] {
        let e = PgAtom::builder(&url, bad).open(0u8).unwrap_err();
        assert!(e.to_string().contains("invalid table name"), "{bad:?}: {e}");
    }
    guard.release().unwrap();
}

#[test]
fn schema_is_readable_with_plain_sql() {
    let Some(url) = database_url() else { return };
    let key = unique_key("readable");
    let atom = PgAtom::builder(&url, "enduro_readable")
        .key(key.as_str())
        .open(serde_json::json!({"name": "grüße 日本語 🚀", "n": 1}))
        .unwrap();
    assert_eq!(
        stored_text(&url, "\"enduro_readable\"", &key).as_deref(),
        Some(r#"{"n":1,"name":"grüße 日本語 🚀"}"#)
    );
    atom.reset(serde_json::json!([1])).unwrap();
    let (version, updated) = sql(&url, {
        let key = key.clone();
        async move |store: &PgStore| {
            let client = store.pool().get().await.unwrap();
            let row = client
                .query_one(
                    "SELECT version, updated_at IS NOT NULL FROM enduro_readable WHERE key = $1",
                    &[&key],
                )
                .await
                .unwrap();
            (row.get::<_, i64>(0), row.get::<_, bool>(1))
        }
    });
    assert_eq!(version as u64, atom.version().generation);
    assert!(updated);
    atom.release().unwrap();
    assert_eq!(stored_text(&url, "\"enduro_readable\"", &key), None);
}

#[test]
fn passwords_never_show() {
    let Some(url) = database_url() else { return };
    let secret = "SECRET-pw-4242";
    // Debug of builders, in both connection string forms.
    for db in [
        format!("postgres://app:{secret}@127.0.0.1:1/app"),
        format!("host=127.0.0.1 port=1 user=app password={secret} dbname=app"),
        format!("host=127.0.0.1 port=1 user=app password='{secret} x' dbname=app"),
        format!("postgres://app@127.0.0.1:1/app?password={secret}"),
    ] {
        let builder = PgAtom::<u64>::builder(&db, "t");
        assert!(!format!("{builder:?}").contains(secret), "{builder:?}");
        // Nothing listens on port 1: connecting fails.
        let e = builder.max_connections(1).open(0).unwrap_err();
        assert_no_secret(&e, secret);
        // A connection string that does not parse.
        let e = PgAtom::<u64>::builder(&format!("{db} port=x&port=y"), "t")
            .open(0)
            .unwrap_err();
        assert_no_secret(&e, secret);
    }
    // A real server, a wrong password (when DATABASE_URL is a URL we can rewrite).
    if let Some(wrong) = with_password(&url, secret) {
        let e = PgAtom::<u64>::builder(&wrong, "t").open(0).unwrap_err();
        assert_no_secret(&e, secret);
    }
    // A real server, the right password: the atom's resource and Debug hide it.
    if let Some(password) = password_of(&url) {
        let atom = PgAtom::builder(&url, "enduro_redaction")
            .key(unique_key("redaction"))
            .open(0u64)
            .unwrap();
        assert!(!atom.resource().contains(&password), "{}", atom.resource());
        assert!(!format!("{atom:?}").contains(&password));
        atom.release().unwrap();
    }
}

/// `url` (a postgres:// URL) with its password replaced.
fn with_password(url: &str, password: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let (userinfo, host) = rest.rsplit_once('@').unwrap_or(("postgres", rest));
    let user = userinfo.split(':').next()?;
    Some(format!("{scheme}://{user}:{password}@{host}"))
}

#[test]
fn nul_and_non_ascii_round_trip_in_json() {
    let Some(url) = database_url() else { return };
    let key = unique_key("text");
    let value = vec![
        "a\0b".to_string(),
        "\0".into(),
        "grüße, 日本語, emoji 🚀, RTL שלום".into(),
        "\u{1}\u{1f}\u{7f}\u{fffd}".into(),
    ];
    let atom = PgAtom::builder(&url, "enduro_values")
        .key(key.as_str())
        .open(value.clone())
        .unwrap();
    let again = PgAtom::builder(&url, "enduro_values")
        .key(key.as_str())
        .open(Vec::<String>::new())
        .unwrap();
    assert_eq!(*again.deref(), value);
    let text = stored_text(&url, "\"enduro_values\"", &key).unwrap();
    assert!(text.contains(r"a\u0000b"), "{text}");
    atom.release().unwrap();
}

/// Writes its bytes raw: a codec whose output PostgreSQL text cannot hold.
struct Raw;

impl Codec for Raw {
    fn name(&self) -> &'static str {
        "raw"
    }
    fn encode<T: serde::Serialize + ?Sized>(
        &self,
        value: &T,
        out: &mut dyn Write,
    ) -> Result<(), CodecError> {
        let bytes: Vec<u8> = serde_json::from_value(serde_json::to_value(value)?)?;
        out.write_all(&bytes)?;
        Ok(())
    }
    fn decode<T: serde::de::DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, CodecError> {
        Ok(serde_json::from_value(serde_json::to_value(bytes)?)?)
    }
}

#[test]
fn raw_nul_and_invalid_utf8_fail_clearly_and_change_nothing() {
    let Some(url) = database_url() else { return };
    let key = unique_key("raw");
    let atom = PgAtom::builder(&url, "enduro_values")
        .key(key.as_str())
        .codec(Raw)
        .open(b"ok".to_vec())
        .unwrap();
    for (bad, says) in [(b"a\0b".to_vec(), "NUL"), (vec![0xff, 0xfe], "UTF-8")] {
        let e = atom.reset(bad).unwrap_err();
        assert!(e.to_string().contains(says), "{e}");
        assert!(e.to_string().contains("nothing was written"), "{e}");
        assert_eq!(*atom.deref(), b"ok");
        assert_eq!(
            stored_text(&url, "\"enduro_values\"", &key).as_deref(),
            Some("ok")
        );
    }
    assert_eq!(*atom.reset(b"fine".to_vec()).unwrap(), b"fine");
    atom.release().unwrap();
}

#[test]
fn sixty_four_mib_round_trips() {
    let Some(url) = database_url() else { return };
    let key = unique_key("big");
    const MIB: usize = 1 << 20;
    let atom = PgAtom::builder(&url, "enduro_values")
        .key(key.as_str())
        .open(String::new())
        .unwrap();
    // 64 MiB of JSON exactly: the string and its two quotes; non-ASCII at both ends.
    let mut big = "é".to_string();
    big.push_str(&"x".repeat(64 * MIB - 2 - 2 - 4));
    big.push('🚀');
    atom.reset(big.clone()).unwrap();
    let again = PgAtom::builder(&url, "enduro_values")
        .key(key.as_str())
        .open(String::new())
        .unwrap();
    assert_eq!(again.deref().len(), 64 * MIB - 2);
    assert!(*again.deref() == big);
    assert_eq!(*again.swap(|s| s[..3].to_string()).unwrap(), "éx");
    assert_eq!(*atom.refresh().unwrap(), "éx");
    atom.release().unwrap();
}

#[test]
fn blocking_api_inside_a_current_thread_runtime_does_not_panic() {
    let Some(url) = database_url() else { return };
    let runtime = common::current_thread();
    runtime.block_on(async {
        let atom = PgAtom::builder(&url, "enduro_inside")
            .key(unique_key("current"))
            .open(0u64)
            .unwrap();
        assert_eq!(*atom.swap(|n| n + 1).unwrap(), 1);
        assert_eq!(*atom.refresh().unwrap(), 1);
        atom.release().unwrap();
        drop(atom); // dropping its runtime inside ours must not panic either
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_api_inside_a_multi_thread_runtime_does_not_panic() {
    let Some(url) = database_url() else { return };
    let atom =
        enduro_pg::postgresql_atom(0u64, &url, &format!("enduro_inside_{}", std::process::id()))
            .unwrap();
    assert_eq!(*atom.swap(|n| n + 1).unwrap(), 1);
    // And from a spawned task, next to an async atom on the same row.
    let table = format!("enduro_inside_{}", std::process::id());
    let async_atom = enduro_pg::postgresql_atom_async(0u64, &url, &table)
        .await
        .unwrap();
    assert_eq!(*async_atom.deref(), 1);
    let blocking = atom.clone();
    tokio::spawn(async move { blocking.swap(|n| n + 1).unwrap() })
        .await
        .unwrap();
    assert_eq!(*async_atom.swap(|n| n + 1).await.unwrap(), 3);
    async_atom.release().await.unwrap();
    assert!(matches!(atom.swap(|n| n + 1), Err(Error::Released)));
}

#[test]
fn missing_schema_and_unreachable_server_say_what_to_do() {
    let Some(url) = database_url() else { return };
    let e = PgAtom::builder(&url, "no_such_schema_here.t")
        .open(0u8)
        .unwrap_err();
    assert!(e.to_string().contains("create the schema first"), "{e}");
    let e = PgAtom::builder("postgres://u@127.0.0.1:1/db", "t")
        .open(0u8)
        .unwrap_err();
    assert!(e.to_string().contains("is PostgreSQL running"), "{e}");
    assert!(e.to_string().contains("u@127.0.0.1:1/db"), "{e}");
}

/// A table made by enduro 0.1 has no `incarnation` column: opening adds it (once), keeps
/// the rows already there, and from then on a row released and made again is told apart
/// from the old one by handles that knew the old one.
#[test]
fn a_table_of_enduro_0_1_gets_its_incarnation_column_and_keeps_its_rows() {
    let Some(url) = database_url() else { return };
    let table = unique_key("legacy");
    let create = format!(
        "CREATE TABLE \"{table}\" (key text PRIMARY KEY, value text NOT NULL, \
         version bigint NOT NULL, updated_at timestamptz NOT NULL DEFAULT now()); \
         INSERT INTO \"{table}\" (key, value, version) VALUES ('k', '41', 7)"
    );
    sql(&url, async move |store| {
        let client = store.pool().get().await.unwrap();
        client.batch_execute(&create).await.unwrap();
    });
    let old = PgAtom::builder(&url, &table).key("k").open(0u64).unwrap();
    assert_eq!(*old.deref(), 41, "the row made before the upgrade is kept");
    assert_eq!(*old.swap(|n| n + 1).unwrap(), 42);
    let query = format!(
        "SELECT count(*) FROM information_schema.columns \
         WHERE table_name = '{table}' AND column_name = 'incarnation'"
    );
    let columns = sql(&url, async move |store| {
        let client = store.pool().get().await.unwrap();
        client
            .query_one(&query, &[])
            .await
            .unwrap()
            .get::<_, i64>(0)
    });
    assert_eq!(columns, 1, "opening added the column");

    // Released by another handle and made again: the old handle's row is gone.
    PgAtom::builder(&url, &table)
        .key("k")
        .open(0u64)
        .unwrap()
        .release()
        .unwrap();
    let new = PgAtom::builder(&url, &table).key("k").open(5u64).unwrap();
    assert!(matches!(old.swap(|n| n + 1), Err(Error::Released)));
    assert!(old.is_released());
    assert_eq!(
        stored_text(&url, &format!("\"{table}\""), "k").as_deref(),
        Some("5")
    );
    assert_eq!(*new.swap(|n| n + 1).unwrap(), 6);
    let drop = format!("DROP TABLE \"{table}\"");
    sql(&url, async move |store| {
        let client = store.pool().get().await.unwrap();
        client.batch_execute(&drop).await.unwrap();
    });
}
