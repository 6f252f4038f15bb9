//! etcd-style URL lists (`http://host:port,http://host:port`) to socket addresses.

use std::net::{SocketAddr, ToSocketAddrs};

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum UrlError {
    #[error("{url:?}: expected http://host:port")]
    Malformed { url: String },
    #[error("{url:?}: https needs TLS, which this version does not support yet")]
    Tls { url: String },
    #[error("{url:?}: cannot resolve host: {why}")]
    Resolve { url: String, why: String },
}

/// Splits a comma-separated list of URLs, checking each is `http://host:port`.
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

fn host_port(url: &str) -> Result<&str, UrlError> {
    if url.starts_with("https://") {
        return Err(UrlError::Tls {
            url: url.to_string(),
        });
    }
    let rest = url.strip_prefix("http://").unwrap_or(url);
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
        assert!(matches!(
            parse_url_list("https://a:1"),
            Err(UrlError::Tls { .. })
        ));
        assert!(parse_url_list("").is_err());
    }
}
