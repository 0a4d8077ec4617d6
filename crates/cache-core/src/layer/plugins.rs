//! The plugin hooks of the pipeline.

use std::sync::Arc;
use std::time::Instant;

use tracing::Instrument;

use super::timeout::within;
use super::{Answer, Around, Next};
use crate::Result;
use crate::context::{CallContext, Progress};
use crate::plugin::{Outcome, Plugin};

/// Runs the plugins' hooks around each call: every `before` hook in order (within the
/// call's deadline), the stack below, then every `after` hook in order with the
/// [`Outcome`], once per plugin and per call, whatever happened — on success, on error, on
/// a deadline that passed during the `before` hooks or below. The `after` hooks run to the
/// end once the stack has answered, and the caller gets that answer: a deadline never turns
/// an applied command into a `Timeout`. The whole call runs in the span of the first plugin
/// that gives one.
#[derive(Clone)]
pub(crate) struct PluginLayer {
    plugins: Arc<[Arc<dyn Plugin>]>,
}

impl std::fmt::Debug for PluginLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginLayer")
            .field("plugins", &self.plugins.len())
            .finish()
    }
}

impl PluginLayer {
    pub(crate) fn new(plugins: Vec<Arc<dyn Plugin>>) -> Self {
        PluginLayer {
            plugins: plugins.into(),
        }
    }
}

impl Around for PluginLayer {
    async fn around<T: Answer>(&self, ctx: &CallContext<'_>, next: Next<'_, T>) -> Result<T> {
        let info = ctx.info();
        let span = self
            .plugins
            .iter()
            .find_map(|p| p.span(&info))
            .unwrap_or_else(tracing::Span::none);
        async {
            let start = Instant::now();
            let before = async {
                for p in self.plugins.iter() {
                    p.before(&info).await;
                }
            };
            let answer = match ctx.deadline() {
                None => {
                    before.await;
                    next.run().await
                }
                Some(deadline) => match within(deadline, before).await {
                    Ok(()) => next.run().await,
                    Err(e) => Err(e),
                },
            };
            let (hits, misses) = answer.as_ref().map(Answer::tally).unwrap_or((0, 0));
            let outcome = Outcome {
                took: start.elapsed(),
                hits,
                misses,
                error: match &answer {
                    Ok(a) => a.refusal(ctx.command()),
                    Err(e) => Some(e.kind()),
                },
                removed: ctx.progress().map(Progress::get).filter(|&n| n > 0),
            };
            for p in self.plugins.iter() {
                p.after(&info, &outcome).await;
            }
            answer
        }
        .instrument(span)
        .await
    }
}
