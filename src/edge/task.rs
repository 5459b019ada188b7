//! Edge: the executor a request's futures run on (the fetch handler, and what
//! it leaves to `waitUntil`). wasm-bindgen-futures polls a woken task from a
//! microtask it queues for it: a wake-up costs a `queueMicrotask` call and a
//! second entry into Wasm. Nearly every wake-up here comes from JavaScript
//! calling in (a promise settled: `promise.rs`; the timer fired: `timers.rs`),
//! when no task is being polled, so the task is polled there and then. A wake
//! during a poll (one task waking another) is queued and run as soon as that
//! poll returns.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, RawWaker, RawWakerVTable, Waker};

use wasm_bindgen::closure::Closure;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::JsValue;

struct Task {
    future: RefCell<Option<Pin<Box<dyn Future<Output = ()>>>>>,
    /// Woken and not yet polled.
    queued: Cell<bool>,
}

#[derive(Default)]
struct Queue {
    tasks: VecDeque<Rc<Task>>,
    /// A poll is under way (no other may start inside it).
    polling: bool,
    /// A microtask will run the queue.
    scheduled: bool,
    later: Option<Closure<dyn FnMut()>>,
}

thread_local! {
    static QUEUE: RefCell<Queue> = RefCell::new(Queue::default());
}

#[wasm_bindgen]
extern "C" {
    fn queueMicrotask(f: &JsValue);
}

/// How many polls one entry from JavaScript runs before it leaves the rest to
/// a microtask (a task that keeps waking itself must not hold the thread).
const POLLS_PER_TURN: usize = 64;

/// Run `future` to its end: polled now (or right after the poll under way).
pub fn spawn(future: impl Future<Output = ()> + 'static) {
    let task = Rc::new(Task { future: RefCell::new(Some(Box::pin(future))), queued: Cell::new(false) });
    wake(task);
}

/// `future` as a promise (for the fetch handler's reply and for `waitUntil`).
pub fn promise(future: impl Future<Output = Result<JsValue, JsValue>> + 'static) -> js_sys::Promise {
    let mut settle = None;
    let promise = js_sys::Promise::new(&mut |resolve, reject| settle = Some((resolve, reject)));
    if let Some((resolve, reject)) = settle {
        spawn(async move {
            let _ = match future.await {
                Ok(v) => resolve.call1(&JsValue::UNDEFINED, &v),
                Err(e) => reject.call1(&JsValue::UNDEFINED, &e),
            };
        });
    }
    promise
}

fn wake(task: Rc<Task>) {
    if task.queued.replace(true) {
        return;
    }
    let run_now = QUEUE.with(|q| {
        let mut q = q.borrow_mut();
        q.tasks.push_back(task);
        !q.polling
    });
    if run_now {
        run();
    }
}

/// Poll the queued tasks, those they wake included, up to `POLLS_PER_TURN`.
fn run() {
    for _ in 0..POLLS_PER_TURN {
        let Some(task) = QUEUE.with(|q| {
            let mut q = q.borrow_mut();
            let t = q.tasks.pop_front();
            q.polling = t.is_some();
            t
        }) else {
            return;
        };
        task.queued.set(false);
        let waker = waker(task.clone());
        let mut slot = task.future.borrow_mut();
        if let Some(future) = slot.as_mut() {
            if future.as_mut().poll(&mut Context::from_waker(&waker)).is_ready() {
                *slot = None;
            }
        }
        drop(slot);
        QUEUE.with(|q| q.borrow_mut().polling = false);
    }
    // Still tasks queued: the rest on a microtask.
    QUEUE.with(|q| {
        let mut q = q.borrow_mut();
        if q.tasks.is_empty() || q.scheduled {
            return;
        }
        q.scheduled = true;
        let f = q.later.get_or_insert_with(|| {
            Closure::new(|| {
                QUEUE.with(|q| q.borrow_mut().scheduled = false);
                run();
            })
        });
        queueMicrotask(f.as_ref());
    });
}

fn waker(task: Rc<Task>) -> Waker {
    unsafe fn clone(p: *const ()) -> RawWaker {
        let task = std::mem::ManuallyDrop::new(Rc::from_raw(p as *const Task));
        raw(Rc::clone(&task))
    }
    unsafe fn wake_owned(p: *const ()) {
        wake(Rc::from_raw(p as *const Task));
    }
    unsafe fn wake_by_ref(p: *const ()) {
        let task = std::mem::ManuallyDrop::new(Rc::from_raw(p as *const Task));
        wake(Rc::clone(&task));
    }
    unsafe fn drop(p: *const ()) {
        std::mem::drop(Rc::from_raw(p as *const Task));
    }
    static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, wake_owned, wake_by_ref, drop);
    fn raw(task: Rc<Task>) -> RawWaker {
        RawWaker::new(Rc::into_raw(task) as *const (), &VTABLE)
    }
    // Safety: the vtable keeps the Rc count balanced (the worker is single-threaded).
    unsafe { Waker::from_raw(raw(task)) }
}

/// `ctx.waitUntil(future)`, run on this executor.
pub fn wait_until(ctx: &worker::Context, future: impl Future<Output = ()> + 'static) {
    let _ = ctx.as_ref().wait_until(&promise(async move {
        future.await;
        Ok(JsValue::UNDEFINED)
    }));
}
