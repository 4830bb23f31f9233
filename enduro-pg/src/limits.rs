//! Server-side time limits for the connections a store opens itself: `statement_timeout`
//! and `lock_timeout` a little below the client-side timeout, so that the server ends a
//! statement stuck behind another session's lock with a definite error (nothing written)
//! before the client gives up without knowing.

use std::time::Duration;

use deadpool_postgres::{Hook, HookError};

/// PostgreSQL's largest `statement_timeout` and `lock_timeout`, in milliseconds.
const MAX_MS: u64 = i32::MAX as u64;

/// The server-side limits under one client-side timeout, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ServerLimits {
    statement_ms: u64,
    lock_ms: u64,
}

impl ServerLimits {
    /// `statement_timeout` a tenth of `timeout` below it (at least 1 ms, at most 1 s
    /// below), and `lock_timeout` twice that below, so that a lock wait ends as a lock
    /// timeout (SQL state 55P03, which says what happened) rather than a statement timeout.
    /// Never 0, which would mean no limit.
    pub(crate) fn under(timeout: Duration) -> Self {
        let total = u64::try_from(timeout.as_millis())
            .unwrap_or(MAX_MS)
            .min(MAX_MS);
        let margin = (total / 10).clamp(1, 1000);
        ServerLimits {
            statement_ms: total.saturating_sub(margin).max(1),
            lock_ms: total.saturating_sub(2 * margin).max(1),
        }
    }

    fn sql(self) -> String {
        format!(
            "SET statement_timeout = {}; SET lock_timeout = {}",
            self.statement_ms, self.lock_ms
        )
    }

    /// A `post_create` hook that sets the limits on each new connection, itself bounded by
    /// `timeout`.
    pub(crate) fn hook(self, timeout: Duration) -> Hook {
        let sql = self.sql();
        Hook::async_fn(move |client, _| {
            let sql = sql.clone();
            Box::pin(async move {
                match tokio::time::timeout(timeout, client.batch_execute(&sql)).await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(HookError::Backend(e)),
                    Err(_) => Err(HookError::message(format!(
                        "no answer within {timeout:?} to `{sql}` on a new connection"
                    ))),
                }
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(timeout: Duration) -> (u64, u64) {
        let l = ServerLimits::under(timeout);
        (l.statement_ms, l.lock_ms)
    }

    #[test]
    fn limits_sit_a_little_below_the_timeout() {
        assert_eq!(limits(Duration::from_secs(30)), (29_000, 28_000));
        assert_eq!(limits(Duration::from_secs(2)), (1_800, 1_600));
        assert_eq!(limits(Duration::from_millis(5)), (4, 3));
        assert_eq!(limits(Duration::from_millis(1)), (1, 1));
        assert_eq!(limits(Duration::MAX), (MAX_MS - 1000, MAX_MS - 2000));
        assert_eq!(
            ServerLimits::under(Duration::from_secs(30)).sql(),
            "SET statement_timeout = 29000; SET lock_timeout = 28000"
        );
    }
}
