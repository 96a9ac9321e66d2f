//! Where a browser request comes from: the `Host` a request names and the site that made it
//! (`Origin`, `Sec-Fetch-Site`), for a REST API that trusts clients by their address.
//!
//! Two attacks reach such an API through a browser on a trusted host:
//! - DNS rebinding: a page on `evil.example` makes its own name resolve to 127.0.0.1; its
//!   requests are then same-origin to the browser and carry `Host: evil.example`. Only names
//!   the operator gave (and names that cannot be rebound: `localhost`, `*.localhost`, IP
//!   literals) are accepted.
//! - Cross-site request forgery: a page on another site (another port of localhost included)
//!   POSTs a form (`text/plain`, `multipart/form-data`) that needs no CORS preflight. A
//!   state-changing request is refused when `Sec-Fetch-Site` says it came from another site,
//!   or, without that header, when `Origin` differs from the `Host` it was sent to. Clients
//!   that are not browsers send neither and are not affected.
//!
//! Pure functions over header values, so they are fuzzed.

use std::net::IpAddr;

/// Longest host name considered (RFC 1035: 253 characters); longer is refused.
pub const MAX_HOST_LEN: usize = 253;

/// A `Host` value (or URI authority) split into its host and optional port; `None` when it is
/// not a host (empty, too long, bad port, stray characters). The host is lowercased, a
/// trailing dot removed, IPv6 brackets kept.
pub fn split_host(authority: &str) -> Option<(String, Option<u16>)> {
    let authority = authority.trim_matches([' ', '\t']);
    if authority.is_empty() || authority.len() > MAX_HOST_LEN + 8 {
        return None;
    }
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (inner, after) = rest.split_once(']')?;
        inner.parse::<std::net::Ipv6Addr>().ok()?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?.parse::<u16>().ok()?),
        };
        (format!("[{inner}]"), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p.parse::<u16>().ok()?)),
            None => (authority.to_owned(), None),
        }
    };
    let host = host.strip_suffix('.').unwrap_or(&host).to_ascii_lowercase();
    let name_ok = host.starts_with('[')
        || (!host.is_empty()
            && host.len() <= MAX_HOST_LEN
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_')));
    name_ok.then_some((host, port))
}

/// Whether `host` (lowercase, without port, as [`split_host`] gives it) cannot be made to
/// point elsewhere by someone else's DNS: an IP literal, `localhost` or a `.localhost` name
/// (browsers resolve those to loopback themselves).
pub fn is_unbindable(host: &str) -> bool {
    host.starts_with('[')
        || host.parse::<IpAddr>().is_ok()
        || host == "localhost"
        || host.ends_with(".localhost")
}

/// Whether a request that names `authority` (its `Host`, or the URI authority of HTTP/2) is
/// for this server: always for IP literals and localhost names, else when `allowed` (the
/// operator's `http.allowed_hosts`) lists the name, a `*.suffix` covering it, or `*`. A
/// request without any host (an HTTP/1.0 tool) is not a browser's and is accepted.
pub fn host_allowed(authority: Option<&str>, allowed: &[String]) -> bool {
    let Some(authority) = authority else {
        return true;
    };
    let Some((host, _)) = split_host(authority) else {
        return false;
    };
    if is_unbindable(&host) {
        return true;
    }
    allowed.iter().any(|a| {
        let a = a.trim().to_ascii_lowercase();
        if a == "*" {
            return true;
        }
        match a.strip_prefix("*.") {
            Some(suffix) => host
                .strip_suffix(suffix)
                .is_some_and(|rest| rest.ends_with('.') && rest.len() > 1),
            None => a.strip_suffix('.').unwrap_or(&a) == host,
        }
    })
}

/// Whether `method` may change state (anything but GET, HEAD and OPTIONS).
pub fn is_state_changing(method: &str) -> bool {
    !matches!(
        method.to_ascii_uppercase().as_str(),
        "GET" | "HEAD" | "OPTIONS"
    )
}

/// Whether a request was made by a page of another site than the one it was sent to:
/// `Sec-Fetch-Site` other than `same-origin` or `none` (the user's own navigation), else an
/// `Origin` (`null` included) whose host and port differ from `authority`'s. With neither
/// header (curl, scripts, servers) it is not a browser's cross-site request.
pub fn is_cross_site(
    sec_fetch_site: Option<&str>,
    origin: Option<&str>,
    authority: Option<&str>,
) -> bool {
    if let Some(site) = sec_fetch_site {
        let site = site.trim().to_ascii_lowercase();
        return !(site == "same-origin" || site == "none");
    }
    let Some(origin) = origin else {
        return false;
    };
    let Some((scheme, rest)) = origin.trim().split_once("://") else {
        // `null` (sandboxed frames, some redirects) or garbage.
        return true;
    };
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" => 80,
        "https" => 443,
        _ => return true,
    };
    if rest.contains(['/', '?', '#', '@']) {
        return true;
    }
    let (Some((o_host, o_port)), Some((h_host, h_port))) =
        (split_host(rest), authority.and_then(split_host))
    else {
        return true;
    };
    o_host != h_host || o_port.unwrap_or(default_port) != h_port.unwrap_or(default_port)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn hosts_split_into_name_and_port() {
        assert_eq!(
            split_host("Example.COM:8080"),
            Some(("example.com".to_owned(), Some(8080)))
        );
        assert_eq!(
            split_host("localhost."),
            Some(("localhost".to_owned(), None))
        );
        assert_eq!(split_host("[::1]:80"), Some(("[::1]".to_owned(), Some(80))));
        for bad in [
            "", ":80", "a:b", "[::1", "[zz]:1", "a b", "a\r\nb", "a/b", "a:99999",
        ] {
            assert_eq!(split_host(bad), None, "{bad:?}");
        }
        assert_eq!(split_host(&"a".repeat(300)), None);
    }

    #[test]
    fn loopback_names_and_ip_literals_are_always_allowed() {
        for h in [
            "localhost",
            "localhost:8080",
            "app.localhost:1",
            "127.0.0.1:8080",
            "[::1]:8080",
            "192.0.2.7",
        ] {
            assert!(host_allowed(Some(h), &[]), "{h}");
        }
        assert!(host_allowed(None, &[]));
    }

    #[test]
    fn other_names_need_the_list() {
        assert!(!host_allowed(Some("evil.example:8080"), &[]));
        assert!(!host_allowed(Some("localhost.evil.example"), &[]));
        assert!(!host_allowed(Some("evil\r\n"), &names(&["*"])));
        let list = names(&["media.example.com", "*.cdn.example"]);
        assert!(host_allowed(Some("MEDIA.example.com:8080"), &list));
        assert!(host_allowed(Some("edge1.cdn.example"), &list));
        assert!(!host_allowed(Some("cdn.example"), &list));
        assert!(!host_allowed(Some("evilcdn.example"), &list));
        assert!(!host_allowed(Some("example.com"), &list));
        assert!(host_allowed(Some("anything.example"), &names(&["*"])));
    }

    #[test]
    fn cross_site_by_fetch_metadata_first() {
        let h = Some("127.0.0.1:8080");
        assert!(!is_cross_site(Some("same-origin"), None, h));
        assert!(!is_cross_site(Some("none"), None, h));
        assert!(is_cross_site(Some("same-site"), None, h));
        assert!(is_cross_site(
            Some("cross-site"),
            Some("http://127.0.0.1:8080"),
            h
        ));
    }

    #[test]
    fn cross_site_by_origin_otherwise() {
        let h = Some("127.0.0.1:8080");
        assert!(!is_cross_site(None, None, h), "not a browser");
        assert!(!is_cross_site(None, Some("http://127.0.0.1:8080"), h));
        assert!(is_cross_site(None, Some("http://localhost:8080"), h));
        assert!(is_cross_site(None, Some("http://127.0.0.1:3000"), h));
        assert!(is_cross_site(None, Some("http://evil.example"), h));
        assert!(is_cross_site(None, Some("null"), h));
        assert!(is_cross_site(None, Some("http://127.0.0.1:8080/x"), h));
        // Default ports are the same origin with or without them.
        assert!(!is_cross_site(
            None,
            Some("http://media.example"),
            Some("media.example:80")
        ));
        assert!(!is_cross_site(
            None,
            Some("https://media.example"),
            Some("media.example")
        ));
        assert!(is_cross_site(
            None,
            Some("https://media.example"),
            Some("media.example:80")
        ));
        assert!(is_cross_site(None, Some("http://a"), None));
    }

    #[test]
    fn state_changing_methods() {
        for m in ["POST", "put", "PATCH", "DELETE"] {
            assert!(is_state_changing(m), "{m}");
        }
        for m in ["GET", "HEAD", "OPTIONS"] {
            assert!(!is_state_changing(m), "{m}");
        }
    }
}
