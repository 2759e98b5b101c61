//! Who may write: a request carries `Authorization: Bearer <token>` or basic auth with
//! `[web] username` and the token as password, plus [`CSRF_HEADER`]. Pure: headers in, the
//! caller's name or the refusal out.
//!
//! The extra header is what makes writes CSRF-safe: a page on another site can make a browser
//! send a form or a simple request with the user's credentials, but not a custom header
//! without a CORS preflight, which this server never approves.

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;

use super::settings::Auth;

/// Every write must carry this header (any value), e.g. `X-Lookout-Write: 1`.
pub const CSRF_HEADER: &str = "x-lookout-write";

#[derive(Debug, PartialEq, thiserror::Error)]
pub enum Refused {
    #[error(
        "config writes are off: set [web] allow_config_writes = true and web.token_file in lookout.toml, then restart"
    )]
    WritesOff,
    #[error("missing the {CSRF_HEADER} header that every write must carry")]
    NoCsrfHeader,
    #[error("authentication needed: send Authorization: Bearer <token> (web.token_file), or basic auth")]
    NoCredentials,
    #[error("wrong credentials")]
    Wrong,
}

/// The name of whoever sent `headers`, if they may write.
pub fn authorize(headers: &HeaderMap, allow_writes: bool, auth: Option<&Auth>) -> Result<String, Refused> {
    let auth = match auth {
        Some(a) if allow_writes => a,
        _ => return Err(Refused::WritesOff),
    };
    if !headers.contains_key(CSRF_HEADER) {
        return Err(Refused::NoCsrfHeader);
    }
    let value = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()).ok_or(Refused::NoCredentials)?;
    let (scheme, rest) = value.split_once(' ').ok_or(Refused::Wrong)?;
    if scheme.eq_ignore_ascii_case("bearer") {
        return if same(rest.trim().as_bytes(), auth.token.as_bytes()) {
            Ok("token".to_string())
        } else {
            Err(Refused::Wrong)
        };
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64_decode(rest.trim()).ok_or(Refused::Wrong)?;
        let text = String::from_utf8(decoded).map_err(|_| Refused::Wrong)?;
        let (user, password) = text.split_once(':').ok_or(Refused::Wrong)?;
        // Both compared, whatever the first gives: the time taken says nothing of which was wrong.
        let ok = same(user.as_bytes(), auth.username.as_bytes()) & same(password.as_bytes(), auth.token.as_bytes());
        return if ok { Ok(user.to_string()) } else { Err(Refused::Wrong) };
    }
    Err(Refused::Wrong)
}

/// Equal, in a time that depends on the lengths only.
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Standard base64 (RFC 4648, with or without padding), for basic auth's one header.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let s = s.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    for chunk in s.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= value(c)? << (18 - 6 * i);
        }
        match chunk.len() {
            4 => out.extend_from_slice(&[(n >> 16) as u8, (n >> 8) as u8, n as u8]),
            3 => out.extend_from_slice(&[(n >> 16) as u8, (n >> 8) as u8]),
            2 => out.push((n >> 16) as u8),
            _ => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Auth {
        Auth { username: "admin".into(), token: "0123456789abcdef".into(), token_file: "/x".into() }
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        h
    }

    #[test]
    fn bearer_and_basic_pass_and_name_the_writer() {
        let a = auth();
        let h = headers(&[("authorization", "Bearer 0123456789abcdef"), (CSRF_HEADER, "1")]);
        assert_eq!(authorize(&h, true, Some(&a)), Ok("token".into()));
        // admin:0123456789abcdef
        let h = headers(&[("authorization", "Basic YWRtaW46MDEyMzQ1Njc4OWFiY2RlZg=="), (CSRF_HEADER, "1")]);
        assert_eq!(authorize(&h, true, Some(&a)), Ok("admin".into()));
    }

    #[test]
    fn everything_else_is_refused() {
        let a = auth();
        let good = [("authorization", "Bearer 0123456789abcdef"), (CSRF_HEADER, "1")];
        assert_eq!(authorize(&headers(&good), false, Some(&a)), Err(Refused::WritesOff));
        assert_eq!(authorize(&headers(&good), true, None), Err(Refused::WritesOff));
        assert_eq!(authorize(&headers(&good[..1]), true, Some(&a)), Err(Refused::NoCsrfHeader));
        assert_eq!(authorize(&headers(&good[1..]), true, Some(&a)), Err(Refused::NoCredentials));
        let wrong = [("authorization", "Bearer 0123456789abcdeX"), (CSRF_HEADER, "1")];
        assert_eq!(authorize(&headers(&wrong), true, Some(&a)), Err(Refused::Wrong));
        // admin:wrong
        let wrong = [("authorization", "Basic YWRtaW46d3Jvbmc="), (CSRF_HEADER, "1")];
        assert_eq!(authorize(&headers(&wrong), true, Some(&a)), Err(Refused::Wrong));
        let wrong = [("authorization", "Basic !!!"), (CSRF_HEADER, "1")];
        assert_eq!(authorize(&headers(&wrong), true, Some(&a)), Err(Refused::Wrong));
    }

    #[test]
    fn base64_decodes_with_and_without_padding() {
        assert_eq!(base64_decode("aGk=").unwrap(), b"hi");
        assert_eq!(base64_decode("aGk").unwrap(), b"hi");
        assert_eq!(base64_decode("aGVsbG8gd29ybGQ=").unwrap(), b"hello world");
        assert!(base64_decode("a").is_none());
    }
}
