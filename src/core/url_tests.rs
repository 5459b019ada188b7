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
