//! The size of the future each command of a backend returns.
//!
//! Every call through `dyn Backend` moves the command's future into a box: a future of many
//! kilobytes costs an allocation from the allocator's slow path and a copy of those kilobytes
//! on every call. A backend keeps its rare paths (cluster detours, retries with a second
//! request in flight) behind a box of their own, and its tests assert that its hot commands'
//! futures stay under a bound with [`command_future_sizes`].

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;

use crate::{Backend, CallContext, Command, OpSet};

/// Bytes of the future in `boxed` (what `Box::pin` had to copy).
fn size_of_boxed<F: Future + ?Sized>(boxed: Pin<Box<F>>) -> usize {
    std::mem::size_of_val(boxed.as_ref().get_ref())
}

/// The size in bytes of the future that each hot command of `backend` returns: `get`, `set`,
/// `add`, `delete`, `exists`, `increment`, `multi_get`, `multi_set`, `get_with_ttl`, `ttl`,
/// `expire`. Nothing is sent: the futures are built and dropped unpolled.
pub fn command_future_sizes(backend: &dyn Backend) -> Vec<(&'static str, usize)> {
    let ctx = CallContext::new(Command::Get);
    let key = "future-size";
    let keys = [key.to_owned()];
    let entries = [(key.to_owned(), Bytes::from_static(b"v"))];
    let op = || OpSet::new(None);
    vec![
        ("get", size_of_boxed(backend.get(&ctx, key))),
        (
            "set",
            size_of_boxed(backend.set(&ctx, key, Bytes::new(), op())),
        ),
        (
            "add",
            size_of_boxed(backend.add(&ctx, key, Bytes::new(), op())),
        ),
        ("delete", size_of_boxed(backend.delete(&ctx, key))),
        ("exists", size_of_boxed(backend.exists(&ctx, key))),
        ("increment", size_of_boxed(backend.increment(&ctx, key, 1))),
        ("multi_get", size_of_boxed(backend.multi_get(&ctx, &keys))),
        (
            "multi_set",
            size_of_boxed(backend.multi_set(&ctx, &entries, op())),
        ),
        (
            "get_with_ttl",
            size_of_boxed(backend.get_with_ttl(&ctx, key)),
        ),
        ("ttl", size_of_boxed(backend.ttl(&ctx, key))),
        ("expire", size_of_boxed(backend.expire(&ctx, key, None))),
    ]
}

/// Panics, naming them, when the future of any hot command of `backend` is larger than
/// `bound` bytes (see [`command_future_sizes`]).
pub fn assert_command_futures_within(backend: &dyn Backend, bound: usize) {
    let sizes = command_future_sizes(backend);
    let large: Vec<_> = sizes.iter().filter(|(_, n)| *n > bound).collect();
    assert!(
        large.is_empty(),
        "futures above {bound} bytes: {large:?} (all: {sizes:?})"
    );
}
