//! The secret values in use for one request (provider keys), and the one place
//! that scrubs them from anything we repeat: upstream error bodies are reduced
//! to a short reason with every known key removed, never echoed whole.

/// Longest upstream error text we quote, after scrubbing.
const REASON_MAX: usize = 200;

#[derive(Debug, Default, Clone)]
pub struct Secrets(Vec<String>);

impl Secrets {
    /// Values shorter than 4 characters are not secrets worth scrubbing (and
    /// would mangle ordinary text).
    pub fn new(values: impl IntoIterator<Item = String>) -> Self {
        Secrets(values.into_iter().filter(|v| v.len() >= 4).collect())
    }

    /// One line, at most `REASON_MAX` characters, every known secret replaced.
    pub fn scrub(&self, text: &str) -> String {
        let mut s: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
        for secret in &self.0 {
            if s.contains(secret.as_str()) {
                s = s.replace(secret.as_str(), "[redacted]");
            }
        }
        if s.chars().count() > REASON_MAX {
            s = s.chars().take(REASON_MAX).collect::<String>() + "…";
        }
        if s.is_empty() {
            s = "no error message".into();
        }
        s
    }

    /// A short, secret-free reason from an upstream error body: its
    /// `error.message` (or `error`, `message`, `detail`), else the start of the text.
    pub fn summarize_error(&self, body: &str) -> String {
        let parsed: Option<serde_json::Value> = serde_json::from_str(body).ok();
        let message = parsed.as_ref().and_then(|v| {
            let text = |p: &str| v.pointer(p).and_then(serde_json::Value::as_str);
            text("/error/message").or_else(|| text("/error")).or_else(|| text("/message")).or_else(|| text("/detail"))
        });
        match message {
            Some(m) => self.scrub(m),
            None if body.trim_start().starts_with('<') => "the upstream returned an HTML page".into(),
            None => self.scrub(body),
        }
    }
}

#[cfg(test)]
#[path = "secrets_tests.rs"]
mod tests;
