//! Private throwaway PostgreSQL clusters for tests (and `cargo xtask pg`), with the
//! standard library only.
//!
//! [`PgCluster::start`] runs `initdb` and `pg_ctl start` from the server binaries in
//! `/usr/lib/postgresql/*/bin` (or `PG_BIN_DIR`, or the `PATH`) in a temp dir, listening
//! on a free port of 127.0.0.1 only (and a Unix socket in the temp dir), never touching
//! the machine's own PostgreSQL. `initdb` and `postgres` refuse to run as root, so as root
//! they run as the `postgres` system user (through `runuser`), in a directory it owns.
//!
//! Cleanup does not depend on this process ending well: a small watchdog shell, started
//! with the cluster and in its own process group, waits for this process to close a pipe
//! (on drop, on exit, even on SIGKILL) and then stops the server and removes the temp dir.
//!
//! [`database_url`] is what tests call: `DATABASE_URL` when set, otherwise one private
//! cluster shared by the whole test binary; under `CI=true` it panics rather than skip.
#![allow(dead_code)] // shared with xtask through #[path], which uses only a part

use std::fs;
use std::io::{self, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;

/// The superuser's password of one private cluster, made up at random when it starts:
/// TCP connections must use it (so tests exercise a real password), the Unix socket
/// trusts local users. Never printed: `Debug` shows `***`.
struct Password(String);

impl Password {
    /// 32 random hex digits, from the standard library's randomly seeded hasher.
    fn random() -> Self {
        use std::hash::{BuildHasher, Hasher};
        let half = || {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u32(std::process::id());
            h.finish()
        };
        Password(format!("{:016x}{:016x}", half(), half()))
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// How a private cluster is set up, beyond the defaults (300 connections, no TLS, the
/// superuser by password over TCP and trusted on the Unix socket).
#[derive(Debug, Default, Clone)]
pub struct Setup {
    /// The server's `max_connections`.
    pub max_connections: Option<u32>,
    /// `ssl = on` with this certificate and key (PEM).
    pub tls: Option<ServerTls>,
    /// The whole `pg_hba.conf`, instead of initdb's.
    pub hba: Option<String>,
}

/// A server certificate and its key, PEM, and the CA file clients verify it with
/// (`ssl_ca_file`, for client certificates), if any.
#[derive(Debug, Clone)]
pub struct ServerTls {
    pub cert_pem: String,
    pub key_pem: String,
    pub client_ca_pem: Option<String>,
}

/// A running private cluster. Dropping it stops the server and removes its files.
#[derive(Debug)]
pub struct PgCluster {
    setup: Setup,
    base: PathBuf,
    data: PathBuf,
    bin: PathBuf,
    port: u16,
    password: Password,
    /// Run the server binaries as this user (`Some("postgres")` when we are root).
    run_as: Option<String>,
    /// Closing this tells the watchdog to stop the server and remove `base`.
    watchdog_pipe: Option<ChildStdin>,
    watchdog: Option<Child>,
}

fn other(message: String) -> io::Error {
    io::Error::other(message)
}

/// The directory holding `initdb` and `pg_ctl`: `PG_BIN_DIR`, the newest
/// `/usr/lib/postgresql/*/bin`, or the directory of `initdb` on the `PATH`.
pub fn server_bin_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("PG_BIN_DIR") {
        return Some(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
        .unwrap_or(false)
}

/// The numeric uid and gid of `user`.
fn ids_of(user: &str) -> io::Result<(u32, u32)> {
    let id = |flag: &str| -> io::Result<u32> {
        let out = Command::new("id").args([flag, user]).output()?;
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .map_err(|_| other(format!("there is no user `{user}` to run PostgreSQL as (`id {flag} {user}` failed); install Debian's `postgresql` package, which creates it")))
    };
    Ok((id("-u")?, id("-g")?))
}

/// A port that was free a moment ago on 127.0.0.1.
fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Single-quotes `s` for `sh`.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

impl PgCluster {
    /// Creates and starts a new cluster. Fails (with what to install) when the server
    /// binaries are missing.
    pub fn start() -> io::Result<PgCluster> {
        Self::start_with(Setup::default())
    }

    /// Creates and starts a new cluster set up as `setup` says.
    pub fn start_with(setup: Setup) -> io::Result<PgCluster> {
        let bin = server_bin_dir().ok_or_else(|| {
            other("no PostgreSQL server binaries (initdb, pg_ctl) in /usr/lib/postgresql/*/bin, PG_BIN_DIR or PATH: install Debian's `postgresql` package, or set DATABASE_URL".into())
        })?;
        let run_as = is_root().then(|| "postgres".to_owned());
        // As root, /tmp rather than TMPDIR, which the `postgres` user might not reach.
        let tmp = if run_as.is_some() {
            PathBuf::from("/tmp")
        } else {
            std::env::temp_dir()
        };
        let base = tmp.join(format!(
            "enduro-pg-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&base);
        fs::create_dir(&base)?;
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&base, fs::Permissions::from_mode(0o700))?;
        }
        if let Some(user) = &run_as {
            let (uid, gid) = ids_of(user)?;
            std::os::unix::fs::chown(&base, Some(uid), Some(gid))?;
        }
        let mut cluster = PgCluster {
            setup,
            data: base.join("data"),
            base,
            bin,
            port: free_port()?,
            password: Password::random(),
            run_as,
            watchdog_pipe: None,
            watchdog: None,
        };
        cluster.start_watchdog()?;
        let pwfile = cluster.base.join("pwfile");
        fs::write(&pwfile, &cluster.password.0)?;
        if let Some(user) = &cluster.run_as {
            let (uid, gid) = ids_of(user)?;
            std::os::unix::fs::chown(&pwfile, Some(uid), Some(gid))?;
        }
        let data = cluster.data.to_string_lossy().into_owned();
        let pwfile_arg = format!("--pwfile={}", pwfile.display());
        cluster.server_tool(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                &pwfile_arg,
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        )?;
        let _ = fs::remove_file(&pwfile);
        cluster.write_setup_files()?;
        cluster.start_server()?;
        Ok(cluster)
    }

    /// Writes the TLS files and `pg_hba.conf` of the setup into the base directory,
    /// readable by the server's user only.
    fn write_setup_files(&self) -> io::Result<()> {
        let mut files: Vec<(&str, &str)> = Vec::new();
        if let Some(tls) = &self.setup.tls {
            files.push(("server.crt", &tls.cert_pem));
            files.push(("server.key", &tls.key_pem));
            if let Some(ca) = &tls.client_ca_pem {
                files.push(("client-ca.crt", ca));
            }
        }
        if let Some(hba) = &self.setup.hba {
            files.push(("pg_hba.conf", hba));
        }
        for (name, content) in files {
            let path = self.base.join(name);
            fs::write(&path, content)?;
            {
                use std::os::unix::fs::PermissionsExt;
                fs::set_permissions(&path, fs::Permissions::from_mode(0o600))?;
            }
            if let Some(user) = &self.run_as {
                let (uid, gid) = ids_of(user)?;
                std::os::unix::fs::chown(&path, Some(uid), Some(gid))?;
            }
        }
        Ok(())
    }

    /// The watchdog: `sh` in its own process group (so a terminal's Ctrl-C does not reach
    /// it), waiting for EOF on its stdin, then stopping the server and removing the files.
    fn start_watchdog(&mut self) -> io::Result<()> {
        let stop = self.command_line("pg_ctl", &self.stop_args().each_ref().map(String::as_str));
        let script = format!(
            "trap '' INT HUP TERM; cat >/dev/null; \
             if [ -f {pid} ]; then {stop} >/dev/null 2>&1; fi; rm -rf {base}",
            pid = sh_quote(&self.data.join("postmaster.pid").to_string_lossy()),
            base = sh_quote(&self.base.to_string_lossy()),
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
        self.watchdog_pipe = child.stdin.take();
        self.watchdog = Some(child);
        Ok(())
    }

    /// `tool args...` as one `sh` command line, run as the server's user.
    fn command_line(&self, tool: &str, args: &[&str]) -> String {
        let mut words = Vec::new();
        if let Some(user) = &self.run_as {
            words.extend(["runuser".to_owned(), "-u".into(), user.clone(), "--".into()]);
        }
        words.push(self.bin.join(tool).to_string_lossy().into_owned());
        words.extend(args.iter().map(|a| (*a).to_owned()));
        words
            .iter()
            .map(|w| sh_quote(w))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Runs a server tool (initdb, pg_ctl) as the server's user, output to the log.
    fn server_tool(&self, tool: &str, args: &[&str]) -> io::Result<()> {
        let mut cmd = match &self.run_as {
            Some(user) => {
                let mut cmd = Command::new("runuser");
                cmd.args(["-u", user, "--"]).arg(self.bin.join(tool));
                cmd
            }
            None => Command::new(self.bin.join(tool)),
        };
        let log = self.base.join(format!("{tool}.out"));
        let out = cmd
            .args(args)
            .current_dir(&self.base)
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| {
                other(format!(
                    "cannot run {tool} from {}: {e}",
                    self.bin.display()
                ))
            })?;
        if out.status.success() {
            return Ok(());
        }
        let server_log = fs::read_to_string(self.base.join("server.log")).unwrap_or_default();
        let _ = fs::write(&log, &out.stderr);
        Err(other(format!(
            "{tool} {} failed with {}: {}\n--- server log ---\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            server_log
                .lines()
                .rev()
                .take(20)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n")
        )))
    }

    /// Starts the server (again, after [`stop`](PgCluster::stop)) and waits until it takes
    /// connections.
    pub fn start_server(&self) -> io::Result<()> {
        let mut options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} \
             -c fsync=off -c full_page_writes=off -c max_connections={} -c shared_buffers=32MB",
            self.port,
            self.base.display(),
            self.setup.max_connections.unwrap_or(300),
        );
        if let Some(tls) = &self.setup.tls {
            options.push_str(&format!(
                " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
                self.base.join("server.crt").display(),
                self.base.join("server.key").display()
            ));
            if tls.client_ca_pem.is_some() {
                options.push_str(&format!(
                    " -c ssl_ca_file={}",
                    self.base.join("client-ca.crt").display()
                ));
            }
        }
        if self.setup.hba.is_some() {
            options.push_str(&format!(
                " -c hba_file={}",
                self.base.join("pg_hba.conf").display()
            ));
        }
        let log = self.base.join("server.log").to_string_lossy().into_owned();
        self.server_tool(
            "pg_ctl",
            &[
                "-D",
                &self.data.to_string_lossy(),
                "-l",
                &log,
                "-o",
                &options,
                "-w",
                "-t",
                "60",
                "start",
            ],
        )
    }

    /// Stops the server like a crash (`-m immediate`: no checkpoint, connections cut, WAL
    /// replayed at the next start). What was committed survives, since the WAL was written.
    pub fn stop(&self) -> io::Result<()> {
        self.server_tool("pg_ctl", &self.stop_args().each_ref().map(String::as_str))
    }

    /// `pg_ctl`'s arguments for stopping the server like a crash, waiting until it is down.
    fn stop_args(&self) -> [String; 6] {
        let data = self.data.to_string_lossy().into_owned();
        [
            "-D".into(),
            data,
            "-m".into(),
            "immediate".into(),
            "-w".into(),
            "stop".into(),
        ]
    }

    /// The port the server listens on, on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A connection URL for the superuser `postgres`, password included.
    pub fn url(&self) -> String {
        format!(
            "postgres://postgres:{}@127.0.0.1:{}/postgres",
            self.password.0, self.port
        )
    }

    /// The superuser's password (for tests that build connection strings of their own).
    pub fn password(&self) -> &str {
        &self.password.0
    }

    /// A connection string for the superuser over the Unix socket, which initdb's (and
    /// every test setup's) `pg_hba.conf` trusts: for setting a cluster up.
    pub fn socket_url(&self) -> String {
        format!(
            "host={} port={} user=postgres dbname=postgres sslmode=disable",
            self.base.display(),
            self.port
        )
    }

    /// Where the server's log is.
    pub fn log_path(&self) -> PathBuf {
        self.base.join("server.log")
    }

    /// Keeps the cluster running until this process exits (for the shared cluster): the
    /// watchdog stops it then.
    fn leak(mut self) -> String {
        let url = self.url();
        if let Some(pipe) = self.watchdog_pipe.take() {
            std::mem::forget(pipe);
        }
        self.watchdog = None;
        std::mem::forget(self);
        url
    }
}

static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl Drop for PgCluster {
    fn drop(&mut self) {
        // EOF for the watchdog, which stops the server and removes the files; wait for it
        // so that the next test starts clean.
        drop(self.watchdog_pipe.take());
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.wait();
        }
    }
}

/// Whether we run under CI (`CI=true`), where PostgreSQL tests must never skip.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// A database for tests: `DATABASE_URL` when set, otherwise a private cluster started
/// once for this test binary (stopped when it exits). `None` (the test should skip, saying
/// why) when neither can be had — except under CI, where this panics instead.
pub fn database_url() -> Option<String> {
    if let Ok(url) = std::env::var("DATABASE_URL")
        && !url.is_empty()
    {
        return Some(url);
    }
    static SHARED: OnceLock<Result<String, String>> = OnceLock::new();
    let shared = SHARED.get_or_init(|| {
        PgCluster::start()
            .map(PgCluster::leak)
            .map_err(|e| e.to_string())
    });
    match shared {
        Ok(url) => Some(url.clone()),
        Err(e) => skip_or_panic(e),
    }
}

/// A private cluster of its own, for tests that stop and restart the server (never done
/// to `DATABASE_URL`). `None` to skip, or a panic under CI.
pub fn private_cluster() -> Option<PgCluster> {
    match PgCluster::start() {
        Ok(cluster) => Some(cluster),
        Err(e) => skip_or_panic(&e.to_string()),
    }
}

/// `None` (the test skips, saying why) when PostgreSQL cannot be had, or a panic under
/// `CI=true`, where PostgreSQL tests must not skip.
pub fn skip_or_panic<T>(why: &str) -> Option<T> {
    let message = format!("no PostgreSQL for the tests: {why}");
    if in_ci() {
        panic!("{message} (CI=true: PostgreSQL tests must not skip)");
    }
    let _ = writeln!(io::stderr(), "skipping: {message}");
    None
}
