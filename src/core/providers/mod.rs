//! The providers N-1 calls, each in its own module: how to reach it (endpoint,
//! auth headers), the upstream body built from the internal request, and its
//! replies and streams decoded into the internal types. Every operation is one
//! `match` here, so adding a provider touches this file and its own module.

pub mod anthropic;
pub mod openai;
pub mod workers_ai;

use crate::core::config::ModelSpec;
use crate::core::events::{Completion, Emit, StreamError};
use crate::core::request::{Conversation, Params};
use crate::core::sse;

/// The API a model speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Provider {
    /// Any OpenAI-compatible chat-completions URL.
    #[default]
    Openai,
    /// Anthropic's Messages API.
    Anthropic,
    /// Cloudflare Workers AI through the `AI` binding (no endpoint, no key).
    WorkersAi,
}

/// One upstream call, everything borrowed from the request and the config.
#[derive(Clone, Copy)]
pub struct Call<'a> {
    pub model: &'a ModelSpec,
    pub conversation: Conversation<'a>,
    pub params: &'a Params,
    pub stream: bool,
    /// Tool definitions go to the summary model only: the panel answers in text.
    pub with_tools: bool,
}

impl Call<'_> {
    /// The client's temperature, else the model's configured one.
    pub fn temperature(&self) -> Option<f64> {
        self.params.temperature.or(self.model.temperature)
    }

    /// The client's cap on output tokens, else the model's configured one.
    pub fn max_tokens(&self) -> Option<u64> {
        self.params.output_cap().or(self.model.max_tokens)
    }
}

impl Provider {
    /// The URL calls go to, from the configured endpoint (a base URL or the full one).
    pub fn endpoint(self, configured: Option<&str>) -> Result<String, String> {
        match (self, configured) {
            (Provider::WorkersAi, _) => Ok(String::new()),
            (Provider::Anthropic, None) => Ok(anthropic::ENDPOINT.to_owned()),
            (Provider::Anthropic, Some(e)) => Ok(crate::core::url::with_path(e, "/messages")),
            (Provider::Openai, Some(e)) => Ok(crate::core::url::with_path(e, "/chat/completions")),
            (Provider::Openai, None) => Err("`endpoint` is required (or set `provider`)".into()),
        }
    }

    /// Headers of a call besides `content-type`, before the model's own `headers`.
    pub fn headers(self, key: Option<&str>) -> Vec<(&'static str, String)> {
        match (self, key) {
            (Provider::Anthropic, key) => {
                let mut h = vec![("anthropic-version", anthropic::VERSION.to_owned())];
                h.extend(key.map(|k| ("x-api-key", k.to_owned())));
                h
            }
            (_, Some(k)) => vec![("authorization", format!("Bearer {k}"))],
            (_, None) => Vec::new(),
        }
    }

    /// The upstream body (for Workers AI: the input of `AI.run`).
    pub fn body(self, call: &Call) -> String {
        match self {
            Provider::Openai => openai::body(call),
            Provider::Anthropic => anthropic::body(call),
            Provider::WorkersAi => workers_ai::body(call),
        }
    }

    /// A 2xx non-streaming reply (for Workers AI: `AI.run`'s output as JSON).
    pub fn parse_reply(self, text: &str) -> Result<Completion, String> {
        match self {
            Provider::Openai => openai::parse_reply(text),
            Provider::Anthropic => anthropic::parse_reply(text),
            Provider::WorkersAi => workers_ai::parse_reply(text),
        }
    }

    pub fn decoder(self) -> Decoder {
        let state = match self {
            Provider::Openai => State::Openai(openai::StreamState::default()),
            Provider::Anthropic => State::Anthropic(anthropic::StreamState::default()),
            Provider::WorkersAi => State::WorkersAi(workers_ai::StreamState::default()),
        };
        Decoder { parser: sse::Parser::new(), events: Vec::new(), state }
    }
}

/// A provider's stream, bytes in, internal events out, read by read: the SSE
/// parser completes events split across reads, the provider's state turns each
/// into events.
pub struct Decoder {
    parser: sse::Parser,
    events: Vec<sse::Event>,
    state: State,
}

enum State {
    Openai(openai::StreamState),
    Anthropic(anthropic::StreamState),
    WorkersAi(workers_ai::StreamState),
}

impl Decoder {
    pub fn push(&mut self, bytes: &[u8], emit: Emit) -> Result<(), StreamError> {
        self.parser.push(bytes, &mut self.events).map_err(|e| match e {
            sse::SseError::LineTooLong => StreamError::Malformed("a line without end"),
            sse::SseError::InvalidUtf8 => StreamError::Malformed("an event that is not valid UTF-8"),
        })?;
        self.drain(emit)
    }

    /// The stream ended: an error unless it ended the way its format says it should.
    pub fn end(&mut self, emit: Emit) -> Result<(), StreamError> {
        self.parser.finish(&mut self.events);
        if self.parser.invalid_utf8() {
            return Err(StreamError::Malformed("an event that is not valid UTF-8"));
        }
        self.drain(emit)?;
        let complete = match &self.state {
            State::Openai(s) => s.complete(),
            State::Anthropic(s) => s.complete(),
            State::WorkersAi(s) => s.complete(),
        };
        if complete {
            Ok(())
        } else {
            Err(StreamError::Truncated)
        }
    }

    /// One read of the body (`None`: the body ended) for a reader that stops
    /// when the stream is over: `Ok(true)` at the stream's own last event or
    /// at the body's end, each checked by `end`. The last event is enough, so
    /// no read waits for the body's end after it (one read less per call, and
    /// no wait on an upstream that keeps the connection open after it).
    pub fn read(&mut self, bytes: Option<&[u8]>, emit: Emit) -> Result<bool, StreamError> {
        if let Some(bytes) = bytes {
            self.push(bytes, emit)?;
            if !self.ended() {
                return Ok(false);
            }
        }
        self.end(emit).map(|()| true)
    }

    /// The stream sent its own last event (`[DONE]`, `message_stop`): nothing
    /// after it counts.
    pub fn ended(&self) -> bool {
        match &self.state {
            State::Openai(s) => s.ended(),
            State::Anthropic(s) => s.ended(),
            State::WorkersAi(s) => s.ended(),
        }
    }

    fn drain(&mut self, emit: Emit) -> Result<(), StreamError> {
        let mut result = Ok(());
        for ev in self.events.drain(..) {
            result = match &mut self.state {
                State::Openai(s) => s.event(&ev.data, emit),
                State::Anthropic(s) => s.event(&ev.data, emit),
                State::WorkersAi(s) => s.event(&ev.data, emit),
            };
            if result.is_err() {
                break;
            }
        }
        self.events.clear();
        result
    }
}

#[cfg(test)]
mod tests;
