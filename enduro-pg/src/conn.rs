//! Connection strings: parsing them, describing where they point, and hiding passwords.

use std::str::FromStr;
use std::time::Duration;

use tokio_postgres::config::Host;

/// What a password is replaced with wherever a connection string is shown.
pub(crate) const REDACTED: &str = "********";

/// How to use TLS, as libpq's `sslmode` says (which tokio-postgres alone cannot take in
/// full).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum SslMode {
    /// Never TLS.
    Disable,
    /// TLS when the server offers it, without checking its certificate (libpq's
    /// default).
    Prefer,
    /// TLS or nothing; the certificate is checked only when `sslrootcert` is given.
    Require,
    /// TLS with a certificate signed by a trusted CA, whatever host name it names.
    VerifyCa,
    /// TLS with a certificate signed by a trusted CA for the host name connected to.
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Option<SslMode> {
        Some(match value {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    /// The name in a connection string.
    pub(crate) fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// The TLS parameters of a connection string.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct TlsParams {
    pub(crate) mode: SslMode,
    /// `sslrootcert`: a PEM file of trusted CA certificates, or `system` for the
    /// platform's roots.
    pub(crate) root_cert: Option<String>,
    /// `sslcert` and `sslkey`: a client certificate (PEM chain) and its key (PEM).
    pub(crate) client_cert: Option<String>,
    pub(crate) client_key: Option<String>,
}

/// A connection string, understood: the tokio-postgres configuration and the TLS
/// parameters enduro handles itself.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) config: tokio_postgres::Config,
    pub(crate) tls: TlsParams,
    /// `connect_timeout` as the string gives it (the default applies otherwise).
    pub(crate) connect_timeout: Option<Duration>,
}

/// The TLS parameters enduro takes out of a connection string before tokio-postgres
/// parses the rest (it knows `sslmode` only up to `require`, and no certificate files).
const TLS_KEYS: [&str; 5] = ["sslmode", "sslrootcert", "sslcert", "sslkey", "sslpassword"];

/// Parses `db` (a `postgres://` URL or `key=value` pairs). The error never contains the
/// password: it shows the redacted string.
pub(crate) fn parse(db: &str) -> Result<Target, String> {
    let fail = |why: String| {
        scrub(
            &format!(
                "invalid PostgreSQL connection string `{}`: {why} (expected a URL such as \
                 postgres://user:password@host:5432/dbname?sslmode=require or key=value pairs \
                 such as `host=localhost user=app dbname=app`)",
                redact(db)
            ),
            password_in(db).as_deref(),
        )
    };
    let mut taken: Vec<(String, String)> = Vec::new();
    let rest = rewrite(db, &mut |param| {
        if TLS_KEYS.contains(&param.key) {
            taken.push((param.key.to_owned(), param.value.clone()));
            Edit::Remove
        } else {
            Edit::Keep
        }
    });
    let mut tls = TlsParams {
        mode: SslMode::Prefer,
        root_cert: None,
        client_cert: None,
        client_key: None,
    };
    for (key, value) in taken {
        match key.as_str() {
            "sslmode" => {
                tls.mode = SslMode::parse(&value).ok_or_else(|| {
                    fail(format!(
                        "unknown sslmode `{value}` (one of disable, prefer, require, \
                         verify-ca, verify-full)"
                    ))
                })?;
            }
            "sslrootcert" => tls.root_cert = Some(value),
            "sslcert" => tls.client_cert = Some(value),
            "sslkey" => tls.client_key = Some(value),
            _ => {
                return Err(fail(
                    "sslpassword is not supported: give sslkey as an unencrypted PEM key \
                     (readable only by the program's user)"
                        .into(),
                ));
            }
        }
    }
    if tls.client_cert.is_some() != tls.client_key.is_some() {
        return Err(fail(
            "sslcert and sslkey go together: give both, or neither".into(),
        ));
    }
    if tls.mode == SslMode::Disable && (tls.root_cert.is_some() || tls.client_cert.is_some()) {
        return Err(fail(
            "sslmode=disable with certificates (sslrootcert, sslcert): the certificates would \
             never be used; choose sslmode=require, verify-ca or verify-full"
                .into(),
        ));
    }
    let mut config = tokio_postgres::Config::from_str(&rest).map_err(|e| fail(e.to_string()))?;
    let connect_timeout = config.get_connect_timeout().copied();
    let only_sockets = !config.get_hosts().is_empty()
        && config
            .get_hosts()
            .iter()
            .all(|host| matches!(host, Host::Unix(_)));
    config.ssl_mode(match tls.mode {
        // As libpq: a Unix socket never carries TLS, whatever sslmode says.
        _ if only_sockets => tokio_postgres::config::SslMode::Disable,
        SslMode::Disable => tokio_postgres::config::SslMode::Disable,
        SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
        _ => tokio_postgres::config::SslMode::Require,
    });
    if config.get_application_name().is_none() {
        config.application_name("enduro");
    }
    Ok(Target {
        config,
        tls,
        connect_timeout,
    })
}

/// `user@host:port/dbname`, for error messages and `Debug`; never the password.
pub(crate) fn describe(config: &tokio_postgres::Config) -> String {
    let user = config.get_user().unwrap_or("(default user)");
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let host = match host {
                Host::Tcp(name) => name.clone(),
                Host::Unix(path) => path.display().to_string(),
            };
            match config.get_ports().get(i).or(config.get_ports().first()) {
                Some(port) => format!("{host}:{port}"),
                None => host,
            }
        })
        .collect();
    let hosts = if hosts.is_empty() {
        "(default host)".to_owned()
    } else {
        hosts.join(",")
    };
    let db = config.get_dbname().unwrap_or(user);
    format!("{user}@{hosts}/{db}")
}

/// Replaces every occurrence of `password` in `message` (a server or driver message could
/// in theory echo it back).
pub(crate) fn scrub(message: &str, password: Option<&[u8]>) -> String {
    match password.and_then(|p| std::str::from_utf8(p).ok()) {
        Some(p) if !p.is_empty() => message.replace(p, REDACTED),
        _ => message.to_owned(),
    }
}

/// The password written in a connection string, found without a full parse (used when
/// the string does not parse at all).
fn password_in(db: &str) -> Option<Vec<u8>> {
    let mut found = None;
    rewrite(db, &mut |param| {
        if param.key == "password" {
            found = Some(param.value.as_bytes().to_vec());
        }
        Edit::Keep
    });
    found
}

/// `db` with its password (in the URL's user info, a `password=` query parameter, or a
/// `password=` pair) replaced by asterisks.
pub(crate) fn redact(db: &str) -> String {
    rewrite(db, &mut |param| {
        if param.key == "password" {
            Edit::Replace(REDACTED.to_owned())
        } else {
            Edit::Keep
        }
    })
}

/// One parameter of a connection string, as [`rewrite`] shows it.
struct Param<'a> {
    key: &'a str,
    /// The value, decoded (percent-decoded in a URL, unquoted in a pair).
    value: String,
}

/// What [`rewrite`] does with a parameter.
enum Edit {
    Keep,
    /// Writes this text in place of the value, as it is.
    Replace(String),
    /// Leaves the parameter out (not possible for the password in a URL's user info,
    /// which is then kept).
    Remove,
}

/// `db` with each parameter kept, replaced or removed as `edit` says: the URL's user info
/// password (as the key `password`) and query parameters, or the `key=value` pairs.
fn rewrite(db: &str, edit: &mut dyn FnMut(&Param<'_>) -> Edit) -> String {
    let trimmed = db.trim_start();
    if trimmed.starts_with("postgres://") || trimmed.starts_with("postgresql://") {
        rewrite_url(db, edit)
    } else {
        rewrite_pairs(db, edit)
    }
}

fn rewrite_url(url: &str, edit: &mut dyn FnMut(&Param<'_>) -> Edit) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let mut out = url[..scheme_end].to_owned();
    match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            match userinfo.find(':') {
                Some(colon) => {
                    let raw = &userinfo[colon + 1..];
                    out.push_str(&userinfo[..colon]);
                    out.push(':');
                    let param = Param {
                        key: "password",
                        value: percent_decode(raw),
                    };
                    match edit(&param) {
                        Edit::Replace(text) => out.push_str(&text),
                        Edit::Keep | Edit::Remove => out.push_str(raw),
                    }
                }
                None => out.push_str(userinfo),
            }
            out.push_str(&authority[at..]);
        }
        None => out.push_str(authority),
    }
    let tail = &rest[authority_end..];
    match tail.find('?') {
        Some(q) => {
            out.push_str(&tail[..q]);
            let mut params = Vec::new();
            for param in tail[q + 1..].split('&') {
                let (key, raw) = param.split_once('=').unwrap_or((param, ""));
                let decoded_key = percent_decode(key);
                let seen = Param {
                    key: &decoded_key,
                    value: percent_decode(raw),
                };
                match edit(&seen) {
                    Edit::Keep => params.push(param.to_owned()),
                    Edit::Replace(text) => params.push(format!("{key}={text}")),
                    Edit::Remove => {}
                }
            }
            if !params.is_empty() {
                out.push('?');
                out.push_str(&params.join("&"));
            }
        }
        None => out.push_str(tail),
    }
    out
}

/// `%XX` escapes decoded (and `+` left alone, as libpq does); invalid escapes are kept as
/// they are.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `key=value` pairs separated by whitespace; values may be single-quoted with `\'` and
/// `\\` escapes, and spaces may surround the `=`.
fn rewrite_pairs(s: &str, edit: &mut dyn FnMut(&Param<'_>) -> Edit) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    loop {
        let start = rest.len() - rest.trim_start().len();
        let space = &rest[..start];
        rest = &rest[start..];
        if rest.is_empty() {
            out.push_str(space);
            return out;
        }
        let key_end = rest
            .find(|c: char| c == '=' || c.is_whitespace())
            .unwrap_or(rest.len());
        let key = &rest[..key_end];
        let after_key = &rest[key_end..];
        let spaces = after_key.len() - after_key.trim_start().len();
        if !after_key[spaces..].starts_with('=') {
            // A bare word: not valid, but keep going so nothing after it leaks.
            out.push_str(space);
            out.push_str(key);
            rest = after_key;
            continue;
        }
        let eq_and_spaces = {
            let after_eq = &after_key[spaces + 1..];
            spaces + 1 + (after_eq.len() - after_eq.trim_start().len())
        };
        let value_start = &after_key[eq_and_spaces..];
        let value_len = value_end(value_start);
        let raw = &value_start[..value_len];
        let param = Param {
            key,
            value: unquote(raw),
        };
        match edit(&param) {
            Edit::Keep => {
                out.push_str(space);
                out.push_str(&rest[..key_end + eq_and_spaces + value_len]);
            }
            Edit::Replace(text) => {
                out.push_str(space);
                out.push_str(&rest[..key_end + eq_and_spaces]);
                out.push_str(&text);
            }
            Edit::Remove => {}
        }
        rest = &value_start[value_len..];
    }
}

/// A pair's value without its quotes and escapes.
fn unquote(raw: &str) -> String {
    let Some(quoted) = raw.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')) else {
        return raw.to_owned();
    };
    let mut out = String::with_capacity(quoted.len());
    let mut escaped = false;
    for c in quoted.chars() {
        if escaped || c != '\\' {
            out.push(c);
            escaped = false;
        } else {
            escaped = true;
        }
    }
    out
}

/// Where a `key=value` value starting at `s` ends.
fn value_end(s: &str) -> usize {
    if let Some(quoted) = s.strip_prefix('\'') {
        let mut escaped = false;
        for (i, c) in quoted.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '\'' => return i + 2,
                _ => {}
            }
        }
        s.len()
    } else {
        s.find(char::is_whitespace).unwrap_or(s.len())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_password() {
        assert_eq!(
            redact("postgres://app:hunter2@db.example:5432/app?sslmode=disable"),
            "postgres://app:********@db.example:5432/app?sslmode=disable"
        );
        assert_eq!(
            redact("postgresql://app@db/app?password=hunter2&application_name=x"),
            "postgresql://app@db/app?password=********&application_name=x"
        );
        assert_eq!(redact("postgres://db/app"), "postgres://db/app");
        assert_eq!(
            redact("postgres://a:p%40ss@h"),
            "postgres://a:********@h",
            "percent-encoded passwords too"
        );
    }

    #[test]
    fn pairs_lose_their_password() {
        assert_eq!(
            redact("host=db user=app password=hunter2 dbname=app"),
            "host=db user=app password=******** dbname=app"
        );
        assert_eq!(
            redact("host=db password = 'hunter 2 \\' x' dbname=app"),
            "host=db password = ******** dbname=app"
        );
        assert_eq!(password_in("password='a b'").as_deref(), Some(&b"a b"[..]));
    }

    #[test]
    fn parse_errors_hide_the_password() {
        let e = parse("host=db password=hunter2 port=notaport").unwrap_err();
        assert!(!e.contains("hunter2"), "{e}");
        let e = parse("postgres://u:hunter2@h:notaport/db").unwrap_err();
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn tls_parameters_are_taken_out_for_enduro() {
        let target = parse(
            "postgres://app:p%40ss@db.example/app?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&application_name=x",
        )
        .unwrap();
        assert_eq!(target.tls.mode, SslMode::VerifyFull);
        assert_eq!(target.tls.root_cert.as_deref(), Some("/etc/ca.pem"));
        assert_eq!(target.config.get_password(), Some(&b"p@ss"[..]));
        assert_eq!(target.config.get_application_name(), Some("x"));
        assert_eq!(
            target.config.get_ssl_mode(),
            tokio_postgres::config::SslMode::Require
        );

        let target = parse(
            "host=db user=app sslmode=verify-ca sslrootcert='/a b/ca.pem' sslcert=/c.pem sslkey=/c.key",
        )
        .unwrap();
        assert_eq!(target.tls.mode, SslMode::VerifyCa);
        assert_eq!(target.tls.root_cert.as_deref(), Some("/a b/ca.pem"));
        assert_eq!(target.tls.client_cert.as_deref(), Some("/c.pem"));
        assert_eq!(target.tls.client_key.as_deref(), Some("/c.key"));
        assert_eq!(target.config.get_user(), Some("app"));
        assert_eq!(target.config.get_application_name(), Some("enduro"));

        // libpq's default is prefer; disable means no TLS at all.
        assert_eq!(parse("host=db").unwrap().tls.mode, SslMode::Prefer);
        let plain = parse("postgres://db/app?sslmode=disable").unwrap();
        assert_eq!(
            plain.config.get_ssl_mode(),
            tokio_postgres::config::SslMode::Disable
        );
        let socket = parse("host=/run/postgresql sslmode=require").unwrap();
        assert_eq!(
            socket.config.get_ssl_mode(),
            tokio_postgres::config::SslMode::Disable,
            "a Unix socket never carries TLS"
        );
    }

    #[test]
    fn bad_tls_parameters_are_refused_without_the_password() {
        for (db, says) in [
            (
                "postgres://u:hunter2@db/app?sslmode=verify",
                "unknown sslmode `verify`",
            ),
            (
                "postgres://u:hunter2@db/app?sslcert=/c.pem",
                "sslcert and sslkey go together",
            ),
            (
                "host=db password=hunter2 sslmode=disable sslrootcert=/ca.pem",
                "certificates would never be used",
            ),
            (
                "host=db password=hunter2 sslpassword=x",
                "sslpassword is not supported",
            ),
        ] {
            let e = parse(db).unwrap_err();
            assert!(e.contains(says), "{db}: {e}");
            assert!(!e.contains("hunter2"), "{e}");
        }
    }

    #[test]
    fn the_connect_timeout_of_the_string_is_kept() {
        let target = parse("postgres://db/app?connect_timeout=3").unwrap();
        assert_eq!(target.connect_timeout, Some(Duration::from_secs(3)));
        assert_eq!(parse("postgres://db/app").unwrap().connect_timeout, None);
    }

    #[test]
    fn describe_names_user_host_and_db() {
        let target = parse("postgres://app:hunter2@db.example:5433/shop").unwrap();
        assert_eq!(describe(&target.config), "app@db.example:5433/shop");
    }
}
