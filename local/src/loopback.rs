//! With `--no-auth` nothing checks who calls, so the runner answers only what cannot
//! come from a web page the developer happens to visit: the `Host` must be a loopback
//! name or address (a DNS-rebound name is refused), an `Origin`, when sent, must be the
//! runner's own, and a POST or PUT must say `Content-Type: application/json` (a
//! cross-site form or `no-cors` fetch cannot, without a CORS preflight PiSync never
//! grants).

use hyper::header::{CONTENT_TYPE, HOST, ORIGIN};
use hyper::http::request::Parts;
use hyper::Method;
use pisync_shared::http::ApiError;
use std::net::IpAddr;

/// Why a request is refused, if it is; `None` when it may be served.
pub fn refusal(parts: &Parts) -> Option<ApiError> {
    let host = parts
        .headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| parts.uri.authority().map(|a| a.as_str()));
    let Some(host) = host.filter(|h| is_loopback_host(h)) else {
        return Some(ApiError::forbidden(
            "with --no-auth the runner answers only a loopback Host (localhost, 127.0.0.1 or [::1])",
        ));
    };
    if let Some(origin) = parts.headers.get(ORIGIN) {
        let own = format!("http://{host}");
        if origin.as_bytes() != own.as_bytes() {
            return Some(ApiError::forbidden(
                "with --no-auth the runner answers no other origin than its own",
            ));
        }
    }
    let writes = parts.method == Method::POST || parts.method == Method::PUT;
    let json = parts
        .headers
        .get(CONTENT_TYPE)
        .is_some_and(|v| pisync_shared::http::is_json_media_type(v.as_bytes()));
    if writes && !json {
        return Some(ApiError::unsupported_media_type());
    }
    None
}

/// `localhost`, `127.x.x.x` or `[::1]`, with or without a port.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        // `[::1]:8080` → `::1`
        Some(rest) => match rest.split_once(']') {
            Some((inside, tail)) if tail.is_empty() || port(tail) => inside,
            _ => return false,
        },
        None => match host.rsplit_once(':') {
            Some((name, tail)) if port(&format!(":{tail}")) => name,
            Some(_) => return false,
            None => host,
        },
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// `:` and 1–5 digits.
fn port(tail: &str) -> bool {
    tail.strip_prefix(':')
        .is_some_and(|digits| (1..=5).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(method: Method, headers: &[(&str, &str)]) -> Parts {
        let mut builder = hyper::Request::builder().method(method).uri("/sync-event");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn loopback_hosts_only() {
        for ok in [
            "localhost",
            "localhost:8080",
            "127.0.0.1:1",
            "127.9.9.9",
            "[::1]:8080",
            "[::1]",
            "LOCALHOST:80",
        ] {
            assert!(is_loopback_host(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:8080",
            "localhost.evil.example",
            "10.0.0.1:80",
            "[::2]:80",
            "127.0.0.1:",
            "127.0.0.1:80:80",
            "[::1]x",
            "",
        ] {
            assert!(!is_loopback_host(bad), "{bad}");
        }
    }

    #[test]
    fn a_rebound_name_is_refused() {
        let refused = refusal(&parts(Method::GET, &[("host", "attacker.example:8080")]));
        assert_eq!(refused.map(|e| e.status.as_u16()), Some(403));
        assert!(refusal(&parts(Method::GET, &[])).is_some(), "no Host at all");
    }

    #[test]
    fn only_the_runners_own_origin() {
        let host = ("host", "127.0.0.1:8080");
        assert!(refusal(&parts(Method::GET, &[host, ("origin", "http://127.0.0.1:8080")])).is_none());
        assert!(
            refusal(&parts(Method::GET, &[host])).is_none(),
            "no Origin: not a browser's cross-site call"
        );
        for other in [
            "https://attacker.example",
            "null",
            "http://127.0.0.1:9090",
            "http://localhost:8080",
        ] {
            let refused = refusal(&parts(Method::GET, &[host, ("origin", other)]));
            assert_eq!(refused.map(|e| e.status.as_u16()), Some(403), "{other}");
        }
    }

    #[test]
    fn a_write_must_say_json() {
        let host = ("host", "localhost:8080");
        for (method, content_type, refused) in [
            (Method::POST, None, true),
            (Method::POST, Some("text/plain"), true),
            (Method::POST, Some("application/x-www-form-urlencoded"), true),
            (Method::PUT, None, true),
            (Method::POST, Some("application/json"), false),
            (Method::POST, Some("application/json; charset=utf-8"), false),
            (Method::GET, None, false),
            (Method::DELETE, None, false),
        ] {
            let mut headers = vec![host];
            headers.extend(content_type.map(|c| ("content-type", c)));
            let got = refusal(&parts(method.clone(), &headers)).map(|e| e.status.as_u16());
            assert_eq!(got, refused.then_some(415), "{method} {content_type:?}");
        }
    }
}
