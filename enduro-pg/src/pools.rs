//! Connection pools shared by every atom of a process that names the same connection
//! string: connections scale with processes, not atoms.
//!
//! Each pool's connections are opened with TLS as the string says, and driven on the
//! process-wide runtime ([`crate::runtime`]), never on the caller's: a pool is shared by
//! every runtime of the process, and a connection driven by one that ends (a test's, a
//! short-lived one of a tool) would fail under whichever caller holds it at that moment.
//! Connections idle for longer than the idle timeout are closed by a task that wakes a
//! few times per idle timeout and ends with the pool.
//!
//! Each pool also has a [`Listener`] (see [`crate::listen`]): at most one more connection,
//! opened with the same configuration and TLS, that `LISTEN`s for the pool's live atoms
//! while there are any.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use deadpool_postgres::{Connect, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio::runtime::Handle;
use tokio::task::JoinHandle;
use tokio_postgres::{Client, Config};

use crate::conn::{SslMode, Target};
use crate::limits::ServerLimits;
use crate::listen::Listener;
use crate::tls::{Phase, Progress, Tls};

/// What a shared pool is made of; atoms that ask for the same get the same pool.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) max_connections: usize,
    pub(crate) connect_timeout: Duration,
    pub(crate) statement_timeout: Duration,
    pub(crate) idle_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    db: String,
    connect_timeout: Duration,
    statement_timeout: Duration,
    idle_timeout: Duration,
}

/// Where a pool connects, for its errors.
#[derive(Debug)]
pub(crate) struct Dest {
    /// The host names connected to, for TLS errors.
    pub(crate) host: String,
    pub(crate) mode: SslMode,
    /// The timeout of one connection attempt (per host).
    pub(crate) connect_timeout: Duration,
    /// How far the latest connection attempt got.
    pub(crate) progress: Mutex<Arc<Progress>>,
}

impl Dest {
    /// Where the latest connection attempt was when it was given up.
    pub(crate) fn phase(&self) -> Phase {
        self.progress
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get()
    }
}

/// A pool, what its errors need, and its listener for live atoms.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) pool: Pool,
    pub(crate) dest: Arc<Dest>,
    pub(crate) tls: Tls,
    /// The pool's one `LISTEN` connection, open while one of its atoms is live.
    pub(crate) listener: Arc<Listener>,
}

type Registry = Mutex<HashMap<Key, Weak<Shared>>>;

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(Registry::default)
}

/// The process's pool for `db` with `settings`: the one already open (grown to
/// `max_connections` if that is more than it has), or a new one.
pub(crate) fn shared(
    db: &str,
    target: &Target,
    settings: &Settings,
) -> Result<Arc<Shared>, String> {
    let key = Key {
        db: db.to_owned(),
        connect_timeout: settings.connect_timeout,
        statement_timeout: settings.statement_timeout,
        idle_timeout: settings.idle_timeout,
    };
    let mut pools = registry().lock().unwrap_or_else(|e| e.into_inner());
    pools.retain(|_, pool| pool.strong_count() > 0);
    if let Some(shared) = pools.get(&key).and_then(Weak::upgrade) {
        if shared.pool.status().max_size < settings.max_connections {
            shared.pool.resize(settings.max_connections);
        }
        return Ok(shared);
    }
    let shared = Arc::new(open(target, settings)?);
    pools.insert(key, Arc::downgrade(&shared));
    Ok(shared)
}

fn open(target: &Target, settings: &Settings) -> Result<Shared, String> {
    let runtime = crate::runtime::handle()?;
    let tls = Tls::new(&target.tls)?;
    let mut config = target.config.clone();
    config.connect_timeout(settings.connect_timeout);
    let hosts = config.get_hosts().len().max(1) as u32;
    let dest = Arc::new(Dest {
        host: host_names(&config),
        mode: target.tls.mode,
        connect_timeout: settings.connect_timeout,
        progress: Mutex::new(Arc::default()),
    });
    let connector = Connector {
        tls: tls.clone(),
        runtime: runtime.clone(),
        dest: dest.clone(),
    };
    let manager = Manager::from_connect(
        config.clone(),
        connector,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    // tokio-postgres bounds each host's TCP connect by the connect timeout; this bounds
    // the whole attempt (TLS, start-up, authentication) a moment later, so that a TCP
    // connect that hangs is reported as such.
    let attempt = settings
        .connect_timeout
        .saturating_mul(hosts)
        .saturating_add(Duration::from_millis(100));
    let pool = Pool::builder(manager)
        .max_size(settings.max_connections)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(settings.statement_timeout))
        .create_timeout(Some(attempt))
        .post_create(
            ServerLimits::under(settings.statement_timeout).hook(settings.statement_timeout),
        )
        .build()
        .map_err(|e| format!("cannot build the connection pool: {e}"))?;
    runtime.spawn(close_idle(pool.weak(), settings.idle_timeout));
    let listener = Arc::new(Listener::new(
        config,
        tls.clone(),
        runtime,
        attempt,
        settings.statement_timeout,
    ));
    Ok(Shared {
        pool,
        dest,
        tls,
        listener,
    })
}

/// The host names of `config`, for TLS errors.
fn host_names(config: &Config) -> String {
    let names: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|host| match host {
            tokio_postgres::config::Host::Tcp(name) => name.clone(),
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    if names.is_empty() {
        "localhost".to_owned()
    } else {
        names.join(",")
    }
}

/// Closes the connections of `pool` idle for longer than `idle`, until the pool is gone.
async fn close_idle(pool: deadpool_postgres::WeakPool, idle: Duration) {
    let every = (idle / 4).clamp(Duration::from_millis(250), Duration::from_secs(60));
    loop {
        tokio::time::sleep(every).await;
        let Some(pool) = pool.upgrade() else {
            return;
        };
        pool.retain(|_, metrics| metrics.last_used() < idle);
    }
}

/// Opens connections on the process-wide runtime, so that they outlive whichever runtime
/// asked for them (a pooled connection may be in use by another runtime's task when the
/// first one ends), noting how far each attempt gets.
struct Connector {
    tls: Tls,
    runtime: Handle,
    dest: Arc<Dest>,
}

impl Connect for Connector {
    fn connect(
        &self,
        config: &Config,
    ) -> Pin<
        Box<
            dyn Future<Output = Result<(Client, JoinHandle<()>), tokio_postgres::Error>>
                + Send
                + '_,
        >,
    > {
        let progress = Arc::new(Progress::default());
        *self.dest.progress.lock().unwrap_or_else(|e| e.into_inner()) = progress.clone();
        let tls = self.tls.tracked(progress);
        let config = config.clone();
        let attempt = self.runtime.spawn(async move {
            let (client, connection) = config.connect(tls).await?;
            let driver = tokio::spawn(async move {
                // Its errors reach the client's calls, which report them.
                let _ = connection.await;
            });
            Ok((client, driver))
        });
        Box::pin(async move {
            // Given up (the pool's create timeout): the attempt ends too, closing its
            // socket.
            let mut attempt = AbortOnDrop(attempt);
            match (&mut attempt.0).await {
                Ok(result) => result,
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                // Only a runtime shutting down cancels it; the process is ending.
                Err(_) => Err(tokio_postgres::Error::__private_api_timeout()),
            }
        })
    }
}

/// Aborts a task when dropped.
pub(crate) struct AbortOnDrop<T>(pub(crate) JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
