//! [`TimingPlugin`]: how long each command takes.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;

use crate::{Command, CommandInfo, ErrorKind, Outcome, Plugin};

/// Every command, in declaration order: the order of [`TimingPlugin::snapshot`].
const COMMANDS: [Command; 18] = [
    Command::Get,
    Command::MultiGet,
    Command::Set,
    Command::Add,
    Command::MultiSet,
    Command::Delete,
    Command::MultiDelete,
    Command::Exists,
    Command::Increment,
    Command::Expire,
    Command::Ttl,
    Command::CompareAndSet,
    Command::Clear,
    Command::WipeAll,
    Command::Raw,
    Command::Close,
    Command::CompareAndDelete,
    Command::InvalidateTags,
];

/// The position of `command` in [`COMMANDS`].
const fn slot_of(command: Command) -> usize {
    match command {
        Command::Get => 0,
        Command::MultiGet => 1,
        Command::Set => 2,
        Command::Add => 3,
        Command::MultiSet => 4,
        Command::Delete => 5,
        Command::MultiDelete => 6,
        Command::Exists => 7,
        Command::Increment => 8,
        Command::Expire => 9,
        Command::Ttl => 10,
        Command::CompareAndSet => 11,
        Command::Clear => 12,
        Command::WipeAll => 13,
        Command::Raw => 14,
        Command::Close => 15,
        Command::CompareAndDelete => 16,
        Command::InvalidateTags => 17,
    }
}

/// The durations of one command, as read by [`TimingPlugin::snapshot`] and
/// [`TimingPlugin::get`].
///
/// Every figure covers all calls of the command, failed ones included; `errors` and
/// `timeouts` say how many of them failed. Durations are [`Outcome::took`]: from just before
/// the first `before` hook to just before the first `after` hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CommandTiming {
    /// The command.
    pub command: Command,
    /// Calls timed, successful or not (at least 1 in a snapshot).
    pub count: u64,
    /// Calls that ended with an error, timeouts included.
    pub errors: u64,
    /// Calls that ended with [`ErrorKind::Timeout`] (a subset of `errors`).
    pub timeouts: u64,
    /// The shortest call. A call that took no measurable time gives a minimum of zero, which
    /// later, longer calls keep.
    pub min: Duration,
    /// The longest call.
    pub max: Duration,
    /// `total / count`, rounded down to the nanosecond.
    pub mean: Duration,
    /// The sum of every call's duration (saturating at [`Duration::MAX`]).
    pub total: Duration,
}

/// The running figures of one command; `count == 0` means "no call yet".
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    count: u64,
    errors: u64,
    timeouts: u64,
    min: Duration,
    max: Duration,
    total: Duration,
}

impl Slot {
    fn record(&mut self, outcome: &Outcome) {
        let took = outcome.took;
        // The first call sets the minimum whatever its value, so a zero duration is kept as
        // the minimum rather than read as "unset".
        if self.count == 0 {
            self.min = took;
            self.max = took;
        } else {
            self.min = self.min.min(took);
            self.max = self.max.max(took);
        }
        self.count += 1;
        self.total = self.total.saturating_add(took);
        if let Some(kind) = outcome.error {
            self.errors += 1;
            if kind == ErrorKind::Timeout {
                self.timeouts += 1;
            }
        }
    }

    fn figures(&self, command: Command) -> Option<CommandTiming> {
        if self.count == 0 {
            return None;
        }
        let mean = self.total.as_nanos() / u128::from(self.count);
        Some(CommandTiming {
            command,
            count: self.count,
            errors: self.errors,
            timeouts: self.timeouts,
            min: self.min,
            max: self.max,
            mean: Duration::from_nanos(u64::try_from(mean).unwrap_or(u64::MAX)),
            total: self.total,
        })
    }
}

/// Counts calls and their durations per [`Command`]: count, errors, timeouts, minimum,
/// maximum, mean and total (aiocache's `TimingPlugin`).
///
/// Every call is timed, failed ones and timeouts included (a timed-out call lasts about as
/// long as its deadline); `errors` and `timeouts` count the failures apart. Each command has
/// its own short mutex held for a few additions, so a snapshot of one command is consistent
/// (`mean` always equals `total / count`). Commands refused before reaching the backend are
/// not counted (see the [module docs](crate::plugins)).
///
/// Keep an [`Arc`](std::sync::Arc) of the plugin to read the figures while the cache holds
/// another; `Arc<TimingPlugin>` is a plugin too. The plugin is not `Clone`: a clone would
/// either share the figures or split them, and an explicit `Arc` says which.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> cache_core::Result<()> {
/// use std::sync::Arc;
/// use cache_core::{Cache, Command, TimingPlugin};
/// # let backend = cache_core::testkit::MapBackend::new();
///
/// let timing = Arc::new(TimingPlugin::new());
/// let cache = Cache::builder(backend).plugin(timing.clone()).build();
/// cache.set("a", &1).await?;
/// cache.set("b", &2).await?;
/// let _ = cache.get::<i32>("a").await?;
///
/// let sets = timing.get(Command::Set).expect("two sets were timed");
/// assert_eq!((sets.count, sets.errors), (2, 0));
/// assert!(sets.min <= sets.mean && sets.mean <= sets.max);
/// assert_eq!(timing.snapshot().len(), 2); // set and get
///
/// timing.reset();
/// assert!(timing.get(Command::Set).is_none());
/// # Ok(()) }
/// ```
#[derive(Debug, Default)]
pub struct TimingPlugin {
    slots: [Mutex<Slot>; COMMANDS.len()],
}

impl TimingPlugin {
    /// A plugin with no call counted yet.
    pub fn new() -> Self {
        TimingPlugin::default()
    }

    fn slot(&self, command: Command) -> MutexGuard<'_, Slot> {
        // A panic cannot happen while the lock is held (only additions run under it), and
        // plain figures stay meaningful even if it did: ignore poisoning.
        self.slots[slot_of(command)]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The figures of `command`, or `None` if it has not run since the plugin was made or
    /// last [`reset`](Self::reset).
    pub fn get(&self, command: Command) -> Option<CommandTiming> {
        self.slot(command).figures(command)
    }

    /// The figures of every command that has run, in the declaration order of [`Command`].
    ///
    /// Each command's figures are consistent in themselves; the commands are read one after
    /// the other, so calls finishing meanwhile may be counted for some and not for others.
    pub fn snapshot(&self) -> Vec<CommandTiming> {
        COMMANDS
            .iter()
            .filter_map(|&command| self.get(command))
            .collect()
    }

    /// Forgets every figure. Commands are reset one after the other.
    pub fn reset(&self) {
        for command in COMMANDS {
            *self.slot(command) = Slot::default();
        }
    }
}

#[async_trait]
impl Plugin for TimingPlugin {
    async fn after(&self, info: &CommandInfo<'_>, outcome: &Outcome) {
        self.slot(info.command).record(outcome);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(command: Command) -> CommandInfo<'static> {
        CommandInfo {
            command,
            namespace: None,
            keys: &[],
            backend: "test",
            server: None,
        }
    }

    fn outcome(ms: u64, error: Option<ErrorKind>) -> Outcome {
        Outcome {
            took: Duration::from_millis(ms),
            hits: 0,
            misses: 0,
            error,
            removed: None,
        }
    }

    #[test]
    fn slots_match_the_command_list() {
        for (i, command) in COMMANDS.into_iter().enumerate() {
            assert_eq!(slot_of(command), i, "{command}");
        }
    }

    #[tokio::test]
    async fn counts_min_max_mean_total_errors_and_timeouts() {
        let timing = TimingPlugin::new();
        assert!(timing.snapshot().is_empty());
        assert_eq!(timing.get(Command::Get), None);

        // A zero duration first: the minimum must stay zero (aiocache read 0 as "unset").
        timing.after(&info(Command::Get), &outcome(0, None)).await;
        timing.after(&info(Command::Get), &outcome(30, None)).await;
        timing.after(&info(Command::Get), &outcome(10, None)).await;
        timing
            .after(&info(Command::Get), &outcome(100, Some(ErrorKind::Timeout)))
            .await;
        timing
            .after(
                &info(Command::Increment),
                &outcome(7, Some(ErrorKind::InvalidArgument)),
            )
            .await;
        timing.after(&info(Command::Set), &outcome(5, None)).await;
        timing.after(&info(Command::Set), &outcome(0, None)).await;

        let get = timing.get(Command::Get).unwrap();
        assert_eq!(get.command, Command::Get);
        assert_eq!(get.count, 4);
        assert_eq!(get.errors, 1);
        assert_eq!(get.timeouts, 1);
        assert_eq!(get.min, Duration::ZERO);
        assert_eq!(get.max, Duration::from_millis(100));
        assert_eq!(get.total, Duration::from_millis(140));
        assert_eq!(get.mean, Duration::from_millis(35));

        let incr = timing.get(Command::Increment).unwrap();
        assert_eq!(
            (incr.count, incr.errors, incr.timeouts),
            (1, 1, 0),
            "an error that is not a timeout"
        );
        assert_eq!(incr.min, Duration::from_millis(7));
        assert_eq!(incr.max, Duration::from_millis(7));
        assert_eq!(incr.mean, Duration::from_millis(7));
        assert_eq!(incr.total, Duration::from_millis(7));

        let set = timing.get(Command::Set).unwrap();
        assert_eq!((set.count, set.errors, set.timeouts), (2, 0, 0));
        assert_eq!(set.min, Duration::ZERO, "a zero after a longer call");
        assert_eq!(set.max, Duration::from_millis(5));
        assert_eq!(set.mean, Duration::from_micros(2500));
        assert_eq!(set.total, Duration::from_millis(5));

        let commands: Vec<Command> = timing.snapshot().iter().map(|t| t.command).collect();
        assert_eq!(
            commands,
            [Command::Get, Command::Set, Command::Increment],
            "declaration order, only commands that ran"
        );

        timing.reset();
        assert!(timing.snapshot().is_empty());
        timing.after(&info(Command::Get), &outcome(3, None)).await;
        let get = timing.get(Command::Get).unwrap();
        assert_eq!((get.count, get.min, get.max), (1, ms(3), ms(3)));
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn mean_rounds_down_and_total_saturates() {
        let mut slot = Slot::default();
        for nanos in [1, 2] {
            slot.record(&Outcome {
                took: Duration::from_nanos(nanos),
                hits: 0,
                misses: 0,
                error: None,
                removed: None,
            });
        }
        assert_eq!(
            slot.figures(Command::Get).unwrap().mean,
            Duration::from_nanos(1)
        );
        slot.record(&Outcome {
            took: Duration::MAX,
            hits: 0,
            misses: 0,
            error: None,
            removed: None,
        });
        let figures = slot.figures(Command::Get).unwrap();
        assert_eq!(figures.total, Duration::MAX);
        assert_eq!(figures.max, Duration::MAX);
        assert_eq!(figures.min, Duration::from_nanos(1));
    }
}
