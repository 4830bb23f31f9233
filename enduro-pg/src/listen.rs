//! The listener of one pool: at most one connection that `LISTEN`s on the channels of the
//! tables its live atoms follow, and routes each notification to the nudges of the atoms
//! of that table and row (see [`crate::notify`] for what commits send).
//!
//! It scales with pools, not atoms: a thousand live atoms of one connection string share
//! one connection and one task. The task (on the process-wide runtime) starts with the
//! first follower and ends, closing its connection, when the last follower's subscription
//! drops. It `LISTEN`s on a channel while someone follows it and `UNLISTEN`s when no one
//! does.
//!
//! Nothing is missed for long:
//! - a follower is nudged once its channel's `LISTEN` is in force on the connection, which
//!   covers the commits between its atom's load and that moment;
//! - a lost connection (a server restart, a network failure, noticed at once or through
//!   TCP keepalives) is opened again, with a delay that doubles from
//!   [`MIN_DELAY`] up to [`MAX_DELAY`] while attempts fail (it only waits, never spins);
//!   every channel is listened to again and every follower nudged once, which covers what
//!   was committed meanwhile.
//!
//! `follow` never blocks and never waits for the connection: it registers the nudge and
//! wakes (or starts) the task. Nudges are called without the listener's lock held.

use std::collections::{HashMap, HashSet};
use std::future::poll_fn;
use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use enduro_core::{Nudge, Subscription};
use futures_util::future::{Either, select};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::runtime::Handle;
use tokio::sync::{Notify, oneshot};
use tokio_postgres::{AsyncMessage, Client, Config, Connection};

use crate::notify;
use crate::pools::AbortOnDrop;
use crate::tls::Tls;

/// The first wait before opening a lost connection again.
pub(crate) const MIN_DELAY: Duration = Duration::from_millis(50);
/// The longest wait between two attempts to open the connection.
pub(crate) const MAX_DELAY: Duration = Duration::from_secs(5);
/// A connection that lasted this long starts the next round of attempts at
/// [`MIN_DELAY`] again; one lost sooner keeps doubling the delay, so a server that
/// accepts connections and closes them at once is not hammered.
const STABLE: Duration = Duration::from_secs(10);
/// TCP keepalives of the listening connection, which otherwise only reads: a peer gone
/// silently (a network failure, no reset) is noticed within about
/// `idle + interval * retries`.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(30);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEPALIVE_RETRIES: u32 = 3;

/// One pool's listener: its followers, and how to open its connection.
pub(crate) struct Listener {
    /// The pool's configuration (TLS and timeouts alike), with keepalives for listening.
    config: Config,
    tls: Tls,
    runtime: Handle,
    /// The bound on one attempt to open the connection.
    attempt: Duration,
    /// The bound on one round of `LISTEN` / `UNLISTEN` statements.
    timeout: Duration,
    state: Mutex<State>,
    /// Tells the task that the followed channels changed.
    wake: Notify,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.state();
        f.debug_struct("Listener")
            .field("channels", &state.channels.len())
            .field("running", &state.running)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct State {
    next: u64,
    /// The followers, by channel and row tag.
    channels: HashMap<String, HashMap<String, Vec<Follower>>>,
    /// Whether the task runs (or is about to).
    running: bool,
}

struct Follower {
    id: u64,
    nudge: Nudge,
    /// Nudged since its channel's `LISTEN` is in force on the current connection.
    confirmed: bool,
}

/// How a connection's session ended.
enum Ended {
    /// No one follows any more: the task ends.
    Idle,
    /// The connection was lost (or a `LISTEN` failed): open another.
    Lost,
}

impl Listener {
    /// The listener of a pool connecting with `config` and `tls`, idle until someone
    /// follows.
    pub(crate) fn new(
        mut config: Config,
        tls: Tls,
        runtime: Handle,
        attempt: Duration,
        timeout: Duration,
    ) -> Self {
        let idle = config.get_keepalives_idle().min(KEEPALIVE_IDLE);
        config
            .keepalives(true)
            .keepalives_idle(idle)
            .keepalives_interval(KEEPALIVE_INTERVAL)
            .keepalives_retries(KEEPALIVE_RETRIES);
        Listener {
            config,
            tls,
            runtime,
            attempt,
            timeout,
            state: Mutex::new(State::default()),
            wake: Notify::new(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Calls `nudge` whenever a notification on `channel` names the row `tag` (or the
    /// whole table), and once when the channel is listened to, until the subscription
    /// drops. Never blocks.
    pub(crate) fn follow(
        self: &Arc<Self>,
        channel: String,
        tag: String,
        nudge: Nudge,
    ) -> Subscription {
        let start = {
            let mut state = self.state();
            state.next += 1;
            let id = state.next;
            let unfollow = Unfollow {
                listener: Arc::clone(self),
                channel: channel.clone(),
                tag: tag.clone(),
                id,
            };
            state
                .channels
                .entry(channel)
                .or_default()
                .entry(tag)
                .or_default()
                .push(Follower {
                    id,
                    nudge,
                    confirmed: false,
                });
            let start = !state.running;
            state.running = true;
            (start, unfollow)
        };
        let (start, unfollow) = start;
        if start {
            self.runtime.spawn(run(Arc::clone(self)));
        } else {
            self.wake.notify_one();
        }
        Subscription::new(unfollow)
    }

    /// Routes one notification to its followers.
    fn deliver(&self, channel: &str, payload: &str) {
        let note = notify::parse(payload);
        let mut version = None;
        let nudges: Vec<Nudge> = {
            let state = self.state();
            let Some(rows) = state.channels.get(channel) else {
                return;
            };
            match note {
                Some(note) if note.tag != notify::WHOLE_TABLE => {
                    version = note.version(crate::store::fingerprint);
                    rows.get(note.tag)
                        .into_iter()
                        .flatten()
                        .map(|f| f.nudge.clone())
                        .collect()
                }
                // A dropped table, or a payload enduro did not write: every row may have
                // changed.
                _ => rows.values().flatten().map(|f| f.nudge.clone()).collect(),
            }
        };
        for nudge in nudges {
            match version {
                Some(version) => nudge.changed_to(version),
                None => nudge.changed(),
            }
        }
    }

    /// The channels someone follows.
    fn wanted(&self) -> HashSet<String> {
        self.state().channels.keys().cloned().collect()
    }

    /// Nudges, once, each follower not nudged yet whose channel is in `listened` (listened
    /// to on the current connection).
    fn confirm(&self, listened: &HashSet<String>) {
        let nudges: Vec<Nudge> = {
            let mut state = self.state();
            let mut nudges = Vec::new();
            for (channel, rows) in &mut state.channels {
                if !listened.contains(channel) {
                    continue;
                }
                for follower in rows.values_mut().flatten() {
                    if !follower.confirmed {
                        follower.confirmed = true;
                        nudges.push(follower.nudge.clone());
                    }
                }
            }
            nudges
        };
        for nudge in nudges {
            nudge.changed();
        }
    }

    /// The connection is lost: every follower is owed a nudge once it is listening again.
    fn lost(&self) {
        let mut state = self.state();
        for follower in state
            .channels
            .values_mut()
            .flat_map(|rows| rows.values_mut())
            .flatten()
        {
            follower.confirmed = false;
        }
    }

    /// Whether no one follows any more; if so the task is marked stopped (under the lock,
    /// so that a follower who comes next starts a new one).
    fn finish_if_idle(&self) -> bool {
        let mut state = self.state();
        if state.channels.is_empty() {
            state.running = false;
            true
        } else {
            false
        }
    }

    /// Opens the listening connection, bounded as the pool bounds its own.
    async fn connect(
        &self,
    ) -> Option<(
        Client,
        Connection<tokio_postgres::Socket, impl AsyncRead + AsyncWrite + Unpin + Send + 'static>,
    )> {
        let tls = self.tls.tracked(Arc::default());
        match tokio::time::timeout(self.attempt, self.config.connect(tls)).await {
            Ok(Ok(pair)) => Some(pair),
            // Nobody to tell: the followers' own statements report what is wrong with
            // the server; the listener tries again later.
            Ok(Err(_)) | Err(_) => None,
        }
    }

    /// Listens on one connection until it is lost or no one follows any more.
    async fn session<S, T>(self: &Arc<Self>, client: Client, connection: Connection<S, T>) -> Ended
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (gone, mut lost) = oneshot::channel::<()>();
        // Aborted (dropping the connection, which closes its socket) when the session ends.
        let _driver = AbortOnDrop(
            self.runtime
                .spawn(drive(Arc::clone(self), connection, gone)),
        );
        let mut listened: HashSet<String> = HashSet::new();
        loop {
            let wanted = self.wanted();
            if wanted.is_empty() {
                if self.finish_if_idle() {
                    return Ended::Idle;
                }
                continue;
            }
            let sql = statements(&listened, &wanted);
            if !sql.is_empty() {
                match tokio::time::timeout(self.timeout, client.batch_execute(&sql)).await {
                    Ok(Ok(())) => listened = wanted,
                    Ok(Err(_)) | Err(_) => return Ended::Lost,
                }
            }
            self.confirm(&listened);
            let woken = pin!(self.wake.notified());
            if let Either::Right(_) = select(woken, &mut lost).await {
                return Ended::Lost;
            }
        }
    }

    /// Waits `delay` before the next attempt, or less when no one follows any more.
    async fn pause(&self, delay: Duration) {
        let until = tokio::time::Instant::now() + delay;
        loop {
            if tokio::time::timeout_at(until, self.wake.notified())
                .await
                .is_err()
            {
                return;
            }
            if self.state().channels.is_empty() {
                return;
            }
        }
    }
}

/// The listener's task: open a connection, listen, open another when it is lost, until
/// no one follows.
async fn run(listener: Arc<Listener>) {
    let mut delay = MIN_DELAY;
    loop {
        if listener.finish_if_idle() {
            return;
        }
        let began = Instant::now();
        if let Some((client, connection)) = listener.connect().await {
            match listener.session(client, connection).await {
                Ended::Idle => return,
                Ended::Lost => {
                    listener.lost();
                    if began.elapsed() >= STABLE {
                        delay = MIN_DELAY;
                    }
                }
            }
        }
        listener.pause(delay).await;
        delay = delay.saturating_mul(2).min(MAX_DELAY);
    }
}

/// Reads the connection's messages, handing notifications to the listener, until it
/// closes; dropping `_gone` then tells the session.
async fn drive<S, T>(
    listener: Arc<Listener>,
    mut connection: Connection<S, T>,
    _gone: oneshot::Sender<()>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
    T: AsyncRead + AsyncWrite + Unpin,
{
    while let Some(Ok(message)) = poll_fn(|cx| connection.poll_message(cx)).await {
        if let AsyncMessage::Notification(note) = message {
            listener.deliver(note.channel(), note.payload());
        }
    }
}

/// The statements that take the connection from listening on `listened` to `wanted`.
fn statements(listened: &HashSet<String>, wanted: &HashSet<String>) -> String {
    let mut sql = String::new();
    // Channel names are enduro's own (`enduro_` and hex digits), quoted all the same.
    for channel in wanted.difference(listened) {
        sql.push_str(&format!("LISTEN \"{channel}\";"));
    }
    for channel in listened.difference(wanted) {
        sql.push_str(&format!("UNLISTEN \"{channel}\";"));
    }
    sql
}

/// Stops one follower's nudges when its subscription drops; the task unlistens a channel
/// no one follows any more, and ends when none is left.
struct Unfollow {
    listener: Arc<Listener>,
    channel: String,
    tag: String,
    id: u64,
}

impl Drop for Unfollow {
    fn drop(&mut self) {
        let emptied = {
            let mut state = self.listener.state();
            let Some(rows) = state.channels.get_mut(&self.channel) else {
                return;
            };
            if let Some(followers) = rows.get_mut(&self.tag) {
                followers.retain(|f| f.id != self.id);
                if followers.is_empty() {
                    rows.remove(&self.tag);
                }
            }
            let emptied = rows.is_empty();
            if emptied {
                state.channels.remove(&self.channel);
            }
            emptied
        };
        if emptied {
            self.listener.wake.notify_one();
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn set(names: &[&str]) -> HashSet<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn statements_listen_to_new_channels_and_unlisten_old_ones() {
        assert_eq!(statements(&set(&["a"]), &set(&["a"])), "");
        assert_eq!(statements(&set(&[]), &set(&["a"])), "LISTEN \"a\";");
        assert_eq!(
            statements(&set(&["a", "b"]), &set(&["b"])),
            "UNLISTEN \"a\";"
        );
    }
}
