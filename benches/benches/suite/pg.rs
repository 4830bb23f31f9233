//! The PostgreSQL rows: waiting for the enduro-pg crate.

use criterion::Criterion;
use enduro_benches::report::Row;

use crate::Timing;
use crate::ops::Results;

/// The Criterion group of the one-task scenario.
pub const PG_1TASK: &str = "pg_small_1task";

/// The database the pg rows run against.
#[derive(Debug)]
pub struct Cluster;

impl Cluster {
    /// Starts (or finds) the database.
    pub fn start() -> Cluster {
        Cluster
    }
}

/// The per-operation pg group.
pub fn run_per_op(_c: &mut Criterion, _results: &mut Results, _pg: &Cluster) {}

/// The pg rows.
pub fn rows(_results: &Results, _pg: &Cluster, _timing: Timing) -> Vec<Row> {
    crate::no_pg_rows("the enduro-pg crate has not landed yet")
}
