//! The inbound dialects: each decodes its requests into the internal request
//! and encodes the ensemble's answer (or its event stream) for its clients.
//! The ensemble policy only sees the `Encoder` trait.

pub mod chat;
pub mod messages;
pub mod responses;

use crate::core::ensemble::report::{N1Meta, Progress};
use crate::core::error::N1Error;
use crate::core::events::Event;
use crate::core::sse;
use crate::core::usage::Usage;

/// Identity shared by every object of one reply.
#[derive(Debug, Clone)]
pub struct ReplyIds {
    pub id: String,
    /// Unix seconds.
    pub created: u64,
    /// The ensemble's name.
    pub model: String,
}

/// A dialect's streamed reply, written into `out` event by event.
pub trait Encoder {
    /// What goes out at once, before the panel has answered.
    fn start(&mut self, out: &mut Vec<u8>);
    /// On silence, so proxies and browsers keep the connection (and a client
    /// that left is noticed).
    fn keep_alive(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(sse::KEEP_ALIVE);
    }
    fn progress(&mut self, p: &Progress<'_>, out: &mut Vec<u8>);
    fn event(&mut self, ev: &Event<'_>, out: &mut Vec<u8>);
    /// The end of a good stream, with the `n1` metadata and the usage over every call.
    fn finish(&mut self, meta: &N1Meta, usage: &Usage, out: &mut Vec<u8>);
    /// The end of a stream that failed after its headers left.
    fn fail(&mut self, e: &N1Error, out: &mut Vec<u8>);
}

/// The inbound APIs; one `match` per operation, so the edge serves them all
/// with one handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Anthropic Messages.
    Messages,
    /// OpenAI Chat Completions.
    Chat,
    /// The OpenAI Responses API.
    Responses,
}

impl Dialect {
    pub fn decode(self, body: &[u8]) -> Result<crate::core::request::Request, N1Error> {
        match self {
            Dialect::Messages => messages::decode(body),
            Dialect::Chat => chat::decode(body),
            Dialect::Responses => responses::decode(body),
        }
    }

    /// Its name in metrics.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Messages => "messages",
            Dialect::Chat => "chat",
            Dialect::Responses => "responses",
        }
    }

    /// The prefix of a reply's id.
    pub fn id_prefix(self) -> &'static str {
        match self {
            Dialect::Messages => "msg_",
            Dialect::Chat => "chatcmpl-",
            Dialect::Responses => "resp_",
        }
    }

    /// A non-streaming answer's body.
    pub fn reply(self, ids: &ReplyIds, req: &crate::core::request::Request, answer: &crate::core::ensemble::Answer) -> Vec<u8> {
        match self {
            Dialect::Messages => messages::reply(ids, answer),
            Dialect::Chat => chat::reply(ids, answer),
            Dialect::Responses => responses::reply(ids, req, answer),
        }
    }

    pub fn encoder(self, ids: &ReplyIds, req: &crate::core::request::Request) -> Box<dyn Encoder> {
        match self {
            Dialect::Messages => Box::new(messages::MessagesStream::new(ids)),
            Dialect::Chat => Box::new(chat::ChatStream::new(ids, req.include_usage)),
            Dialect::Responses => Box::new(responses::ResponsesStream::new(ids, req)),
        }
    }

    /// An error before any of the reply left: status and body.
    pub fn error(self, e: &N1Error) -> (u16, Vec<u8>) {
        match self {
            Dialect::Messages => (e.status(), e.anthropic_json().into_bytes()),
            Dialect::Chat | Dialect::Responses => (e.status(), e.openai_json().into_bytes()),
        }
    }
}
