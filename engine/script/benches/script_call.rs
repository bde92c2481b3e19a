//! Micro-benchmark of one script call: a ~20-line before-save script that tidies a lead (trims
//! the name, keeps the phone's digits without a +86 prefix, lower-cases the email) and sets a
//! field, run over a host that answers nothing. Run with `cargo bench -p keel-script`; results
//! are recorded in BENCHMARKS.md.
//!
//! `run` is the call on the current thread (the compiled AST is cached, as in the server);
//! `run_via_runner` adds the hand-off to the blocking pool that async callers pay.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use keel_script::{
    HostError, Limits, RunInput, Sandbox, ScriptEvent, ScriptHost, ScriptMap, ScriptRunner,
    ScriptUser, ScriptValue, Tz,
};

const BEFORE_SAVE: &str = r#"
fn tidy(s) {
    if type_of(s) != "string" { return s; }
    let t = s;
    t.trim();
    if t == "" { () } else { t }
}

fn phone_digits(s) {
    if type_of(s) != "string" { return s; }
    let digits = "";
    for ch in s.chars() {
        if ch >= '0' && ch <= '9' { digits += ch; }
    }
    if digits.starts_with("0086") {
        digits = digits.sub_string(4);
    } else if digits.len() == 13 && digits.starts_with("86") {
        digits = digits.sub_string(2);
    }
    if digits == "" { () } else { digits }
}

record.name = tidy(record.name);
record.phone = phone_digits(record.phone);
let email = tidy(record.email);
if email != () { record.email = email.to_lower(); }
if record.status == "new" && record.phone != () { record.status = "contacted"; }
"#;

/// A host with nothing behind it: the script above makes no data calls.
struct NoData;

impl ScriptHost for NoData {
    fn find(&self, _: &str, _: &ScriptMap) -> Result<Vec<ScriptMap>, HostError> {
        Ok(Vec::new())
    }
    fn find_one(&self, _: &str, _: &ScriptMap) -> Result<Option<ScriptMap>, HostError> {
        Ok(None)
    }
    fn get(&self, _: &str, _: &str) -> Result<Option<ScriptMap>, HostError> {
        Ok(None)
    }
    fn count(&self, _: &str, _: &ScriptMap) -> Result<i64, HostError> {
        Ok(0)
    }
    fn create(&self, _: &str, values: &ScriptMap) -> Result<ScriptMap, HostError> {
        Ok(values.clone())
    }
    fn update(&self, _: &str, _: &str, values: &ScriptMap) -> Result<ScriptMap, HostError> {
        Ok(values.clone())
    }
    fn notify(&self, _: &str, _: &str) -> Result<(), HostError> {
        Ok(())
    }
    fn log(&self, _: &str) -> Result<(), HostError> {
        Ok(())
    }
}

fn lead_input() -> RunInput {
    let text = |value: &str| ScriptValue::Text(value.to_owned());
    let record = ScriptMap::from([
        (
            "id".to_owned(),
            text("0193a1b2-0000-7000-8000-000000000001"),
        ),
        ("name".to_owned(), text("  张三  ")),
        ("company".to_owned(), text("杭州示例科技有限公司")),
        ("phone".to_owned(), text("+86 138-0013-8000")),
        ("email".to_owned(), text(" Zhang.San@Example.COM ")),
        ("status".to_owned(), text("new")),
        ("score".to_owned(), ScriptValue::Integer(40)),
        ("owner".to_owned(), text("u1")),
    ]);
    RunInput {
        record,
        old: None,
        user: ScriptUser {
            id: "u1".to_owned(),
            username: "zhang".to_owned(),
            roles: vec!["sales_rep".to_owned()],
            manager: Some("u0".to_owned()),
            department: Some("east".to_owned()),
        },
        event: ScriptEvent::Create,
        now: Utc
            .timestamp_opt(1_796_000_000, 0)
            .single()
            .unwrap_or_default(),
        timezone: Tz::Asia__Shanghai,
    }
}

fn script_call(c: &mut Criterion) {
    let sandbox = Arc::new(Sandbox::new(Limits::default()));
    let script = match sandbox.compile("lead_normalize", BEFORE_SAVE) {
        Ok(script) => script,
        Err(error) => panic!("the benchmark script does not compile: {error}"),
    };
    let input = lead_input();
    let host: Arc<dyn ScriptHost> = Arc::new(NoData);
    match sandbox.run(&script, &input, Arc::clone(&host)) {
        Ok(output)
            if output.record.get("phone") == Some(&ScriptValue::Text("13800138000".to_owned())) => {
        }
        other => panic!("the benchmark script does not normalise the phone: {other:?}"),
    }

    let mut group = c.benchmark_group("script_call");
    group.sample_size(50);
    group.measurement_time(Duration::from_secs(3));
    group.bench_function("run", |b| {
        b.iter(|| sandbox.run(black_box(&script), black_box(&input), Arc::clone(&host)))
    });

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => panic!("no tokio runtime: {error}"),
    };
    let runner = ScriptRunner::new(Arc::clone(&sandbox), 2);
    group.bench_function("run_via_runner", |b| {
        b.iter(|| runtime.block_on(runner.run(script.clone(), input.clone(), Arc::clone(&host))))
    });
    group.finish();
}

criterion_group!(benches, script_call);
criterion_main!(benches);
