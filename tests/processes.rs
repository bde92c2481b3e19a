//! Sales processes as a client sees them (docs/processes.md): transitions along `linear`
//! and explicit rules, `require`d fields (every missing one listed, or given in the call),
//! guards, the stage field owned by the process (PATCH, bulk and create refused), the stage
//! history, and approvals — `any`, `all`, two steps, no approver under both policies,
//! recall, reject, the lock, self-approval refused, approvers notified, the inbox — and
//! reminders sent once per period across two processes. Real HTTP on loopback over SQLite
//! and PostgreSQL; time is a `ManualClock`.

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone as _, Utc};
use keel_runtime::clock::ManualClock;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{Api, AppDir, send_json};

const APP: &str = "name: { en: Deals }\nlanguage: en\ntimezone: Asia/Shanghai\n";

const ROLES: &str = "\
roles:
  admin: { admin: true }
  rep: {}
  manager: {}
  director: {}
  ceo: {}
permissions:
  rep:
    deal: { read: own, create: true, edit: own, delete: own }
  manager:
    deal: { read: subordinates, create: true, edit: subordinates }
  director:
    deal: { read: all }
  ceo:
    deal: { read: all }
";

const DEAL: &str = "\
name: deal
label: { en: Deal }
title: name
fields:
  name: { type: text, required: true }
  stage:
    type: choice
    options: [lead, qualify, propose, negotiate, won, lost]
  budget: { type: money }
  contact: { type: text }
  discount: { type: percent }
  lost_reason: { type: text }
  note: { type: text }
";

const PROCESS: &str = "\
name: deal_sales
object: deal
stage_field: stage
stages:
  - { key: lead, probability: 10 }
  - { key: qualify, probability: 30, require: [budget, contact] }
  - key: propose
    probability: 60
    approval:
      when: 'record.discount != () && record.discount > 15'
      steps:
        - approvers: manager
      if_no_approver: admin
      remind_after: 1h
  - key: negotiate
    probability: 80
    approval:
      steps:
        - { approvers: [role: director], mode: all }
        - approvers: [user: ceo]
        - approvers: [role: nobody_has_it]
      if_no_approver: approve
      remind_after: 1d
  - { key: won, probability: 100, outcome: won, on_enter: [deal_won] }
  - { key: lost, probability: 0, outcome: lost, require: [lost_reason] }
transitions:
  - { linear: true }
  - { from: \"*\", to: lost }
  - { from: lost, to: lead, guard: reopen_guard }
";

const DEAL_WON: &str = "update(\"deal\", record.id, #{ note: \"won!\" });\n";

const REOPEN_GUARD: &str = "\
if !user.roles.contains(\"manager\") { reject(\"only a manager reopens a lost deal\"); }
true
";

const PASSWORD: &str = "process-password";

/// 10:00 on 2 March 2026 in Shanghai.
fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 2, 0, 0).unwrap()
}

fn app_dir() -> AppDir {
    let roles = ROLES.replace("  ceo: {}\n", "  ceo: {}\n  nobody_has_it: {}\n");
    AppDir::new(&[
        ("metadata/app.yaml", APP),
        ("metadata/roles.yaml", &roles),
        ("metadata/objects/deal.yaml", DEAL),
        ("workflows/processes/deal_sales.yaml", PROCESS),
        ("scripts/deal_won.rhai", DEAL_WON),
        ("scripts/reopen_guard.rhai", REOPEN_GUARD),
    ])
}

struct TestApp {
    api: Api,
    clock: ManualClock,
    state: keel_web::AppState,
    _app: AppDir,
}

/// Serves the fixture app on `db_url` with users admin, boss (manager of rep1), rep1, rep2
/// (no manager), dir1, dir2 (directors) and ceo.
async fn spawn_app(db_url: &str) -> TestApp {
    let app = app_dir();
    let db = keel_store::Db::connect(db_url).await.unwrap();
    let schema = Arc::new(
        keel_meta::load_app(app.path()).unwrap_or_else(|errors| panic!("fixture app:\n{errors}")),
    );
    keel_store::migrate::apply(&db, &schema, false)
        .await
        .unwrap();
    crate::support::add_team(
        &db,
        &schema,
        PASSWORD,
        &[
            ("admin", "admin", None),
            ("boss", "manager", None),
            ("rep1", "rep", Some("boss")),
            ("rep2", "rep", None),
            ("dir1", "director", None),
            ("dir2", "director", None),
            ("ceo", "ceo", None),
        ],
    )
    .await;
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

    async fn create(&self, token: &str, body: Value) -> String {
        let (status, body) = self.post(token, "/records/deal", body).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_str().unwrap().to_owned()
    }

    async fn move_to(&self, token: &str, id: &str, to: &str, fields: Value) -> (StatusCode, Value) {
        self.post(
            token,
            &format!("/records/deal/{id}/transition"),
            json!({ "to": to, "comment": format!("to {to}"), "fields": fields }),
        )
        .await
    }

    async fn stage(&self, token: &str, id: &str) -> String {
        let (status, body) = self.get(token, &format!("/records/deal/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["stage"].as_str().unwrap_or_default().to_owned()
    }

    async fn history(&self, token: &str, id: &str) -> Vec<Value> {
        let (status, body) = self
            .get(token, &format!("/records/deal/{id}/stage-history"))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["data"].as_array().unwrap().clone()
    }

    /// The deal's stage summary as the funnel reads it (`keel_stages`, JSON).
    async fn summary(&self, id: &str) -> Value {
        let sql = "SELECT CAST(keel_stages AS TEXT) FROM deal WHERE id = $1";
        let text: Option<String> = match self.state.db() {
            keel_store::Db::Sqlite(pool, _) => {
                sqlx::query_scalar(sql).bind(id).fetch_one(pool).await
            }
            keel_store::Db::Postgres(pool) => {
                sqlx::query_scalar(sql).bind(id).fetch_one(pool).await
            }
        }
        .unwrap();
        text.map_or(Value::Null, |text| serde_json::from_str(&text).unwrap())
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

    async fn inbox(&self, token: &str) -> Vec<Value> {
        let (status, body) = self.get(token, "/approvals?state=pending").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["data"].as_array().unwrap().clone()
    }

    async fn decide(&self, token: &str, id: &str, what: &str) -> (StatusCode, Value) {
        self.post(
            token,
            &format!("/approvals/{id}/{what}"),
            json!({ "comment": format!("{what} it") }),
        )
        .await
    }

    /// A deal of `token`'s user in stage `qualify`.
    async fn qualified(&self, token: &str, name: &str) -> String {
        let id = self.create(token, json!({ "name": name })).await;
        let (status, body) = self
            .move_to(
                token,
                &id,
                "qualify",
                json!({ "budget": "1000", "contact": "Ms Li" }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        id
    }

    fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }
}

/// `errors[0].code`.
fn code(body: &Value) -> &str {
    body["errors"][0]["code"].as_str().unwrap_or_default()
}

fn fields(body: &Value) -> Vec<String> {
    let mut fields: Vec<String> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|error| error["field"].as_str().unwrap_or_default().to_owned())
        .collect();
    fields.sort();
    fields
}

keel_testkit::db_test!(
    transitions_follow_the_rules_check_required_fields_and_guards_and_write_history,
    |db| async move {
        let app = spawn_app(&db.url).await;
        let rep = app.token("rep1").await;
        let boss = app.token("boss").await;

        // A create puts the deal in the first stage and writes the first history row.
        let id = app.create(&rep, json!({ "name": "Acme" })).await;
        assert_eq!(app.stage(&rep, &id).await, "lead");
        let history = app.history(&rep, &id).await;
        assert_eq!(history.len(), 1, "{history:?}");
        assert!(history[0]["from_stage"].is_null());
        assert_eq!(history[0]["to_stage"], "lead");

        // The stage path offers the neighbour (with what it still needs) and `lost`.
        let (status, path) = app
            .get(&rep, &format!("/records/deal/{id}/transitions"))
            .await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(path["current"], "lead");
        let offered: Vec<(String, Value)> = path["transitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| (t["to"].as_str().unwrap().to_owned(), t["missing"].clone()))
            .collect();
        assert_eq!(
            offered,
            [
                ("qualify".to_owned(), json!(["budget", "contact"])),
                ("lost".to_owned(), json!(["lost_reason"]))
            ]
        );

        // Linear: only the neighbour; a jump is 409.
        let (status, body) = app.move_to(&rep, &id, "propose", json!({})).await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_eq!(code(&body), "transition_not_allowed");

        // Every missing required field is listed at once.
        let (status, body) = app.move_to(&rep, &id, "qualify", json!({})).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(fields(&body), ["budget", "contact"]);
        assert!(
            body["errors"]
                .as_array()
                .unwrap()
                .iter()
                .all(|e| e["code"] == "required")
        );
        assert_eq!(app.stage(&rep, &id).await, "lead");

        // Fields given in the call fill them, in the same transaction.
        app.advance(Duration::hours(5));
        let (status, body) = app
            .move_to(
                &rep,
                &id,
                "qualify",
                json!({ "budget": "5000", "contact": "Mr Wang" }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["stage"], "qualify");
        assert_eq!(body["budget"], "5000.00");
        let history = app.history(&rep, &id).await;
        assert_eq!(history.len(), 2);
        assert_eq!(history[1]["from_stage"], "lead");
        assert_eq!(history[1]["to_stage"], "qualify");
        assert_eq!(history[1]["seconds_in_from"], 5 * 3600);
        assert_eq!(history[1]["comment"], "to qualify");
        assert_eq!(history[1]["by_user"], body["updated_by"]);

        // Linear backwards is allowed. The time in a stage is whole seconds, truncated,
        // across a change of second whose fraction is smaller than the one before it.
        app.advance(Duration::milliseconds(61_750));
        let (status, body) = app.move_to(&rep, &id, "lead", json!({})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        app.advance(Duration::milliseconds(1_400));
        let (status, _) = app.move_to(&rep, &id, "qualify", json!({})).await;
        assert_eq!(status, StatusCode::OK);
        let history = app.history(&rep, &id).await;
        let stays: Vec<_> = history
            .iter()
            .map(|h| h["seconds_in_from"].clone())
            .collect();
        assert_eq!(stays, [json!(null), json!(5 * 3600), json!(61), json!(1)]);
        // Each move keeps the summary the funnel reads: per stage [entered, completed stays,
        // their seconds].
        assert_eq!(
            app.summary(&id).await,
            json!({ "lead": [2, 2, 5 * 3600 + 1], "qualify": [2, 1, 61] })
        );
        // propose (no discount: no approval) → negotiate needs approval; won is not a
        // neighbour of propose, and linear never leads to `lost`.
        let (status, body) = app.move_to(&rep, &id, "propose", json!({})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, body) = app.move_to(&rep, &id, "won", json!({})).await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");

        // Any stage may be lost (`*`), which requires a reason.
        let (status, body) = app.move_to(&rep, &id, "lost", json!({})).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(fields(&body), ["lost_reason"]);
        let (status, body) = app
            .move_to(&rep, &id, "lost", json!({ "lost_reason": "price" }))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        // lost is skipped by linear: no way from it to a neighbour in file order.
        let (status, body) = app.move_to(&rep, &id, "negotiate", json!({})).await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_eq!(code(&body), "transition_not_allowed");

        // The guard of lost → lead refuses the rep, with its message and name, and lets the
        // manager through.
        let (status, body) = app.move_to(&rep, &id, "lead", json!({})).await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_eq!(code(&body), "guard_refused");
        assert_eq!(body["script"], "reopen_guard");
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("only a manager")
        );
        let (status, body) = app.move_to(&boss, &id, "lead", json!({})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let stages: Vec<String> = app
            .history(&rep, &id)
            .await
            .iter()
            .map(|row| row["to_stage"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            stages,
            [
                "lead", "qualify", "lead", "qualify", "propose", "lost", "lead"
            ]
        );

        // An unknown stage is 422; a record the caller may not see is 404.
        let (status, _) = app.move_to(&rep, &id, "nowhere", json!({})).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        let rep2 = app.token("rep2").await;
        let (status, _) = app.move_to(&rep2, &id, "qualify", json!({})).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = app
            .get(&rep2, &format!("/records/deal/{id}/stage-history"))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
);

keel_testkit::db_test!(
    the_stage_changes_only_through_a_transition_never_by_patch_bulk_or_create,
    |db| async move {
        let app = spawn_app(&db.url).await;
        let rep = app.token("rep1").await;
        let id = app
            .create(&rep, json!({ "name": "Acme", "stage": "lead" }))
            .await;

        let (status, body) = app
            .patch(
                &rep,
                &format!("/records/deal/{id}"),
                json!({ "stage": "qualify" }),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["errors"][0]["field"], "stage");
        assert_eq!(code(&body), "use_transition");
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("/transition")
        );

        let (status, body) = app
            .post(
                &rep,
                "/records/deal/bulk",
                json!([{ "id": id, "stage": "qualify" }, { "name": "New", "stage": "won" }]),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(fields(&body), ["0.stage", "1.stage"]);

        let (status, body) = app
            .post(
                &rep,
                "/records/deal",
                json!({ "name": "Won already", "stage": "won" }),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(code(&body), "use_transition");

        // Other fields still save, and the stage stays.
        let (status, body) = app
            .patch(
                &rep,
                &format!("/records/deal/{id}"),
                json!({ "note": "hi", "stage": "lead" }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(app.stage(&rep, &id).await, "lead");
        assert_eq!(app.history(&rep, &id).await.len(), 1);
    }
);

keel_testkit::db_test!(
    an_approval_by_the_manager_locks_the_record_refuses_self_approval_and_completes_the_move,
    |db| async move {
        let app = spawn_app(&db.url).await;
        let rep = app.token("rep1").await;
        let boss = app.token("boss").await;
        let admin = app.token("admin").await;
        let id = app.qualified(&rep, "Discounted").await;

        // Without a discount above 15 no approval applies; with one, 202 and a pending
        // approval, the record still in `qualify`.
        let (status, body) = app
            .move_to(&rep, &id, "propose", json!({ "discount": "20" }))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let approval = body["approval"].clone();
        let approval_id = approval["id"].as_str().unwrap().to_owned();
        assert_eq!(approval["state"], "pending");
        assert_eq!(approval["stage"], "propose");
        assert_eq!(approval["step"], 0);
        assert_eq!(app.stage(&rep, &id).await, "qualify");
        let (_, record) = app.get(&rep, &format!("/records/deal/{id}")).await;
        assert_eq!(record["discount"], "20.00", "the fields given are saved");

        let (_, path) = app
            .get(&rep, &format!("/records/deal/{id}/transitions"))
            .await;
        assert_eq!(
            path["pending_approval"]["id"],
            approval_id.as_str(),
            "{path}"
        );
        assert_eq!(path["transitions"], json!([]));

        // Locked: the rep's edits, deletes and transitions are 409; the admin may edit.
        let path = format!("/records/deal/{id}");
        let (status, body) = app.patch(&rep, &path, json!({ "note": "x" })).await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_eq!(code(&body), "approval_pending");
        let (status, body) = send_json(app.request(&rep, Method::DELETE, &path)).await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        let (status, body) = app.move_to(&rep, &id, "lead", json!({})).await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_eq!(code(&body), "approval_pending");
        let (status, body) = app.patch(&admin, &path, json!({ "note": "admin" })).await;
        assert_eq!(status, StatusCode::OK, "{body}");

        // The manager is notified and finds it in the inbox; the rep cannot approve their
        // own request and sees nothing waiting for them.
        let messages = app.notifications(&boss).await;
        assert!(
            messages.iter().any(|m| m.contains("Approval needed")),
            "{messages:?}"
        );
        let inbox = app.inbox(&boss).await;
        assert_eq!(inbox.len(), 1, "{inbox:?}");
        assert_eq!(inbox[0]["id"], approval_id.as_str());
        assert_eq!(inbox[0]["object"], "deal");
        assert_eq!(inbox[0]["record_id"], id.as_str());
        assert_eq!(inbox[0]["record_title"], "Discounted");
        assert!(app.inbox(&rep).await.is_empty());
        let (status, body) = app.decide(&rep, &approval_id, "approve").await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_eq!(code(&body), "not_an_approver");
        let (status, body) = app.decide(&boss, &approval_id, "recall").await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_eq!(code(&body), "not_the_requester");
        let rep2 = app.token("rep2").await;
        let (status, _) = app.get(&rep2, &format!("/approvals/{approval_id}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        // The manager approves: the move completes on the rep's behalf, recorded as the
        // manager's; the record is unlocked.
        app.advance(Duration::hours(2));
        let (status, body) = app.decide(&boss, &approval_id, "approve").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["state"], "approved");
        assert_eq!(app.stage(&rep, &id).await, "propose");
        let history = app.history(&rep, &id).await;
        let last = history.last().unwrap();
        assert_eq!(last["from_stage"], "qualify");
        assert_eq!(last["to_stage"], "propose");
        assert_eq!(last["by_user"], body["decided_by"]);
        assert_eq!(last["seconds_in_from"], 2 * 3600);
        let (status, _) = app
            .patch(&rep, &path, json!({ "note": "free again" }))
            .await;
        assert_eq!(status, StatusCode::OK);
        assert!(app.inbox(&boss).await.is_empty());
        let rep_messages = app.notifications(&rep).await;
        assert!(
            rep_messages.iter().any(|m| m.contains("Approval granted")),
            "{rep_messages:?}"
        );

        // The trail is on the record.
        let (status, trail) = app
            .get(&rep, &format!("/records/deal/{id}/approvals"))
            .await;
        assert_eq!(status, StatusCode::OK, "{trail}");
        let tasks = trail["data"][0]["tasks"].as_array().unwrap();
        assert_eq!(tasks.len(), 1);
        assert_eq!(tasks[0]["state"], "approved");
        assert_eq!(tasks[0]["comment"], "approve it");
        let (status, _) = app.decide(&boss, &approval_id, "approve").await;
        assert_eq!(status, StatusCode::CONFLICT, "decided already");
    }
);

keel_testkit::db_test!(
    all_of_a_step_must_approve_steps_run_in_order_and_an_empty_step_passes,
    |db| async move {
        let app = spawn_app(&db.url).await;
        let boss = app.token("boss").await;
        let dir1 = app.token("dir1").await;
        let dir2 = app.token("dir2").await;
        let ceo = app.token("ceo").await;
        let rep = app.token("rep1").await;
        let id = app.qualified(&rep, "Big").await;
        let (status, _) = app.move_to(&rep, &id, "propose", json!({})).await;
        assert_eq!(status, StatusCode::OK);

        // negotiate always needs approval: all directors, then the ceo, then a role nobody
        // holds (if_no_approver: approve, so that step passes).
        let (status, body) = app.move_to(&rep, &id, "negotiate", json!({})).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let approval_id = body["approval"]["id"].as_str().unwrap().to_owned();
        assert_eq!(body["approval"]["waiting_for"].as_array().unwrap().len(), 2);
        assert!(
            app.inbox(&ceo).await.is_empty(),
            "the second step waits its turn"
        );
        let (status, _) = app.decide(&ceo, &approval_id, "approve").await;
        assert_eq!(status, StatusCode::CONFLICT);

        let (status, body) = app.decide(&dir1, &approval_id, "approve").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["state"], "pending");
        assert_eq!(body["step"], 0, "mode all: dir2 has not approved");
        assert_eq!(app.inbox(&dir2).await.len(), 1);
        let (status, body) = app.decide(&dir2, &approval_id, "approve").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["step"], 1);
        assert_eq!(app.stage(&rep, &id).await, "propose");
        assert_eq!(app.inbox(&ceo).await.len(), 1);
        let messages = app.notifications(&ceo).await;
        assert!(
            messages.iter().any(|m| m.contains("Approval needed")),
            "{messages:?}"
        );

        let (status, body) = app.decide(&ceo, &approval_id, "approve").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["state"], "approved");
        assert_eq!(app.stage(&rep, &id).await, "negotiate");

        // A rejection in an `all` step ends it at once; the record stays and is unlocked.
        let id = app.qualified(&rep, "Rejected").await;
        app.move_to(&rep, &id, "propose", json!({})).await;
        let (status, body) = app.move_to(&rep, &id, "negotiate", json!({})).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let approval_id = body["approval"]["id"].as_str().unwrap().to_owned();
        let (status, body) = app.decide(&dir2, &approval_id, "reject").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["state"], "rejected");
        assert_eq!(body["decision_comment"], "reject it");
        assert!(app.inbox(&dir1).await.is_empty());
        assert_eq!(app.stage(&rep, &id).await, "propose");
        let (status, _) = app
            .patch(
                &rep,
                &format!("/records/deal/{id}"),
                json!({ "note": "unlocked" }),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let messages = app.notifications(&rep).await;
        assert!(
            messages.iter().any(|m| m.contains("rejected")),
            "{messages:?}"
        );

        // A recall by the requester ends it too.
        let (status, body) = app.move_to(&rep, &id, "negotiate", json!({})).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let approval_id = body["approval"]["id"].as_str().unwrap().to_owned();
        let (status, body) = app.decide(&rep, &approval_id, "recall").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["state"], "recalled");
        assert!(app.inbox(&dir1).await.is_empty());
        assert_eq!(app.stage(&rep, &id).await, "propose");
        let (status, body) = app.get(&boss, "/approvals?state=bogus").await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    }
);

keel_testkit::db_test!(
    without_a_manager_the_admins_approve_and_the_requester_never_approves_their_own,
    |db| async move {
        let app = spawn_app(&db.url).await;
        let rep2 = app.token("rep2").await;
        let admin = app.token("admin").await;
        let boss = app.token("boss").await;
        // rep2 has no manager: if_no_approver admin makes every admin an approver.
        let id = app.qualified(&rep2, "No manager").await;
        let (status, body) = app
            .move_to(&rep2, &id, "propose", json!({ "discount": "30" }))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let approval_id = body["approval"]["id"].as_str().unwrap().to_owned();
        assert!(app.inbox(&boss).await.is_empty());
        assert_eq!(app.inbox(&admin).await.len(), 1);
        let (status, body) = app.decide(&admin, &approval_id, "approve").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(app.stage(&rep2, &id).await, "propose");

        // The boss's own deal: the owner's manager is nobody, and the boss is never asked to
        // approve their own request; with if_no_approver admin the admin is.
        let id = app.qualified(&boss, "Boss deal").await;
        let (status, body) = app
            .move_to(&boss, &id, "propose", json!({ "discount": "40" }))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let waiting = body["approval"]["waiting_for"].as_array().unwrap().clone();
        assert_eq!(waiting.len(), 1);
        assert!(app.inbox(&boss).await.is_empty());

        // An admin asking for the move to propose on a deal they own: every other admin…
        // there is none, so the step passes (no one approves their own request) only under
        // `approve`; under `admin` the admin stays the only candidate and is excluded, so
        // the approval completes at once.
        let id = app.qualified(&admin, "Admin deal").await;
        let (status, body) = app
            .move_to(&admin, &id, "propose", json!({ "discount": "50" }))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["stage"], "propose");
    }
);

keel_testkit::db_test!(
    reminders_go_out_once_per_period_across_two_processes,
    |db| async move {
        let app = spawn_app(&db.url).await;
        // A second process on the same database, sharing the clock.
        let second = keel_web::AppState::with_clock(
            app.state.schema().clone(),
            keel_store::Db::connect(&db.url).await.unwrap(),
            Arc::new(app.clock.clone()),
        );
        let rep = app.token("rep1").await;
        let boss = app.token("boss").await;
        let id = app.qualified(&rep, "Waiting").await;
        let (status, body) = app
            .move_to(&rep, &id, "propose", json!({ "discount": "20" }))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let reminders =
            |messages: Vec<String>| messages.iter().filter(|m| m.contains("Reminder")).count();

        let both = || async {
            let (a, b) = tokio::join!(app.state.processes().remind(), second.processes().remind());
            a.unwrap().reminded + b.unwrap().reminded
        };
        app.advance(Duration::minutes(59));
        assert_eq!(both().await, 0, "not yet an hour");
        app.advance(Duration::minutes(2));
        assert_eq!(
            both().await,
            1,
            "one reminder after the first hour, from one process"
        );
        assert_eq!(both().await, 0, "and only one");
        assert_eq!(reminders(app.notifications(&boss).await), 1);
        app.advance(Duration::minutes(30));
        assert_eq!(both().await, 0);
        app.advance(Duration::minutes(30));
        assert_eq!(both().await, 1, "the second period");
        assert_eq!(reminders(app.notifications(&boss).await), 2);

        // A decided approval is reminded no more.
        let approval_id = app.inbox(&boss).await[0]["id"].as_str().unwrap().to_owned();
        app.decide(&boss, &approval_id, "approve").await;
        app.advance(Duration::hours(5));
        assert_eq!(both().await, 0);
    }
);

keel_testkit::db_test!(
    the_scheduler_job_reminds_once_per_period_when_two_schedulers_tick_together,
    |db| async move {
        let app = spawn_app(&db.url).await;
        let second = keel_web::AppState::with_clock(
            app.state.schema().clone(),
            keel_store::Db::connect(&db.url).await.unwrap(),
            Arc::new(app.clock.clone()),
        );
        let schedulers = [app.state.scheduler().clone(), second.scheduler().clone()];
        assert!(
            schedulers[0]
                .jobs()
                .iter()
                .any(|job| job.name == "approvals:remind"),
            "the app has approvals, so the reminder job exists"
        );
        let rep = app.token("rep1").await;
        let boss = app.token("boss").await;
        let id = app.qualified(&rep, "Scheduled").await;
        let (status, body) = app
            .move_to(&rep, &id, "propose", json!({ "discount": "20" }))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        // The first tick starts the schedule; then a tick of both every minute for 2h10m.
        for scheduler in &schedulers {
            scheduler.tick().await.unwrap();
        }
        let mut claimed = 0;
        for _ in 0..130 {
            app.advance(Duration::minutes(1));
            let (a, b) = tokio::join!(schedulers[0].tick(), schedulers[1].tick());
            claimed += a.unwrap().claimed + b.unwrap().claimed;
        }
        assert_eq!(
            claimed, 130,
            "each minute's pass claimed by exactly one scheduler"
        );
        let reminders = app
            .notifications(&boss)
            .await
            .iter()
            .filter(|m| m.contains("Reminder"))
            .count();
        assert_eq!(
            reminders, 2,
            "one after the first hour, one after the second"
        );
    }
);
