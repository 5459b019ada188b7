//! Reading an upstream stream, for the panel and the summary alike: the next
//! read within the model's `timeout_ms` of the one before (so a model that is
//! stuck is told apart from one that is slow) and before the deadline. One
//! timer at a time, re-armed when it fires for what is left of the window,
//! not once per read (timers cost a JavaScript round trip each).

use std::future::Future;
use std::pin::Pin;

use futures::future::{select, Either};
use futures::stream::StreamExt;

use super::Runtime;
use crate::core::events::StreamError;
use crate::core::secrets::Secrets;

/// Why a stream could not be read to its end.
#[derive(Debug)]
pub enum Fault {
    Stream(StreamError),
    Network(String),
    /// Nothing came for this many ms.
    Idle(u64),
    Deadline,
}

impl Fault {
    /// A client-facing message, with anything from upstream scrubbed.
    pub fn message(&self, who: &str, secrets: &Secrets) -> String {
        match self {
            Fault::Stream(e @ StreamError::Upstream(body)) => e.message(who, Some(&secrets.summarize_error(body))),
            Fault::Stream(e) => e.message(who, None),
            Fault::Network(e) => secrets.scrub(&format!("The {who}'s stream broke: {e}")),
            Fault::Idle(ms) => format!("The {who} sent nothing for {ms} ms."),
            Fault::Deadline => "The deadline passed before the stream ended.".into(),
        }
    }
}

pub struct Reader<'r, R: Runtime> {
    rt: &'r R,
    body: R::Body,
    idle_ms: u64,
    deadline: f64,
    last_read: f64,
    timer: Pin<Box<dyn Future<Output = ()> + 'r>>,
}

impl<'r, R: Runtime> Reader<'r, R> {
    pub fn new(rt: &'r R, body: R::Body, idle_ms: u64, deadline: f64) -> Self {
        let last_read = rt.now_ms();
        let timer = Box::pin(rt.sleep(idle_ms.min((deadline - last_read).max(0.0) as u64)));
        Reader { rt, body, idle_ms, deadline, last_read, timer }
    }

    /// The next read; `Ok(None)` at the end of the stream.
    pub async fn next(&mut self) -> Result<Option<Vec<u8>>, Fault> {
        loop {
            if self.deadline - self.rt.now_ms() < 1.0 {
                return Err(Fault::Deadline);
            }
            match select(self.body.next(), &mut self.timer).await {
                Either::Left((Some(Ok(bytes)), _)) => {
                    self.last_read = self.rt.now_ms();
                    return Ok(Some(bytes));
                }
                Either::Left((Some(Err(e)), _)) => return Err(Fault::Network(e)),
                Either::Left((None, _)) => return Ok(None),
                Either::Right(_) => {
                    let now = self.rt.now_ms();
                    let idle_until = self.last_read + self.idle_ms as f64;
                    if now >= self.deadline {
                        return Err(Fault::Deadline);
                    }
                    if now >= idle_until {
                        return Err(Fault::Idle(self.idle_ms));
                    }
                    self.timer = Box::pin(self.rt.sleep((idle_until.min(self.deadline) - now).ceil() as u64));
                }
            }
        }
    }
}
