//! Micro-benchmarks of record coercion (`keel_runtime::coerce::coerce`): one JSON input →
//! one typed value, checked against its field's type and options, for the field types a
//! create or an import meets most. Run with `cargo bench -p keel-runtime`; results are
//! recorded in BENCHMARKS.md.
//!
//! The fields come from a small app written to a temporary directory, so the figures do not
//! depend on the standard app. Measures coercion only: no database, scripts or permissions.
//! Kept short (small samples, brief measurement).

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use keel_runtime::coerce::{CoerceContext, Source, coerce};
use serde_json::{Value as Json, json};

const APP: &str = "name: Coerce bench\nlanguage: en\ntimezone: Asia/Shanghai\n";
const SAMPLE: &str = "\
name: sample
title: name
fields:
  name: { type: text, required: true, max_length: 100 }
  email: { type: email }
  phone: { type: phone }
  score: { type: integer, min: 0, max: 100 }
  amount: { type: money }
  rate: { type: percent, scale: 2 }
  active: { type: boolean }
  due_on: { type: date }
  next_at: { type: datetime }
  status: { type: choice, options: [new, contacted, qualified, converted, invalid] }
  tags: { type: multi_choice, options: [vip, partner, reseller, public_sector, overseas] }
  code: { type: text, pattern: '^[A-Z]{2}-[0-9]{4}$' }
";

fn coercion(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("temp dir: {error}"));
    for (path, text) in [
        ("metadata/app.yaml", APP),
        ("metadata/objects/sample.yaml", SAMPLE),
    ] {
        let path = dir.path().join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap_or_else(|error| panic!("{error}"));
        }
        std::fs::write(&path, text).unwrap_or_else(|error| panic!("{error}"));
    }
    let schema = match keel_meta::load_app(dir.path()) {
        Ok(schema) => schema,
        Err(errors) => panic!("the bench app does not load:\n{errors}"),
    };
    let Some(object) = schema.object("sample") else {
        panic!("no sample object")
    };
    let context = CoerceContext {
        timezone: chrono_tz::Asia::Shanghai,
        source: Source::Json,
    };
    // A whole number given as text is a CSV cell: JSON input refuses it.
    let text_context = CoerceContext {
        source: Source::Text,
        ..context
    };
    let cases: [(&str, &str, Json); 14] = [
        ("text", "name", json!("王伟")),
        ("email", "email", json!("wang.wei@example.com")),
        ("phone", "phone", json!("+86 138-1234-5678")),
        ("integer", "score", json!(87)),
        ("integer_from_text", "score", json!("87")),
        ("money_from_text", "amount", json!("1999.50")),
        ("money_from_number", "amount", json!(1999.5)),
        ("percent", "rate", json!(12.5)),
        ("boolean", "active", json!(true)),
        ("date", "due_on", json!("2026-05-01")),
        (
            "datetime_rfc3339",
            "next_at",
            json!("2026-05-01T09:30:00+08:00"),
        ),
        ("choice", "status", json!("qualified")),
        ("multi_choice", "tags", json!(["vip", "overseas"])),
        ("text_with_pattern", "code", json!("SH-2026")),
    ];
    let mut group = c.benchmark_group("coerce");
    for (name, field, input) in &cases {
        let Some(field) = object.field(field) else {
            panic!("no field {field}")
        };
        let context = if *name == "integer_from_text" {
            text_context
        } else {
            context
        };
        if let Err(problem) = coerce(field, input, context) {
            panic!("benchmark input for {name} is refused: {problem:?}");
        }
        group.bench_function(*name, |b| {
            b.iter(|| coerce(black_box(field), black_box(input), context))
        });
    }
    let Some(score) = object.field("score") else {
        panic!("no score field")
    };
    let refused = json!(101);
    group.bench_function("integer_out_of_range_refused", |b| {
        b.iter(|| coerce(black_box(score), black_box(&refused), context))
    });
    group.finish();
}

fn quick() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_millis(700))
}

criterion_group! {
    name = benches;
    config = quick();
    targets = coercion
}
criterion_main!(benches);
