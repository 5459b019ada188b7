//! Token usage: read leniently from upstream replies, summed over every call.

use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Default, Clone, Copy, PartialEq, Serialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
}

impl Usage {
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
        Some(Usage { prompt_tokens: p, completion_tokens: c, total_tokens: get("total_tokens").unwrap_or(p + c) })
    }

    pub fn add(&mut self, other: &Usage) {
        self.prompt_tokens += other.prompt_tokens;
        self.completion_tokens += other.completion_tokens;
        self.total_tokens += other.total_tokens;
    }
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
