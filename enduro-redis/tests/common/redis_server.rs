//! Private throwaway Redis servers for tests, with the standard library only.
//!
//! [`RedisServer::start`] runs Debian's `redis-server` (or `REDIS_SERVER`) in a temp dir,
//! on a free port of 127.0.0.1 only, with `appendonly yes` and `appendfsync always` (a
//! reply comes only after the command is fsynced) and a random password, so tests
//! exercise `AUTH` and can kill and restart the server without losing what it
//! acknowledged. It never touches the machine's own Redis.
//!
//! Cleanup does not depend on this process ending well: a small watchdog shell, in its
//! own process group, waits for this process to close a pipe (on drop, on exit, even on
//! SIGKILL) and then kills the server and removes the temp dir.
//!
//! [`shared`] is one server for the whole test binary; under `CI=true` a missing
//! `redis-server` panics (tests never skip there).
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// A private Redis server (see the module docs).
pub struct RedisServer {
    dir: PathBuf,
    port: u16,
    password: String,
    extra: Vec<String>,
    server: Mutex<Option<Child>>,
    /// Closing it tells the watchdog to kill the server and remove `dir`.
    watchdog_pipe: Mutex<Option<ChildStdin>>,
}

impl std::fmt::Debug for RedisServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisServer")
            .field("port", &self.port)
            .finish()
    }
}

fn binary() -> String {
    std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".to_owned())
}

/// Whether a `redis-server` can be run here.
pub fn available() -> bool {
    Command::new(binary())
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn random_hex() -> String {
    use std::hash::{BuildHasher, Hasher};
    let half = || {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        h.finish()
    };
    format!("{:016x}{:016x}", half(), half())
}

impl RedisServer {
    /// Starts a server with the defaults above.
    pub fn start() -> io::Result<RedisServer> {
        Self::start_with(&[])
    }

    /// Starts a server with more `redis-server` arguments (`["--tls-port", "0"]`, say).
    pub fn start_with(extra: &[&str]) -> io::Result<RedisServer> {
        let dir = std::env::temp_dir().join(format!("enduro-redis-{}", random_hex()));
        std::fs::create_dir_all(&dir)?;
        let server = RedisServer {
            dir,
            port: free_port()?,
            password: random_hex(),
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
            server: Mutex::new(None),
            watchdog_pipe: Mutex::new(None),
        };
        server.start_watchdog()?;
        server.start_server()?;
        Ok(server)
    }

    fn start_watchdog(&self) -> io::Result<()> {
        let pidfile = self.dir.join("redis.pid");
        let script = format!(
            "trap '' INT HUP TERM; cat >/dev/null; \
             if [ -f '{pid}' ]; then kill -9 \"$(cat '{pid}')\" 2>/dev/null; fi; rm -rf '{dir}'",
            pid = pidfile.display(),
            dir = self.dir.display(),
        );
        let mut child = {
            use std::os::unix::process::CommandExt;
            Command::new("sh")
                .args(["-c", &script])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()?
        };
        *self.watchdog_pipe.lock().unwrap() = child.stdin.take();
        Ok(())
    }

    /// Starts the server process (again, after [`kill`](Self::kill)), on the same port
    /// and data, and waits until it answers.
    pub fn start_server(&self) -> io::Result<()> {
        let port = self.port.to_string();
        let mut args: Vec<String> = [
            "--port",
            &port,
            "--bind",
            "127.0.0.1",
            "--dir",
            &self.dir.to_string_lossy(),
            "--pidfile",
            &self.dir.join("redis.pid").to_string_lossy(),
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--save",
            "",
            "--requirepass",
            &self.password,
            "--daemonize",
            "no",
            "--logfile",
            &self.dir.join("redis.log").to_string_lossy(),
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        args.extend(self.extra.iter().cloned());
        let child = Command::new(binary())
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        *self.server.lock().unwrap() = Some(child);
        let start = Instant::now();
        while !self.answers() {
            if start.elapsed() > Duration::from_secs(20) {
                let log = std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default();
                return Err(io::Error::other(format!(
                    "redis-server did not start:\n{log}"
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Whether the server answers `PING` (after `AUTH`) with `+PONG`.
    fn answers(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let request = format!("AUTH {}\r\nPING\r\n", self.password);
        if stream.write_all(request.as_bytes()).is_err() {
            return false;
        }
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        while !got.windows(5).any(|w| w == b"+PONG") {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => return false,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
            // -LOADING while it reads its append-only file: not ready yet.
            if got.windows(8).any(|w| w == b"-LOADING") {
                return false;
            }
        }
        true
    }

    /// Kills the server like a crash (SIGKILL): nothing is flushed beyond what it already
    /// fsynced.
    pub fn kill(&self) {
        if let Some(mut child) = self.server.lock().unwrap().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the server and starts it again on the same data.
    pub fn restart(&self) -> io::Result<()> {
        self.kill();
        self.start_server()
    }

    /// `redis://:PASSWORD@127.0.0.1:PORT/DB`.
    pub fn url(&self, db: u32) -> String {
        format!("redis://:{}@127.0.0.1:{}/{db}", self.password, self.port)
    }

    /// The URL without the password (the server refuses it).
    pub fn url_without_password(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn password(&self) -> &str {
        &self.password
    }

    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        // Closing the pipe lets the watchdog remove the directory.
        self.watchdog_pipe.lock().unwrap().take();
    }
}

/// One server for the whole test binary, or `None` when `redis-server` cannot be run
/// (never under `CI=true`, where that panics).
pub fn shared() -> Option<&'static RedisServer> {
    static SERVER: OnceLock<Option<RedisServer>> = OnceLock::new();
    SERVER
        .get_or_init(|| {
            if !available() {
                assert!(
                    std::env::var("CI").is_err(),
                    "CI=true but redis-server cannot be run: install Debian's redis-server"
                );
                eprintln!("skipping: redis-server is not installed");
                return None;
            }
            Some(RedisServer::start().expect("a private redis-server"))
        })
        .as_ref()
}
