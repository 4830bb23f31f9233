//! [`Runner`]: runs the store's statements on pooled connections, prepares a cached
//! statement again when the table changed under it, and reports every failure as a
//! [`Failure`].

use deadpool_postgres::{Object, Pool};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::failure::Failure;

/// Statement parameters, as tokio-postgres takes them.
pub(crate) type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// Runs statements on connections from one pool.
pub(crate) struct Runner {
    pool: Pool,
}

impl Runner {
    pub(crate) fn new(pool: Pool) -> Self {
        Runner { pool }
    }

    pub(crate) fn pool(&self) -> &Pool {
        &self.pool
    }

    async fn connection(&self) -> Result<Object, Failure> {
        self.pool.get().await.map_err(Failure::NoConnection)
    }

    /// Runs `sql`, prepared once per connection and cached, which returns at most one
    /// row.
    ///
    /// A cached statement whose table changed under it (an operator's `ALTER TABLE ...
    /// TYPE`: "cached plan must not change result type") is refused by the server without
    /// running; it is then dropped from every connection's cache and run once more,
    /// prepared afresh.
    pub(crate) async fn query_opt(
        &self,
        sql: &str,
        params: Params<'_>,
    ) -> Result<Option<Row>, Failure> {
        match self.query_opt_once(sql, params).await {
            Err(failure) if failure.is_stale_plan() => {
                self.pool.manager().statement_caches.remove(sql, &[]);
                self.query_opt_once(sql, params).await
            }
            result => result,
        }
    }

    async fn query_opt_once(&self, sql: &str, params: Params<'_>) -> Result<Option<Row>, Failure> {
        let client = self.connection().await?;
        let statement = client
            .prepare_cached(sql)
            .await
            .map_err(Failure::preparing)?;
        if client.is_closed() {
            return Err(Failure::Closed);
        }
        client
            .query_opt(&statement, params)
            .await
            .map_err(Failure::after_sending)
    }

    /// Runs `sql` unprepared (for statements run once), returning the number of rows it
    /// changed.
    pub(crate) async fn execute(&self, sql: &str, params: Params<'_>) -> Result<u64, Failure> {
        let client = self.connection().await?;
        if client.is_closed() {
            return Err(Failure::Closed);
        }
        client
            .execute(sql, params)
            .await
            .map_err(Failure::after_sending)
    }

    /// Runs `batch` (statements without parameters) in a transaction that first takes the
    /// transaction-scoped advisory lock named `lock`, so that callers with the same name
    /// take turns.
    pub(crate) async fn locked_batch(&self, lock: &str, batch: &str) -> Result<(), Failure> {
        let mut client = self.connection().await?;
        if client.is_closed() {
            return Err(Failure::Closed);
        }
        let transaction = client.transaction().await.map_err(Failure::after_sending)?;
        transaction
            .execute(
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                &[&lock],
            )
            .await
            .map_err(Failure::after_sending)?;
        transaction
            .batch_execute(batch)
            .await
            .map_err(Failure::after_sending)?;
        transaction.commit().await.map_err(Failure::after_sending)
    }
}
