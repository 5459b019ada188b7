//! Server-sent events: an incremental parser for upstream streams and the
//! encoder for ours. The parser follows the WHATWG rules that matter for LLM
//! streams: lines end in `\n`, `\r\n` or `\r` (a CR at the end of one read may
//! pair with an LF at the start of the next), comments start with `:`, several
//! `data:` lines join with `\n`, and an event is dispatched on a blank line.
//! Bytes are buffered until a line is complete, so multi-byte UTF-8 split
//! across reads is decoded whole. Each byte is scanned once.

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Event {
    /// The `event:` field, if any (OpenAI sends none; Anthropic does).
    pub event: Option<String>,
    pub data: String,
}

#[derive(Debug, Default)]
pub struct Parser {
    line: Vec<u8>,
    /// The previous read ended in CR: an LF first in the next read ends nothing.
    after_cr: bool,
    event: Option<String>,
    data: String,
    has_data: bool,
    invalid_utf8: bool,
}

/// Longest line we buffer; a peer sending more without a line break is broken.
pub const MAX_LINE: usize = 8 * 1024 * 1024;

#[derive(Debug, PartialEq)]
pub enum SseError {
    LineTooLong,
    /// A line that is not UTF-8: the peer is broken (decoding it anyway would
    /// relay mojibake).
    InvalidUtf8,
}

impl Parser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feed one read; complete events are pushed to `out`.
    pub fn push(&mut self, mut bytes: &[u8], out: &mut Vec<Event>) -> Result<(), SseError> {
        // An empty read between a CR and its LF changes nothing.
        if self.after_cr && !bytes.is_empty() {
            self.after_cr = false;
            if bytes.first() == Some(&b'\n') {
                bytes = &bytes[1..];
            }
        }
        while let Some(i) = bytes.iter().position(|&b| b == b'\n' || b == b'\r') {
            let (head, rest) = bytes.split_at(i);
            self.line.extend_from_slice(head);
            let mut consumed = 1;
            if rest[0] == b'\r' {
                match rest.get(1) {
                    Some(b'\n') => consumed = 2,
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
            bytes = &rest[consumed..];
            let line = std::mem::take(&mut self.line);
            self.line_done(&line, out);
            self.line = line;
            self.line.clear();
        }
        if self.invalid_utf8 {
            return Err(SseError::InvalidUtf8);
        }
        if self.line.len() + bytes.len() > MAX_LINE {
            return Err(SseError::LineTooLong);
        }
        self.line.extend_from_slice(bytes);
        Ok(())
    }

    /// Whether a line so far was not UTF-8 (the last one too, after `finish`).
    pub fn invalid_utf8(&self) -> bool {
        self.invalid_utf8
    }

    /// The stream ended: an unterminated last event is dispatched, as browsers do
    /// not, but a truncated final line is better seen than lost.
    pub fn finish(&mut self, out: &mut Vec<Event>) {
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.line_done(&line, out);
        }
        self.dispatch(out);
    }

    fn line_done(&mut self, line: &[u8], out: &mut Vec<Event>) {
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        if line[0] == b':' {
            return; // comment
        }
        let Ok(line) = std::str::from_utf8(line) else {
            self.invalid_utf8 = true;
            return;
        };
        let (field, value) = match line.find(':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(' ').unwrap_or(v))
            }
            None => (line, ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.event = Some(value.to_owned()),
            _ => {} // id, retry and unknown fields do not matter here
        }
    }

    fn dispatch(&mut self, out: &mut Vec<Event>) {
        if self.has_data {
            out.push(Event { event: self.event.take(), data: std::mem::take(&mut self.data) });
        }
        self.event = None;
        self.has_data = false;
    }
}

/// `data: <payload>\n\n`. The payload is single-line JSON, so no splitting is needed.
pub fn encode_data(out: &mut Vec<u8>, payload: &str) {
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(payload.as_bytes());
    out.extend_from_slice(b"\n\n");
}

pub const DONE: &[u8] = b"data: [DONE]\n\n";
pub const KEEP_ALIVE: &[u8] = b": keep-alive\n\n";

#[cfg(test)]
#[path = "sse_tests.rs"]
mod tests;
