//! The epoch ticker: advances the engine's epoch, the clock that wall-clock deadlines are
//! checked against, but only while a call is running.
//!
//! Each store's epoch callback compares the time with its own deadline at every tick (see
//! `run.rs`). A runtime in steady state runs nothing for minutes at a time; a thread ticking
//! a hundred times a second through those minutes would be its only work. So calls hold a
//! [`Ticking`] guard while they run, and the thread sleeps whenever none does.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::Duration;

use wasmtime::{Engine, EngineWeak};

/// How often the engine's epoch advances while a call runs: the resolution of wall-clock
/// deadlines.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// While idle, how often the thread checks whether the engine is gone.
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// How many calls are running; shared by the sandbox, its loaded components and the thread.
#[derive(Default)]
pub(super) struct EpochTicker {
    running: Mutex<usize>,
    changed: Condvar,
}

/// Keeps the epoch advancing while it lives: one per running call.
pub(super) struct Ticking(Arc<EpochTicker>);

impl EpochTicker {
    /// Start the thread, for as long as `engine` and the ticker live.
    pub(super) fn start(engine: &Engine) -> Arc<Self> {
        let ticker = Arc::new(Self::default());
        let (engine, weak) = (engine.weak(), Arc::downgrade(&ticker));
        std::thread::Builder::new()
            .name("bootstrap-wasm-epoch".into())
            .spawn(move || tick_while_running(&engine, &weak))
            .expect("cannot start the epoch thread");
        ticker
    }

    /// Tick until the guard is dropped.
    pub(super) fn ticking(self: &Arc<Self>) -> Ticking {
        *self.running() += 1;
        self.changed.notify_one();
        Ticking(self.clone())
    }

    fn running(&self) -> MutexGuard<'_, usize> {
        // A plain counter: a panic elsewhere cannot leave it inconsistent.
        self.running.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for Ticking {
    fn drop(&mut self) {
        *self.0.running() -= 1;
    }
}

fn tick_while_running(engine: &EngineWeak, ticker: &Weak<EpochTicker>) {
    loop {
        let Some(shared) = ticker.upgrade() else { return };
        {
            let mut running = shared.running();
            while *running == 0 {
                let (guard, waited) =
                    shared.changed.wait_timeout(running, IDLE_CHECK).unwrap_or_else(|poisoned| poisoned.into_inner());
                running = guard;
                if waited.timed_out() && (Arc::strong_count(&shared) == 1 || engine.upgrade().is_none()) {
                    return; // Nothing left to tick for.
                }
            }
        }
        drop(shared);
        std::thread::sleep(EPOCH_TICK);
        match engine.upgrade() {
            Some(engine) => engine.increment_epoch(),
            None => return,
        }
    }
}
