//! Context on every error: the operation, the backend, the key and the namespace.

use super::{Answer, Around, Next};
use crate::context::CallContext;
use crate::{Error, Result};

/// Adds what the call was to every error that comes up the stack: `op` (the command),
/// `backend`, `key` (when the call has one user key) and `namespace`. Context a lower layer
/// or the backend already set is kept.
///
/// `build()` installs one on every cache, outermost, so every error a command returns names
/// what failed.
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct ErrorContextLayer;

impl ErrorContextLayer {
    /// The layer.
    pub fn new() -> Self {
        ErrorContextLayer
    }
}

impl Around for ErrorContextLayer {
    async fn around<T: Answer>(&self, ctx: &CallContext<'_>, next: Next<'_, T>) -> Result<T> {
        next.run().await.map_err(|e| add_context(e, ctx))
    }
}

/// `e` with the call's context added where missing.
#[cold]
pub(crate) fn add_context(e: Error, ctx: &CallContext<'_>) -> Error {
    let mut e = e.with_context_once("op", ctx.command().as_str());
    if !ctx.backend().is_empty() {
        e = e.with_context_once("backend", ctx.backend());
    }
    if let [key] = ctx.keys() {
        e = e.with_context_once("key", key);
    }
    if let Some(ns) = ctx.namespace() {
        e = e.with_context_once("namespace", ns);
    }
    e
}

/// [`ErrorContextLayer`] over [`TimeoutLayer`](super::TimeoutLayer) in one hop: the pipeline
/// of a cache without plugins, where nothing sits between the two. Same answers as the two
/// layers stacked, one boxed future fewer per call.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PipelineLayer;

impl Around for PipelineLayer {
    async fn around<T: Answer>(&self, ctx: &CallContext<'_>, next: Next<'_, T>) -> Result<T> {
        let answer = match ctx.deadline() {
            None => next.run().await,
            Some(deadline) => super::timeout::within(deadline, next.run())
                .await
                .and_then(|r| r),
        };
        answer.map_err(|e| add_context(e, ctx))
    }
}
