//! Token usage: read leniently from upstream replies, summed over every call.

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;

#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    /// Prompt tokens read from the provider's prompt cache (part of
    /// `prompt_tokens`, often at a lower price).
    pub cached_tokens: u64,
    /// Prompt tokens written to the provider's prompt cache (part of
    /// `prompt_tokens`; Anthropic bills them above the input price).
    pub cache_write_tokens: u64,
    /// The part of `cache_write_tokens` written for an hour rather than five
    /// minutes (Anthropic bills those higher still).
    pub cache_write_1h_tokens: u64,
}

/// OpenAI's shape: cached tokens under `prompt_tokens_details`, only when there are any.
impl Serialize for Usage {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("prompt_tokens", &self.prompt_tokens)?;
        map.serialize_entry("completion_tokens", &self.completion_tokens)?;
        map.serialize_entry("total_tokens", &self.total_tokens)?;
        if self.cached_tokens > 0 {
            map.serialize_entry("prompt_tokens_details", &Cached { cached_tokens: self.cached_tokens })?;
        }
        map.end()
    }
}

#[derive(serde::Serialize)]
struct Cached {
    cached_tokens: u64,
}

impl Usage {
    pub fn new(prompt_tokens: u64, completion_tokens: u64) -> Usage {
        Usage { prompt_tokens, completion_tokens, total_tokens: prompt_tokens + completion_tokens, ..Usage::default() }
    }

    /// `None` when the upstream reported no usable usage object.
    pub fn from_json(v: &Value) -> Option<Usage> {
        let obj = v.as_object()?;
        let get = |k: &str| obj.get(k).and_then(Value::as_u64);
        let prompt = get("prompt_tokens");
        let completion = get("completion_tokens");
        if prompt.is_none() && completion.is_none() {
            return None;
        }
        let (p, c) = (prompt.unwrap_or(0), completion.unwrap_or(0));
        Some(Usage {
            prompt_tokens: p,
            completion_tokens: c,
            total_tokens: get("total_tokens").unwrap_or(p + c),
            cached_tokens: v.pointer("/prompt_tokens_details/cached_tokens").and_then(Value::as_u64).unwrap_or(0),
            ..Usage::default()
        })
    }

    /// `prompt_tokens` split the way providers bill them; counts that do not
    /// add up (more cached than prompted) are clamped, never negative.
    pub fn prompt_split(&self) -> PromptSplit {
        let read = self.cached_tokens.min(self.prompt_tokens);
        let written = self.cache_write_tokens.min(self.prompt_tokens - read);
        let written_1h = self.cache_write_1h_tokens.min(written);
        PromptSplit { plain: self.prompt_tokens - read - written, read, written_5m: written - written_1h, written_1h }
    }

    pub fn add(&mut self, other: &Usage) {
        self.prompt_tokens += other.prompt_tokens;
        self.completion_tokens += other.completion_tokens;
        self.total_tokens += other.total_tokens;
        self.cached_tokens += other.cached_tokens;
        self.cache_write_tokens += other.cache_write_tokens;
        self.cache_write_1h_tokens += other.cache_write_1h_tokens;
    }
}

/// A prompt's tokens by how they are billed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PromptSplit {
    /// Neither read from nor written to a cache.
    pub plain: u64,
    pub read: u64,
    pub written_5m: u64,
    pub written_1h: u64,
}

pub fn sum<'a>(items: impl IntoIterator<Item = &'a Usage>) -> Usage {
    let mut total = Usage::default();
    for u in items {
        total.add(u);
    }
    total
}

#[cfg(test)]
#[path = "usage_tests.rs"]
mod tests;
