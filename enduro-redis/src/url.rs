//! Connection URLs: parsed by the redis crate, named in errors without their password.

use enduro_core::{Error, Result};
use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo};

/// A parsed URL and the key, for a store.
pub(crate) struct Target {
    pub(crate) info: ConnectionInfo,
    pub(crate) key: String,
}

impl Target {
    /// Parses `url` (the redis crate's syntax) and checks `key`.
    pub(crate) fn parse(url: &str, key: &str) -> Result<Target> {
        let shown = redacted(url);
        let info = url.into_connection_info().map_err(|e| {
            Error::backend(
                format!("Redis key `{key}` at {shown}"),
                format!(
                    "invalid Redis URL: {}; expected redis://[[user]:password@]host[:port][/db], \
                     rediss://... for TLS, or redis+unix:///path/to/socket",
                    e.detail().unwrap_or(&e.to_string())
                ),
                None,
            )
        })?;
        let target = Target {
            info,
            key: key.to_owned(),
        };
        if key.is_empty() {
            return Err(Error::backend(
                target.resource(),
                "the key must not be empty",
                None,
            ));
        }
        Ok(target)
    }

    /// ``Redis key `hits` at redis://app@cache:6379/2``: no password, ever.
    pub(crate) fn resource(&self) -> String {
        let settings = self.info.redis_settings();
        let user = settings
            .username()
            .map(|u| format!("{u}@"))
            .unwrap_or_default();
        let db = settings.db();
        let place = match self.info.addr() {
            ConnectionAddr::Tcp(host, port) => format!("redis://{user}{host}:{port}/{db}"),
            ConnectionAddr::TcpTls { host, port, .. } => {
                format!("rediss://{user}{host}:{port}/{db}")
            }
            ConnectionAddr::Unix(path) => format!("redis+unix://{}?db={db}", path.display()),
            other => format!("{other}/{db}"),
        };
        format!("Redis key `{}` at {place}", self.key)
    }
}

/// `url` with any password replaced by `***`, for messages about a URL that may not
/// even parse: the user-info part (before the last `@` of the authority) and a `pass=`
/// or `password=` query parameter.
pub(crate) fn redacted(url: &str) -> String {
    let mut shown = url.to_owned();
    let Some(scheme_end) = shown.find("://") else {
        // Not a URL at all: where a password would be is anyone's guess.
        return "(a string that is not a URL)".to_owned();
    };
    {
        let start = scheme_end + 3;
        let authority_end = shown[start..]
            .find(['/', '?', '#'])
            .map_or(shown.len(), |i| start + i);
        if let Some(at) = shown[start..authority_end].rfind('@') {
            let userinfo = &shown[start..start + at];
            let user = userinfo.split(':').next().unwrap_or_default();
            let hidden = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                // `redis://secret@host`: the redis crate takes a lone user-info part for
                // a password, so hide it too.
                "***".to_owned()
            };
            shown.replace_range(start..start + at, &hidden);
        }
    }
    if let Some(query) = shown.find('?') {
        let (head, tail) = shown.split_at(query + 1);
        let params: Vec<String> = tail
            .split('&')
            .map(|param| match param.split_once('=') {
                Some((name, _)) if name == "pass" || name == "password" => format!("{name}=***"),
                _ => param.to_owned(),
            })
            .collect();
        shown = format!("{head}{}", params.join("&"));
    }
    shown
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hidden() {
        for (url, shown) in [
            ("redis://:s3cret@host:6379/1", "redis://:***@host:6379/1"),
            ("redis://app:s3cret@host", "redis://app:***@host"),
            ("rediss://app:p@ss@host/0", "rediss://app:***@host/0"),
            ("redis://s3cret@host", "redis://***@host"),
            (
                "redis+unix:///run/r.sock?db=1&pass=s3cret",
                "redis+unix:///run/r.sock?db=1&pass=***",
            ),
            ("redis://host:6379", "redis://host:6379"),
            ("not a url :s3cret@", "(a string that is not a URL)"),
        ] {
            assert_eq!(redacted(url), shown, "{url}");
        }
    }

    #[test]
    fn resources_name_the_server_and_key_without_the_password() {
        let t = Target::parse("redis://app:s3cret@cache:6380/2", "hits").unwrap();
        assert_eq!(t.resource(), "Redis key `hits` at redis://app@cache:6380/2");
        let t = Target::parse("redis://:s3cret@cache", "k").unwrap();
        assert_eq!(t.resource(), "Redis key `k` at redis://cache:6379/0");
    }

    #[test]
    fn bad_urls_say_what_is_expected_without_the_password() {
        for url in [
            "http://:s3cret@host",
            "redis://:s3cret@host:notaport",
            "",
            "redis://host/x",
        ] {
            let e = Target::parse(url, "k").err().unwrap().to_string();
            assert!(e.contains("invalid Redis URL"), "{url}: {e}");
            assert!(!e.contains("s3cret"), "{url}: {e}");
        }
        let e = Target::parse("redis://host", "").err().unwrap().to_string();
        assert!(e.contains("must not be empty"), "{e}");
    }
}
