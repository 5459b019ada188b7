//! Reading the configuration's JSON objects field by field: each value is
//! checked for its type, every error names where it is (`ensembles.council.
//! panel[1]: ...`), and no error ever quotes a value from the config (a key
//! pasted into the wrong field must not reach a client). Hand-written rather
//! than serde derives: the checks are the same, the Wasm is much smaller.

use serde_json::{Map, Value};

pub struct Fields {
    map: Map<String, Value>,
    pub at: String,
}

impl Fields {
    pub fn of(v: Value, at: &str) -> Result<Fields, String> {
        match v {
            Value::Object(map) => Ok(Fields { map, at: at.to_owned() }),
            _ => Err(format!("{at}: must be an object")),
        }
    }

    fn wrong(&self, k: &str, want: &str) -> String {
        format!("{}: `{k}` must be {want}", self.at)
    }

    /// The raw value; null counts as absent.
    pub fn value(&mut self, k: &str) -> Option<Value> {
        self.map.remove(k).filter(|v| !v.is_null())
    }

    pub fn string(&mut self, k: &str) -> Result<Option<String>, String> {
        match self.value(k) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(self.wrong(k, "a string")),
        }
    }

    pub fn required_string(&mut self, k: &str) -> Result<String, String> {
        self.string(k)?.ok_or_else(|| format!("{}: `{k}` is required", self.at))
    }

    pub fn number(&mut self, k: &str) -> Result<Option<f64>, String> {
        match self.value(k) {
            None => Ok(None),
            Some(v) => v.as_f64().map(Some).ok_or_else(|| self.wrong(k, "a number")),
        }
    }

    /// A whole number ≥ 0.
    pub fn uint(&mut self, k: &str) -> Result<Option<u64>, String> {
        match self.value(k) {
            None => Ok(None),
            Some(v) => v.as_u64().map(Some).ok_or_else(|| self.wrong(k, "a whole number")),
        }
    }

    pub fn boolean(&mut self, k: &str) -> Result<Option<bool>, String> {
        match self.value(k) {
            None => Ok(None),
            Some(v) => v.as_bool().map(Some).ok_or_else(|| self.wrong(k, "true or false")),
        }
    }

    pub fn object(&mut self, k: &str) -> Result<Map<String, Value>, String> {
        match self.value(k) {
            None => Ok(Map::new()),
            Some(Value::Object(m)) => Ok(m),
            Some(_) => Err(self.wrong(k, "an object")),
        }
    }

    pub fn array(&mut self, k: &str) -> Result<Vec<Value>, String> {
        match self.value(k) {
            None => Ok(Vec::new()),
            Some(Value::Array(a)) => Ok(a),
            Some(_) => Err(self.wrong(k, "an array")),
        }
    }

    /// One of `names` (a string); the value itself is never quoted.
    pub fn choice(&mut self, k: &str, names: &[&str]) -> Result<Option<usize>, String> {
        let Some(s) = self.string(k)? else { return Ok(None) };
        names.iter().position(|n| *n == s).map(Some).ok_or_else(|| self.wrong(k, &format!("one of {}", quoted(names))))
    }

    /// Every field was known: a typo is an error, not silently ignored. An
    /// unknown field is named when it looks like one (lowercase, digits, `_`).
    pub fn done(self, known: &[&str]) -> Result<(), String> {
        let Some(k) = self.map.keys().next() else { return Ok(()) };
        let name = if looks_like_field_name(k) { format!("`{k}`") } else { "a field".to_owned() };
        Err(format!("{}: unknown field {name}, expected one of {}", self.at, quoted(known)))
    }
}

fn quoted(names: &[&str]) -> String {
    names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
}

fn looks_like_field_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 40 && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}
