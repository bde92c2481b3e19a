//! Micro-benchmarks of the filter language's parsers (`keel_meta::Filter`): the query-string
//! form the list API parses once per parameter, and the JSON form of `POST …/query`, rules
//! and pools. Run with `cargo bench -p keel-meta`; results are recorded in BENCHMARKS.md.
//!
//! Measures parsing only: turning a filter into a condition and SQL is benchmarked in
//! `keel-store` and `keel-runtime`. Kept short (small samples, brief measurement) so the
//! whole suite runs in under a minute on two cores.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use keel_meta::Filter;
use serde_json::json;

fn query_string_filters(c: &mut Criterion) {
    let mut group = c.benchmark_group("filter/query_param");
    let cases = [
        ("eq", "status", "eq.qualified"),
        ("gte", "score", "gte.50"),
        ("in", "grade", "in.(p1,p2,p3)"),
        ("like", "name", "like.张*"),
        ("is_null", "phone", "is.null"),
        ("relative_date", "due_at", "lte.@today+1d"),
    ];
    for (name, field, text) in cases {
        if let Err(error) = Filter::from_query_param(field, text) {
            panic!("benchmark input {name} is refused: {error}");
        }
        group.bench_function(name, |b| {
            b.iter(|| Filter::from_query_param(black_box(field), black_box(text)))
        });
    }
    group.finish();
}

fn json_filters(c: &mut Criterion) {
    let mut group = c.benchmark_group("filter/json");
    let simple = json!({ "status": "qualified" });
    let typical = json!({
        "status": { "in": ["new", "contacted", "qualified"] },
        "score": { "gte": 50 },
        "next_follow_up_at": { "lte": "@today+1d" },
    });
    let nested = json!({
        "owner": { "is": "not_null" },
        "or": [
            { "status": "qualified", "score": { "gte": 80 } },
            { "source": { "in": ["referral", "event"] }, "name": { "like": "张*" } },
        ],
        "not": { "company": { "is": "null" } },
    });
    for (name, filter) in [
        ("one_field", &simple),
        ("three_fields", &typical),
        ("nested_or_not", &nested),
    ] {
        if let Err(error) = Filter::from_json(filter) {
            panic!("benchmark input {name} is refused: {error}");
        }
        group.bench_function(name, |b| b.iter(|| Filter::from_json(black_box(filter))));
    }
    group.finish();
}

fn quick() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
}

criterion_group! {
    name = benches;
    config = quick();
    targets = query_string_filters, json_filters
}
criterion_main!(benches);
