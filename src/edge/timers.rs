//! Edge: every wait of one request (attempt timeouts, idle windows, the panel's
//! cutoff, retry backoffs) on one JavaScript timer. A request has a dozen
//! waits, nearly all of which end by being dropped when their work finishes
//! first; with a `setTimeout`/`clearTimeout` pair and a closure each they were
//! ~6 % of a request's CPU (bench/NOTES.md). Here a wait is an entry in a list:
//! the one timer is armed for the earliest entry and only re-armed when a new
//! entry is due sooner, and a dropped wait just leaves the list.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};

use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsCast;
use worker::web_sys;

#[derive(Default)]
struct State {
    next_id: u32,
    /// Every wait not yet dropped: its id, when it is due, and its waker
    /// (`None` once it is over).
    waits: Vec<(u32, f64, Option<Waker>)>,
    /// When the armed JavaScript timer fires, and its handle.
    armed: Option<(f64, i32)>,
    callback: Option<Closure<dyn FnMut()>>,
}

impl Drop for State {
    fn drop(&mut self) {
        // Before the callback goes: a timer that fires after would call a dropped closure.
        if let Some((_, handle)) = self.armed.take() {
            global().clear_timeout_with_handle(handle);
        }
    }
}

fn global() -> web_sys::WorkerGlobalScope {
    js_sys::global().unchecked_into()
}

fn now() -> f64 {
    js_sys::Date::now()
}

/// A request's timers (held by its `FetchRuntime`).
pub struct Timers(Rc<RefCell<State>>);

impl Timers {
    pub fn new() -> Self {
        let state = Rc::new(RefCell::new(State::default()));
        let weak: Weak<RefCell<State>> = Rc::downgrade(&state);
        let callback = Closure::<dyn FnMut()>::new(move || {
            if let Some(state) = weak.upgrade() {
                fire(&state);
            }
        });
        state.borrow_mut().callback = Some(callback);
        Timers(state)
    }

    /// A future that is ready `ms` milliseconds from now.
    pub fn sleep(&self, ms: u64) -> Sleep {
        Sleep {
            timers: self.0.clone(),
            ms,
            id: None,
        }
    }
}

/// The timer fired: end every wait that is due, and arm it for the next one.
fn fire(state: &Rc<RefCell<State>>) {
    let mut wake = Vec::new();
    {
        let mut s = state.borrow_mut();
        s.armed = None;
        // Within half a millisecond: the clock and the timer need not agree to the microsecond.
        let t = now() + 0.5;
        for (_, due, waker) in s.waits.iter_mut() {
            if *due <= t {
                wake.extend(waker.take());
            }
        }
        if let Some(due) = s
            .waits
            .iter()
            .filter(|w| w.2.is_some())
            .map(|w| w.1)
            .reduce(f64::min)
        {
            arm(&mut s, due);
        }
    }
    for w in wake {
        w.wake();
    }
}

/// Have the timer fire by `due`: a new timer only when none fires before it.
fn arm(s: &mut State, due: f64) {
    if matches!(s.armed, Some((at, _)) if at <= due) {
        return;
    }
    let g = global();
    if let Some((_, handle)) = s.armed.take() {
        g.clear_timeout_with_handle(handle);
    }
    let Some(cb) = s.callback.as_ref() else {
        return;
    };
    let ms = (due - now()).ceil().max(0.0);
    if let Ok(handle) = g.set_timeout_with_callback_and_timeout_and_arguments_0(
        cb.as_ref().unchecked_ref(),
        ms as i32,
    ) {
        s.armed = Some((due, handle));
    }
}

pub struct Sleep {
    timers: Rc<RefCell<State>>,
    ms: u64,
    id: Option<u32>,
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        let mut s = this.timers.borrow_mut();
        match this.id {
            None => {
                let id = s.next_id;
                s.next_id = s.next_id.wrapping_add(1);
                let due = now() + this.ms as f64;
                s.waits.push((id, due, Some(cx.waker().clone())));
                this.id = Some(id);
                arm(&mut s, due);
                Poll::Pending
            }
            Some(id) => match s.waits.iter_mut().find(|w| w.0 == id) {
                Some((_, _, Some(w))) => {
                    if !w.will_wake(cx.waker()) {
                        *w = cx.waker().clone();
                    }
                    Poll::Pending
                }
                _ => Poll::Ready(()),
            },
        }
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            if let Ok(mut s) = self.timers.try_borrow_mut() {
                s.waits.retain(|w| w.0 != id);
            }
        }
    }
}
