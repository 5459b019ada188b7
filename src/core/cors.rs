//! Browser clients: which origins may call us (`N1_CORS_ORIGINS`), and the
//! CORS headers for preflights and replies.

/// Headers a browser may read from our replies.
pub const EXPOSE: &str = "x-request-id, x-n1-ensemble, x-n1-panel, x-n1-degraded, x-n1-fallback, x-n1-cost-usd, retry-after";
const METHODS: &str = "GET, POST, DELETE, OPTIONS";
/// Allowed when a preflight does not list what it wants.
const DEFAULT_HEADERS: &str = "authorization, content-type, x-api-key, x-n1-progress, x-n1-direct";

#[derive(Debug, Default, Clone, PartialEq)]
pub struct CorsPolicy {
    any: bool,
    origins: Vec<String>,
}

fn normalize(origin: &str) -> String {
    origin.trim().trim_end_matches('/').to_ascii_lowercase()
}

impl CorsPolicy {
    /// `N1_CORS_ORIGINS`: origins separated by commas or spaces, or `*` (only
    /// when set explicitly). Unset: no cross-origin browser access.
    pub fn parse(var: Option<&str>) -> Self {
        let mut p = CorsPolicy::default();
        for o in var.unwrap_or("").split([',', ' ', '\n']).filter(|o| !o.trim().is_empty()) {
            if o.trim() == "*" {
                p.any = true;
            } else {
                p.origins.push(normalize(o));
            }
        }
        p
    }

    /// Our own origin (the chat page) is always allowed.
    pub fn allows(&self, origin: &str, own_origin: &str) -> bool {
        let o = normalize(origin);
        self.any || o == normalize(own_origin) || self.origins.contains(&o)
    }

    /// Headers for a reply to an allowed origin.
    pub fn reply_headers(origin: &str) -> [(&'static str, String); 3] {
        [
            ("access-control-allow-origin", origin.to_owned()),
            ("access-control-expose-headers", EXPOSE.to_owned()),
            ("vary", "Origin".to_owned()),
        ]
    }

    /// Headers for a preflight from an allowed origin. Requested headers are
    /// echoed: SDKs in browsers add their own (`x-stainless-*`).
    pub fn preflight_headers(origin: &str, requested: Option<&str>) -> Vec<(&'static str, String)> {
        let headers = requested.map(str::trim).filter(|h| !h.is_empty()).unwrap_or(DEFAULT_HEADERS);
        vec![
            ("access-control-allow-origin", origin.to_owned()),
            ("access-control-allow-methods", METHODS.to_owned()),
            ("access-control-allow-headers", headers.to_owned()),
            ("access-control-max-age", "86400".to_owned()),
            ("vary", "Origin, Access-Control-Request-Headers".to_owned()),
        ]
    }
}

#[cfg(test)]
#[path = "cors_tests.rs"]
mod tests;
