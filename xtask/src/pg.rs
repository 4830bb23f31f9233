//! `cargo xtask pg`: a private throwaway PostgreSQL cluster for manual use (the same one
//! the tests start), on a free port of 127.0.0.1. Prints its URL, then waits until stdin
//! is closed (Ctrl-D) or Ctrl-C, and stops it and removes its files.

use std::io::Read;

use crate::Result;

// The tests' harness, shared as source: it uses the standard library only.
#[path = "../../enduro-pg/tests/common/pg_cluster.rs"]
mod pg_cluster;

pub(crate) fn run() -> Result {
    let cluster =
        pg_cluster::PgCluster::start().map_err(|e| format!("cannot start PostgreSQL: {e}"))?;
    println!("{}", cluster.url());
    eprintln!(
        "xtask: PostgreSQL is listening on 127.0.0.1:{} (server log: {}).\n\
         xtask: try  DATABASE_URL={} cargo test -p enduro-pg\n\
         xtask: press Ctrl-C or Ctrl-D to stop it and remove its files.",
        cluster.port(),
        cluster.log_path().display(),
        cluster.url(),
    );
    // Ctrl-C ends this process before `cluster` drops; the cluster's watchdog then
    // stops the server all the same.
    let mut rest = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut rest);
    drop(cluster);
    eprintln!("xtask: PostgreSQL stopped");
    Ok(())
}
