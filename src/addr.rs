//! Server addresses as a client writes them: the one place where a host
//! and port become `host:port` and `http://host:port/`.
//!
//! The viewer prints its URL from the address it bound, the supervisor
//! probes `/healthz` and prints the same URL from `--host` and `--port`,
//! and the viewer's `Host` guard accepts the names written this way; all
//! three go through these functions, so they cannot drift apart. This
//! module is pure string handling: it resolves no name and opens nothing.
//!
//! Two rules: a wildcard bind (`0.0.0.0`, `::`, no host) is reached on
//! the loopback address of its family, and an IPv6 address stands in
//! brackets (`[::1]:8050`).

use std::net::IpAddr;

/// The host a client connects to for a server bound to `host` (an IP
/// address, bracketed or not, or a name): a wildcard address is reached on
/// loopback, anything else as given.
pub fn reachable(host: &str) -> String {
    let bare = host.trim_matches(|c| c == '[' || c == ']');
    match bare.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) if ip.is_unspecified() => "127.0.0.1".to_string(),
        Ok(IpAddr::V6(ip)) if ip.is_unspecified() => "::1".to_string(),
        _ if bare.is_empty() => "127.0.0.1".to_string(),
        _ => bare.to_string(),
    }
}

/// `host` as it stands in a URL or a `Host` header: an IPv6 address in
/// brackets, anything else as it is.
pub fn url_host(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// The `host:port` a client connects to, and names in `Host`, for a
/// server bound to `host` and `port`.
pub fn authority(host: &str, port: u16) -> String {
    format!("{}:{port}", url_host(&reachable(host)))
}

/// The page's URL for a server bound to `host` and `port`.
pub fn url(host: &str, port: u16) -> String {
    format!("http://{}/", authority(host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_are_reached_on_loopback_and_ipv6_is_bracketed() {
        assert_eq!(url("127.0.0.1", 8050), "http://127.0.0.1:8050/");
        assert_eq!(url("0.0.0.0", 80), "http://127.0.0.1:80/");
        assert_eq!(url("", 80), "http://127.0.0.1:80/");
        assert_eq!(url("::1", 8050), "http://[::1]:8050/");
        assert_eq!(url("[::1]", 8050), "http://[::1]:8050/");
        assert_eq!(url("::", 8050), "http://[::1]:8050/");
        assert_eq!(url("[::]", 8050), "http://[::1]:8050/");
        assert_eq!(url("localhost", 9000), "http://localhost:9000/");
        assert_eq!(url("192.168.1.5", 9000), "http://192.168.1.5:9000/");
        assert_eq!(url_host("fe80::1"), "[fe80::1]");
        assert_eq!(url_host("10.0.0.1"), "10.0.0.1");
    }
}
