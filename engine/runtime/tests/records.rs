//! `Records`, the one write and read path, driven directly (no HTTP) on both databases:
//! validation, uniqueness, versions, recycle bin, history, formulas, autonumbers, duplicate
//! keys, cursors, aggregates and exports.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use futures::StreamExt;
use keel_meta::filter::Filter;
use keel_meta::{OrderTerm, Schema};
use keel_runtime::actor::Actor;
use keel_runtime::clock::{Clock, SystemClock};
use keel_runtime::records::{AggregateRequest, Input, ListRequest, RecordError, Records};
use serde_json::{Value as Json, json};

const APP: &str = "name: Records test\ntimezone: Asia/Shanghai\n";
const ROLES: &str = "\
roles:
  admin: { admin: true }
  sales_rep: {}
permissions:
  sales_rep:
    deal: { read: own, create: true, edit: own, delete: own, fields: { cost: hidden, discount: read } }
    company: { read: own, create: true, edit: own }
";
const COMPANY: &str = "\
name: company
title: name
fields:
  name: { type: text, required: true }
";
const DEAL: &str = "\
name: deal
title: name
search: [name, phone]
fields:
  name: { type: text, required: true, max_length: 50 }
  code: { type: autonumber, format: \"D-{YYYY}-{seq:4}\" }
  phone: { type: phone }
  email: { type: email, unique: true }
  stage: { type: choice, options: [open, won, lost], default: open }
  score: { type: integer, min: 0, max: 100 }
  amount: { type: money }
  probability: { type: percent }
  weighted: { type: formula, expr: 'if record.amount == () || record.probability == () { () } else { record.amount * record.probability / 100 }', returns: money }
  cost: { type: money }
  discount: { type: percent }
  company: { type: lookup, object: company, on_delete: set_null }
  close_on: { type: date }
  next_at: { type: datetime }
  reviewer: { type: user }
duplicates:
  - { fields: [phone], action: block }
  - { fields: [name], action: warn }
list: { columns: [name, stage], order: -created_at }
";

/// An app directory in a temp dir, built from (path, text) pairs.
struct AppDir {
    dir: tempfile::TempDir,
}

impl AppDir {
    fn new(files: &[(&str, &str)]) -> AppDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        AppDir { dir }
    }

    fn path(&self) -> &std::path::Path {
        self.dir.path()
    }
}

struct Fixture {
    records: Records,
    admin: Actor,
    rep: Actor,
    other_rep: Actor,
    _app: AppDir,
}

async fn fixture(db_url: &str) -> Fixture {
    let app = AppDir::new(&[
        ("metadata/app.yaml", APP),
        ("metadata/roles.yaml", ROLES),
        ("metadata/objects/company.yaml", COMPANY),
        ("metadata/objects/deal.yaml", DEAL),
    ]);
    let schema: Arc<Schema> = Arc::new(keel_meta::load_app(app.path()).unwrap());
    let db = keel_store::Db::connect(db_url).await.unwrap();
    keel_store::migrate::apply(&db, &schema, false)
        .await
        .unwrap();
    // Real users: a record's owner must be one.
    let mut actors = Vec::new();
    for (username, role, admin) in [
        ("u_admin", "admin", true),
        ("u_rep", "sales_rep", false),
        ("u_other", "sales_rep", false),
    ] {
        let user = keel_store::users::NewUser {
            username: username.to_owned(),
            display_name: None,
            password_hash: "not-a-real-hash".to_owned(),
            roles: vec![role.to_owned()],
            manager: None,
            department: None,
            language: None,
            email: None,
        };
        let id = keel_store::users::insert_at(&db, &user, SystemClock.now(), None)
            .await
            .unwrap();
        actors.push(Actor {
            id,
            username: username.to_owned(),
            display_name: None,
            roles: vec![role.to_owned()],
            admin,
            manager: None,
            department: None,
            language: None,
        });
    }
    let [admin, rep, other_rep] = <[Actor; 3]>::try_from(actors).unwrap();
    Fixture {
        records: Records::new(schema, db, Arc::new(SystemClock)),
        admin,
        rep,
        other_rep,
        _app: app,
    }
}

fn input(value: Json) -> Input {
    value.as_object().cloned().unwrap()
}

fn invalid_fields(error: RecordError) -> Vec<(String, String)> {
    match error {
        RecordError::Invalid(problems) => problems
            .into_iter()
            .map(|p| (p.field, p.code.to_owned()))
            .collect(),
        other => panic!("expected Invalid, got {other:?}"),
    }
}

keel_testkit::db_test!(
    create_validates_every_field_and_names_each_bad_one,
    |db| async move {
        let f = fixture(&db.url).await;
        let error = f
            .records
            .create(
                &f.admin,
                "deal",
                input(json!({
                    "score": 101, "stage": "maybe", "email": "not-an-email", "amount": "12.345",
                    "close_on": "tomorrow", "colour": "red", "code": "D-1"
                })),
            )
            .await
            .unwrap_err();
        let mut fields = invalid_fields(error);
        fields.sort();
        assert_eq!(
            fields,
            vec![
                ("amount".into(), "invalid_scale".into()),
                ("close_on".into(), "invalid_date".into()),
                ("code".into(), "read_only".into()),
                ("colour".into(), "unknown_field".into()),
                ("email".into(), "invalid_email".into()),
                ("score".into(), "too_large".into()),
                ("stage".into(), "invalid_choice".into()),
            ]
        );
        let error = f
            .records
            .create(&f.admin, "deal", input(json!({ "score": 5 })))
            .await
            .unwrap_err();
        assert_eq!(
            invalid_fields(error),
            vec![("name".to_owned(), "required".to_owned())]
        );
        let page = f
            .records
            .list(&f.admin, "deal", ListRequest::default())
            .await
            .unwrap();
        assert!(page.data.is_empty(), "a refused create must change nothing");
    }
);

keel_testkit::db_test!(
    create_fills_system_fields_defaults_formulas_and_autonumbers,
    |db| async move {
        let f = fixture(&db.url).await;
        let saved = f
            .records
            .create(
                &f.rep,
                "deal",
                input(json!({ "name": "华为云", "amount": 1999.5, "probability": "30" })),
            )
            .await
            .unwrap();
        let record = saved.record;
        assert_eq!(record["owner"], f.rep.id.as_str());
        assert_eq!(record["created_by"], f.rep.id.as_str());
        assert_eq!(record["version"], 1);
        assert_eq!(record["stage"], "open");
        assert_eq!(record["amount"], "1999.50");
        assert_eq!(record["weighted"], "599.85");
        let code = record["code"].as_str().unwrap();
        assert!(
            code.starts_with("D-20") && code.ends_with("-0001"),
            "{code}"
        );
        assert!(
            record.get("cost").is_none(),
            "a hidden field must not be returned"
        );
        let fetched = f
            .records
            .get(&f.rep, "deal", record["id"].as_str().unwrap())
            .await
            .unwrap();
        assert_eq!(fetched, record);
    }
);

keel_testkit::db_test!(
    unique_values_and_blocking_duplicates_conflict_and_warnings_pass,
    |db| async move {
        let f = fixture(&db.url).await;
        f.records
            .create(
                &f.admin,
                "deal",
                input(json!({ "name": "A", "email": "a@x.cn", "phone": "138-0013-8000" })),
            )
            .await
            .unwrap();
        let error = f
            .records
            .create(
                &f.admin,
                "deal",
                input(json!({ "name": "B", "email": "a@x.cn" })),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(&error, RecordError::Conflict { field: Some(field), .. } if field == "email"),
            "{error:?}"
        );
        let error = f
            .records
            .create(
                &f.rep,
                "deal",
                input(json!({ "name": "C", "phone": "138-0013-8000" })),
            )
            .await
            .unwrap_err();
        match error {
            RecordError::Conflict { matches, .. } => {
                assert_eq!(matches.len(), 1);
                assert_eq!(matches[0].title, "*", "titles are masked");
                assert_eq!(
                    matches[0].owner_name.as_deref(),
                    Some("u_admin"),
                    "the owner is named"
                );
            }
            other => panic!("expected a duplicate conflict, got {other:?}"),
        }
        // Phone keys compare digits: separators and spacing do not hide a duplicate.
        for written in ["13800138000", "(138) 0013 8000", "+138.0013.8000"] {
            let error = f
                .records
                .create(
                    &f.rep,
                    "deal",
                    input(json!({ "name": "D", "phone": written })),
                )
                .await
                .unwrap_err();
            assert!(
                matches!(&error, RecordError::Conflict { matches, .. } if matches.len() == 1),
                "{written}: {error:?}"
            );
        }
        f.records
            .create(
                &f.rep,
                "deal",
                input(json!({ "name": "E", "phone": "138-0013-8001" })),
            )
            .await
            .unwrap();
        let saved = f
            .records
            .create(&f.admin, "deal", input(json!({ "name": "a" })))
            .await
            .unwrap();
        assert_eq!(
            saved.warnings.len(),
            1,
            "a `warn` key matches case-insensitively"
        );
        assert_eq!(saved.warnings[0].code, "possible_duplicate");
    }
);

keel_testkit::db_test!(
    updates_bump_the_version_refuse_stale_versions_and_read_only_fields,
    |db| async move {
        let f = fixture(&db.url).await;
        let record = f
            .records
            .create(&f.rep, "deal", input(json!({ "name": "X", "score": 1 })))
            .await
            .unwrap()
            .record;
        let id = record["id"].as_str().unwrap().to_owned();
        let updated = f
            .records
            .update(&f.rep, "deal", &id, input(json!({ "score": 2 })), Some(1))
            .await
            .unwrap()
            .record;
        assert_eq!(updated["version"], 2);
        assert_eq!(updated["score"], 2);
        let error = f
            .records
            .update(&f.rep, "deal", &id, input(json!({ "score": 3 })), Some(1))
            .await
            .unwrap_err();
        assert!(
            matches!(
                error,
                RecordError::Stale {
                    expected: 1,
                    current: 2
                }
            ),
            "{error:?}"
        );
        let error = f
            .records
            .update(&f.rep, "deal", &id, input(json!({ "discount": 5 })), None)
            .await
            .unwrap_err();
        assert!(
            matches!(&error, RecordError::Forbidden { fields, .. } if fields == &vec!["discount".to_owned()]),
            "{error:?}"
        );
        // Another rep cannot see the record at all: 404, not 403.
        let error = f
            .records
            .update(
                &f.other_rep,
                "deal",
                &id,
                input(json!({ "score": 4 })),
                None,
            )
            .await
            .unwrap_err();
        assert!(matches!(error, RecordError::NotFound), "{error:?}");
        assert!(matches!(
            f.records.get(&f.other_rep, "deal", &id).await.unwrap_err(),
            RecordError::NotFound
        ));
        // Sending back the whole record unchanged is accepted and changes nothing.
        let same = f
            .records
            .update(&f.rep, "deal", &id, input(updated.clone()), None)
            .await
            .unwrap()
            .record;
        assert_eq!(same["version"], 2);
    }
);

keel_testkit::db_test!(
    delete_goes_to_the_recycle_bin_and_restore_keeps_the_history,
    |db| async move {
        let f = fixture(&db.url).await;
        let id = f
            .records
            .create(&f.rep, "deal", input(json!({ "name": "Old" })))
            .await
            .unwrap()
            .record["id"]
            .as_str()
            .unwrap()
            .to_owned();
        f.records
            .update(&f.rep, "deal", &id, input(json!({ "name": "New" })), None)
            .await
            .unwrap();
        f.records.delete(&f.rep, "deal", &id).await.unwrap();
        assert!(matches!(
            f.records.get(&f.rep, "deal", &id).await.unwrap_err(),
            RecordError::NotFound
        ));
        assert!(
            f.records
                .list(&f.rep, "deal", ListRequest::default())
                .await
                .unwrap()
                .data
                .is_empty()
        );
        let restored = f.records.restore(&f.rep, "deal", &id).await.unwrap();
        assert_eq!(restored["name"], "New");
        let history = f.records.history(&f.rep, "deal", &id).await.unwrap();
        let name_change = history
            .iter()
            .find(|entry| entry["field"] == "name" && entry["action"] == "update")
            .unwrap();
        assert_eq!(name_change["old"], "Old");
        assert_eq!(name_change["new"], "New");
        assert_eq!(name_change["by"], f.rep.id.as_str());
        assert!(history.iter().any(|entry| entry["action"] == "delete"));
        assert!(history.iter().any(|entry| entry["action"] == "restore"));
    }
);

keel_testkit::db_test!(bulk_is_all_or_nothing, |db| async move {
    let f = fixture(&db.url).await;
    let items = vec![
        input(json!({ "name": "one" })),
        input(json!({ "name": "two", "score": -5 })),
        input(json!({ "name": "three" })),
    ];
    let error = f.records.bulk(&f.admin, "deal", items).await.unwrap_err();
    assert_eq!(
        invalid_fields(error),
        vec![("1.score".to_owned(), "too_small".to_owned())]
    );
    assert!(
        f.records
            .list(&f.admin, "deal", ListRequest::default())
            .await
            .unwrap()
            .data
            .is_empty()
    );
    let items = (0..10)
        .map(|i| input(json!({ "name": format!("n{i}") })))
        .collect();
    let created = f.records.bulk(&f.admin, "deal", items).await.unwrap();
    assert_eq!(created.len(), 10);
    let id = created[0]["id"].clone();
    let updated = f
        .records
        .bulk(
            &f.admin,
            "deal",
            vec![input(json!({ "id": id, "score": 9 }))],
        )
        .await
        .unwrap();
    assert_eq!(updated[0]["score"], 9);
});

keel_testkit::db_test!(
    autonumbers_never_repeat_under_32_concurrent_creates,
    |db| async move {
        let f = fixture(&db.url).await;
        let records = f.records.clone();
        let tasks: Vec<_> = (0..32)
            .map(|i| {
                let records = records.clone();
                let admin = f.admin.clone();
                tokio::spawn(async move {
                    records
                        .create(&admin, "deal", input(json!({ "name": format!("c{i}") })))
                        .await
                })
            })
            .collect();
        let mut codes = Vec::new();
        for task in tasks {
            codes.push(
                task.await.unwrap().unwrap().record["code"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        }
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), 32);
        assert!(codes.iter().all(|code| code.len() == "D-2026-0001".len()));
        let numbers: Vec<u32> = codes
            .iter()
            .map(|code| code.rsplit('-').next().unwrap().parse().unwrap())
            .collect();
        assert_eq!(
            numbers,
            (1..=32).collect::<Vec<_>>(),
            "no gaps and no collisions"
        );
    }
);

keel_testkit::db_test!(
    filters_with_or_not_and_relative_dates_select_the_right_records,
    |db| async move {
        let f = fixture(&db.url).await;
        let now = SystemClock.now();
        let at = |hours: i64| (now + chrono::Duration::hours(hours)).to_rfc3339();
        for (name, stage, score, next) in [
            ("a", "open", 10, at(-48)),
            ("b", "won", 50, at(1)),
            ("c", "lost", 90, at(72)),
            ("d", "open", 70, at(5)),
        ] {
            f.records
                .create(
                    &f.admin,
                    "deal",
                    input(json!({ "name": name, "stage": stage, "score": score, "next_at": next })),
                )
                .await
                .unwrap();
        }
        let names = |filter: Json| {
            let records = f.records.clone();
            let admin = f.admin.clone();
            async move {
                let request = ListRequest {
                    filter: Some(Filter::from_json(&filter).unwrap()),
                    order: vec![OrderTerm {
                        field: "name".into(),
                        descending: false,
                    }],
                    ..ListRequest::default()
                };
                records
                    .list(&admin, "deal", request)
                    .await
                    .unwrap()
                    .data
                    .iter()
                    .map(|r| r["name"].as_str().unwrap().to_owned())
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(
            names(json!({ "or": [{ "stage": "won" }, { "score": { "gte": 90 } }] })).await,
            ["b", "c"]
        );
        assert_eq!(
            names(json!({ "not": { "stage": { "in": ["open", "won"] } } })).await,
            ["c"]
        );
        assert_eq!(names(json!({ "next_at": { "lt": "@now" } })).await, ["a"]);
        assert_eq!(
            names(json!({ "next_at": { "gte": "@now", "lte": "@now+1d" } })).await,
            ["b", "d"]
        );
        assert_eq!(
            names(json!({ "name": { "like": "*" }, "score": { "gt": 60, "lt": 80 } })).await,
            ["d"]
        );
        let error = f
            .records
            .list(
                &f.rep,
                "deal",
                ListRequest {
                    filter: Some(Filter::from_json(&json!({ "cost": { "gt": 1 } })).unwrap()),
                    ..ListRequest::default()
                },
            )
            .await
            .unwrap_err();
        assert!(
            matches!(&error, RecordError::BadFilter { field, .. } if field == "cost"),
            "filtering on a hidden field must be refused, naming it: {error:?}"
        );
    }
);

keel_testkit::db_test!(
    cursor_pages_visit_every_record_once_under_every_order_while_inserting,
    |db| async move {
        let f = fixture(&db.url).await;
        let total = 1_234;
        let items: Vec<Input> = (0..total)
            .map(|i| {
                let stage = ["open", "won", "lost"][i % 3];
                let score = if i % 7 == 0 {
                    Json::Null
                } else {
                    json!(i % 13)
                };
                input(json!({ "name": format!("n{:04}", i % 97), "score": score, "stage": stage }))
            })
            .collect();
        for chunk in items.chunks(500) {
            f.records
                .bulk(&f.admin, "deal", chunk.to_vec())
                .await
                .unwrap();
        }
        let orders: Vec<Vec<OrderTerm>> = vec![
            vec![],
            vec![OrderTerm {
                field: "score".into(),
                descending: false,
            }],
            vec![
                OrderTerm {
                    field: "score".into(),
                    descending: true,
                },
                OrderTerm {
                    field: "name".into(),
                    descending: false,
                },
            ],
            vec![
                OrderTerm {
                    field: "stage".into(),
                    descending: false,
                },
                OrderTerm {
                    field: "score".into(),
                    descending: true,
                },
            ],
            vec![OrderTerm {
                field: "created_at".into(),
                descending: true,
            }],
        ];
        for (round, order) in orders.into_iter().enumerate() {
            let mut seen = std::collections::HashSet::new();
            let mut after = None;
            let mut pages = 0;
            loop {
                let request = ListRequest {
                    order: order.clone(),
                    limit: Some(50),
                    after: after.clone(),
                    fields: Some(vec!["name".into()]),
                    ..ListRequest::default()
                };
                let page = f.records.list(&f.admin, "deal", request).await.unwrap();
                for record in &page.data {
                    let id = record["id"].as_str().unwrap().to_owned();
                    if !id.is_empty() {
                        assert!(
                            seen.insert(id),
                            "a record was visited twice (order {round})"
                        );
                    }
                }
                // Inserts between pages must not make existing records appear twice or vanish.
                f.records
                    .create(
                        &f.admin,
                        "deal",
                        input(json!({ "name": format!("late{round}-{pages}") })),
                    )
                    .await
                    .unwrap();
                pages += 1;
                assert!(pages < 200, "paging does not end");
                match page.next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
            let original = seen.len();
            assert!(
                original >= total,
                "order {round}: saw {original} of at least {total}"
            );
        }
        let bad = f
            .records
            .list(
                &f.admin,
                "deal",
                ListRequest {
                    after: Some("not-a-cursor".into()),
                    ..ListRequest::default()
                },
            )
            .await
            .unwrap_err();
        assert!(matches!(bad, RecordError::BadRequest(_)));
        let too_many = f
            .records
            .list(
                &f.admin,
                "deal",
                ListRequest {
                    limit: Some(501),
                    ..ListRequest::default()
                },
            )
            .await
            .unwrap_err();
        assert!(matches!(too_many, RecordError::BadRequest(_)));
    }
);

keel_testkit::db_test!(aggregates_match_sums_computed_here, |db| async move {
    let f = fixture(&db.url).await;
    let mut expected: std::collections::BTreeMap<&str, (i64, rust_decimal::Decimal)> =
        Default::default();
    for i in 0..60_i64 {
        let stage = ["open", "won", "lost"][(i % 3) as usize];
        let amount = rust_decimal::Decimal::new(i * 1_001 + 7, 2);
        f.records.create(&f.admin, "deal", input(json!({ "name": format!("a{i}"), "stage": stage, "amount": amount.to_string() }))).await.unwrap();
        let entry = expected.entry(stage).or_default();
        entry.0 += 1;
        entry.1 += amount;
    }
    let request = AggregateRequest {
        group_by: vec!["stage".into()],
        count: true,
        sum: vec!["amount".into()],
        ..AggregateRequest::default()
    };
    let rows = f
        .records
        .aggregate(&f.admin, "deal", request)
        .await
        .unwrap();
    assert_eq!(rows.len(), 3);
    for row in rows {
        let stage = row["stage"].as_str().unwrap();
        let (count, sum) = expected[stage];
        assert_eq!(row["count"], count);
        let got: rust_decimal::Decimal = row["sum_amount"].as_str().unwrap().parse().unwrap();
        assert_eq!(got, sum, "sum for {stage}");
    }
});

keel_testkit::db_test!(
    a_count_and_an_export_with_search_text_match_the_searched_list,
    |db| async move {
        let f = fixture(&db.url).await;
        for name in ["alpha one", "alpha two", "beta", "gamma alpha", "delta"] {
            f.records
                .create(&f.admin, "deal", input(json!({ "name": name })))
                .await
                .unwrap();
        }
        let listed = f
            .records
            .list(
                &f.admin,
                "deal",
                ListRequest {
                    q: Some("ALPHA".into()),
                    ..ListRequest::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(listed.data.len(), 3);
        let counted = f
            .records
            .aggregate(
                &f.admin,
                "deal",
                AggregateRequest {
                    count: true,
                    q: Some("ALPHA".into()),
                    ..AggregateRequest::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(counted[0]["count"], 3);
        let mut stream = f
            .records
            .export_matching(&f.admin, "deal", None, Some("alpha"), Vec::new())
            .await
            .unwrap();
        let mut exported = 0;
        while let Some(record) = stream.next().await {
            assert!(record.unwrap()["name"].as_str().unwrap().contains("alpha"));
            exported += 1;
        }
        assert_eq!(exported, 3);
    }
);

keel_testkit::db_test!(export_streams_every_readable_record, |db| async move {
    let f = fixture(&db.url).await;
    let items: Vec<Input> = (0..2_500)
        .map(|i| input(json!({ "name": format!("e{i}"), "cost": "1.00" })))
        .collect();
    for chunk in items.chunks(1_000) {
        f.records
            .bulk(&f.rep, "deal", chunk.to_vec())
            .await
            .unwrap_err();
        f.records
            .bulk(&f.admin, "deal", chunk.to_vec())
            .await
            .unwrap();
    }
    let mut stream = f
        .records
        .export(&f.admin, "deal", None, Vec::new())
        .await
        .unwrap();
    let mut count = 0;
    let mut ids = std::collections::HashSet::new();
    while let Some(record) = stream.next().await {
        let record = record.unwrap();
        assert!(ids.insert(record["id"].as_str().unwrap().to_owned()));
        count += 1;
    }
    assert_eq!(count, 2_500);
    let mut rep_stream = f
        .records
        .export(&f.rep, "deal", None, Vec::new())
        .await
        .unwrap();
    assert!(
        rep_stream.next().await.is_none(),
        "the rep owns none of these records"
    );
});

keel_testkit::db_test!(
    lookups_to_records_the_actor_cannot_see_are_refused_and_never_titled,
    |db| async move {
        let f = fixture(&db.url).await;
        let secret = f
            .records
            .create(&f.admin, "company", input(json!({ "name": "机密客户" })))
            .await
            .unwrap()
            .record;
        let secret_id = secret["id"].as_str().unwrap().to_owned();
        let own = f
            .records
            .create(&f.rep, "company", input(json!({ "name": "自己的客户" })))
            .await
            .unwrap()
            .record;

        let error = f
            .records
            .create(
                &f.rep,
                "deal",
                input(json!({ "name": "d1", "company": secret_id })),
            )
            .await
            .unwrap_err();
        assert_eq!(
            invalid_fields(error),
            vec![("company".to_owned(), "invalid_reference".to_owned())]
        );
        let mine = f
            .records
            .create(
                &f.rep,
                "deal",
                input(json!({ "name": "d2", "company": own["id"] })),
            )
            .await
            .unwrap()
            .record;
        assert_eq!(mine["_refs"]["company"]["title"], "自己的客户");

        // An admin links the rep's deal to a company the rep cannot see: the rep gets the id (the
        // stored value) but no title.
        let deal = f
            .records
            .create(
                &f.admin,
                "deal",
                input(json!({
                    "name": "d3",
                    "owner": f.rep.id,
                    "company": secret_id,
                    "reviewer": f.other_rep.id,
                })),
            )
            .await
            .unwrap()
            .record;
        let seen_by_rep = f
            .records
            .get(&f.rep, "deal", deal["id"].as_str().unwrap())
            .await
            .unwrap();
        assert_eq!(seen_by_rep["company"], secret_id.as_str());
        assert!(
            seen_by_rep["_refs"].get("company").is_none(),
            "{seen_by_rep}"
        );
        assert!(!seen_by_rep.to_string().contains("机密客户"));
        // Users are named: the owner and who created and changed the record.
        assert_eq!(seen_by_rep["_refs"]["owner"]["id"], f.rep.id.as_str());
        assert_eq!(seen_by_rep["_refs"]["owner"]["title"], "u_rep");
        assert_eq!(seen_by_rep["_refs"]["created_by"]["title"], "u_admin");
        assert_eq!(seen_by_rep["reviewer"], f.other_rep.id.as_str());
        assert_eq!(seen_by_rep["_refs"]["reviewer"]["title"], "u_other");
        // A user field must name an active user, like the owner.
        let error = f
            .records
            .create(
                &f.admin,
                "deal",
                input(json!({ "name": "d4", "reviewer": "nobody", "owner": "ghost" })),
            )
            .await
            .unwrap_err();
        let mut bad = invalid_fields(error);
        bad.sort();
        assert_eq!(
            bad,
            [
                ("owner".to_owned(), "invalid_reference".to_owned()),
                ("reviewer".to_owned(), "invalid_reference".to_owned()),
            ]
        );
    }
);

keel_testkit::db_test!(
    the_recycle_bin_lists_only_deleted_records_the_actor_may_read_newest_first,
    |db| async move {
        let f = fixture(&db.url).await;
        let mut ids = Vec::new();
        for (actor, name) in [
            (&f.rep, "First"),
            (&f.rep, "Second"),
            (&f.other_rep, "Theirs"),
        ] {
            let id = f
                .records
                .create(actor, "deal", input(json!({ "name": name })))
                .await
                .unwrap()
                .record["id"]
                .as_str()
                .unwrap()
                .to_owned();
            ids.push(id);
        }
        let kept = f
            .records
            .create(&f.rep, "deal", input(json!({ "name": "Kept" })))
            .await
            .unwrap();
        f.records.delete(&f.rep, "deal", &ids[0]).await.unwrap();
        f.records.delete(&f.rep, "deal", &ids[1]).await.unwrap();
        f.records
            .delete(&f.other_rep, "deal", &ids[2])
            .await
            .unwrap();
        let bin = f.records.list_deleted(&f.rep, "deal", 50).await.unwrap();
        let names: Vec<&str> = bin.iter().map(|r| r["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["Second", "First"]);
        assert_eq!(bin[0]["deleted_by"], f.rep.id.as_str());
        assert!(bin[0]["deleted_at"].is_string());
        assert!(bin[0].get("cost").is_none(), "hidden fields stay hidden");
        let all = f.records.list_deleted(&f.admin, "deal", 50).await.unwrap();
        assert_eq!(all.len(), 3);
        assert!(all.iter().all(|r| r["id"] != kept.record["id"]));
        assert!(matches!(
            f.records
                .list_deleted(&f.rep, "nope", 50)
                .await
                .unwrap_err(),
            RecordError::UnknownObject(_)
        ));
    }
);

keel_testkit::db_test!(
    may_tells_a_page_whether_the_actor_may_edit_or_delete_a_record,
    |db| async move {
        use keel_runtime::records::access::Action;
        let f = fixture(&db.url).await;
        let mine = f
            .records
            .create(&f.rep, "deal", input(json!({ "name": "Mine" })))
            .await
            .unwrap()
            .record;
        let company = f
            .records
            .create(&f.rep, "company", input(json!({ "name": "Co" })))
            .await
            .unwrap()
            .record;
        assert!(
            f.records
                .may(&f.rep, "deal", &mine, Action::Edit)
                .await
                .unwrap()
        );
        assert!(
            f.records
                .may(&f.rep, "deal", &mine, Action::Delete)
                .await
                .unwrap()
        );
        assert!(
            !f.records
                .may(&f.other_rep, "deal", &mine, Action::Edit)
                .await
                .unwrap()
        );
        assert!(
            f.records
                .may(&f.admin, "deal", &mine, Action::Delete)
                .await
                .unwrap()
        );
        // The company grant has no delete.
        assert!(
            f.records
                .may(&f.rep, "company", &company, Action::Edit)
                .await
                .unwrap()
        );
        assert!(
            !f.records
                .may(&f.rep, "company", &company, Action::Delete)
                .await
                .unwrap()
        );
    }
);

keel_testkit::db_test!(
    defaults_are_what_a_create_that_leaves_the_fields_out_stores,
    |db| async move {
        let f = fixture(&db.url).await;
        let defaults = f.records.defaults(&f.rep, "deal").unwrap();
        assert_eq!(Json::Object(defaults.clone()), json!({ "stage": "open" }));
        let saved = f
            .records
            .create(&f.rep, "deal", input(json!({ "name": "Ada" })))
            .await
            .unwrap();
        for (field, value) in defaults {
            assert_eq!(saved.record[&field], value, "{field}");
        }
        assert!(matches!(
            f.records.defaults(&f.rep, "nothing"),
            Err(RecordError::UnknownObject(_))
        ));
    }
);

keel_testkit::db_test!(
    recently_changed_lists_the_records_the_actor_changed_newest_first_within_their_read_scope,
    |db| async move {
        let f = fixture(&db.url).await;
        let mut ids = Vec::new();
        for name in ["One", "Two", "Three"] {
            let id = f
                .records
                .create(
                    &f.rep,
                    "deal",
                    input(json!({ "name": name, "stage": "open" })),
                )
                .await
                .unwrap()
                .record["id"]
                .as_str()
                .unwrap()
                .to_owned();
            ids.push(id);
        }
        // The other rep's record, changed by the admin: in neither rep's list.
        let theirs = f
            .records
            .create(&f.other_rep, "deal", input(json!({ "name": "Theirs" })))
            .await
            .unwrap()
            .record["id"]
            .as_str()
            .unwrap()
            .to_owned();
        f.records
            .update(
                &f.admin,
                "deal",
                &theirs,
                input(json!({ "name": "Renamed" })),
                None,
            )
            .await
            .unwrap();
        f.records
            .update(
                &f.rep,
                "deal",
                &ids[0],
                input(json!({ "name": "One again" })),
                None,
            )
            .await
            .unwrap();
        f.records.delete(&f.rep, "deal", &ids[1]).await.unwrap();
        let changed = f.records.recently_changed(&f.rep, 10).await.unwrap();
        let names: Vec<(&str, &str)> = changed
            .iter()
            .map(|(object, record)| (object.as_str(), record["name"].as_str().unwrap()))
            .collect();
        assert_eq!(names, [("deal", "One again"), ("deal", "Three")]);
        assert_eq!(
            f.records.recently_changed(&f.rep, 1).await.unwrap().len(),
            1
        );
        let admins = f.records.recently_changed(&f.admin, 10).await.unwrap();
        assert_eq!(admins.len(), 1);
        assert_eq!(admins[0].1["name"], "Renamed");
        assert!(
            f.records.recently_changed(&f.other_rep, 10).await.unwrap()[0].1["name"] == "Renamed"
        );
    }
);

keel_testkit::db_test!(
    duplicates_of_a_stored_record_excludes_it_and_spends_no_lookup_budget,
    |db| async move {
        use keel_runtime::records::LOOKUPS_PER_WINDOW;
        let f = fixture(&db.url).await;
        let mut ids = Vec::new();
        for actor in [&f.rep, &f.rep, &f.other_rep] {
            let id = f
                .records
                .create(actor, "deal", input(json!({ "name": "Same" })))
                .await
                .unwrap()
                .record["id"]
                .as_str()
                .unwrap()
                .to_owned();
            ids.push(id);
        }
        let alone = f
            .records
            .create(&f.rep, "deal", input(json!({ "name": "Alone" })))
            .await
            .unwrap()
            .record["id"]
            .as_str()
            .unwrap()
            .to_owned();
        // More page views than the budget allows lookups: none is refused.
        for _ in 0..LOOKUPS_PER_WINDOW + 5 {
            let matches = f
                .records
                .duplicates_of(&f.rep, "deal", &ids[0])
                .await
                .unwrap();
            let mut found: Vec<&str> = matches.iter().map(|m| m.id.as_str()).collect();
            found.sort();
            let mut expected = vec![ids[1].as_str(), ids[2].as_str()];
            expected.sort();
            assert_eq!(found, expected);
        }
        assert!(
            f.records
                .duplicates_of(&f.rep, "deal", &alone)
                .await
                .unwrap()
                .is_empty()
        );
        // Only a record the actor may read.
        assert!(matches!(
            f.records
                .duplicates_of(&f.other_rep, "deal", &ids[0])
                .await
                .unwrap_err(),
            RecordError::NotFound
        ));
    }
);
