//! [`MetricsPlugin`]: counters and a histogram through the `metrics` facade.

use std::sync::Arc;

use ::metrics::{KeyName, Label, SharedString, Unit};
use async_trait::async_trait;

use super::outcome_label;
use crate::{Command, CommandInfo, EventInfo, Outcome, Plugin};

/// Records every command in the [`metrics`](::metrics) facade, for whatever recorder the
/// program installed (Prometheus, OpenTelemetry, StatsD, …). Available with the `metrics`
/// feature.
///
/// With the default prefix `stratacache`:
///
/// | metric | kind | labels | value |
/// |---|---|---|---|
/// | `stratacache_commands_total` | counter | `op`, `backend`, `outcome` | commands run |
/// | `stratacache_command_duration_seconds` | histogram | `op`, `backend`, `outcome` | [`Outcome::took`] in seconds |
/// | `stratacache_hits_total` | counter | `backend` | keys found by reads |
/// | `stratacache_misses_total` | counter | `backend` | keys not found by reads |
/// | `stratacache_read_through_events_total` | counter | `event`, `backend` | decisions of the `get_or_set` family ([`ReadThroughEvent`](crate::ReadThroughEvent)) |
///
/// `op` is the command (`get`, `multi_get`, `set`, …), `backend` the backend's name and
/// `outcome` is `ok` or the error kind in snake case (`timeout`, `invalid_argument`,
/// `connection`, …): failed commands and timeouts are counted and timed like the others,
/// under their own `outcome`. Hits and misses are counted per key, as the
/// [`HitMissRatioPlugin`](crate::HitMissRatioPlugin) counts them; every `get` and `multi_get`
/// adds to both counters (possibly 0), so both series exist as soon as something was read.
/// The namespace and the keys are not labels: they are unbounded sets of values.
///
/// Each update looks the metric up in the recorder installed at that moment (the global one,
/// or one set for the current thread with [`metrics::with_local_recorder`]), so the plugin can
/// be made before the recorder is installed. Call [`describe`](Self::describe) once the
/// recorder is installed to give it units and descriptions.
///
/// The plugin holds only the metric names: cloning it is cheap, and one value may serve
/// several caches.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> cache_core::Result<()> {
/// use cache_core::{Cache, MetricsPlugin};
/// # let backend = cache_core::testkit::MapBackend::new();
///
/// // install a recorder first, e.g. metrics_exporter_prometheus::PrometheusBuilder
/// let metrics = MetricsPlugin::with_prefix("myapp_cache");
/// metrics.describe();
/// let cache = Cache::builder(backend).plugin(metrics).build();
/// cache.set("k", &1).await?; // myapp_cache_commands_total{op="set",backend="map",outcome="ok"} += 1
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct MetricsPlugin {
    names: Arc<Names>,
}

#[derive(Debug)]
struct Names {
    /// OpenTelemetry's names and attributes instead of the Prometheus-style ones.
    otel: bool,
    commands: KeyName,
    duration: KeyName,
    hits: KeyName,
    misses: KeyName,
    events: KeyName,
}

impl Default for MetricsPlugin {
    fn default() -> Self {
        MetricsPlugin::with_prefix(MetricsPlugin::DEFAULT_PREFIX)
    }
}

impl MetricsPlugin {
    /// The prefix of the metric names unless another is given: `stratacache`.
    pub const DEFAULT_PREFIX: &'static str = "stratacache";

    /// Metrics named `stratacache_*`.
    pub fn new() -> Self {
        MetricsPlugin::default()
    }

    /// Metrics named `{prefix}_commands_total` and so on; an empty prefix gives
    /// `commands_total`, … The prefix is used as given: it should match `[a-zA-Z_:][a-zA-Z0-9_:]*`
    /// for Prometheus.
    pub fn with_prefix(prefix: impl Into<String>) -> Self {
        let prefix = prefix.into();
        let name = |suffix: &str| {
            let full = if prefix.is_empty() {
                suffix.to_owned()
            } else {
                format!("{prefix}_{suffix}")
            };
            KeyName::from(SharedString::from_shared(Arc::<str>::from(full)))
        };
        MetricsPlugin {
            names: Arc::new(Names {
                otel: false,
                commands: name("commands_total"),
                duration: name("command_duration_seconds"),
                hits: name("hits_total"),
                misses: name("misses_total"),
                events: name("read_through_events_total"),
            }),
        }
    }

    /// Metrics named and labelled after OpenTelemetry's database client conventions, for a
    /// program that exports the `metrics` facade to OpenTelemetry:
    ///
    /// | metric | kind | attributes | value |
    /// |---|---|---|---|
    /// | `db.client.operation.duration` | histogram, seconds | `db.system.name`, `db.operation.name`, `server.address`, `server.port`, `error.type` (on failure) | [`Outcome::took`] |
    /// | `stratacache.commands` | counter | as above | commands run |
    /// | `stratacache.hits` | counter | `db.system.name` | keys found by reads |
    /// | `stratacache.misses` | counter | `db.system.name` | keys not found by reads |
    /// | `stratacache.read_through.events` | counter | `event`, `db.system.name` | read-through decisions |
    ///
    /// `db.system.name` is the backend's name (`redis`, `memcached`, `memory`),
    /// `db.operation.name` the command (`get`, `set`, …), `error.type` the error kind in
    /// snake case; `server.*` are absent for an in-process backend.
    pub fn opentelemetry() -> Self {
        let name = |n: &'static str| KeyName::from_const_str(n);
        MetricsPlugin {
            names: Arc::new(Names {
                otel: true,
                commands: name("stratacache.commands"),
                duration: name("db.client.operation.duration"),
                hits: name("stratacache.hits"),
                misses: name("stratacache.misses"),
                events: name("stratacache.read_through.events"),
            }),
        }
    }

    /// The name of the command counter (`stratacache_commands_total` by default).
    pub fn commands_name(&self) -> &str {
        self.names.commands.as_str()
    }

    /// The name of the duration histogram (`stratacache_command_duration_seconds` by default).
    pub fn duration_name(&self) -> &str {
        self.names.duration.as_str()
    }

    /// The name of the hit counter (`stratacache_hits_total` by default).
    pub fn hits_name(&self) -> &str {
        self.names.hits.as_str()
    }

    /// The name of the miss counter (`stratacache_misses_total` by default).
    pub fn misses_name(&self) -> &str {
        self.names.misses.as_str()
    }

    /// The name of the read-through event counter
    /// (`stratacache_read_through_events_total` by default).
    pub fn events_name(&self) -> &str {
        self.names.events.as_str()
    }

    /// Gives the current recorder the unit and a description of each metric. Call it once,
    /// after installing the recorder; recorders that do not use descriptions ignore it.
    pub fn describe(&self) {
        let n = &*self.names;
        ::metrics::describe_counter!(
            n.commands.clone(),
            Unit::Count,
            "Cache commands run, by operation, backend and outcome."
        );
        ::metrics::describe_histogram!(
            n.duration.clone(),
            Unit::Seconds,
            "Duration of cache commands, hooks included, by operation, backend and outcome."
        );
        ::metrics::describe_counter!(
            n.hits.clone(),
            Unit::Count,
            "Keys found by cache reads, by backend."
        );
        ::metrics::describe_counter!(
            n.misses.clone(),
            Unit::Count,
            "Keys not found by cache reads, by backend."
        );
        ::metrics::describe_counter!(
            n.events.clone(),
            Unit::Count,
            "Decisions of the read-through (stale served, fail-safe activated, refresh \
             started, loader timeouts, waiters coalesced, leases), by event and backend."
        );
    }
}

/// The attributes of a command in OpenTelemetry's conventions.
fn otel_labels(info: &CommandInfo<'_>, outcome: &Outcome) -> Vec<Label> {
    let mut labels = Vec::with_capacity(5);
    labels.push(Label::from_static_parts("db.system.name", info.backend));
    labels.push(Label::from_static_parts(
        "db.operation.name",
        info.command.as_str(),
    ));
    if let Some(server) = info.server {
        labels.push(Label::new("server.address", server.address.clone()));
        if let Some(port) = server.port {
            labels.push(Label::new("server.port", port.to_string()));
        }
    }
    if !outcome.is_ok() {
        labels.push(Label::from_static_parts(
            "error.type",
            outcome_label(outcome),
        ));
    }
    labels
}

#[async_trait]
impl Plugin for MetricsPlugin {
    async fn after(&self, info: &CommandInfo<'_>, outcome: &Outcome) {
        let n = &*self.names;
        if n.otel {
            let labels = otel_labels(info, outcome);
            ::metrics::counter!(n.commands.clone(), labels.clone()).increment(1);
            ::metrics::histogram!(n.duration.clone(), labels).record(outcome.took.as_secs_f64());
            let read = matches!(info.command, Command::Get | Command::MultiGet);
            let system = [Label::from_static_parts("db.system.name", info.backend)];
            if read || outcome.hits > 0 {
                ::metrics::counter!(n.hits.clone(), system.iter()).increment(outcome.hits);
            }
            if read || outcome.misses > 0 {
                ::metrics::counter!(n.misses.clone(), system.iter()).increment(outcome.misses);
            }
            return;
        }
        let op = info.command.as_str();
        let backend = info.backend;
        let result = outcome_label(outcome);
        ::metrics::counter!(
            n.commands.clone(),
            "op" => op,
            "backend" => backend,
            "outcome" => result
        )
        .increment(1);
        ::metrics::histogram!(
            n.duration.clone(),
            "op" => op,
            "backend" => backend,
            "outcome" => result
        )
        .record(outcome.took.as_secs_f64());
        let read = matches!(info.command, Command::Get | Command::MultiGet);
        if read || outcome.hits > 0 {
            ::metrics::counter!(n.hits.clone(), "backend" => backend).increment(outcome.hits);
        }
        if read || outcome.misses > 0 {
            ::metrics::counter!(n.misses.clone(), "backend" => backend).increment(outcome.misses);
        }
    }

    fn on_event(&self, info: &EventInfo<'_>) {
        if self.names.otel {
            ::metrics::counter!(
                self.names.events.clone(),
                "event" => info.event.as_str(),
                "db.system.name" => info.backend
            )
            .increment(1);
            return;
        }
        ::metrics::counter!(
            self.names.events.clone(),
            "event" => info.event.as_str(),
            "backend" => info.backend
        )
        .increment(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_prefix() {
        let default = MetricsPlugin::new();
        assert_eq!(default.commands_name(), "stratacache_commands_total");
        assert_eq!(
            default.duration_name(),
            "stratacache_command_duration_seconds"
        );
        assert_eq!(default.hits_name(), "stratacache_hits_total");
        assert_eq!(default.misses_name(), "stratacache_misses_total");
        assert_eq!(
            default.events_name(),
            "stratacache_read_through_events_total"
        );

        let custom = MetricsPlugin::with_prefix("app_cache");
        assert_eq!(custom.commands_name(), "app_cache_commands_total");
        assert_eq!(custom.clone().hits_name(), "app_cache_hits_total");

        let bare = MetricsPlugin::with_prefix("");
        assert_eq!(bare.commands_name(), "commands_total");
        assert_eq!(bare.duration_name(), "command_duration_seconds");
        assert_eq!(bare.misses_name(), "misses_total");
    }
}
