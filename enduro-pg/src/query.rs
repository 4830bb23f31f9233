//! [`Runner`]: runs the store's statements on pooled connections, each bounded in time,
//! prepares a cached statement again when the table changed under it, and reports every
//! failure as a [`Failure`].

use std::future::Future;
use std::time::Duration;

use std::sync::Arc;

use bytes::Bytes;
use deadpool_postgres::{Object, Pool, PoolError, TimeoutType};
use futures_util::SinkExt;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

use crate::failure::{self, Failure};
use crate::pools::Shared;
use crate::text;

/// Statement parameters, as tokio-postgres takes them.
pub(crate) type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// Whether to close a connection after its answer instead of giving it back to the pool.
pub(crate) type Close<'a> = &'a (dyn Fn(Option<&Row>) -> bool + Sync);

/// Runs statements on connections from one pool, each call on a connection bounded by
/// `timeout`.
pub(crate) struct Runner {
    pool: Pool,
    /// The shared pool the store made itself (`None` for a pool given by the caller):
    /// where it connects, and its TLS for cancel requests.
    shared: Option<Arc<Shared>>,
    timeout: Duration,
}

impl Runner {
    /// A runner on a pool the caller gave.
    pub(crate) fn new(pool: Pool, timeout: Duration) -> Self {
        Runner {
            pool,
            shared: None,
            timeout,
        }
    }

    /// A runner on a pool the store made (shared with the process's other stores of the
    /// same connection string).
    pub(crate) fn shared(shared: Arc<Shared>, timeout: Duration) -> Self {
        Runner {
            pool: shared.pool.clone(),
            shared: Some(shared),
            timeout,
        }
    }

    pub(crate) fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The shared pool the store made itself, `None` for a pool the caller gave.
    pub(crate) fn own_pool(&self) -> Option<&Arc<Shared>> {
        self.shared.as_ref()
    }

    /// A connection from the pool, waiting at most the timeout for one: the store's own
    /// pool is built with that wait timeout; a caller's pool may have none (or no runtime
    /// to time one with), so the wait for it is bounded here.
    async fn connection(&self) -> Result<Object, Failure> {
        let (got, wait) = match &self.shared {
            Some(_) => (self.pool.get().await, Some(self.timeout)),
            None => match self.bounded(self.pool.get()).await {
                Some(got) => (got, None),
                None => (
                    Err(PoolError::Timeout(TimeoutType::Wait)),
                    Some(self.timeout),
                ),
            },
        };
        got.map_err(|e| {
            let dest = self.shared.as_ref().map(|shared| &*shared.dest);
            Failure::NoConnection(failure::no_connection(&e, dest, wait), e)
        })
    }

    /// `call`'s output, or `None` when it did not finish within the timeout.
    async fn bounded<F: Future>(&self, call: F) -> Option<F::Output> {
        tokio::time::timeout(self.timeout, call).await.ok()
    }

    /// Gives up on `client`, whose call got no answer in time: sends a cancel request for
    /// whatever it runs (in the background on the process-wide runtime, best effort,
    /// itself bounded by the timeout; over TLS when the connection used it) and drops the
    /// connection, so that the pool never hands it out again.
    fn abandon(&self, client: Object, sent: bool) -> Failure {
        let cancel = client.cancel_token();
        // Taken out of the pool and dropped: its connection task ends, the socket closes.
        drop(Object::take(client));
        self.give_up(cancel, sent)
    }

    /// Sends a cancel request with `cancel` (see [`abandon`](Runner::abandon)), for a
    /// connection already out of the pool and dropped.
    fn give_up(&self, cancel: tokio_postgres::CancelToken, sent: bool) -> Failure {
        let timeout = self.timeout;
        let tls = self
            .shared
            .as_ref()
            .map(|shared| shared.tls.tracked(Arc::default()));
        if let Ok(runtime) = crate::runtime::handle() {
            runtime.spawn(async move {
                let _ = match tls {
                    Some(tls) => tokio::time::timeout(timeout, cancel.cancel_query(tls)).await,
                    None => tokio::time::timeout(timeout, cancel.cancel_query(NoTls)).await,
                };
            });
        }
        Failure::TimedOut {
            after: self.timeout,
            sent,
        }
    }

    /// Hands `failure` back, dropping `client` unless the failure left it healthy (a
    /// definite error from the server, after which its session goes on): a connection
    /// that closed, failed mid-answer or was ended by a FATAL error is never reused.
    fn failed(client: Object, failure: Failure) -> Failure {
        if !matches!(failure, Failure::Refused(_)) {
            drop(Object::take(client));
        }
        failure
    }

    /// Runs `sql`, prepared once per connection and cached, which returns at most one
    /// row.
    ///
    /// It runs once more, on another connection, when the first attempt surely ran
    /// nothing and another may work:
    /// - a cached statement whose table changed under it (an operator's `ALTER TABLE ...
    ///   TYPE`: "cached plan must not change result type", SQL state 0A000) is refused by
    ///   the server without running; it is dropped from every connection's cache first,
    ///   so that it is prepared afresh;
    /// - a connection the server had closed while it sat in the pool (a restart, an
    ///   operator's `pg_terminate_backend`) fails before the statement is sent.
    pub(crate) async fn query_opt(
        &self,
        sql: &str,
        params: Params<'_>,
    ) -> Result<Option<Row>, Failure> {
        self.query_opt_closing(sql, params, &|_| false).await
    }

    /// [`query_opt`](Runner::query_opt), but the connection is closed instead of going
    /// back to the pool when `close` says so of the answer (`None`: no row, or an error).
    /// tokio-postgres keeps its buffers as large as a connection ever needed them, so
    /// this is for statements that moved a large value (see [`crate::text`]).
    pub(crate) async fn query_opt_closing(
        &self,
        sql: &str,
        params: Params<'_>,
        close: Close<'_>,
    ) -> Result<Option<Row>, Failure> {
        match self.query_opt_once(sql, params, close).await {
            Err(failure) if failure.is_stale_plan() => {
                self.pool.manager().statement_caches.remove(sql, &[]);
                self.query_opt_once(sql, params, close).await
            }
            Err(failure) if failure.never_sent() => self.query_opt_once(sql, params, close).await,
            result => result,
        }
    }

    async fn query_opt_once(
        &self,
        sql: &str,
        params: Params<'_>,
        close: Close<'_>,
    ) -> Result<Option<Row>, Failure> {
        let client = self.connection().await?;
        let statement = match self.bounded(client.prepare_cached(sql)).await {
            Some(Ok(statement)) => statement,
            Some(Err(e)) => return Err(Self::failed(client, Failure::preparing(e))),
            None => return Err(self.abandon(client, false)),
        };
        if client.is_closed() {
            return Err(Self::failed(client, Failure::Closed));
        }
        match self.bounded(client.query_opt(&statement, params)).await {
            Some(Ok(row)) => {
                if close(row.as_ref()) {
                    drop(Object::take(client));
                }
                Ok(row)
            }
            Some(Err(e)) if close(None) => {
                drop(Object::take(client));
                Err(Failure::after_sending(e))
            }
            Some(Err(e)) => Err(Self::failed(client, Failure::after_sending(e))),
            None => Err(self.abandon(client, true)),
        }
    }

    /// Runs `sql` after streaming `value` into a temporary table `pg_temp.enduro_upload`
    /// (one `text` column, one row) that the transaction makes and drops, from which
    /// `sql` (an INSERT or UPDATE ... RETURNING of at most one row) reads it: for
    /// [`LARGE`](crate::text::LARGE) values, which go to the server in chunks by COPY, so
    /// the driver never buffers them whole (see [`crate::text`]). Without a row back the
    /// transaction is rolled back.
    ///
    /// Anything that fails before the COMMIT is sent is [`Failure::Uncommitted`]: nothing
    /// was written (a role without the right to make temporary tables gets SQL state
    /// 42501 here). The connection is closed afterwards, whatever happened. Like
    /// [`query_opt`](Runner::query_opt), it runs once more on another connection when the
    /// first surely sent nothing.
    pub(crate) async fn query_opt_staged(
        &self,
        value: &[u8],
        sql: &str,
        params: Params<'_>,
    ) -> Result<Option<Row>, Failure> {
        match self.staged_once(value, sql, params).await {
            Err(failure) if failure.never_sent() => self.staged_once(value, sql, params).await,
            result => result,
        }
    }

    async fn staged_once(
        &self,
        value: &[u8],
        sql: &str,
        params: Params<'_>,
    ) -> Result<Option<Row>, Failure> {
        // The store refuses values over PostgreSQL's 1 GiB before they get here.
        let len = i32::try_from(value.len()).unwrap_or(i32::MAX);
        let client = self.connection().await?;
        if client.is_closed() {
            return Err(Self::failed(client, Failure::Closed));
        }
        // Out of the pool from the start: it carries a large value, so its buffers would
        // stay that large, and if this call is dropped half-way it must not go back with a
        // transaction under way.
        let mut client = Object::take(client);
        let cancel = client.cancel_token();
        let committing = std::sync::atomic::AtomicBool::new(false);
        let work = async {
            let transaction = client.transaction().await?;
            transaction
                .batch_execute(
                    "CREATE TEMPORARY TABLE enduro_upload (value text NOT NULL) ON COMMIT DROP",
                )
                .await?;
            let sink = transaction
                .copy_in("COPY pg_temp.enduro_upload (value) FROM STDIN (FORMAT binary)")
                .await?;
            let mut sink = std::pin::pin!(sink);
            sink.feed(text::copy_head(len)).await?;
            for chunk in value.chunks(text::CHUNK) {
                sink.feed(Bytes::copy_from_slice(chunk)).await?;
            }
            sink.feed(text::copy_tail()).await?;
            sink.as_mut().finish().await?;
            let row = transaction.query_opt(sql, params).await?;
            if row.is_some() {
                committing.store(true, std::sync::atomic::Ordering::Relaxed);
                transaction.commit().await?;
            }
            // Without a row, dropping the transaction rolls it back.
            Ok::<_, tokio_postgres::Error>(row)
        };
        let outcome = self.bounded(work).await;
        drop(client);
        let committing = committing.load(std::sync::atomic::Ordering::Relaxed);
        let failure = match outcome {
            Some(Ok(row)) => return Ok(row),
            Some(Err(e)) => Failure::after_sending(e),
            None => self.give_up(cancel, committing),
        };
        Err(if committing {
            failure
        } else {
            Failure::Uncommitted(Box::new(failure))
        })
    }

    /// Runs `sql` unprepared (for statements run once), returning the number of rows it
    /// changed.
    pub(crate) async fn execute(&self, sql: &str, params: Params<'_>) -> Result<u64, Failure> {
        let client = self.connection().await?;
        if client.is_closed() {
            return Err(Self::failed(client, Failure::Closed));
        }
        match self.bounded(client.execute(sql, params)).await {
            Some(Ok(count)) => Ok(count),
            Some(Err(e)) => Err(Self::failed(client, Failure::after_sending(e))),
            None => Err(self.abandon(client, true)),
        }
    }

    /// Runs `batch` (statements without parameters, as one simple query: one implicit
    /// transaction), bounded by the timeout.
    pub(crate) async fn batch(&self, batch: &str) -> Result<(), Failure> {
        let client = self.connection().await?;
        if client.is_closed() {
            return Err(Self::failed(client, Failure::Closed));
        }
        match self.bounded(client.batch_execute(batch)).await {
            Some(Ok(())) => Ok(()),
            Some(Err(e)) => Err(Self::failed(client, Failure::after_sending(e))),
            None => Err(self.abandon(client, true)),
        }
    }

    /// Runs `batch` (statements without parameters) in a transaction that first takes the
    /// transaction-scoped advisory lock named `lock`, so that callers with the same name
    /// take turns. The whole transaction is bounded by the timeout.
    pub(crate) async fn locked_batch(&self, lock: &str, batch: &str) -> Result<(), Failure> {
        let mut client = self.connection().await?;
        if client.is_closed() {
            return Err(Self::failed(client, Failure::Closed));
        }
        let work = async {
            let transaction = client.transaction().await?;
            transaction
                .execute(
                    "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                    &[&lock],
                )
                .await?;
            transaction.batch_execute(batch).await?;
            transaction.commit().await
        };
        match self.bounded(work).await {
            Some(Ok(())) => Ok(()),
            Some(Err(e)) => Err(Self::failed(client, Failure::after_sending(e))),
            None => Err(self.abandon(client, true)),
        }
    }
}
