//! The script API of docs/scripts.md, run over a fake host that records its calls: values
//! crossing into Rhai and back, the data functions and their budgets, `reject`, faults with
//! their place, every sandbox limit broken on purpose, and the async runner.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use keel_script::{
    HostError, Limit, Limits, RunError, RunInput, RunOutput, Sandbox, ScriptEvent, ScriptHost,
    ScriptMap, ScriptRunner, ScriptUser, ScriptValue, Tz,
};
use rust_decimal::Decimal;

/// A host that answers from a fixed lead and records every call as text.
#[derive(Default)]
struct FakeHost {
    calls: Mutex<Vec<String>>,
    /// When set, `get` sleeps this long (a slow database).
    slow_get: Option<Duration>,
    /// When set, `log` waits for a message on this channel before returning.
    log_gate: Option<Mutex<mpsc::Receiver<()>>>,
    /// When set, `update` fails with this message (e.g. a permission).
    update_fails: Option<String>,
}

impl FakeHost {
    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    fn record(&self, call: String) {
        self.calls.lock().unwrap().push(call);
    }
}

fn lead() -> ScriptMap {
    ScriptMap::from([
        ("id".to_owned(), text("L1")),
        ("name".to_owned(), text("张三")),
        ("score".to_owned(), ScriptValue::Integer(40)),
    ])
}

impl ScriptHost for FakeHost {
    fn find(&self, object: &str, filter: &ScriptMap) -> Result<Vec<ScriptMap>, HostError> {
        self.record(format!("find {object} {filter:?}"));
        Ok(vec![lead(), lead()])
    }
    fn find_one(&self, object: &str, filter: &ScriptMap) -> Result<Option<ScriptMap>, HostError> {
        self.record(format!("find_one {object} {filter:?}"));
        Ok(None)
    }
    fn get(&self, object: &str, id: &str) -> Result<Option<ScriptMap>, HostError> {
        self.record(format!("get {object} {id}"));
        if let Some(pause) = self.slow_get {
            std::thread::sleep(pause);
        }
        Ok((id == "L1").then(lead))
    }
    fn count(&self, object: &str, filter: &ScriptMap) -> Result<i64, HostError> {
        self.record(format!("count {object} {filter:?}"));
        Ok(7)
    }
    fn create(&self, object: &str, values: &ScriptMap) -> Result<ScriptMap, HostError> {
        self.record(format!("create {object} {values:?}"));
        let mut created = values.clone();
        created.insert("id".to_owned(), text("N1"));
        Ok(created)
    }
    fn update(&self, object: &str, id: &str, values: &ScriptMap) -> Result<ScriptMap, HostError> {
        self.record(format!("update {object} {id} {values:?}"));
        if let Some(message) = &self.update_fails {
            return Err(HostError::from(message.as_str()));
        }
        let mut updated = lead();
        updated.extend(values.clone());
        Ok(updated)
    }
    fn notify(&self, user_id: &str, message: &str) -> Result<(), HostError> {
        self.record(format!("notify {user_id} {message}"));
        Ok(())
    }
    fn log(&self, message: &str) -> Result<(), HostError> {
        self.record(format!("log {message}"));
        if let Some(gate) = &self.log_gate {
            gate.lock().unwrap().recv().map_err(|_| "gate closed")?;
        }
        Ok(())
    }
}

fn text(value: &str) -> ScriptValue {
    ScriptValue::Text(value.to_owned())
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 6, 1, 30, 0).unwrap()
}

fn input(record: ScriptMap) -> RunInput {
    RunInput {
        record,
        old: None,
        user: ScriptUser {
            id: "u1".to_owned(),
            username: "zhang".to_owned(),
            roles: vec!["sales_rep".to_owned()],
            manager: Some("u0".to_owned()),
            department: None,
        },
        event: ScriptEvent::Create,
        now: now(),
        timezone: Tz::Asia__Shanghai,
    }
}

fn run_with(
    limits: Limits,
    host: &Arc<FakeHost>,
    source: &str,
    input: &RunInput,
) -> Result<RunOutput, RunError> {
    let sandbox = Sandbox::new(limits);
    let script = sandbox.compile("test_script", source)?;
    let host: Arc<dyn ScriptHost> = Arc::clone(host) as Arc<dyn ScriptHost>;
    sandbox.run(&script, input, host)
}

fn run(source: &str) -> Result<RunOutput, RunError> {
    run_with(
        Limits::default(),
        &Arc::new(FakeHost::default()),
        source,
        &input(lead()),
    )
}

fn value(source: &str) -> ScriptValue {
    match run(source) {
        Ok(output) => output.value,
        Err(error) => panic!("{source}: {error:?}"),
    }
}

fn limit_of(result: Result<RunOutput, RunError>) -> Limit {
    match result {
        Err(RunError::LimitBroken { limit, line, .. }) => {
            assert!(line > 0, "a broken limit names its line");
            limit
        }
        other => panic!("expected a broken limit, got {other:?}"),
    }
}

#[test]
fn every_value_type_crosses_into_rhai_and_back_unchanged() {
    let record = ScriptMap::from([
        ("empty".to_owned(), ScriptValue::Unit),
        ("name".to_owned(), text("李四")),
        ("score".to_owned(), ScriptValue::Integer(-3)),
        (
            "amount".to_owned(),
            ScriptValue::Decimal(Decimal::new(199_999, 2)),
        ),
        ("active".to_owned(), ScriptValue::Boolean(true)),
        (
            "due".to_owned(),
            ScriptValue::Date(NaiveDate::from_ymd_opt(2026, 12, 31).unwrap()),
        ),
        ("at".to_owned(), ScriptValue::Datetime(now())),
        (
            "tags".to_owned(),
            ScriptValue::Array(vec![text("a"), ScriptValue::Integer(2)]),
        ),
        (
            "nested".to_owned(),
            ScriptValue::Map(BTreeMap::from([("k".to_owned(), text("v"))])),
        ),
    ]);
    let source = r#"
        [type_of(record.empty), type_of(record.name), type_of(record.score),
         type_of(record.amount), type_of(record.active), type_of(record.due),
         type_of(record.at), type_of(record.tags), type_of(record.nested)]
    "#;
    let output = run_with(
        Limits::default(),
        &Arc::new(FakeHost::default()),
        source,
        &input(record.clone()),
    )
    .unwrap();
    assert_eq!(output.record, record);
    let types = [
        "()", "string", "i64", "decimal", "bool", "date", "datetime", "array", "map",
    ];
    assert_eq!(
        output.value,
        ScriptValue::Array(types.iter().map(|name| text(name)).collect())
    );
}

#[test]
fn the_script_may_change_the_record_and_the_run_returns_it() {
    let output = run(r#"
        record.name = "王五";
        record.score += 1;
        record.phone = "13800138000";
        record.amount = 12.50;
        record.due = today() + days(2);
    "#)
    .unwrap();
    assert_eq!(output.record["name"], text("王五"));
    assert_eq!(output.record["score"], ScriptValue::Integer(41));
    assert_eq!(output.record["phone"], text("13800138000"));
    assert_eq!(
        output.record["amount"],
        ScriptValue::Decimal(Decimal::new(1250, 2))
    );
    assert_eq!(
        output.record["due"],
        ScriptValue::Date(NaiveDate::from_ymd_opt(2026, 12, 8).unwrap())
    );
}

#[test]
fn old_user_and_event_are_given_and_read_only() {
    assert_eq!(value("old == ()"), ScriptValue::Boolean(true));
    assert_eq!(
        value(
            r#"`${user.id} ${user.username} ${user.roles[0]} ${user.manager} ${user.department == ()} ${event}`"#
        ),
        text("u1 zhang sales_rep u0 true create")
    );
    let mut update = input(lead());
    update.old = Some(lead());
    update.event = ScriptEvent::Update;
    let error = run_with(
        Limits::default(),
        &Arc::new(FakeHost::default()),
        "old.score = 1;",
        &update,
    )
    .unwrap_err();
    assert!(matches!(error, RunError::Fault { .. }), "{error:?}");
}

#[test]
fn decimals_are_exact() {
    assert_eq!(value("0.1 + 0.2 == 0.3"), ScriptValue::Boolean(true));
    assert_eq!(
        value("1999.99 * 3"),
        ScriptValue::Decimal(Decimal::new(599_997, 2))
    );
    assert_eq!(
        value("let x = 10.00; x / 4"),
        ScriptValue::Decimal(Decimal::new(25, 1))
    );
}

#[test]
fn dates_and_datetimes_compare_shift_and_print() {
    // 01:30 UTC is 09:30 in Shanghai: today() is 6 December there.
    assert_eq!(value("`${today()}`"), text("2026-12-06"));
    assert_eq!(value("`${now()}`"), text("2026-12-06T01:30:00Z"));
    assert_eq!(value("today() < now()"), ScriptValue::Boolean(true));
    assert_eq!(
        value("today() + days(1) > now()"),
        ScriptValue::Boolean(true)
    );
    assert_eq!(
        value("now() + hours(2) - hours(2) == now()"),
        ScriptValue::Boolean(true)
    );
    assert_eq!(
        value("now() - days(3)"),
        ScriptValue::Datetime(Utc.with_ymd_and_hms(2026, 12, 3, 1, 30, 0).unwrap())
    );
    assert_eq!(
        value("today() - days(6)"),
        ScriptValue::Date(NaiveDate::from_ymd_opt(2026, 11, 30).unwrap())
    );
    assert_eq!(
        value("(now() - (now() - days(40))).days"),
        ScriptValue::Integer(40)
    );
    assert_eq!(
        value("now() - (now() - hours(5)) > hours(4)"),
        ScriptValue::Boolean(true)
    );
    assert_eq!(value("now() == ()"), ScriptValue::Boolean(false));
    let error = run("today() + hours(5)").unwrap_err();
    assert!(
        matches!(&error, RunError::Fault { message, .. } if message.contains("whole days")),
        "{error:?}"
    );
}

#[test]
fn data_functions_reach_the_host_with_their_arguments() {
    let host = Arc::new(FakeHost::default());
    let output = run_with(
        Limits::default(),
        &host,
        r#"
        let leads = find("lead", #{ status: "new", score: #{ gte: 50 } });
        let first = find_one("lead", #{ name: "x" });
        let one = get("lead", "L1");
        let none = get("lead", "nobody");
        let n = count("lead", #{});
        let created = create("follow_up", #{ lead: one.id, due: today() });
        let updated = update("lead", "L1", #{ score: 50 });
        notify(user.manager, `new lead ${one.name}`);
        log("done");
        [leads.len(), first, one.name, none, n, created.id, updated.score]
        "#,
        &input(lead()),
    )
    .unwrap();
    assert_eq!(
        output.value,
        ScriptValue::Array(vec![
            ScriptValue::Integer(2),
            ScriptValue::Unit,
            text("张三"),
            ScriptValue::Unit,
            ScriptValue::Integer(7),
            text("N1"),
            ScriptValue::Integer(50),
        ])
    );
    assert_eq!((output.reads, output.writes), (5, 3));
    let calls = host.calls();
    assert_eq!(calls.len(), 9, "{calls:#?}");
    assert!(calls[0].starts_with("find lead"), "{calls:#?}");
    assert!(calls[0].contains("Integer(50)"), "{calls:#?}");
    assert!(calls[5].contains("Date(2026-12-06)"), "{calls:#?}");
    assert_eq!(calls[7], "notify u0 new lead 张三");
    assert_eq!(calls[8], "log done");
}

#[test]
fn reject_stops_the_script_with_its_message_even_inside_try() {
    let host = Arc::new(FakeHost::default());
    let error = run_with(
        Limits::default(),
        &host,
        "try {\n  reject(\"合格线索必须填写公司\");\n} catch (e) {\n  log(\"caught\");\n}\nlog(\"after\");",
        &input(lead()),
    )
    .unwrap_err();
    match error {
        RunError::Rejected {
            script,
            line,
            message,
        } => {
            assert_eq!(script, "test_script");
            assert_eq!(line, 2);
            assert_eq!(message, "合格线索必须填写公司");
        }
        other => panic!("{other:?}"),
    }
    assert!(host.calls().is_empty());
}

#[test]
fn a_fault_names_the_script_line_and_column() {
    let error = run("let x = 1;\nlet y = 2;\n    let z = x / (y - 2);\n").unwrap_err();
    match &error {
        RunError::Fault {
            script,
            line,
            column,
            message,
        } => {
            assert_eq!(script, "test_script");
            assert_eq!(*line, 3);
            assert!(*column > 4, "{error:?}");
            assert!(message.contains("zero"), "{error:?}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(error.code(), "script_failed");
    assert!(error.to_string().contains("test_script"), "{error}");

    // Inside a function, the place is in the function's body.
    let error = run("fn f(s) {\n  s.no_such_method()\n}\nf(1)").unwrap_err();
    assert!(
        matches!(error, RunError::Fault { line: 2, .. }),
        "{error:?}"
    );
}

#[test]
fn a_host_error_fails_the_script_unless_the_script_catches_it() {
    let host = Arc::new(FakeHost {
        update_fails: Some("you may not edit this account".to_owned()),
        ..FakeHost::default()
    });
    let error = run_with(
        Limits::default(),
        &host,
        "update(\"account\", \"A1\", #{ deal_status: \"dealt\" });",
        &input(lead()),
    )
    .unwrap_err();
    assert!(
        matches!(&error, RunError::Fault { line: 1, message, .. }
            if message.contains("update(\"account\")") && message.contains("you may not edit")),
        "{error:?}"
    );
    let output = run_with(
        Limits::default(),
        &host,
        "try { update(\"account\", \"A1\", #{}); } catch (err) { log(`${err}`); } 1",
        &input(lead()),
    )
    .unwrap();
    assert_eq!(output.value, ScriptValue::Integer(1));
    assert!(host.calls().last().unwrap().contains("you may not edit"));
}

#[test]
fn the_operations_limit_stops_an_endless_loop() {
    assert_eq!(
        limit_of(run("let n = 0; loop { n += 1; }")),
        Limit::Operations
    );
}

#[test]
fn the_wall_time_limit_stops_a_loop_of_native_calls() {
    let limits = Limits {
        operations: 0,
        wall_time: Duration::from_millis(100),
        ..Limits::default()
    };
    let host = Arc::new(FakeHost::default());
    let error = run_with(limits, &host, "loop { now(); today(); }", &input(lead()));
    assert_eq!(limit_of(error), Limit::WallTime);
}

#[test]
fn the_wall_time_limit_stops_a_script_waiting_on_a_slow_host() {
    let limits = Limits {
        reads: 1_000,
        wall_time: Duration::from_millis(100),
        ..Limits::default()
    };
    let host = Arc::new(FakeHost {
        slow_get: Some(Duration::from_millis(10)),
        ..FakeHost::default()
    });
    let error = run_with(
        limits,
        &host,
        "loop { get(\"lead\", \"L1\"); }",
        &input(lead()),
    );
    assert_eq!(limit_of(error), Limit::WallTime);
    assert!(host.calls().len() < 1_000);
}

#[test]
fn the_string_size_limit_holds() {
    assert_eq!(
        limit_of(run("let s = \"ab\"; loop { s += s; }")),
        Limit::StringSize
    );
}

#[test]
fn the_array_and_map_size_limits_hold() {
    assert_eq!(
        limit_of(run("let a = []; loop { a.push(1); }")),
        Limit::ArraySize
    );
    assert_eq!(
        limit_of(run(
            "let m = #{}; let i = 0; loop { m.set(`k${i}`, i); i += 1; }"
        )),
        Limit::MapSize
    );
}

#[test]
fn the_call_depth_limit_holds() {
    assert_eq!(
        limit_of(run("fn down(n) { down(n + 1) }\ndown(0)")),
        Limit::CallDepth
    );
}

#[test]
fn the_hundred_and_first_read_fails() {
    let host = Arc::new(FakeHost::default());
    let result = run_with(
        Limits::default(),
        &host,
        "for i in 0..101 { get(\"lead\", \"L1\"); }",
        &input(lead()),
    );
    assert_eq!(limit_of(result), Limit::Reads);
    assert_eq!(
        host.calls().len(),
        100,
        "the host never sees the read over budget"
    );

    // Reads of every kind count, and a hundred are fine.
    let output = run_with(
        Limits::default(),
        &Arc::new(FakeHost::default()),
        "for i in 0..97 { get(\"lead\", \"L1\"); } find(\"lead\", #{}); find_one(\"lead\", #{}); count(\"lead\", #{});",
        &input(lead()),
    )
    .unwrap();
    assert_eq!(output.reads, 100);
}

#[test]
fn the_hundred_and_fifty_first_write_fails_and_try_cannot_catch_it() {
    let host = Arc::new(FakeHost::default());
    let result = run_with(
        Limits::default(),
        &host,
        "try { for i in 0..151 { update(\"lead\", \"L1\", #{ score: i }); } } catch { log(\"caught\"); }",
        &input(lead()),
    );
    assert_eq!(limit_of(result), Limit::Writes);
    assert_eq!(host.calls().len(), 150);
}

#[test]
fn eval_import_and_sleep_are_refused() {
    for source in [
        "eval(\"1 + 1\")",
        "import \"os\" as os;",
        "let x = 1; x.eval()",
    ] {
        let error = run(source).unwrap_err();
        assert!(
            matches!(error, RunError::Compile { .. }),
            "{source}: {error:?}"
        );
    }
    let error = run("sleep(5)").unwrap_err();
    assert!(
        matches!(&error, RunError::Fault { message, .. } if message.contains("sleep")),
        "{error:?}"
    );
    let error = run("timestamp()").unwrap_err();
    assert!(matches!(error, RunError::Fault { .. }), "{error:?}");
}

#[test]
fn an_unknown_variable_is_a_compile_error() {
    let error = run("let x = 1;\nrecord.name = nmae;").unwrap_err();
    match error {
        RunError::Compile {
            line,
            column,
            message,
            ..
        } => {
            assert_eq!((line, column), (2, 15));
            assert!(message.contains("nmae"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_script_compiles_once_per_source() {
    let sandbox = Sandbox::new(Limits::default());
    let first = sandbox.compile("s", "record.score + 1").unwrap();
    let again = sandbox.compile("s", "record.score + 1").unwrap();
    let changed = sandbox.compile("s", "record.score + 2").unwrap();
    let host: Arc<dyn ScriptHost> = Arc::new(FakeHost::default());
    for (script, expected) in [(first, 41), (again, 41), (changed, 42)] {
        let output = sandbox
            .run(&script, &input(lead()), Arc::clone(&host))
            .unwrap();
        assert_eq!(output.value, ScriptValue::Integer(expected));
    }
}

#[test]
fn a_host_may_run_another_script_inline_with_its_own_budget() {
    struct Nesting {
        sandbox: Arc<Sandbox>,
        inner: keel_script::CompiledScript,
        fake: Arc<FakeHost>,
    }
    impl ScriptHost for Nesting {
        fn find(&self, o: &str, f: &ScriptMap) -> Result<Vec<ScriptMap>, HostError> {
            self.fake.find(o, f)
        }
        fn find_one(&self, o: &str, f: &ScriptMap) -> Result<Option<ScriptMap>, HostError> {
            self.fake.find_one(o, f)
        }
        fn get(&self, o: &str, id: &str) -> Result<Option<ScriptMap>, HostError> {
            self.fake.get(o, id)
        }
        fn count(&self, o: &str, f: &ScriptMap) -> Result<i64, HostError> {
            self.fake.count(o, f)
        }
        fn create(&self, o: &str, v: &ScriptMap) -> Result<ScriptMap, HostError> {
            self.fake.create(o, v)
        }
        fn update(&self, _: &str, _: &str, values: &ScriptMap) -> Result<ScriptMap, HostError> {
            // The saved record's before-save script runs here, on this thread.
            let host: Arc<dyn ScriptHost> = Arc::clone(&self.fake) as Arc<dyn ScriptHost>;
            self.sandbox
                .run(&self.inner, &input(values.clone()), host)
                .map(|output| output.record)
                .map_err(|error| HostError::from(error.to_string()))
        }
        fn notify(&self, u: &str, m: &str) -> Result<(), HostError> {
            self.fake.notify(u, m)
        }
        fn log(&self, m: &str) -> Result<(), HostError> {
            self.fake.log(m)
        }
    }
    let sandbox = Arc::new(Sandbox::new(Limits::default()));
    let inner = sandbox
        .compile("inner", "get(\"lead\", \"L1\"); record.touched = true;")
        .unwrap();
    let outer = sandbox
        .compile(
            "outer",
            "get(\"lead\", \"L1\"); let saved = update(\"lead\", \"L1\", #{}); get(\"lead\", \"L1\"); saved.touched",
        )
        .unwrap();
    let fake = Arc::new(FakeHost::default());
    let host = Arc::new(Nesting {
        sandbox: Arc::clone(&sandbox),
        inner,
        fake: Arc::clone(&fake),
    });
    let output = sandbox.run(&outer, &input(lead()), host).unwrap();
    assert_eq!(output.value, ScriptValue::Boolean(true));
    assert_eq!((output.reads, output.writes), (2, 1));
    assert_eq!(fake.calls().len(), 3);
}

#[tokio::test]
async fn a_stuck_script_holds_one_worker_while_others_run() {
    let sandbox = Arc::new(Sandbox::new(Limits::default()));
    let runner = ScriptRunner::new(Arc::clone(&sandbox), 2);
    let (release, gate) = mpsc::channel();
    let stuck_host = Arc::new(FakeHost {
        log_gate: Some(Mutex::new(gate)),
        ..FakeHost::default()
    });
    let stuck = sandbox.compile("stuck", "log(\"waiting\"); 1").unwrap();
    let quick = sandbox.compile("quick", "record.score * 2").unwrap();

    let stuck_run = tokio::spawn({
        let runner = runner.clone();
        let script = stuck.clone();
        let host: Arc<dyn ScriptHost> = stuck_host;
        async move { runner.run(script, input(lead()), host).await }
    });
    // The stuck script waits on its host until the quick one has finished: were both to
    // need the same worker, this would never return.
    let quick_output = runner
        .run(quick, input(lead()), Arc::new(FakeHost::default()))
        .await
        .unwrap();
    assert_eq!(quick_output.value, ScriptValue::Integer(80));
    release.send(()).unwrap();
    let stuck_output = stuck_run.await.unwrap().unwrap();
    assert_eq!(stuck_output.value, ScriptValue::Integer(1));
}

#[tokio::test]
async fn the_runner_reports_a_broken_limit_from_its_worker() {
    let sandbox = Arc::new(Sandbox::new(Limits {
        operations: 0,
        wall_time: Duration::from_millis(50),
        ..Limits::default()
    }));
    let runner = ScriptRunner::new(Arc::clone(&sandbox), 1);
    let looping = sandbox.compile("looping", "loop { now(); }").unwrap();
    let error = runner
        .run(looping, input(lead()), Arc::new(FakeHost::default()))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, RunError::LimitBroken { limit: Limit::WallTime, script, .. } if script == "looping"),
        "{error:?}"
    );
    assert_eq!(error.code(), "script_limit_broken");
}

/// The shipped app's scripts (`scripts/*.rhai` at the repository root).
fn shipped_script(sandbox: &Sandbox, name: &str) -> keel_script::CompiledScript {
    let path = format!("{}/../../scripts/{name}.rhai", env!("CARGO_MANIFEST_DIR"));
    let source = std::fs::read_to_string(&path).unwrap();
    sandbox.compile(name, &source).unwrap()
}

#[test]
fn every_shipped_script_compiles_with_strict_variables() {
    let sandbox = Sandbox::new(Limits::default());
    let directory = format!("{}/../../scripts", env!("CARGO_MANIFEST_DIR"));
    let mut compiled = 0;
    for entry in std::fs::read_dir(directory).unwrap() {
        let path = entry.unwrap().path();
        if path
            .extension()
            .is_some_and(|extension| extension == "rhai")
        {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            let source = std::fs::read_to_string(&path).unwrap();
            if let Err(error) = sandbox.compile(&name, &source) {
                panic!("{}: {error}", path.display());
            }
            compiled += 1;
        }
    }
    assert!(compiled >= 5);
}

#[test]
fn lead_normalize_tidies_what_people_type() {
    let sandbox = Sandbox::new(Limits::default());
    let script = shipped_script(&sandbox, "lead_normalize");
    let record = ScriptMap::from([
        ("name".to_owned(), text("  张三 ")),
        ("company".to_owned(), text("   ")),
        ("phone".to_owned(), text("+86 138-0013-8000")),
        ("mobile".to_owned(), text("0086 139 0000 0000")),
        ("email".to_owned(), text(" Zhang.San@Example.COM ")),
    ]);
    let host: Arc<dyn ScriptHost> = Arc::new(FakeHost::default());
    let output = sandbox.run(&script, &input(record), host).unwrap();
    assert_eq!(output.record["name"], text("张三"));
    assert_eq!(output.record["company"], ScriptValue::Unit);
    assert_eq!(output.record["phone"], text("13800138000"));
    assert_eq!(output.record["mobile"], text("13900000000"));
    assert_eq!(output.record["email"], text("zhang.san@example.com"));
}

#[test]
fn big_deal_alert_notifies_the_manager_and_the_owner() {
    let sandbox = Sandbox::new(Limits::default());
    let script = shipped_script(&sandbox, "big_deal_alert");
    let record = ScriptMap::from([
        ("id".to_owned(), text("O1")),
        ("name".to_owned(), text("年度框架")),
        (
            "amount".to_owned(),
            ScriptValue::Decimal(Decimal::new(200_000_000, 2)),
        ),
        ("owner".to_owned(), text("u7")),
    ]);
    let host = Arc::new(FakeHost::default());
    let shared: Arc<dyn ScriptHost> = Arc::clone(&host) as Arc<dyn ScriptHost>;
    sandbox.run(&script, &input(record), shared).unwrap();
    assert_eq!(
        host.calls(),
        [
            "notify u0 大单提醒：商机「年度框架」金额 2000000.00 元",
            "notify u7 大单提醒：商机「年度框架」金额 2000000.00 元",
        ]
    );
}

#[test]
fn opportunity_won_goes_on_when_the_account_may_not_be_edited() {
    let sandbox = Sandbox::new(Limits::default());
    let script = shipped_script(&sandbox, "opportunity_won");
    let record = ScriptMap::from([("account".to_owned(), text("L1"))]);
    let host = Arc::new(FakeHost {
        update_fails: Some("not yours".to_owned()),
        ..FakeHost::default()
    });
    let shared: Arc<dyn ScriptHost> = Arc::clone(&host) as Arc<dyn ScriptHost>;
    sandbox.run(&script, &input(record), shared).unwrap();
    let calls = host.calls();
    assert_eq!(calls.len(), 3, "{calls:#?}");
    assert!(
        calls[2].starts_with("log opportunity_won: account L1 not marked"),
        "{calls:#?}"
    );
    assert!(calls[2].contains("not yours"), "{calls:#?}");
}

#[test]
fn the_default_limits_are_the_documented_ones() {
    let limits = Limits::default();
    assert_eq!(limits.operations, 1_000_000);
    assert_eq!(limits.call_depth, 32);
    assert_eq!(limits.string_bytes, 64 * 1024);
    assert_eq!((limits.array_items, limits.map_entries), (10_000, 10_000));
    assert_eq!((limits.reads, limits.writes), (100, 150));
    assert_eq!(limits.wall_time, Duration::from_secs(1));
}
