//! Running futures a few at a time, each yielded as it finishes: what
//! `futures`' `buffer_unordered` does, in a few lines (its task machinery costs
//! several KB of Wasm, and a panel is at most a dozen calls, so polling the
//! running ones on each wake-up is as cheap).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::stream::Stream;

pub struct Pool<I: Iterator> {
    queued: I,
    running: Vec<Pin<Box<I::Item>>>,
    limit: usize,
}

impl<I: Iterator> Pool<I>
where
    I::Item: Future,
{
    /// At most `limit` of `futures` running at once, in their order.
    pub fn new(futures: I, limit: usize) -> Self {
        Pool { queued: futures, running: Vec::new(), limit }
    }
}

impl<I: Iterator + Unpin> Stream for Pool<I>
where
    I::Item: Future,
{
    type Item = <I::Item as Future>::Output;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        while this.running.len() < this.limit {
            match this.queued.next() {
                Some(f) => this.running.push(Box::pin(f)),
                None => break,
            }
        }
        for i in 0..this.running.len() {
            if let Poll::Ready(out) = this.running[i].as_mut().poll(cx) {
                this.running.swap_remove(i);
                return Poll::Ready(Some(out));
            }
        }
        if this.running.is_empty() {
            Poll::Ready(None)
        } else {
            Poll::Pending
        }
    }
}
