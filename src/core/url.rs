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
#[path = "url_tests.rs"]
mod tests;
