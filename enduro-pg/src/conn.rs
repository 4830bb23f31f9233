//! Connection strings: parsing them, describing where they point, and hiding passwords.

use std::str::FromStr;
use std::time::Duration;

use tokio_postgres::config::Host;

/// What a password is replaced with wherever a connection string is shown.
pub(crate) const REDACTED: &str = "********";

/// How long connecting may take unless the connection string says otherwise.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Parses `db` (a `postgres://` URL or `key=value` pairs). The error never contains the
/// password: it shows the redacted string.
pub(crate) fn parse(db: &str) -> Result<tokio_postgres::Config, String> {
    match tokio_postgres::Config::from_str(db) {
        Ok(mut config) => {
            if config.get_connect_timeout().is_none() {
                config.connect_timeout(CONNECT_TIMEOUT);
            }
            Ok(config)
        }
        Err(e) => Err(scrub(
            &format!(
                "invalid PostgreSQL connection string `{}`: {e} (expected a URL such as \
                 postgres://user:password@host:5432/dbname or key=value pairs such as \
                 `host=localhost user=app dbname=app`)",
                redact(db)
            ),
            password_in(db).as_deref(),
        )),
    }
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
    redact_with(db, &mut |p| found = Some(p.as_bytes().to_vec()));
    found
}

/// `db` with its password (in the URL's user info, a `password=` query parameter, or a
/// `password=` pair) replaced by asterisks.
pub(crate) fn redact(db: &str) -> String {
    redact_with(db, &mut |_| {})
}

fn redact_with(db: &str, seen: &mut dyn FnMut(&str)) -> String {
    let trimmed = db.trim_start();
    if trimmed.starts_with("postgres://") || trimmed.starts_with("postgresql://") {
        redact_url(db, seen)
    } else {
        redact_pairs(db, seen)
    }
}

fn redact_url(url: &str, seen: &mut dyn FnMut(&str)) -> String {
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
                    seen(&userinfo[colon + 1..]);
                    out.push_str(&userinfo[..colon]);
                    out.push(':');
                    out.push_str(REDACTED);
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
            out.push_str(&tail[..=q]);
            let params: Vec<String> = tail[q + 1..]
                .split('&')
                .map(|param| match param.split_once('=') {
                    Some((key, value)) if key.eq_ignore_ascii_case("password") => {
                        seen(value);
                        format!("{key}={REDACTED}")
                    }
                    _ => param.to_owned(),
                })
                .collect();
            out.push_str(&params.join("&"));
        }
        None => out.push_str(tail),
    }
    out
}

/// `key=value` pairs separated by whitespace; values may be single-quoted with `\'` and
/// `\\` escapes, and spaces may surround the `=`.
fn redact_pairs(s: &str, seen: &mut dyn FnMut(&str)) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    loop {
        let start = rest.len() - rest.trim_start().len();
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        if rest.is_empty() {
            return out;
        }
        let key_end = rest
            .find(|c: char| c == '=' || c.is_whitespace())
            .unwrap_or(rest.len());
        let key = &rest[..key_end];
        out.push_str(key);
        rest = &rest[key_end..];
        let spaces = rest.len() - rest.trim_start().len();
        if !rest[spaces..].starts_with('=') {
            // A bare word: not valid, but keep going so nothing after it leaks.
            continue;
        }
        let after_eq = spaces + 1;
        out.push_str(&rest[..after_eq]);
        rest = &rest[after_eq..];
        let spaces = rest.len() - rest.trim_start().len();
        out.push_str(&rest[..spaces]);
        rest = &rest[spaces..];
        let value_end = value_end(rest);
        let value = &rest[..value_end];
        if key == "password" {
            let unquoted = value
                .strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
                .unwrap_or(value);
            seen(unquoted);
            out.push_str(REDACTED);
        } else {
            out.push_str(value);
        }
        rest = &rest[value_end..];
    }
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
    fn describe_names_user_host_and_db() {
        let config = parse("postgres://app:hunter2@db.example:5433/shop").unwrap();
        assert_eq!(describe(&config), "app@db.example:5433/shop");
    }
}
