//! Layers: middleware that wraps a [`Backend`] and is a [`Backend`].
//!
//! Every behaviour that changes what a command does — the deadline, plugin hooks, error
//! context, retries, fault injection — is a layer. A [`Layer`] takes the stack below it and
//! returns a new stack; [`CacheBuilder::layer`](crate::CacheBuilder::layer) adds one.
//!
//! # Order
//!
//! Layers wrap in the order they are added: each new layer wraps everything added before it,
//! so **the last layer added is the outermost** and sees each call first. `build()` then wraps
//! the user's layers in the pipeline's own, so a call travels:
//!
//! ```text
//! Cache handle (namespace, keys, encode)          ← decode
//!   → ErrorContextLayer   adds op, backend, key and namespace to every error
//!   → plugin hooks        before hooks (within the deadline) … after hooks (always once)
//!   → TimeoutLayer        the caller's deadline: the one timer of the call
//!   → TagLayer            with tags on: tagged entries, invalidated tags read as misses
//!   → your last layer → … → your first layer
//!   → the backend
//! ```
//!
//! Your layers therefore run inside the deadline (a retry never outlives the caller's
//! timeout, an injected hang ends in `Timeout`) and inside the plugin hooks (plugins see one
//! command, however many attempts a layer makes below them).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> cache_core::Result<()> {
//! use std::time::Duration;
//! use cache_core::Cache;
//! use cache_core::layer::{ChaosLayer, RetryLayer};
//! # let backend = cache_core::testkit::MapBackend::new();
//!
//! let cache = Cache::builder(backend)
//!     .layer(ChaosLayer::new(7).error_rate(0.0)) // inner: faults happen below the retry…
//!     .layer(RetryLayer::new().max_attempts(3))   // outer: …so the retry can absorb them
//!     .timeout(Duration::from_millis(250))
//!     .build();
//! cache.set("k", &1).await?;
//! # Ok(()) }
//! ```
//!
//! # Writing a layer
//!
//! A layer that treats every command alike (count, time, refuse, retry, inject faults)
//! implements [`Around`]: one generic method that receives the [`CallContext`] and the rest of
//! the stack as [`Next`]. Every `Around + Clone` type is a [`Layer`]; the stack calls it for
//! every [`Backend`] method, so a method added to the trait later cannot slip past it.
//!
//! A layer that changes particular commands (an in-process tier answering `get`) implements
//! [`Backend`] itself over an inner `Arc<dyn Backend>`, writes the methods it changes, and
//! forwards the rest with [`forward_backend!`](crate::forward_backend), which names each
//! forwarded method: a method added to the trait later is a compile error until the layer
//! says what it does with it. See the guide page "Writing a layer".

mod chaos;
mod coalesce;
pub(crate) mod error_context;
mod fail_open;
mod fail_safe;
mod jitter;
mod plugins;
pub(crate) mod retry;
mod tags;
pub(crate) mod timeout;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

pub use self::chaos::ChaosLayer;
pub use self::coalesce::CoalesceLayer;
pub use self::error_context::ErrorContextLayer;
pub(crate) use self::error_context::PipelineLayer;
pub use self::fail_open::FailOpenLayer;
pub use self::fail_safe::FailSafeLayer;
pub use self::jitter::TtlJitterLayer;
pub(crate) use self::plugins::PluginLayer;
pub use self::retry::RetryLayer;
pub use self::tags::TagLayer;
pub use self::timeout::TimeoutLayer;
use crate::backend::{Backend, ClearScope, OpSet};
use crate::context::CallContext;
use crate::plugin::Command;
use crate::{Capability, ErrorKind, KeyTtl, RawValue, Result};

/// A boxed, `Send` future: what [`Backend`] methods return once desugared.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Wraps a stack of backends in one more behaviour.
///
/// Implement it directly for a layer whose wrapper implements [`Backend`] itself; a type that
/// implements [`Around`] and `Clone` is a `Layer` already.
pub trait Layer: Send + Sync + 'static {
    /// The stack `inner` with this layer on top.
    fn layer(&self, inner: Arc<dyn Backend>) -> Arc<dyn Backend>;
}

/// A behaviour around every call of the stack below it.
///
/// `around` receives the call's [`CallContext`] and `next`, the rest of the stack for this
/// call. It may run `next` once (observe, time, change the answer or the error), several
/// times (retry) or not at all (answer or refuse by itself). `T` is the command's answer
/// type; [`Answer`] tells hits and misses apart without knowing which command it is.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> cache_core::Result<()> {
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use cache_core::layer::{Answer, Around, Next};
/// use cache_core::{Cache, CallContext, Result};
///
/// /// Counts the calls that fail.
/// #[derive(Debug, Clone, Default)]
/// struct CountErrors(Arc<AtomicU64>);
///
/// impl Around for CountErrors {
///     async fn around<T: Answer>(&self, _ctx: &CallContext<'_>, next: Next<'_, T>) -> Result<T> {
///         let answer = next.run().await;
///         if answer.is_err() {
///             self.0.fetch_add(1, Ordering::Relaxed);
///         }
///         answer
///     }
/// }
///
/// let errors = CountErrors::default();
/// # let backend = cache_core::testkit::MapBackend::new();
/// let cache = Cache::builder(backend).layer(errors.clone()).build();
/// cache.set("k", &1).await?;
/// assert_eq!(errors.0.load(Ordering::Relaxed), 0);
/// # Ok(()) }
/// ```
pub trait Around: Send + Sync + fmt::Debug + 'static {
    /// Runs one call: `next` is the stack below, `ctx` what the call is.
    fn around<'a, T: Answer>(
        &'a self,
        ctx: &'a CallContext<'a>,
        next: Next<'a, T>,
    ) -> impl Future<Output = Result<T>> + Send + 'a;
}

impl<A: Around + Clone> Layer for A {
    fn layer(&self, inner: Arc<dyn Backend>) -> Arc<dyn Backend> {
        Arc::new(Layered {
            around: self.clone(),
            inner,
        })
    }
}

/// The rest of the stack for one call, as [`Around::around`] receives it. Cheap to copy;
/// each [`run`](Next::run) sends the call down again.
pub struct Next<'a, T> {
    call: &'a (dyn Fn() -> BoxFuture<'a, Result<T>> + Send + Sync + 'a),
}

impl<T> Clone for Next<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Next<'_, T> {}

impl<T> fmt::Debug for Next<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Next")
    }
}

impl<'a, T> Next<'a, T> {
    /// Wraps a call of the stack below (for tests of a layer, and for the stack itself).
    pub fn new(call: &'a (dyn Fn() -> BoxFuture<'a, Result<T>> + Send + Sync + 'a)) -> Self {
        Next { call }
    }

    /// Sends the call down the stack (again).
    pub fn run(&self) -> BoxFuture<'a, Result<T>> {
        (self.call)()
    }
}

mod sealed {
    pub trait Sealed {}
}

/// The answer of a [`Backend`] method, as a layer sees it without knowing the command.
///
/// Implemented for every answer type of the trait; sealed.
pub trait Answer: sealed::Sealed + Send + Sync + 'static {
    /// Hits and misses in this answer (reads only; `(0, 0)` for everything else).
    fn tally(&self) -> (u64, u64) {
        (0, 0)
    }

    /// The error kind this answer stands for although the call succeeded: an `add` that
    /// found the key answers `false`, which the cache reports as
    /// [`ErrorKind::AlreadyExists`].
    fn refusal(&self, _command: Command) -> Option<ErrorKind> {
        None
    }
}

macro_rules! plain_answers {
    ($($t:ty),*) => {$(
        impl sealed::Sealed for $t {}
        impl Answer for $t {}
    )*};
}

plain_answers!((), u64, i64, KeyTtl, Option<u64>, RawValue);

impl sealed::Sealed for bool {}
impl Answer for bool {
    fn refusal(&self, command: Command) -> Option<ErrorKind> {
        (command == Command::Add && !*self).then_some(ErrorKind::AlreadyExists)
    }
}

impl sealed::Sealed for Option<Bytes> {}
impl Answer for Option<Bytes> {
    fn tally(&self) -> (u64, u64) {
        if self.is_some() { (1, 0) } else { (0, 1) }
    }
}

impl sealed::Sealed for Option<crate::Entry> {}
impl Answer for Option<crate::Entry> {
    fn tally(&self) -> (u64, u64) {
        if self.is_some() { (1, 0) } else { (0, 1) }
    }
}

impl sealed::Sealed for Vec<Option<crate::Entry>> {}
impl Answer for Vec<Option<crate::Entry>> {
    fn tally(&self) -> (u64, u64) {
        let hits = self.iter().filter(|v| v.is_some()).count() as u64;
        (hits, self.len() as u64 - hits)
    }
}

impl sealed::Sealed for Vec<Option<Bytes>> {}
impl Answer for Vec<Option<Bytes>> {
    fn tally(&self) -> (u64, u64) {
        let hits = self.iter().filter(|v| v.is_some()).count() as u64;
        (hits, self.len() as u64 - hits)
    }
}

/// An [`Around`] over the stack below it: the [`Backend`] a `Layer` of an `Around` gives.
struct Layered<A> {
    around: A,
    inner: Arc<dyn Backend>,
}

impl<A: fmt::Debug> fmt::Debug for Layered<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Layered")
            .field("layer", &self.around)
            .field("inner", &self.inner)
            .finish()
    }
}

#[async_trait]
impl<A: Around> Backend for Layered<A> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn capability(&self) -> Capability {
        self.inner.capability()
    }

    fn endpoint(&self) -> Option<crate::Endpoint> {
        self.inner.endpoint()
    }

    async fn get(&self, ctx: &CallContext<'_>, key: &str) -> Result<Option<Bytes>> {
        let call = || self.inner.get(ctx, key);
        self.around.around(ctx, Next::new(&call)).await
    }

    async fn multi_get(
        &self,
        ctx: &CallContext<'_>,
        keys: &[String],
    ) -> Result<Vec<Option<Bytes>>> {
        let call = || self.inner.multi_get(ctx, keys);
        self.around.around(ctx, Next::new(&call)).await
    }

    async fn get_with_ttl(&self, ctx: &CallContext<'_>, key: &str) -> Result<Option<crate::Entry>> {
        let call = || self.inner.get_with_ttl(ctx, key);
        self.around.around(ctx, Next::new(&call)).await
    }

    async fn multi_get_with_ttl(
        &self,
        ctx: &CallContext<'_>,
        keys: &[String],
    ) -> Result<Vec<Option<crate::Entry>>> {
        let call = || self.inner.multi_get_with_ttl(ctx, keys);
        self.around.around(ctx, Next::new(&call)).await
    }

    async fn set(&self, ctx: &CallContext<'_>, key: &str, value: Bytes, op: OpSet) -> Result<()> {
        let call = || self.inner.set(ctx, key, value.clone(), op);
        self.around.around(ctx, Next::new(&call)).await
    }

    async fn add(&self, ctx: &CallContext<'_>, key: &str, value: Bytes, op: OpSet) -> Result<bool> {
        let call = || self.inner.add(ctx, key, value.clone(), op);
        self.around.around(ctx, Next::new(&call)).await
    }

    async fn multi_set(
        &self,
        ctx: &CallContext<'_>,
        entries: &[(String, Bytes)],
        op: OpSet,
    ) -> Result<()> {
        let call = || self.inner.multi_set(ctx, entries, op);
        self.around.around(ctx, Next::new(&call)).await
    }

    async fn delete(&self, ctx: &CallContext<'_>, key: &str) -> Result<bool> {
        let call = || self.inner.delete(ctx, key);
        self.around.around(ctx, Next::new(&call)).await
    }

    async fn multi_delete(&self, ctx: &CallContext<'_>, keys: &[String]) -> Result<u64> {
        let call = || self.inner.multi_delete(ctx, keys);
        self.around.around(ctx, Next::new(&call)).await
    }

    async fn exists(&self, ctx: &CallContext<'_>, key: &str) -> Result<bool> {
        let call = || self.inner.exists(ctx, key);
        self.around.around(ctx, Next::new(&call)).await
    }

    async fn increment(&self, ctx: &CallContext<'_>, key: &str, delta: i64) -> Result<i64> {
        let call = || self.inner.increment(ctx, key, delta);
        self.around.around(ctx, Next::new(&call)).await
    }

    async fn expire(
        &self,
        ctx: &CallContext<'_>,
        key: &str,
        ttl: Option<Duration>,
    ) -> Result<bool> {
        let call = || self.inner.expire(ctx, key, ttl);
        self.around.around(ctx, Next::new(&call)).await
    }

    async fn ttl(&self, ctx: &CallContext<'_>, key: &str) -> Result<KeyTtl> {
        let call = || self.inner.ttl(ctx, key);
        self.around.around(ctx, Next::new(&call)).await
    }

    async fn compare_and_set(
        &self,
        ctx: &CallContext<'_>,
        key: &str,
        expected: Option<Bytes>,
        new: Bytes,
        op: OpSet,
    ) -> Result<bool> {
        let call = || {
            self.inner
                .compare_and_set(ctx, key, expected.clone(), new.clone(), op)
        };
        self.around.around(ctx, Next::new(&call)).await
    }

    async fn compare_and_delete(
        &self,
        ctx: &CallContext<'_>,
        key: &str,
        expected: Bytes,
    ) -> Result<bool> {
        let call = || self.inner.compare_and_delete(ctx, key, expected.clone());
        self.around.around(ctx, Next::new(&call)).await
    }

    async fn clear(&self, ctx: &CallContext<'_>, scope: ClearScope<'_>) -> Result<Option<u64>> {
        let call = || self.inner.clear(ctx, scope);
        self.around.around(ctx, Next::new(&call)).await
    }

    async fn raw(
        &self,
        ctx: &CallContext<'_>,
        command: &str,
        args: &[RawValue],
    ) -> Result<RawValue> {
        let call = || self.inner.raw(ctx, command, args);
        self.around.around(ctx, Next::new(&call)).await
    }

    async fn close(&self, ctx: &CallContext<'_>) -> Result<()> {
        let call = || self.inner.close(ctx);
        self.around.around(ctx, Next::new(&call)).await
    }
}

/// What [`forward_backend!`](crate::forward_backend) forwards to: a backend held by value, in
/// an `Arc` or in a `Box`.
#[doc(hidden)]
pub trait AsBackend {
    /// The backend.
    fn as_backend(&self) -> &dyn Backend;
}

impl<B: Backend> AsBackend for B {
    fn as_backend(&self) -> &dyn Backend {
        self
    }
}

impl AsBackend for Arc<dyn Backend> {
    fn as_backend(&self) -> &dyn Backend {
        &**self
    }
}

impl AsBackend for Box<dyn Backend> {
    fn as_backend(&self) -> &dyn Backend {
        &**self
    }
}

#[doc(hidden)]
pub fn __as_backend<T: AsBackend + ?Sized>(field: &T) -> &dyn Backend {
    field.as_backend()
}

/// Forwards the named [`Backend`] methods to a field holding the stack below, without a
/// future of its own (no allocation, no extra poll).
///
/// Use it inside an `#[async_trait] impl Backend for YourLayer` block, naming the field and
/// every method the layer does not change; write the others. A method added to `Backend`
/// later is then a compile error in your layer, never silently forwarded.
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use bytes::Bytes;
/// use cache_core::{async_trait, forward_backend, Backend, CallContext, Result};
///
/// /// Counts the reads that miss.
/// #[derive(Debug)]
/// struct CountMisses {
///     inner: Arc<dyn Backend>,
///     misses: AtomicU64,
/// }
///
/// #[async_trait]
/// impl Backend for CountMisses {
///     forward_backend!(inner: name, capability, endpoint, multi_get, get_with_ttl,
///         multi_get_with_ttl, set, add, multi_set, delete,
///         multi_delete, exists, increment, expire, ttl, compare_and_set, compare_and_delete, clear, raw, close);
///
///     async fn get(&self, ctx: &CallContext<'_>, key: &str) -> Result<Option<Bytes>> {
///         let value = self.inner.get(ctx, key).await?;
///         if value.is_none() {
///             self.misses.fetch_add(1, Ordering::Relaxed);
///         }
///         Ok(value)
///     }
/// }
/// ```
///
/// Leaving a method out is a compile error, so a layer never passes a method by without
/// saying so:
///
/// ```compile_fail,E0046
/// use std::sync::Arc;
/// use cache_core::{async_trait, forward_backend, Backend};
///
/// #[derive(Debug)]
/// struct Forgetful {
///     inner: Arc<dyn Backend>,
/// }
///
/// #[async_trait]
/// impl Backend for Forgetful {
///     // `close` is neither forwarded nor written.
///     forward_backend!(inner: name, capability, endpoint, get, multi_get, get_with_ttl,
///         multi_get_with_ttl, set, add, multi_set, delete, multi_delete, exists, increment, expire, ttl, compare_and_set, compare_and_delete, clear, raw);
/// }
/// ```
#[macro_export]
macro_rules! forward_backend {
    ($field:ident : $($method:ident),+ $(,)?) => {
        $( $crate::__forward_backend_method!($field, $method); )+
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __forward_backend_method {
    ($f:ident, name) => {
        fn name(&self) -> &'static str {
            $crate::layer::__as_backend(&self.$f).name()
        }
    };
    ($f:ident, capability) => {
        fn capability(&self) -> $crate::Capability {
            $crate::layer::__as_backend(&self.$f).capability()
        }
    };
    ($f:ident, endpoint) => {
        fn endpoint(&self) -> ::core::option::Option<$crate::Endpoint> {
            $crate::layer::__as_backend(&self.$f).endpoint()
        }
    };
    ($f:ident, get) => {
        fn get<'life0, 'life1, 'life2, 'life3, 'async_trait>(
            &'life0 self,
            ctx: &'life1 $crate::CallContext<'life2>,
            key: &'life3 str,
        ) -> $crate::layer::BoxFuture<
            'async_trait,
            $crate::Result<::core::option::Option<$crate::__Bytes>>,
        >
        where
            'life0: 'async_trait,
            'life1: 'async_trait,
            'life2: 'async_trait,
            'life3: 'async_trait,
            Self: 'async_trait,
        {
            $crate::layer::__as_backend(&self.$f).get(ctx, key)
        }
    };
    ($f:ident, multi_get) => {
        fn multi_get<'life0, 'life1, 'life2, 'life3, 'async_trait>(
            &'life0 self,
            ctx: &'life1 $crate::CallContext<'life2>,
            keys: &'life3 [::std::string::String],
        ) -> $crate::layer::BoxFuture<
            'async_trait,
            $crate::Result<::std::vec::Vec<::core::option::Option<$crate::__Bytes>>>,
        >
        where
            'life0: 'async_trait,
            'life1: 'async_trait,
            'life2: 'async_trait,
            'life3: 'async_trait,
            Self: 'async_trait,
        {
            $crate::layer::__as_backend(&self.$f).multi_get(ctx, keys)
        }
    };
    ($f:ident, get_with_ttl) => {
        fn get_with_ttl<'life0, 'life1, 'life2, 'life3, 'async_trait>(
            &'life0 self,
            ctx: &'life1 $crate::CallContext<'life2>,
            key: &'life3 str,
        ) -> $crate::layer::BoxFuture<
            'async_trait,
            $crate::Result<::core::option::Option<$crate::Entry>>,
        >
        where
            'life0: 'async_trait,
            'life1: 'async_trait,
            'life2: 'async_trait,
            'life3: 'async_trait,
            Self: 'async_trait,
        {
            $crate::layer::__as_backend(&self.$f).get_with_ttl(ctx, key)
        }
    };
    ($f:ident, multi_get_with_ttl) => {
        fn multi_get_with_ttl<'life0, 'life1, 'life2, 'life3, 'async_trait>(
            &'life0 self,
            ctx: &'life1 $crate::CallContext<'life2>,
            keys: &'life3 [::std::string::String],
        ) -> $crate::layer::BoxFuture<
            'async_trait,
            $crate::Result<::std::vec::Vec<::core::option::Option<$crate::Entry>>>,
        >
        where
            'life0: 'async_trait,
            'life1: 'async_trait,
            'life2: 'async_trait,
            'life3: 'async_trait,
            Self: 'async_trait,
        {
            $crate::layer::__as_backend(&self.$f).multi_get_with_ttl(ctx, keys)
        }
    };
    ($f:ident, set) => {
        fn set<'life0, 'life1, 'life2, 'life3, 'async_trait>(
            &'life0 self,
            ctx: &'life1 $crate::CallContext<'life2>,
            key: &'life3 str,
            value: $crate::__Bytes,
            op: $crate::OpSet,
        ) -> $crate::layer::BoxFuture<'async_trait, $crate::Result<()>>
        where
            'life0: 'async_trait,
            'life1: 'async_trait,
            'life2: 'async_trait,
            'life3: 'async_trait,
            Self: 'async_trait,
        {
            $crate::layer::__as_backend(&self.$f).set(ctx, key, value, op)
        }
    };
    ($f:ident, add) => {
        fn add<'life0, 'life1, 'life2, 'life3, 'async_trait>(
            &'life0 self,
            ctx: &'life1 $crate::CallContext<'life2>,
            key: &'life3 str,
            value: $crate::__Bytes,
            op: $crate::OpSet,
        ) -> $crate::layer::BoxFuture<'async_trait, $crate::Result<bool>>
        where
            'life0: 'async_trait,
            'life1: 'async_trait,
            'life2: 'async_trait,
            'life3: 'async_trait,
            Self: 'async_trait,
        {
            $crate::layer::__as_backend(&self.$f).add(ctx, key, value, op)
        }
    };
    ($f:ident, multi_set) => {
        fn multi_set<'life0, 'life1, 'life2, 'life3, 'async_trait>(
            &'life0 self,
            ctx: &'life1 $crate::CallContext<'life2>,
            entries: &'life3 [(::std::string::String, $crate::__Bytes)],
            op: $crate::OpSet,
        ) -> $crate::layer::BoxFuture<'async_trait, $crate::Result<()>>
        where
            'life0: 'async_trait,
            'life1: 'async_trait,
            'life2: 'async_trait,
            'life3: 'async_trait,
            Self: 'async_trait,
        {
            $crate::layer::__as_backend(&self.$f).multi_set(ctx, entries, op)
        }
    };
    ($f:ident, delete) => {
        fn delete<'life0, 'life1, 'life2, 'life3, 'async_trait>(
            &'life0 self,
            ctx: &'life1 $crate::CallContext<'life2>,
            key: &'life3 str,
        ) -> $crate::layer::BoxFuture<'async_trait, $crate::Result<bool>>
        where
            'life0: 'async_trait,
            'life1: 'async_trait,
            'life2: 'async_trait,
            'life3: 'async_trait,
            Self: 'async_trait,
        {
            $crate::layer::__as_backend(&self.$f).delete(ctx, key)
        }
    };
    ($f:ident, multi_delete) => {
        fn multi_delete<'life0, 'life1, 'life2, 'life3, 'async_trait>(
            &'life0 self,
            ctx: &'life1 $crate::CallContext<'life2>,
            keys: &'life3 [::std::string::String],
        ) -> $crate::layer::BoxFuture<'async_trait, $crate::Result<u64>>
        where
            'life0: 'async_trait,
            'life1: 'async_trait,
            'life2: 'async_trait,
            'life3: 'async_trait,
            Self: 'async_trait,
        {
            $crate::layer::__as_backend(&self.$f).multi_delete(ctx, keys)
        }
    };
    ($f:ident, exists) => {
        fn exists<'life0, 'life1, 'life2, 'life3, 'async_trait>(
            &'life0 self,
            ctx: &'life1 $crate::CallContext<'life2>,
            key: &'life3 str,
        ) -> $crate::layer::BoxFuture<'async_trait, $crate::Result<bool>>
        where
            'life0: 'async_trait,
            'life1: 'async_trait,
            'life2: 'async_trait,
            'life3: 'async_trait,
            Self: 'async_trait,
        {
            $crate::layer::__as_backend(&self.$f).exists(ctx, key)
        }
    };
    ($f:ident, increment) => {
        fn increment<'life0, 'life1, 'life2, 'life3, 'async_trait>(
            &'life0 self,
            ctx: &'life1 $crate::CallContext<'life2>,
            key: &'life3 str,
            delta: i64,
        ) -> $crate::layer::BoxFuture<'async_trait, $crate::Result<i64>>
        where
            'life0: 'async_trait,
            'life1: 'async_trait,
            'life2: 'async_trait,
            'life3: 'async_trait,
            Self: 'async_trait,
        {
            $crate::layer::__as_backend(&self.$f).increment(ctx, key, delta)
        }
    };
    ($f:ident, expire) => {
        fn expire<'life0, 'life1, 'life2, 'life3, 'async_trait>(
            &'life0 self,
            ctx: &'life1 $crate::CallContext<'life2>,
            key: &'life3 str,
            ttl: ::core::option::Option<::std::time::Duration>,
        ) -> $crate::layer::BoxFuture<'async_trait, $crate::Result<bool>>
        where
            'life0: 'async_trait,
            'life1: 'async_trait,
            'life2: 'async_trait,
            'life3: 'async_trait,
            Self: 'async_trait,
        {
            $crate::layer::__as_backend(&self.$f).expire(ctx, key, ttl)
        }
    };
    ($f:ident, ttl) => {
        fn ttl<'life0, 'life1, 'life2, 'life3, 'async_trait>(
            &'life0 self,
            ctx: &'life1 $crate::CallContext<'life2>,
            key: &'life3 str,
        ) -> $crate::layer::BoxFuture<'async_trait, $crate::Result<$crate::KeyTtl>>
        where
            'life0: 'async_trait,
            'life1: 'async_trait,
            'life2: 'async_trait,
            'life3: 'async_trait,
            Self: 'async_trait,
        {
            $crate::layer::__as_backend(&self.$f).ttl(ctx, key)
        }
    };
    ($f:ident, compare_and_set) => {
        fn compare_and_set<'life0, 'life1, 'life2, 'life3, 'async_trait>(
            &'life0 self,
            ctx: &'life1 $crate::CallContext<'life2>,
            key: &'life3 str,
            expected: ::core::option::Option<$crate::__Bytes>,
            new: $crate::__Bytes,
            op: $crate::OpSet,
        ) -> $crate::layer::BoxFuture<'async_trait, $crate::Result<bool>>
        where
            'life0: 'async_trait,
            'life1: 'async_trait,
            'life2: 'async_trait,
            'life3: 'async_trait,
            Self: 'async_trait,
        {
            $crate::layer::__as_backend(&self.$f).compare_and_set(ctx, key, expected, new, op)
        }
    };
    ($f:ident, compare_and_delete) => {
        fn compare_and_delete<'life0, 'life1, 'life2, 'life3, 'async_trait>(
            &'life0 self,
            ctx: &'life1 $crate::CallContext<'life2>,
            key: &'life3 str,
            expected: $crate::__Bytes,
        ) -> $crate::layer::BoxFuture<'async_trait, $crate::Result<bool>>
        where
            'life0: 'async_trait,
            'life1: 'async_trait,
            'life2: 'async_trait,
            'life3: 'async_trait,
            Self: 'async_trait,
        {
            $crate::layer::__as_backend(&self.$f).compare_and_delete(ctx, key, expected)
        }
    };
    ($f:ident, clear) => {
        fn clear<'life0, 'life1, 'life2, 'life3, 'async_trait>(
            &'life0 self,
            ctx: &'life1 $crate::CallContext<'life2>,
            scope: $crate::ClearScope<'life3>,
        ) -> $crate::layer::BoxFuture<'async_trait, $crate::Result<::core::option::Option<u64>>>
        where
            'life0: 'async_trait,
            'life1: 'async_trait,
            'life2: 'async_trait,
            'life3: 'async_trait,
            Self: 'async_trait,
        {
            $crate::layer::__as_backend(&self.$f).clear(ctx, scope)
        }
    };
    ($f:ident, raw) => {
        fn raw<'life0, 'life1, 'life2, 'life3, 'life4, 'async_trait>(
            &'life0 self,
            ctx: &'life1 $crate::CallContext<'life2>,
            command: &'life3 str,
            args: &'life4 [$crate::RawValue],
        ) -> $crate::layer::BoxFuture<'async_trait, $crate::Result<$crate::RawValue>>
        where
            'life0: 'async_trait,
            'life1: 'async_trait,
            'life2: 'async_trait,
            'life3: 'async_trait,
            'life4: 'async_trait,
            Self: 'async_trait,
        {
            $crate::layer::__as_backend(&self.$f).raw(ctx, command, args)
        }
    };
    ($f:ident, close) => {
        fn close<'life0, 'life1, 'life2, 'async_trait>(
            &'life0 self,
            ctx: &'life1 $crate::CallContext<'life2>,
        ) -> $crate::layer::BoxFuture<'async_trait, $crate::Result<()>>
        where
            'life0: 'async_trait,
            'life1: 'async_trait,
            'life2: 'async_trait,
            Self: 'async_trait,
        {
            $crate::layer::__as_backend(&self.$f).close(ctx)
        }
    };
    ($f:ident, $other:ident) => {
        ::core::compile_error!(concat!(
            "forward_backend!: `",
            stringify!($other),
            "` is not a method of cache_core::Backend"
        ));
    };
}
