//! etcd-style URL lists (`http://host:port,https://host:port`) to socket addresses.

use std::net::{SocketAddr, ToSocketAddrs};

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum UrlError {
    #[error("{url:?}: expected http://host:port or https://host:port")]
    Malformed { url: String },
    #[error("{url:?}: cannot resolve host: {why}")]
    Resolve { url: String, why: String },
}

/// Splits a comma-separated list of URLs, checking each is `http(s)://host:port`.
pub fn parse_url_list(list: &str) -> Result<Vec<String>, UrlError> {
    let urls: Vec<String> = list
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    if urls.is_empty() {
        return Err(UrlError::Malformed {
            url: list.to_string(),
        });
    }
    for u in &urls {
        host_port(u)?;
    }
    Ok(urls)
}

/// Whether the URL asks for TLS.
pub fn is_https(url: &str) -> bool {
    url.starts_with("https://")
}

fn host_port(url: &str) -> Result<&str, UrlError> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .unwrap_or(url);
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() || rest.contains('/') || !rest.contains(':') {
        return Err(UrlError::Malformed {
            url: url.to_string(),
        });
    }
    Ok(rest)
}

/// Resolves a URL to listen on.
pub fn resolve_listen(url: &str) -> Result<SocketAddr, UrlError> {
    resolve(url)
}

/// Resolves a URL to one socket address.
pub fn resolve(url: &str) -> Result<SocketAddr, UrlError> {
    let hp = host_port(url)?;
    hp.to_socket_addrs()
        .map_err(|e| UrlError::Resolve {
            url: url.to_string(),
            why: e.to_string(),
        })?
        .next()
        .ok_or_else(|| UrlError::Resolve {
            url: url.to_string(),
            why: "no address".into(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_etcd_style_lists() {
        assert_eq!(
            parse_url_list("http://127.0.0.1:2379, http://127.0.0.2:2379").unwrap(),
            vec!["http://127.0.0.1:2379", "http://127.0.0.2:2379"]
        );
        assert_eq!(
            resolve("http://127.0.0.1:2380").unwrap(),
            "127.0.0.1:2380".parse().unwrap()
        );
        assert!(matches!(
            parse_url_list("http://nohost"),
            Err(UrlError::Malformed { .. })
        ));
        assert_eq!(parse_url_list("https://a:1").unwrap(), vec!["https://a:1"]);
        assert!(is_https("https://a:1") && !is_https("http://a:1"));
        assert_eq!(
            resolve("https://127.0.0.1:2379").unwrap(),
            "127.0.0.1:2379".parse().unwrap()
        );
        assert!(parse_url_list("").is_err());
    }
}
