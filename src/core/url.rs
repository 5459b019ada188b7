//! The parts of a request URL the router needs, by string slicing: the `url`
//! crate would link its IDNA tables (~200 KB of Wasm), and the runtime has
//! already normalized the URL.

/// `scheme://host[:port]`.
pub fn origin_of(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let end = url[after_scheme..].find(['/', '?', '#']).map_or(url.len(), |i| after_scheme + i);
    &url[..end]
}

/// The path, without query or fragment; `/` when there is none.
pub fn path_of(url: &str) -> &str {
    let rest = &url[origin_of(url).len()..];
    let path = &rest[..rest.find(['?', '#']).unwrap_or(rest.len())];
    if path.is_empty() {
        "/"
    } else {
        path
    }
}

/// `endpoint` with `path` at its end (unless it has it already), before any
/// query string: a base URL (`https://api.openai.com/v1`) as well as the full
/// URL are accepted, and Azure-style `…/deployments/x?api-version=…` works.
pub fn with_path(endpoint: &str, path: &str) -> String {
    let e = endpoint.trim();
    let (base, query) = e.split_at(e.find('?').unwrap_or(e.len()));
    if base.ends_with(path) {
        e.to_owned()
    } else {
        format!("{}{path}{query}", base.trim_end_matches('/'))
    }
}

/// `%XX` escapes decoded; anything else kept as it is.
pub fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (b[i], b.get(i + 1).copied().and_then(hex), b.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_the_url_standard() {
        for (url, origin, path) in [
            ("https://example.com/", "https://example.com", "/"),
            ("https://example.com/v1/models", "https://example.com", "/v1/models"),
            ("http://127.0.0.1:8787/v1/chat/completions?x=/y", "http://127.0.0.1:8787", "/v1/chat/completions"),
            ("https://example.com/foo#/frag?x", "https://example.com", "/foo"),
            ("https://example.com/a%3F%23%2Fb?c", "https://example.com", "/a%3F%23%2Fb"),
            ("https://example.com?query", "https://example.com", "/"),
            ("https://example.com#frag", "https://example.com", "/"),
            ("https://example.com", "https://example.com", "/"),
        ] {
            assert_eq!(origin_of(url), origin, "{url}");
            assert_eq!(path_of(url), path, "{url}");
        }
    }

    #[test]
    fn percent_decodes() {
        assert_eq!(percent_decode("a%20b%2Fc%zz%4"), b"a b/c%zz%4");
    }

    #[test]
    fn endpoints_get_their_path_before_any_query() {
        for (given, want) in [
            ("https://x.test/v1", "https://x.test/v1/chat/completions"),
            ("https://x.test/v1/", "https://x.test/v1/chat/completions"),
            ("https://x.test/v1/chat/completions", "https://x.test/v1/chat/completions"),
            ("https://x.test/openai/deployments/d?api-version=2024-10-21", "https://x.test/openai/deployments/d/chat/completions?api-version=2024-10-21"),
            ("https://x.test/openai/deployments/d/chat/completions?api-version=1", "https://x.test/openai/deployments/d/chat/completions?api-version=1"),
        ] {
            assert_eq!(with_path(given, "/chat/completions"), want);
        }
    }
}
