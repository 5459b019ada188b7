//! Edge: awaiting a JavaScript promise. wasm-bindgen's `JsFuture` makes two
//! closures per await (each a JavaScript function registered with a
//! FinalizationRegistry, unregistered and destroyed again once one has run);
//! a request awaits a dozen promises or more (fetches, every read of a panel
//! stream, the reply's writes). Here one callback per isolate takes every
//! settlement: a two-line JavaScript helper hands it the promise's slot and
//! outcome, and the future waiting on that slot is woken.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use wasm_bindgen::closure::Closure;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::JsValue;

#[wasm_bindgen(inline_js = "export function settle(p, slot, cb) { p.then((v) => cb(slot, true, v), (e) => cb(slot, false, e)); }")]
extern "C" {
    fn settle(p: &js_sys::Promise, slot: u32, cb: &JsValue);
}

enum Slot {
    Free,
    /// Not settled yet; the waker of the last poll.
    Waiting(Option<Waker>),
    Settled(Result<JsValue, JsValue>),
    /// Its future was dropped first: freed when the promise settles.
    Abandoned,
}

#[derive(Default)]
struct Slots {
    slots: Vec<Slot>,
    free: Vec<u32>,
    callback: Option<Closure<dyn FnMut(u32, bool, JsValue)>>,
}

thread_local! {
    static SLOTS: RefCell<Slots> = RefCell::new(Slots::default());
}

fn settled(slot: u32, ok: bool, value: JsValue) {
    let waker = SLOTS.with(|s| {
        let mut s = s.borrow_mut();
        let entry = s.slots.get_mut(slot as usize)?;
        match std::mem::replace(entry, Slot::Free) {
            Slot::Waiting(waker) => {
                *entry = Slot::Settled(if ok { Ok(value) } else { Err(value) });
                waker
            }
            Slot::Abandoned => {
                s.free.push(slot);
                None
            }
            other => {
                *entry = other;
                None
            }
        }
    });
    // Outside the borrow: waking schedules the task, it does not poll it here.
    if let Some(w) = waker {
        w.wake();
    }
}

/// The promise's outcome, as `JsFuture` gives it: `Ok(value)` or `Err(reason)`.
pub fn wait(promise: &js_sys::Promise) -> Promised {
    let slot = SLOTS.with(|s| {
        let mut s = s.borrow_mut();
        let slot = match s.free.pop() {
            Some(i) => {
                s.slots[i as usize] = Slot::Waiting(None);
                i
            }
            None => {
                s.slots.push(Slot::Waiting(None));
                (s.slots.len() - 1) as u32
            }
        };
        let cb = s.callback.get_or_insert_with(|| Closure::new(settled));
        settle(promise, slot, cb.as_ref());
        slot
    });
    Promised { slot: Some(slot) }
}

/// A promise being awaited (see `wait`).
pub struct Promised {
    /// `None` once its outcome was taken.
    slot: Option<u32>,
}

impl Future for Promised {
    type Output = Result<JsValue, JsValue>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(slot) = self.slot else { return Poll::Pending };
        let out = SLOTS.with(|s| {
            let mut s = s.borrow_mut();
            let entry = &mut s.slots[slot as usize];
            match entry {
                Slot::Waiting(w) => {
                    if !w.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                        *w = Some(cx.waker().clone());
                    }
                    None
                }
                _ => match std::mem::replace(entry, Slot::Free) {
                    Slot::Settled(r) => {
                        s.free.push(slot);
                        Some(r)
                    }
                    _ => Some(Err(JsValue::UNDEFINED)),
                },
            }
        });
        match out {
            Some(r) => {
                self.slot = None;
                Poll::Ready(r)
            }
            None => Poll::Pending,
        }
    }
}

impl Drop for Promised {
    fn drop(&mut self) {
        let Some(slot) = self.slot else { return };
        SLOTS.with(|s| {
            let mut s = s.borrow_mut();
            let entry = &mut s.slots[slot as usize];
            if matches!(entry, Slot::Waiting(_)) {
                *entry = Slot::Abandoned;
            } else {
                *entry = Slot::Free;
                s.free.push(slot);
            }
        });
    }
}
