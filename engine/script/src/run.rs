//! One run of a script: its inputs, its result, and the script API of docs/scripts.md.
//!
//! The engine is built once and shared, but a run has its own host, clock, deadline and data
//! budgets. Rhai's progress callback takes no context, so the run's state sits in a
//! thread-local for the length of the run (a script runs on one thread from start to end). A
//! guard installs it and puts back whatever was there before, so a host may run another
//! script inline, on the same thread, from inside one of its calls.
//!
//! The API functions (`find`, `update`, `now`, `reject`, …) are registered on the engine once;
//! outside a run (in a formula) the data functions fail, and `now()`/`today()` too.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use rhai::{Array, Dynamic, Engine, EvalAltResult, Position};

use crate::error::{Abort, Limit};
use crate::host::{HostError, ScriptEvent, ScriptHost, ScriptUser};
use crate::values::{ScriptMap, ScriptValue, from_rhai_map, to_dynamic, to_rhai_map};

/// What a script runs with.
#[derive(Debug, Clone)]
pub struct RunInput {
    /// `record`: the record being saved (or the one the event is about).
    pub record: ScriptMap,
    /// `old`: the record before this change; `None` on create (`()` in the script).
    pub old: Option<ScriptMap>,
    /// `user`: who caused the event (the system user for scheduled rules).
    pub user: ScriptUser,
    /// `event`.
    pub event: ScriptEvent,
    /// The instant `now()` returns, from the runtime's clock.
    pub now: DateTime<Utc>,
    /// The app timezone: `today()` is `now` in it, and a date compared with a datetime is its
    /// midnight in it.
    pub timezone: Tz,
}

/// What a run produced.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOutput {
    /// `record` as the script left it (changes are saved in `before_save`).
    pub record: ScriptMap,
    /// The value of the script's last expression (a guard's `true` or `false`).
    pub value: ScriptValue,
    /// Data reads and writes the script made.
    pub reads: u32,
    pub writes: u32,
}

/// The state of the run on this thread.
pub(crate) struct RunState {
    host: Arc<dyn ScriptHost>,
    now: DateTime<Utc>,
    timezone: Tz,
    deadline: Instant,
    wall_time: Duration,
    max_reads: u32,
    max_writes: u32,
    reads: Cell<u32>,
    writes: Cell<u32>,
}

thread_local! {
    static CURRENT: RefCell<Option<Rc<RunState>>> = const { RefCell::new(None) };
}

/// Installs a run's state on this thread until dropped.
pub(crate) struct RunGuard {
    previous: Option<Rc<RunState>>,
    state: Rc<RunState>,
}

impl RunGuard {
    pub(crate) fn install(
        host: Arc<dyn ScriptHost>,
        input: &RunInput,
        wall_time: Duration,
        max_reads: u32,
        max_writes: u32,
    ) -> RunGuard {
        let state = Rc::new(RunState {
            host,
            now: input.now,
            timezone: input.timezone,
            deadline: Instant::now() + wall_time,
            wall_time,
            max_reads,
            max_writes,
            reads: Cell::new(0),
            writes: Cell::new(0),
        });
        let previous = CURRENT.with(|current| current.replace(Some(Rc::clone(&state))));
        RunGuard { previous, state }
    }

    /// Reads and writes made so far.
    pub(crate) fn counts(&self) -> (u32, u32) {
        (self.state.reads.get(), self.state.writes.get())
    }
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        let previous = self.previous.take();
        CURRENT.with(|current| current.replace(previous));
    }
}

fn current() -> Option<Rc<RunState>> {
    CURRENT.with(|current| current.borrow().clone())
}

/// The timezone of the run on this thread; UTC outside a run.
pub(crate) fn current_timezone() -> Tz {
    CURRENT.with(|current| {
        current
            .borrow()
            .as_ref()
            .map_or(Tz::UTC, |state| state.timezone)
    })
}

/// How often (in operations) the progress callback looks at the clock: often enough to stop
/// within microseconds of the deadline, rarely enough that reading the clock costs nothing.
const CLOCK_EVERY_OPERATIONS: u64 = 64;

/// The progress callback: stops the run once its deadline has passed.
pub(crate) fn on_progress(operations: u64) -> Option<Dynamic> {
    if !operations.is_multiple_of(CLOCK_EVERY_OPERATIONS) {
        return None;
    }
    let state = current()?;
    past_deadline(&state).map(Dynamic::from)
}

fn past_deadline(state: &RunState) -> Option<Abort> {
    (Instant::now() >= state.deadline).then(|| {
        Abort::Limit(
            Limit::WallTime,
            format!(
                "ran longer than {} ms (see the `wall_time` limit)",
                state.wall_time.as_millis()
            ),
        )
    })
}

/// Registers the script API on the engine.
pub(crate) fn register(engine: &mut Engine) {
    engine.on_progress(on_progress);

    engine
        .register_fn("find", |object: &str, filter: rhai::Map| {
            let filter = argument_map("find", filter)?;
            let found = read("find", object, |host| host.find(object, &filter))?;
            Ok::<Array, Box<EvalAltResult>>(
                found
                    .iter()
                    .map(|record| Dynamic::from_map(to_rhai_map(record)))
                    .collect(),
            )
        })
        .register_fn("find_one", |object: &str, filter: rhai::Map| {
            let filter = argument_map("find_one", filter)?;
            let found = read("find_one", object, |host| host.find_one(object, &filter))?;
            Ok::<Dynamic, Box<EvalAltResult>>(optional_record(found.as_ref()))
        })
        .register_fn("get", |object: &str, id: &str| {
            let found = read("get", object, |host| host.get(object, id))?;
            Ok::<Dynamic, Box<EvalAltResult>>(optional_record(found.as_ref()))
        })
        .register_fn("count", |object: &str, filter: rhai::Map| {
            let filter = argument_map("count", filter)?;
            read("count", object, |host| host.count(object, &filter))
        })
        .register_fn("create", |object: &str, values: rhai::Map| {
            let values = argument_map("create", values)?;
            let created = write("create", object, |host| host.create(object, &values))?;
            Ok::<rhai::Map, Box<EvalAltResult>>(to_rhai_map(&created))
        })
        .register_fn("update", |object: &str, id: &str, values: rhai::Map| {
            let values = argument_map("update", values)?;
            let updated = write("update", object, |host| host.update(object, id, &values))?;
            Ok::<rhai::Map, Box<EvalAltResult>>(to_rhai_map(&updated))
        })
        .register_fn("notify", |user_id: &str, message: &str| {
            write("notify", user_id, |host| host.notify(user_id, message))
        })
        .register_fn("log", |message: &str| {
            let state = state_for("log")?;
            check_deadline(&state)?;
            state
                .host
                .log(message)
                .map_err(|error| host_failed("log", "", error))
        })
        .register_fn(
            "reject",
            |message: &str| -> Result<(), Box<EvalAltResult>> {
                Err(Abort::Rejected(message.to_owned()).into_error())
            },
        )
        .register_fn("now", || {
            state_for("now").map(|state| Dynamic::from(state.now))
        })
        .register_fn("today", || {
            state_for("today").map(|state| Dynamic::from(today(&state)))
        })
        .register_fn("days", crate::time::days)
        .register_fn("hours", crate::time::hours);
}

fn today(state: &RunState) -> NaiveDate {
    state.now.with_timezone(&state.timezone).date_naive()
}

fn state_for(function: &str) -> Result<Rc<RunState>, Box<EvalAltResult>> {
    current().ok_or_else(|| {
        EvalAltResult::ErrorRuntime(
            format!("{function}() is available in scripts only, not in expressions").into(),
            Position::NONE,
        )
        .into()
    })
}

fn check_deadline(state: &RunState) -> Result<(), Box<EvalAltResult>> {
    match past_deadline(state) {
        Some(abort) => Err(abort.into_error()),
        None => Ok(()),
    }
}

/// Counts a read against the budget, then asks the host.
fn read<T>(
    function: &str,
    object: &str,
    call: impl FnOnce(&dyn ScriptHost) -> Result<T, HostError>,
) -> Result<T, Box<EvalAltResult>> {
    data_call(function, object, Limit::Reads, call)
}

/// Counts a write against the budget, then asks the host.
fn write<T>(
    function: &str,
    object: &str,
    call: impl FnOnce(&dyn ScriptHost) -> Result<T, HostError>,
) -> Result<T, Box<EvalAltResult>> {
    data_call(function, object, Limit::Writes, call)
}

/// Checks the deadline, counts one call against `budget` (`Limit::Reads` or
/// `Limit::Writes`), then asks the host.
fn data_call<T>(
    function: &str,
    object: &str,
    budget: Limit,
    call: impl FnOnce(&dyn ScriptHost) -> Result<T, HostError>,
) -> Result<T, Box<EvalAltResult>> {
    let state = state_for(function)?;
    check_deadline(&state)?;
    let (counter, max, kind) = match budget {
        Limit::Writes => (&state.writes, state.max_writes, "write"),
        _ => (&state.reads, state.max_reads, "read"),
    };
    let used = counter.get() + 1;
    if used > max {
        return Err(Abort::Limit(
            budget,
            format!(
                "{function}() would be data {kind} number {used}; at most {max} are allowed (see the `{kind}s` limit)"
            ),
        )
        .into_error());
    }
    counter.set(used);
    call(state.host.as_ref()).map_err(|error| host_failed(function, object, error))
}

/// A host's error as a Rhai runtime error, which `try … catch` may catch.
fn host_failed(function: &str, subject: &str, error: HostError) -> Box<EvalAltResult> {
    let message = if subject.is_empty() {
        format!("{function}(): {}", error.message)
    } else {
        format!("{function}(\"{subject}\"): {}", error.message)
    };
    EvalAltResult::ErrorRuntime(message.into(), Position::NONE).into()
}

fn argument_map(function: &str, map: rhai::Map) -> Result<ScriptMap, Box<EvalAltResult>> {
    from_rhai_map(map).map_err(|message| {
        EvalAltResult::ErrorRuntime(format!("{function}(): {message}").into(), Position::NONE)
            .into()
    })
}

fn optional_record(record: Option<&ScriptMap>) -> Dynamic {
    record.map_or(Dynamic::UNIT, |record| {
        Dynamic::from_map(to_rhai_map(record))
    })
}

/// The scope a script runs in: `record`, then `old`, `user` and `event` as constants.
pub(crate) fn scope(input: &RunInput) -> rhai::Scope<'static> {
    let mut scope = rhai::Scope::new();
    scope.push_dynamic(RECORD, Dynamic::from_map(to_rhai_map(&input.record)));
    scope.push_constant_dynamic(
        "old",
        input
            .old
            .as_ref()
            .map_or(Dynamic::UNIT, |old| Dynamic::from_map(to_rhai_map(old))),
    );
    scope.push_constant_dynamic("user", to_dynamic(&input.user.to_value()));
    scope.push_constant_dynamic(
        "event",
        Dynamic::from(rhai::ImmutableString::from(input.event.as_str())),
    );
    scope
}

/// The variables every script may use, for compiling with strict variables.
pub(crate) fn compile_scope() -> rhai::Scope<'static> {
    let mut scope = rhai::Scope::new();
    for name in [RECORD, "old", "user", "event"] {
        scope.push_dynamic(name, Dynamic::UNIT);
    }
    scope
}

pub(crate) const RECORD: &str = "record";
