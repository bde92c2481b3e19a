//! Lead pools (公海) as a client sees them (docs/pools.md): claims exact under concurrency,
//! the claim, daily and cooldown limits, `holding_excludes` and `exempt`, the auto-return
//! sweep's warnings and returns at the right instants, the pool history, and the
//! `hide_until_claimed` masking everywhere a value could leak. Real HTTP on loopback over
//! SQLite and PostgreSQL; time is a `ManualClock` and the sweep is called directly.

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone as _, Utc};
use keel_runtime::clock::ManualClock;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{Api, AppDir, send_json};

const APP: &str = "name: { en: Pools }\nlanguage: en\ntimezone: Asia/Shanghai\n";

const ROLES: &str = "\
roles:
  admin: { admin: true }
  rep: { label: { en: Rep } }
  boss: { label: { en: Boss } }
  viewer: { label: { en: Viewer } }
permissions:
  rep:
    lead: { read: own, create: true, edit: own, delete: none }
  boss:
    lead: { read: own, create: true, edit: own, delete: none }
  viewer:
    lead: { read: all, create: false, edit: none, delete: none }
";

const LEAD: &str = "\
name: lead
label: { en: Lead }
title: name
search: [name, company, phone]
fields:
  name: { type: text, required: true }
  company: { type: text }
  phone: { type: phone }
  status:
    type: choice
    default: new
    options: [{ key: new }, { key: converted }]
  last_follow_up_at: { type: datetime }
duplicates:
  - { fields: [phone], action: block }
";

const PASSWORD: &str = "pools-password";

/// The limits and auto-return of the fixture pool `leads`.
struct PoolSettings {
    claim_limit: u32,
    daily_claim_limit: u32,
    reclaim_cooldown: &'static str,
    auto_return: bool,
}

impl Default for PoolSettings {
    fn default() -> PoolSettings {
        PoolSettings {
            claim_limit: 0,
            daily_claim_limit: 0,
            reclaim_cooldown: "0",
            auto_return: false,
        }
    }
}

fn pool_yaml(settings: &PoolSettings) -> String {
    let mut yaml = format!(
        "name: leads
label: {{ en: Public leads }}
object: lead
members: [rep, boss]
managers: [boss]
claim_limit: {}
holding_excludes: {{ status: converted }}
daily_claim_limit: {}
reclaim_cooldown: {}
hide_until_claimed: [phone, company]
release_reasons: [no_need, unreachable, other]
notify_on_return: true
",
        settings.claim_limit, settings.daily_claim_limit, settings.reclaim_cooldown
    );
    if settings.auto_return {
        yaml.push_str(
            "auto_return:
  schedule: \"0 */10 * * * *\"
  warn_before: 1d
  exempt: { status: converted }
  rules:
    - no_follow_up_for: 3d
      follow_up_field: last_follow_up_at
",
        );
    }
    yaml
}

/// 10:00 on 2 March 2026 in Shanghai.
fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 2, 0, 0).unwrap()
}

struct TestApp {
    api: Api,
    clock: ManualClock,
    state: keel_web::AppState,
    _app: AppDir,
}

/// Serves the fixture app with `settings` on `db_url`, with users `admin`, `boss`,
/// `viewer` and `rep1`…`rep<reps>`.
async fn spawn_app(db_url: &str, settings: PoolSettings, reps: usize) -> TestApp {
    let app = AppDir::new(&[
        ("metadata/app.yaml", APP),
        ("metadata/roles.yaml", ROLES),
        ("metadata/objects/lead.yaml", LEAD),
        ("metadata/pools/leads.yaml", &pool_yaml(&settings)),
    ]);
    let db = keel_store::Db::connect(db_url).await.unwrap();
    let schema = Arc::new(
        keel_meta::load_app(app.path()).unwrap_or_else(|errors| panic!("fixture app:\n{errors}")),
    );
    keel_store::migrate::apply(&db, &schema, false)
        .await
        .unwrap();
    let names: Vec<String> = (1..=reps).map(|n| format!("rep{n}")).collect();
    let mut users = vec![
        ("admin", PASSWORD, "admin"),
        ("boss", PASSWORD, "boss"),
        ("viewer", PASSWORD, "viewer"),
    ];
    users.extend(names.iter().map(|name| (name.as_str(), PASSWORD, "rep")));
    crate::support::add_users(&db, &schema, &users).await;
    let clock = ManualClock::new(start());
    let state = keel_web::AppState::with_clock(schema, db.clone(), Arc::new(clock.clone()));
    TestApp {
        api: Api::serve(state.clone()).await,
        clock,
        state,
        _app: app,
    }
}

impl std::ops::Deref for TestApp {
    type Target = Api;

    fn deref(&self) -> &Api {
        &self.api
    }
}

impl TestApp {
    async fn token(&self, username: &str) -> String {
        self.api.login(username, PASSWORD).await
    }

    /// Creates a lead in the pool as the admin; returns its id.
    async fn pooled(&self, admin: &str, name: &str, phone: &str) -> String {
        let (status, body) = self
            .post(
                admin,
                "/records/lead",
                json!({ "name": name, "phone": phone, "company": format!("{name} Co"), "pool": "leads" }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert!(body["owner"].is_null(), "{body}");
        body["id"].as_str().unwrap().to_owned()
    }

    async fn claim(&self, token: &str, id: &str) -> (StatusCode, Value) {
        self.post(
            token,
            &format!("/pools/leads/records/{id}/claim"),
            json!(null),
        )
        .await
    }

    async fn sweep(&self) -> keel_runtime::pools::SweepOutcome {
        keel_runtime::pools::sweep(self.state.records(), "leads", self.clock_now())
            .await
            .unwrap()
    }

    fn clock_now(&self) -> DateTime<Utc> {
        use keel_runtime::clock::Clock as _;
        self.clock.now()
    }

    async fn history(&self, token: &str, id: &str) -> Vec<Value> {
        let (status, body) = self
            .get(token, &format!("/records/lead/{id}/pool-history"))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["data"].as_array().unwrap().clone()
    }

    async fn notifications(&self, token: &str) -> Vec<String> {
        let (status, body) = self.get(token, "/notifications").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["message"].as_str().unwrap_or_default().to_owned())
            .collect()
    }
}

/// The `errors[0].code` of a pool refusal.
fn refusal(body: &Value) -> &str {
    body["errors"][0]["code"].as_str().unwrap_or_default()
}

keel_testkit::db_test!(
    sixty_four_concurrent_claims_of_one_record_give_exactly_one_200_and_63_409s,
    |db| async move {
        let app = Arc::new(spawn_app(&db.url, PoolSettings::default(), 8).await);
        let admin = app.token("admin").await;
        let id = app.pooled(&admin, "Contested", "13800000001").await;
        let mut tokens = Vec::new();
        for n in 1..=8 {
            tokens.push(app.token(&format!("rep{n}")).await);
        }
        let claims = (0..64).map(|attempt| {
            let app = app.clone();
            let token = tokens[attempt % tokens.len()].clone();
            let id = id.clone();
            tokio::spawn(async move { app.claim(&token, &id).await })
        });
        let mut won = 0;
        let mut taken = 0;
        for claim in futures::future::join_all(claims).await {
            let (status, body) = claim.unwrap();
            match status {
                StatusCode::OK => won += 1,
                StatusCode::CONFLICT if refusal(&body) == "taken" => taken += 1,
                other => panic!("unexpected {other}: {body}"),
            }
        }
        assert_eq!((won, taken), (1, 63));
        let history = app.history(&admin, &id).await;
        let claims: Vec<&Value> = history.iter().filter(|e| e["action"] == "claim").collect();
        assert_eq!(claims.len(), 1, "{history:?}");
        let (_, record) = app.get(&admin, &format!("/records/lead/{id}")).await;
        assert_eq!(record["owner"], claims[0]["to_user"]);
        assert_eq!(record["version"], 2);
    }
);

keel_testkit::db_test!(
    one_user_racing_for_twenty_records_with_claim_limit_five_gets_exactly_five,
    |db| async move {
        let settings = PoolSettings {
            claim_limit: 5,
            ..PoolSettings::default()
        };
        let app = Arc::new(spawn_app(&db.url, settings, 1).await);
        let admin = app.token("admin").await;
        let rep = app.token("rep1").await;
        let mut ids = Vec::new();
        for n in 0..20 {
            ids.push(
                app.pooled(&admin, &format!("Lead {n}"), &format!("1390000{n:04}"))
                    .await,
            );
        }
        let claims = ids.iter().map(|id| {
            let (app, rep, id) = (app.clone(), rep.clone(), id.clone());
            tokio::spawn(async move { app.claim(&rep, &id).await })
        });
        let mut won = 0;
        for claim in futures::future::join_all(claims).await {
            let (status, body) = claim.unwrap();
            match status {
                StatusCode::OK => won += 1,
                StatusCode::CONFLICT => assert_eq!(refusal(&body), "claim_limit", "{body}"),
                other => panic!("unexpected {other}: {body}"),
            }
        }
        assert_eq!(won, 5);
        let (_, pool) = app.get(&rep, "/pools/leads").await;
        assert_eq!(pool["mine"]["held"], 5, "{pool}");
        let (_, held) = app.get(&rep, "/pools/leads/records?held=true").await;
        assert_eq!(held["data"].as_array().unwrap().len(), 5);
    }
);

keel_testkit::db_test!(
    the_daily_claim_limit_counts_the_local_day_in_asia_shanghai,
    |db| async move {
        let settings = PoolSettings {
            daily_claim_limit: 2,
            ..PoolSettings::default()
        };
        let app = spawn_app(&db.url, settings, 1).await;
        let admin = app.token("admin").await;
        let rep = app.token("rep1").await;
        let mut ids = Vec::new();
        for n in 0..4 {
            ids.push(
                app.pooled(&admin, &format!("Day {n}"), &format!("1370000{n:04}"))
                    .await,
            );
        }
        // 23:59 in Shanghai is 15:59 UTC.
        app.clock
            .set(Utc.with_ymd_and_hms(2026, 3, 2, 15, 59, 0).unwrap());
        assert_eq!(app.claim(&rep, &ids[0]).await.0, StatusCode::OK);
        assert_eq!(app.claim(&rep, &ids[1]).await.0, StatusCode::OK);
        let (status, body) = app.claim(&rep, &ids[2]).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(refusal(&body), "daily_claim_limit", "{body}");
        // 00:01 the next day in Shanghai: a new day, though still 2 March in UTC.
        app.clock
            .set(Utc.with_ymd_and_hms(2026, 3, 2, 16, 1, 0).unwrap());
        assert_eq!(app.claim(&rep, &ids[2]).await.0, StatusCode::OK);
        assert_eq!(app.claim(&rep, &ids[3]).await.0, StatusCode::OK);
    }
);

keel_testkit::db_test!(
    a_released_record_is_refused_to_its_last_owner_within_the_cooldown_and_allowed_after,
    |db| async move {
        let settings = PoolSettings {
            reclaim_cooldown: "7d",
            ..PoolSettings::default()
        };
        let app = spawn_app(&db.url, settings, 2).await;
        let admin = app.token("admin").await;
        let rep = app.token("rep1").await;
        let other = app.token("rep2").await;
        let id = app.pooled(&admin, "Cooling", "13600000001").await;
        assert_eq!(app.claim(&rep, &id).await.0, StatusCode::OK);
        let (status, body) = app
            .post(
                &rep,
                &format!("/pools/leads/records/{id}/release"),
                json!({ "reason": "unreachable" }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        app.clock.advance(Duration::days(7) - Duration::seconds(1));
        let (status, body) = app.claim(&rep, &id).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(refusal(&body), "cooldown", "{body}");
        // The cooldown is the last owner's only.
        assert_eq!(app.claim(&other, &id).await.0, StatusCode::OK);
        app.post(
            &other,
            &format!("/pools/leads/records/{id}/release"),
            json!({ "reason": "no_need" }),
        )
        .await;
        app.clock.advance(Duration::seconds(1));
        assert_eq!(app.claim(&rep, &id).await.0, StatusCode::OK);
    }
);

keel_testkit::db_test!(
    held_records_matching_holding_excludes_do_not_count_and_exempt_ones_never_return,
    |db| async move {
        let settings = PoolSettings {
            claim_limit: 1,
            auto_return: true,
            ..PoolSettings::default()
        };
        let app = spawn_app(&db.url, settings, 1).await;
        let admin = app.token("admin").await;
        let rep = app.token("rep1").await;
        let won = app.pooled(&admin, "Won", "13500000001").await;
        let open = app.pooled(&admin, "Open", "13500000002").await;
        let third = app.pooled(&admin, "Third", "13500000003").await;
        assert_eq!(app.claim(&rep, &won).await.0, StatusCode::OK);
        let (status, body) = app.claim(&rep, &open).await;
        assert_eq!(
            (status, refusal(&body)),
            (StatusCode::CONFLICT, "claim_limit")
        );
        let (status, body) = send_json(
            app.request(&rep, Method::PATCH, &format!("/records/lead/{won}"))
                .json(&json!({ "status": "converted" })),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        // The converted lead no longer counts toward the limit of one.
        assert_eq!(app.claim(&rep, &open).await.0, StatusCode::OK);
        let (status, body) = app.claim(&rep, &third).await;
        assert_eq!(
            (status, refusal(&body)),
            (StatusCode::CONFLICT, "claim_limit")
        );
        let (_, held) = app.get(&rep, "/pools/leads/records?held=true").await;
        for record in held["data"].as_array().unwrap() {
            let exempt = record["id"] == won.as_str();
            assert_eq!(record["_pool"]["exempt"], exempt, "{record}");
        }
        app.clock.advance(Duration::days(4));
        let outcome = app.sweep().await;
        assert_eq!(outcome.changed, 1, "{outcome:?}");
        let (_, record) = app.get(&admin, &format!("/records/lead/{won}")).await;
        assert_eq!(record["status"], "converted");
        assert!(
            record["owner"].is_string(),
            "the exempt lead stays: {record}"
        );
        let (_, record) = app.get(&admin, &format!("/records/lead/{open}")).await;
        assert!(
            record["owner"].is_null(),
            "the open lead returned: {record}"
        );
    }
);

/// An app whose pool returns records (`no_follow_up_for: 3d`, `warn_before: 1d`), with one
/// lead `name` claimed by `rep1` at `start()`: → (app, admin's token, rep1's token, lead id).
async fn claimed_with_auto_return(
    db_url: &str,
    name: &str,
    phone: &str,
) -> (TestApp, String, String, String) {
    let settings = PoolSettings {
        auto_return: true,
        ..PoolSettings::default()
    };
    let app = spawn_app(db_url, settings, 1).await;
    let admin = app.token("admin").await;
    let rep = app.token("rep1").await;
    let id = app.pooled(&admin, name, phone).await;
    assert_eq!(app.claim(&rep, &id).await.0, StatusCode::OK);
    (app, admin, rep, id)
}

keel_testkit::db_test!(
    a_sweep_with_nothing_due_never_waits_for_the_write_turn,
    |db| async move {
        let (app, _, _, _) = claimed_with_auto_return(&db.url, "Fresh", "13400000009").await;
        // Another save holds this process's turn to write: on SQLite the one write lock that
        // every save and claim waits for. Finding that nothing is due needs no write at all.
        let turn = app.state.records().db().records_write_turn().await.unwrap();
        let outcome = tokio::time::timeout(std::time::Duration::from_secs(10), app.sweep())
            .await
            .expect("the sweep waited for the write turn");
        assert_eq!(outcome, keel_runtime::pools::SweepOutcome::default());
        drop(turn);
        app.clock.advance(Duration::days(3));
        assert_eq!(app.sweep().await.changed, 1);
    }
);

keel_testkit::db_test!(
    the_owner_is_warned_once_and_the_record_returns_once_at_the_right_instants,
    |db| async move {
        let (app, admin, rep, id) =
            claimed_with_auto_return(&db.url, "Sleepy", "13400000001").await;
        let claimed = start();
        let (_, held) = app.get(&rep, "/pools/leads/records?held=true").await;
        let timing = &held["data"][0]["_pool"];
        let at = |offset: Duration| keel_meta::value::format_datetime(&(claimed + offset));
        assert_eq!(timing["return_at"], at(Duration::days(3)), "{timing}");
        assert_eq!(timing["warn_at"], at(Duration::days(2)), "{timing}");
        assert_eq!(timing["rule"], "no_follow_up_for");

        app.clock
            .set(claimed + Duration::days(2) - Duration::seconds(1));
        assert_eq!(app.sweep().await.warned, 0);
        app.clock.set(claimed + Duration::days(2));
        assert_eq!(app.sweep().await.warned, 1);
        assert_eq!(app.sweep().await.warned, 0, "warned once per holding");
        let messages = app.notifications(&rep).await;
        assert_eq!(messages.len(), 1, "{messages:?}");
        assert!(messages[0].contains("Sleepy"), "{messages:?}");

        app.clock
            .set(claimed + Duration::days(3) - Duration::seconds(1));
        assert_eq!(app.sweep().await.changed, 0);
        app.clock.set(claimed + Duration::days(3));
        let outcome = app.sweep().await;
        assert_eq!((outcome.changed, outcome.warned), (1, 0), "{outcome:?}");
        assert_eq!(app.sweep().await.changed, 0, "returned once");
        let messages = app.notifications(&rep).await;
        assert_eq!(messages.len(), 2, "one warning, one return: {messages:?}");
        let history = app.history(&admin, &id).await;
        let actions: Vec<&str> = history
            .iter()
            .map(|e| e["action"].as_str().unwrap())
            .collect();
        assert_eq!(actions, ["claim", "warn", "return"]);
        assert_eq!(history[2]["actor"], "system");
        assert_eq!(history[2]["at"], at(Duration::days(3)));
        let (_, record) = app.get(&admin, &format!("/records/lead/{id}")).await;
        assert!(record["owner"].is_null());
        assert_eq!(record["returned_at"], at(Duration::days(3)));
        assert_eq!(record["version"], 3);
    }
);

keel_testkit::db_test!(
    the_pool_history_names_who_when_and_why_of_every_claim_release_assignment_return_and_move,
    |db| async move {
        let settings = PoolSettings {
            auto_return: true,
            ..PoolSettings::default()
        };
        let app = spawn_app(&db.url, settings, 1).await;
        let admin = app.token("admin").await;
        let boss = app.token("boss").await;
        let rep = app.token("rep1").await;
        let id = app.pooled(&admin, "Travelled", "13300000001").await;
        assert_eq!(app.claim(&rep, &id).await.0, StatusCode::OK);
        app.clock.advance(Duration::minutes(1));
        let (status, body) = app
            .post(
                &rep,
                &format!("/pools/leads/records/{id}/release"),
                json!({ "reason": "no_need", "note": "wrong industry" }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["data"]["reason"], "no_need");
        app.clock.advance(Duration::minutes(1));
        let (status, body) = app
            .post(
                &boss,
                &format!("/pools/leads/records/{id}/assign"),
                json!({ "user": "rep1" }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let assigned = app.notifications(&rep).await;
        assert!(
            assigned.iter().any(|m| m.contains("assigned to you")),
            "{assigned:?}"
        );
        app.clock.advance(Duration::days(3));
        assert_eq!(app.sweep().await.changed, 1);
        // Back in the boss's hands and then moved into the pool by the boss.
        let (status, body) = app
            .post(
                &boss,
                "/pools/leads/assign",
                json!({ "ids": [id], "user": "boss" }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, body) = app
            .post(
                &boss,
                &format!("/pools/leads/records/{id}/move"),
                json!({ "note": "for the new team" }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let history = app.history(&rep, &id).await;
        let rows: Vec<(String, String, Value, Value, Value)> = history
            .iter()
            .map(|e| {
                (
                    e["action"].as_str().unwrap().to_owned(),
                    e["_refs"]["actor"]["title"].as_str().unwrap().to_owned(),
                    e["_refs"]["from_user"]["title"].clone(),
                    e["_refs"]["to_user"]["title"].clone(),
                    e["reason"].clone(),
                )
            })
            .collect();
        let expected = [
            ("claim", "rep1", Value::Null, json!("rep1"), Value::Null),
            (
                "release",
                "rep1",
                json!("rep1"),
                Value::Null,
                json!("no_need"),
            ),
            ("assign", "boss", Value::Null, json!("rep1"), Value::Null),
            (
                "return",
                "system",
                json!("rep1"),
                Value::Null,
                json!("auto_return"),
            ),
            ("assign", "boss", Value::Null, json!("boss"), Value::Null),
            ("move", "boss", json!("boss"), Value::Null, Value::Null),
        ];
        assert_eq!(rows.len(), expected.len(), "{history:?}");
        for (row, (action, actor, from, to, reason)) in rows.iter().zip(expected) {
            assert_eq!(
                row,
                &(action.to_owned(), actor.to_owned(), from, to, reason),
                "{history:?}"
            );
        }
        assert_eq!(history[1]["note"], "wrong industry");
        assert_eq!(history[5]["note"], "for the new team");
        let times: Vec<&str> = history.iter().map(|e| e["at"].as_str().unwrap()).collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
        // The field audit has every owner change too.
        let (_, audit) = app
            .get(&admin, &format!("/records/lead/{id}/history"))
            .await;
        let owner_changes = audit["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|entry| entry["field"] == "owner" && entry["action"] == "update")
            .count();
        assert_eq!(owner_changes, 6, "six moves: {audit}");
    }
);

keel_testkit::db_test!(
    hidden_fields_are_masked_before_the_claim_everywhere_and_clear_after,
    |db| async move {
        let settings = PoolSettings {
            auto_return: true,
            ..PoolSettings::default()
        };
        let app = spawn_app(&db.url, settings, 1).await;
        let admin = app.token("admin").await;
        let rep = app.token("rep1").await;
        let viewer = app.token("viewer").await;
        let id = app.pooled(&admin, "Secret", "13912345678").await;
        let masked =
            |record: &Value| record["phone"] != "13912345678" && record["company"] != "Secret Co";

        // The pool list and one record of it, as a member.
        let (status, list) = app.get(&rep, "/pools/leads/records").await;
        assert_eq!(status, StatusCode::OK, "{list}");
        assert!(masked(&list["data"][0]), "{list}");
        let (status, record) = app.get(&rep, &format!("/pools/leads/records/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{record}");
        assert!(masked(&record), "{record}");
        // Search and filters do not match hidden values.
        for query in [
            "q=12345678",
            "q=Secret%20Co",
            "phone=eq.13912345678",
            "company=like.Sec*",
        ] {
            let (status, found) = app
                .get(&rep, &format!("/pools/leads/records?{query}"))
                .await;
            assert_eq!(status, StatusCode::OK, "{query}: {found}");
            assert_eq!(found["data"], json!([]), "{query}");
            let (status, found) = app.get(&viewer, &format!("/records/lead?{query}")).await;
            assert_eq!(status, StatusCode::OK, "{query}: {found}");
            assert_eq!(found["data"], json!([]), "{query}");
        }
        // Get, list and export, as a user who reads every lead but may not unmask.
        let (_, record) = app.get(&viewer, &format!("/records/lead/{id}")).await;
        assert!(masked(&record), "{record}");
        let export = app
            .request(&viewer, Method::GET, "/records/lead/export?format=ndjson")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            !export.contains("13912345678") && !export.contains("Secret Co"),
            "{export}"
        );
        // The field history.
        let (_, history) = app
            .get(&viewer, &format!("/records/lead/{id}/history"))
            .await;
        assert!(!history.to_string().contains("13912345678"), "{history}");
        // A duplicate check names the pool and shows nothing hidden.
        let (status, matches) = app
            .get(&rep, "/records/lead/duplicates?phone=13912345678")
            .await;
        assert_eq!(status, StatusCode::OK, "{matches}");
        assert_eq!(matches["data"][0]["pool"], "leads", "{matches}");
        assert!(!matches.to_string().contains("13912345678"), "{matches}");
        // An admin sees it in clear.
        let (_, record) = app.get(&admin, &format!("/records/lead/{id}")).await;
        assert_eq!(record["phone"], "13912345678");

        // After the claim the new owner sees it, and so does everyone who reads it.
        let (status, claimed) = app.claim(&rep, &id).await;
        assert_eq!(status, StatusCode::OK, "{claimed}");
        assert_eq!(claimed["phone"], "13912345678", "{claimed}");
        assert_eq!(claimed["company"], "Secret Co");
        let (_, record) = app.get(&rep, &format!("/records/lead/{id}")).await;
        assert_eq!(record["phone"], "13912345678");
        let (_, record) = app.get(&viewer, &format!("/records/lead/{id}")).await;
        assert_eq!(record["phone"], "13912345678");
        let (_, record) = app.get(&rep, &format!("/pools/leads/records/{id}")).await;
        assert_eq!(record["phone"], "13912345678", "{record}");
        assert!(record["_pool"]["return_at"].is_string(), "{record}");
        let (_, found) = app.get(&rep, "/records/lead?q=12345678").await;
        assert_eq!(found["data"].as_array().unwrap().len(), 1, "{found}");

        // Back in the pool, the return notification shows nothing hidden.
        app.clock.advance(Duration::days(3));
        assert_eq!(app.sweep().await.changed, 1);
        let messages = app.notifications(&rep).await;
        assert!(!messages.is_empty());
        assert!(
            messages
                .iter()
                .all(|m| !m.contains("13912345678") && !m.contains("Secret Co")),
            "{messages:?}"
        );
        let (_, record) = app.get(&viewer, &format!("/records/lead/{id}")).await;
        assert!(masked(&record), "{record}");
    }
);

keel_testkit::db_test!(
    refused_moves_change_nothing_a_bad_reason_is_422_a_rep_assigning_is_403_and_unseen_records_are_404,
    |db| async move {
        let app = spawn_app(&db.url, PoolSettings::default(), 2).await;
        let admin = app.token("admin").await;
        let rep = app.token("rep1").await;
        let other = app.token("rep2").await;
        let viewer = app.token("viewer").await;
        let id = app.pooled(&admin, "Guarded", "13200000001").await;
        assert_eq!(app.claim(&rep, &id).await.0, StatusCode::OK);
        let (_, before) = app.get(&admin, &format!("/records/lead/{id}")).await;

        let (status, body) = app
            .post(
                &rep,
                &format!("/pools/leads/records/{id}/release"),
                json!({ "reason": "bored" }),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["errors"][0]["field"], "reason");
        let (status, body) = app
            .post(&rep, &format!("/pools/leads/records/{id}/assign"), json!({ "user": "rep2" }))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        let (status, body) = app
            .post(&rep, "/pools/leads/assign", json!({ "ids": [id], "user": "rep2" }))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        // Another rep may not release, see the history of, or learn of a record held by rep1.
        let (status, _) = app
            .post(
                &other,
                &format!("/pools/leads/records/{id}/release"),
                json!({ "reason": "no_need" }),
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = app.get(&other, &format!("/records/lead/{id}/pool-history")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        // A record that is not in the pool, and a pool the user may not see.
        let (status, own) = app
            .post(&other, "/records/lead", json!({ "name": "Mine", "phone": "13200000002" }))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{own}");
        let (status, _) = app.claim(&rep, own["id"].as_str().unwrap()).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = app.claim(&rep, "no-such-id").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = app.get(&viewer, "/pools/leads/records").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, pools) = app.get(&viewer, "/pools").await;
        assert_eq!((status, pools["data"].clone()), (StatusCode::OK, json!([])));
        // Assigning to someone outside the pool's roles names the field.
        let (status, body) = app
            .post(&admin, &format!("/pools/leads/records/{id}/assign"), json!({ "user": "viewer" }))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["errors"][0]["field"], "user");

        let (_, after) = app.get(&admin, &format!("/records/lead/{id}")).await;
        assert_eq!(before, after, "nothing changed");
        let history = app.history(&admin, &id).await;
        assert_eq!(history.len(), 1, "only the claim: {history:?}");
    }
);

keel_testkit::db_test!(
    a_manager_assigns_many_records_all_or_nothing_and_follows_the_team_in_the_held_list,
    |db| async move {
        let app = spawn_app(&db.url, PoolSettings::default(), 1).await;
        keel_runtime::accounts::add_user(
            app.state.db(),
            app.state.schema(),
            keel_runtime::accounts::NewUser {
                username: "teamrep".to_owned(),
                display_name: None,
                password: PASSWORD.to_owned(),
                roles: vec!["rep".to_owned()],
                manager: Some("boss".to_owned()),
                department: None,
                language: None,
                email: None,
            },
        )
        .await
        .unwrap();
        let admin = app.token("admin").await;
        let boss = app.token("boss").await;
        let outsider = app.token("rep1").await;
        let a = app.pooled(&admin, "Alpha", "13100000001").await;
        let b = app.pooled(&admin, "Beta", "13100000002").await;
        app.pooled(&admin, "Gamma", "13100000003").await;

        let (status, body) = app
            .post(
                &boss,
                "/pools/leads/assign",
                json!({ "ids": [a, b, "no-such-id"], "user": "teamrep" }),
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        let (_, in_pool) = app.get(&outsider, "/pools/leads/records").await;
        assert_eq!(
            in_pool["data"].as_array().unwrap().len(),
            3,
            "nothing moved"
        );

        let too_many: Vec<String> = (0..1_001).map(|n| format!("id-{n}")).collect();
        let (status, body) = app
            .post(
                &boss,
                "/pools/leads/assign",
                json!({ "ids": too_many, "user": "teamrep" }),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["errors"][0]["field"], "ids");
        let (status, body) = app
            .post(
                &boss,
                "/pools/leads/assign",
                json!({ "ids": [a], "user": "teamrep", "note": "x".repeat(2_001) }),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["errors"][0]["field"], "note");

        let (status, body) = app
            .post(
                &boss,
                "/pools/leads/assign",
                json!({ "ids": [a, b], "user": "teamrep" }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["data"].as_array().unwrap().len(), 2);
        let (_, held) = app.get(&boss, "/pools/leads/records?held=true").await;
        let mut names: Vec<&str> = held["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|record| record["name"].as_str().unwrap())
            .collect();
        names.sort_unstable();
        assert_eq!(
            names,
            ["Alpha", "Beta"],
            "the boss follows the team: {held}"
        );
        let (_, held) = app.get(&outsider, "/pools/leads/records?held=true").await;
        assert_eq!(held["data"], json!([]), "not the outsider's");
        let teamrep = app.token("teamrep").await;
        assert_eq!(app.notifications(&teamrep).await.len(), 2, "one per record");
    }
);

#[test]
fn only_text_email_and_phone_fields_can_be_hidden_until_claimed() {
    let mut settings = pool_yaml(&PoolSettings::default());
    settings = settings.replace(
        "hide_until_claimed: [phone, company]",
        "hide_until_claimed: [phone, status]",
    );
    let app = AppDir::new(&[
        ("metadata/app.yaml", APP),
        ("metadata/roles.yaml", ROLES),
        ("metadata/objects/lead.yaml", LEAD),
        ("metadata/pools/leads.yaml", &settings),
    ]);
    let errors = keel_meta::load_app(app.path()).expect_err("a choice field cannot be hidden");
    let text = errors.to_string();
    assert!(
        text.contains("`status` cannot be hidden until claimed"),
        "{text}"
    );
    assert!(!text.contains("`phone`"), "{text}");
}
