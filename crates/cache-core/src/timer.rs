//! The timer behind every call's deadline.
//!
//! A deadline matters only when the call below does not answer at once, and even then the
//! call nearly always answers long before it. A Tokio timer per such call pays a
//! registration in Tokio's timer wheel and a removal from it each time. Here a waiting call
//! instead puts its deadline and waker in a slot of a table, one table per runtime (a short
//! lock, no allocation once warm), and takes the slot back when it answers. One task per
//! runtime, the table's driver, sleeps until the earliest deadline in the table, wakes the
//! calls whose deadline has passed, and sleeps again; under steady traffic with a budget of
//! seconds it wakes about once per budget. A call whose deadline is earlier than the
//! driver's next wake-up wakes the driver to sleep less.
//!
//! When a runtime shuts down, its driver is dropped: it marks the table closed and wakes
//! every call in it, and a call polled again arms in the table of the runtime it is polled
//! on then.

use std::cell::{Cell, RefCell};
use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering, fence};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::runtime::{Handle, RuntimeFlavor};
use tokio::sync::Notify;
use tokio::time::Instant;

/// How long the driver sleeps when no call waits, before it looks again.
const HEARTBEAT: Duration = Duration::from_secs(1);
/// After this many heartbeats with no call waiting, the driver sleeps until a call arms.
const IDLE_HEARTBEATS: u32 = 10;
/// `wake_at` when the driver sleeps until a call arms.
const NEVER: u64 = u64::MAX;
/// The most shards a table has.
const MAX_SHARDS: usize = 64;

/// Runs `fut` until `at`: its output, or `None` when `at` passed first.
///
/// `fut` is polled first at every wake-up, so an answer that is ready wins over a deadline
/// that has just passed. A call that answers at its first poll never touches the table.
///
/// # Panics
/// Outside a Tokio runtime, when `fut` does not answer at once (as Tokio's own timers do).
pub(crate) async fn run_until<F: Future>(at: Instant, fut: F) -> Option<F::Output> {
    let mut fut = pin!(fut);
    let mut arm = Arm { at, armed: None };
    poll_fn(|cx| {
        if let Poll::Ready(out) = fut.as_mut().poll(cx) {
            return Poll::Ready(Some(out));
        }
        arm.poll_passed(cx).map(|()| None)
    })
    .await
}

/// A call's place in a table.
struct Arm {
    at: Instant,
    /// The table, the shard and the slot, once the call waits.
    armed: Option<(Arc<Table>, u32, u32)>,
}

impl Arm {
    /// Ready once the deadline has passed; otherwise the waker of `cx` is woken when it does.
    fn poll_passed(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if let Some((table, shard, slot)) = &self.armed {
            if !table.closed.load(Ordering::Acquire) {
                let mut guard = table.shard(*shard);
                if let Some(Slot::Taken { waker, fired, .. }) = guard.slots.get_mut(*slot as usize)
                {
                    if *fired {
                        guard.release(*slot);
                        drop(guard);
                        self.armed = None;
                        return Poll::Ready(());
                    }
                    if !waker.will_wake(cx.waker()) {
                        waker.clone_from(cx.waker());
                    }
                    return Poll::Pending;
                }
            }
            // the runtime of that table has shut down: arm in the current one
            self.disarm();
        }
        self.arm(cx);
        Poll::Pending
    }

    fn arm(&mut self, cx: &mut Context<'_>) {
        // a table closed between the lookup and the insert is left for a fresh one; a runtime
        // closing twice in a row is shutting down and polls nothing more
        for _ in 0..2 {
            let table = Table::current();
            let shard = shard_of_thread(table.shards.len());
            let slot = table.shard(shard).take(self.at, cx.waker().clone());
            self.armed = Some((Arc::clone(&table), shard, slot));
            // pairs with the driver's fence: either the driver's look after publishing
            // `wake_at` sees this slot, or this load sees that `wake_at`
            fence(Ordering::SeqCst);
            if table.ticks(self.at) < table.wake_at.load(Ordering::Relaxed) {
                table.notify.notify_one();
            }
            if !table.closed.load(Ordering::Acquire) {
                return;
            }
            self.disarm();
        }
    }

    fn disarm(&mut self) {
        if let Some((table, shard, slot)) = self.armed.take() {
            table.shard(shard).release(slot);
        }
    }
}

impl Drop for Arm {
    fn drop(&mut self) {
        self.disarm();
    }
}

/// The waiting calls of one runtime.
struct Table {
    shards: Box<[Mutex<Shard>]>,
    /// When the driver next looks, in nanoseconds since `base`; [`NEVER`]: when notified.
    wake_at: AtomicU64,
    /// Wakes the driver early.
    notify: Notify,
    /// The driver is gone (its runtime shut down).
    closed: AtomicBool,
    base: Instant,
}

#[derive(Default)]
struct Shard {
    slots: Vec<Slot>,
    vacant: Vec<u32>,
}

enum Slot {
    Vacant,
    Taken {
        at: Instant,
        waker: Waker,
        /// The driver found the deadline passed and woke the call.
        fired: bool,
    },
}

impl Shard {
    fn take(&mut self, at: Instant, waker: Waker) -> u32 {
        let slot = Slot::Taken {
            at,
            waker,
            fired: false,
        };
        match self.vacant.pop() {
            Some(i) => {
                self.slots[i as usize] = slot;
                i
            }
            None => {
                self.slots.push(slot);
                u32::try_from(self.slots.len() - 1).unwrap_or(u32::MAX)
            }
        }
    }

    fn release(&mut self, i: u32) {
        if let Some(slot) = self.slots.get_mut(i as usize)
            && matches!(slot, Slot::Taken { .. })
        {
            *slot = Slot::Vacant;
            self.vacant.push(i);
        }
    }
}

thread_local! {
    /// The table of the runtime this thread last armed a call on.
    static CURRENT: RefCell<Option<(tokio::runtime::Id, Arc<Table>)>> =
        const { RefCell::new(None) };
    /// This thread's shard, by table size.
    static SHARD: Cell<u32> = const { Cell::new(u32::MAX) };
}

/// The tables of the live runtimes, for threads that arm on a runtime for the first time.
static TABLES: Mutex<Vec<(tokio::runtime::Id, Weak<Table>)>> = Mutex::new(Vec::new());

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // nothing here panics while holding a lock; a poisoned one holds consistent data
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn shard_of_thread(shards: usize) -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let mut n = SHARD.get();
    if n == u32::MAX {
        n = NEXT.fetch_add(1, Ordering::Relaxed) & 0xffff;
        SHARD.set(n);
    }
    n % shards as u32
}

impl Table {
    /// The table of the current runtime, made (and its driver started) on first use.
    fn current() -> Arc<Table> {
        let handle = Handle::current();
        let id = handle.id();
        CURRENT.with(|current| {
            let mut current = current.borrow_mut();
            if let Some((at, table)) = current.as_ref()
                && *at == id
                && !table.closed.load(Ordering::Acquire)
            {
                return Arc::clone(table);
            }
            let table = Table::of(&handle, id);
            *current = Some((id, Arc::clone(&table)));
            table
        })
    }

    fn of(handle: &Handle, id: tokio::runtime::Id) -> Arc<Table> {
        let mut tables = lock(&TABLES);
        tables.retain(|(_, t)| t.strong_count() > 0);
        if let Some(table) = tables
            .iter()
            .filter(|(at, _)| *at == id)
            .find_map(|(_, t)| t.upgrade())
            .filter(|t| !t.closed.load(Ordering::Acquire))
        {
            return table;
        }
        let shards = match handle.runtime_flavor() {
            RuntimeFlavor::CurrentThread => 1,
            _ => handle.metrics().num_workers().clamp(1, MAX_SHARDS),
        };
        let table = Arc::new(Table {
            shards: (0..shards).map(|_| Mutex::default()).collect(),
            wake_at: AtomicU64::new(NEVER),
            notify: Notify::new(),
            closed: AtomicBool::new(false),
            base: Instant::now(),
        });
        tables.retain(|(at, _)| *at != id);
        tables.push((id, Arc::downgrade(&table)));
        // made outside the task, so that a task dropped unpolled (its runtime shutting down)
        // still closes the table
        let closing = CloseOnDrop(Arc::clone(&table));
        drop(handle.spawn(async move {
            let closing = closing;
            drive(&closing.0).await;
        }));
        table
    }

    fn shard(&self, i: u32) -> MutexGuard<'_, Shard> {
        lock(&self.shards[i as usize])
    }

    fn ticks(&self, at: Instant) -> u64 {
        let nanos = at.saturating_duration_since(self.base).as_nanos();
        u64::try_from(nanos).unwrap_or(NEVER - 1).min(NEVER - 1)
    }

    /// Marks every call whose deadline is at or before `now` as fired and wakes it; the
    /// earliest deadline of the calls still waiting.
    fn fire(&self, now: Instant) -> Option<Instant> {
        let mut due: Vec<Waker> = Vec::new();
        let mut earliest: Option<Instant> = None;
        for i in 0..self.shards.len() {
            let mut shard = self.shard(i as u32);
            for slot in &mut shard.slots {
                if let Slot::Taken { at, waker, fired } = slot
                    && !*fired
                {
                    if *at <= now {
                        *fired = true;
                        due.push(waker.clone());
                    } else if earliest.is_none_or(|e| *at < e) {
                        earliest = Some(*at);
                    }
                }
            }
        }
        for waker in due {
            waker.wake();
        }
        earliest
    }
}

/// Closes its table when the driver stops, whether it ran or not.
struct CloseOnDrop(Arc<Table>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        let table = &self.0;
        table.closed.store(true, Ordering::Release);
        let mut waiting: Vec<Waker> = Vec::new();
        for i in 0..table.shards.len() {
            let shard = table.shard(i as u32);
            waiting.extend(shard.slots.iter().filter_map(|s| match s {
                Slot::Taken { waker, .. } => Some(waker.clone()),
                Slot::Vacant => None,
            }));
        }
        for waker in waiting {
            waker.wake();
        }
    }
}

/// The driver of `table`: wakes the calls whose deadline passed, then sleeps until the next.
async fn drive(table: &Table) {
    let mut idle = 0;
    loop {
        let now = Instant::now();
        let next = match table.fire(now) {
            Some(at) => {
                idle = 0;
                Some(at)
            }
            None if idle < IDLE_HEARTBEATS => {
                idle += 1;
                Some(now + HEARTBEAT)
            }
            None => None,
        };
        table
            .wake_at
            .store(next.map_or(NEVER, |at| table.ticks(at)), Ordering::Relaxed);
        // pairs with the fence of `Arm::arm`
        fence(Ordering::SeqCst);
        let notified = table.notify.notified();
        if table
            .fire(Instant::now())
            .is_some_and(|at| next.is_none_or(|n| at < n))
        {
            // a call armed before `wake_at` was published, with an earlier deadline
            continue;
        }
        match next {
            Some(at) => {
                let mut notified = pin!(notified);
                let mut sleep = pin!(tokio::time::sleep_until(at));
                poll_fn(|cx| {
                    if notified.as_mut().poll(cx).is_ready() || sleep.as_mut().poll(cx).is_ready() {
                        Poll::Ready(())
                    } else {
                        Poll::Pending
                    }
                })
                .await;
            }
            None => notified.await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::pending;
    use std::time::Duration;

    fn after(ms: u64) -> Instant {
        Instant::now() + Duration::from_millis(ms)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_call_that_never_answers_ends_at_its_deadline() {
        let start = Instant::now();
        let out = run_until(start + Duration::from_millis(50), pending::<()>()).await;
        assert_eq!(out, None);
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(50), "ended early: {took:?}");
        assert!(took < Duration::from_secs(5), "ended late: {took:?}");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_current_thread_runtime_ends_calls_at_their_deadline() {
        let start = Instant::now();
        assert_eq!(run_until(after(30), pending::<()>()).await, None);
        assert!(start.elapsed() >= Duration::from_millis(30));
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn deadlines_follow_a_paused_test_clock() {
        let start = Instant::now();
        let out = run_until(start + Duration::from_secs(600), pending::<()>()).await;
        assert_eq!(out, None);
        // the clock jumped to the deadline: nothing waited ten minutes
        assert!(start.elapsed() >= Duration::from_secs(600));
        assert!(std::time::Instant::now() - start.into_std() < Duration::from_secs(60));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_answer_before_the_deadline_wins() {
        let out = run_until(after(5_000), async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            7
        })
        .await;
        assert_eq!(out, Some(7));
        // a ready answer wins even over a deadline that has passed
        let passed = Instant::now() - Duration::from_millis(1);
        assert_eq!(run_until(passed, async { 8 }).await, Some(8));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_earlier_deadline_wakes_a_driver_sleeping_until_a_later_one() {
        // the driver goes to sleep until the far deadline first
        let far = tokio::spawn(run_until(after(60_000), pending::<()>()));
        tokio::time::sleep(Duration::from_millis(20)).await;
        let start = Instant::now();
        assert_eq!(run_until(after(40), pending::<()>()).await, None);
        assert!(start.elapsed() < Duration::from_secs(5));
        far.abort();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_calls_each_end_at_their_own_deadline() {
        let mut calls = Vec::new();
        for i in 0..200u64 {
            let at = after(10 + (i * 7) % 150);
            calls.push(tokio::spawn(async move {
                let out = run_until(at, pending::<()>()).await;
                (out, Instant::now() >= at)
            }));
        }
        // and as many that answer, so slots are reused
        for i in 0..200u64 {
            calls.push(tokio::spawn(async move {
                let out = run_until(after(10_000), async move {
                    tokio::time::sleep(Duration::from_millis(i % 20)).await;
                })
                .await;
                (out, true)
            }));
        }
        for (i, call) in calls.into_iter().enumerate() {
            let (out, on_time) = call.await.unwrap();
            assert_eq!(out.is_none(), i < 200, "call {i}");
            assert!(on_time, "call {i} ended before its deadline");
        }
    }

    #[test]
    fn a_call_outlives_the_runtime_it_armed_on() {
        let first = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let mut call = Box::pin(run_until(after(100), pending::<()>()));
        // armed on the first runtime
        first.block_on(async {
            assert!(
                poll_fn(|cx| Poll::Ready(call.as_mut().poll(cx)))
                    .await
                    .is_pending()
            );
        });
        drop(first);
        let second = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_time()
            .build()
            .unwrap();
        let out =
            second.block_on(async { tokio::time::timeout(Duration::from_secs(10), call).await });
        assert_eq!(
            out,
            Ok(None),
            "the call ended at its deadline on the second runtime"
        );
    }

    #[test]
    fn each_runtime_drives_its_own_calls() {
        // a runtime that is alive but not running must not hold up the calls of another
        let idle = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        idle.block_on(run_until(after(1), pending::<()>()));
        let busy = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_time()
            .build()
            .unwrap();
        let out = busy.block_on(async {
            tokio::time::timeout(
                Duration::from_secs(10),
                run_until(after(30), pending::<()>()),
            )
            .await
        });
        assert_eq!(out, Ok(None));
        drop(idle);
    }
}
