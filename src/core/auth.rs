//! Client access keys: parsing `N1_API_KEYS`, finding the caller's key in
//! constant time, and which ensembles it may use.

use serde_json::Value;

use crate::core::budget::Limits;
use crate::core::error::N1Error;

#[derive(Debug, Clone, PartialEq)]
pub struct ClientKey {
    pub key: String,
    /// Shown in logs and used for rate limiting; never the key itself.
    pub name: Option<String>,
    /// Ensembles this key may use; absent: all.
    pub ensembles: Option<Vec<String>>,
    /// What it may spend (`"budget": {"usd_per_day", "usd_per_month", "tokens_per_day"}`).
    pub budget: Option<Limits>,
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    /// A label for logs and rate limits (`key:<name>` or `anonymous`).
    pub label: String,
    pub ensembles: Option<Vec<String>>,
    pub anonymous: bool,
    /// Its key's budget (for anonymous callers: `N1_ANONYMOUS_BUDGET`, set by the edge).
    pub budget: Option<Limits>,
}

impl Principal {
    pub fn may_use(&self, ensemble: &str) -> bool {
        self.ensembles.as_ref().is_none_or(|list| list.iter().any(|e| e == ensemble))
    }

    /// The name of its key (`None` when anonymous), as `N1_API_KEYS` names it
    /// (`#<n>`, its position, for a key without a name).
    pub fn key_name(&self) -> Option<&str> {
        self.label.strip_prefix("key:")
    }

    pub fn check(&self, ensemble: &str) -> Result<(), N1Error> {
        if self.may_use(ensemble) {
            Ok(())
        } else {
            Err(N1Error::Forbidden(format!("This API key may not use the ensemble `{ensemble}`.")))
        }
    }
}

/// `N1_API_KEYS`: a JSON array of `{"key", "name", "ensembles", "budget"}`
/// objects or of strings, or plain keys separated by commas, spaces or new lines.
pub fn parse_keys(text: &str) -> Result<Vec<ClientKey>, String> {
    let t = text.trim();
    let keys: Vec<ClientKey> = if t.starts_with('[') {
        // Never quotes the text: it holds keys.
        let invalid = || {
            "N1_API_KEYS is not a valid JSON array of keys or {\"key\", \"name\", \"ensembles\", \"budget\"} objects (a budget has `usd_per_day`, `usd_per_month`, `tokens_per_day`: numbers ≥ 0)".to_owned()
        };
        let entries = match serde_json::from_str::<Value>(t) {
            Ok(Value::Array(entries)) => entries,
            _ => return Err(invalid()),
        };
        let strings = |v: &Value| v.as_array().and_then(|a| a.iter().map(|e| e.as_str().map(str::to_owned)).collect::<Option<Vec<_>>>());
        entries
            .into_iter()
            .map(|e| match e {
                Value::String(key) => Some(ClientKey { key, name: None, ensembles: None, budget: None }),
                Value::Object(o) => Some(ClientKey {
                    key: o.get("key")?.as_str()?.to_owned(),
                    name: match o.get("name") {
                        None | Some(Value::Null) => None,
                        Some(n) => Some(n.as_str()?.to_owned()),
                    },
                    ensembles: match o.get("ensembles") {
                        None | Some(Value::Null) => None,
                        Some(list) => Some(strings(list)?),
                    },
                    budget: match o.get("budget") {
                        None | Some(Value::Null) => None,
                        Some(b) => Some(Limits::from_json(b).ok()?),
                    },
                }),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()
            .ok_or_else(invalid)?
    } else {
        t.split([',', '\n', ' ', '\t', '\r'])
            .filter(|k| !k.is_empty())
            .map(|k| ClientKey { key: k.to_owned(), name: None, ensembles: None, budget: None })
            .collect()
    };
    if keys.iter().any(|k| k.key.len() < 8) {
        return Err("N1_API_KEYS holds a key shorter than 8 characters".into());
    }
    Ok(keys)
}

/// The key the client sent: `Authorization: Bearer <key>`, else `x-api-key`.
pub fn presented_key<'a>(authorization: Option<&'a str>, x_api_key: Option<&'a str>) -> Option<&'a str> {
    let bearer = authorization.and_then(|h| {
        let h = h.trim();
        let (scheme, rest) = h.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
    });
    bearer.or(x_api_key.map(str::trim)).filter(|k| !k.is_empty())
}

/// Equality whose time depends only on the lengths, not on where bytes differ.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u64;
    let n = a.len().max(b.len());
    for i in 0..n {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= (x ^ y) as u64;
    }
    std::hint::black_box(diff) == 0
}

pub struct AuthSetup<'a> {
    pub keys: &'a [ClientKey],
    /// An original N-1 config's `api_bearer_token`: a key for its ensemble.
    pub legacy_key: Option<(&'a str, &'a str)>,
    pub allow_anonymous: bool,
}

/// Decide who the caller is. Every configured key is compared (no early exit),
/// so timing does not tell which key, or how much of one, matched.
pub fn authenticate(setup: &AuthSetup, presented: Option<&str>) -> Result<Principal, N1Error> {
    let no_keys = setup.keys.is_empty() && setup.legacy_key.is_none();
    if no_keys {
        if setup.allow_anonymous {
            return Ok(Principal { label: "anonymous".into(), ensembles: None, anonymous: true, budget: None });
        }
        return Err(N1Error::AuthNotConfigured);
    }
    let Some(presented) = presented else {
        if setup.allow_anonymous {
            return Ok(Principal { label: "anonymous".into(), ensembles: None, anonymous: true, budget: None });
        }
        return Err(N1Error::MissingKey);
    };
    let mut found: Option<Principal> = None;
    for (i, k) in setup.keys.iter().enumerate() {
        if ct_eq(k.key.as_bytes(), presented.as_bytes()) && found.is_none() {
            let name = k.name.clone().unwrap_or_else(|| format!("#{}", i + 1));
            found = Some(Principal { label: format!("key:{name}"), ensembles: k.ensembles.clone(), anonymous: false, budget: k.budget });
        }
    }
    if let Some((key, ensemble)) = setup.legacy_key {
        if ct_eq(key.as_bytes(), presented.as_bytes()) && found.is_none() {
            found = Some(Principal {
                label: "key:api_bearer_token".into(),
                ensembles: Some(vec![ensemble.to_owned()]),
                anonymous: false,
                budget: None,
            });
        }
    }
    found.ok_or(N1Error::InvalidKey)
}

#[cfg(test)]
#[path = "auth_tests.rs"]
mod tests;
