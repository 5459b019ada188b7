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
}
