//! The part of the OpenAPI document beyond records: lead pools (docs/pools.md), sales
//! processes and approvals (docs/processes.md), the reports and the calendar
//! (docs/reports.md) and the admins' rules console (docs/scheduler.md).
//!
//! Like the record paths, these are generated from the metadata: a pool's operations are
//! listed per pool the user may see (with the filters of its object), a process's per object
//! that has one (the stages as an enum), the rules' per job name. Every status the handler
//! can answer is listed, and bodies say `additionalProperties: false` (the handlers deny
//! unknown keys).

use keel_meta::{Process, Schema};
use keel_runtime::pools::MAX_NOTE_CHARS;
use keel_runtime::processes::MAX_COMMENT_CHARS;
use keel_runtime::records::MAX_BULK_ITEMS;
use serde_json::{Map, Value, json};

use super::{
    Direction, FILTER_DATE, FILTER_OPERATORS, ObjectView, QUERY_WHITESPACE, UserAccess, WHITESPACE,
    field_schema, ignored_keys, list_parameters, schema_ref, with_problems,
};

/// The component schemas this module's paths refer to; object schemas never take these
/// names (`object_views` avoids them as it avoids `SHARED_SCHEMAS`).
pub(super) const SCHEMAS: &[&str] = &[
    "PoolDescription",
    "PoolHistoryEntry",
    "PoolTiming",
    "StageHistoryEntry",
    "Approval",
    "StagePath",
    "Funnel",
    "Briefing",
    "BriefingFigure",
    "CalendarPage",
    "RuleSummary",
    "RuleRun",
];

/// The most runs one page of `GET /admin/rules/{name}/runs` holds (the handler's cap).
const MAX_RUNS_LIMIT: u32 = 200;

/// A `{data: item}` answer.
fn data_of(item: Value) -> Value {
    json!({
        "type": "object",
        "properties": { "data": item },
        "required": ["data"],
    })
}

/// A `{data: [item]}` answer.
fn data_list(item: Value) -> Value {
    data_of(json!({ "type": "array", "items": item }))
}

fn ok(description: &str, schema: Value) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": schema } },
    })
}

/// A JSON body whose schema is `schema`.
fn body(schema: Value) -> Value {
    json!({
        "required": true,
        "content": { "application/json": { "schema": schema } },
    })
}

/// An optional note or comment: text of at most `max` characters, or `null`.
fn short_text(description: &str, max: usize) -> Value {
    json!({
        "description": description,
        "type": ["string", "null"],
        "maxLength": max,
    })
}

/// A `YYYY-MM-DD` query parameter.
fn date_parameter(name: &str, description: &str) -> Value {
    json!({
        "name": name,
        "in": "query",
        "required": false,
        "description": description,
        "schema": { "type": "string", "pattern": format!("^{FILTER_DATE}$") },
    })
}

/// An enumerated query parameter.
fn enum_parameter(name: &str, description: &str, values: &[&str]) -> Value {
    json!({
        "name": name,
        "in": "query",
        "required": false,
        "description": description,
        "schema": { "type": "string", "enum": values },
    })
}

fn path_parameter(name: &str, description: &str, schema: Value) -> Value {
    json!({
        "name": name,
        "in": "path",
        "required": true,
        "description": description,
        "schema": schema,
    })
}

/// The paths of the pools `access` lets the user see, and the pool history of the objects
/// pools hold.
pub(super) fn pool_paths(
    schema: &Schema,
    views: &[ObjectView<'_>],
    access: &UserAccess<'_>,
    paths: &mut Map<String, Value>,
) {
    if schema.pools.is_empty() {
        return;
    }
    paths.insert(
        "/pools".to_owned(),
        json!({
            "get": {
                "tags": ["Pools"],
                "summary": "The pools I may see",
                "description": "Every pool the user is a member or manager of (admins: every pool), in file order, with its settings (durations in seconds) and the user's `role` in it.",
                "operationId": "pools",
                "responses": with_problems(
                    json!({ "200": ok("The pools.", data_list(schema_ref("PoolDescription"))) }),
                    &[401],
                ),
            },
        }),
    );
    let id_parameter = json!({ "$ref": "#/components/parameters/id" });
    for pool in schema.pools.values() {
        if !(access.sees_pool)(&pool.name) {
            continue;
        }
        let Some(view) = views.iter().find(|view| view.name() == pool.object) else {
            continue;
        };
        let name = &pool.name;
        let tags = json!(["Pools"]);
        let operation_id = |action: &str| format!("pool_{name}_{action}");
        let record = schema_ref(&view.base);
        let pooled_record = json!({
            "allOf": [record],
            "properties": {
                "_pool": {
                    "description": "On a held record: when it would return to the pool and its owner be warned (`null` when the pool has no auto-return).",
                    "anyOf": [schema_ref("PoolTiming"), { "type": "null" }],
                },
            },
        });
        let described = json!({
            "allOf": [schema_ref("PoolDescription")],
            "properties": {
                "mine": {
                    "description": "The user's standing in the pool: records held from it, how many of them count toward `claim_limit`, claims today (app timezone).",
                    "type": "object",
                    "properties": {
                        "held": { "type": "integer", "minimum": 0 },
                        "counted": { "type": "integer", "minimum": 0 },
                        "claimed_today": { "type": "integer", "minimum": 0 },
                    },
                    "required": ["held", "counted", "claimed_today"],
                },
            },
            "required": ["mine"],
        });
        paths.insert(
            format!("/pools/{name}"),
            json!({
                "get": {
                    "tags": tags,
                    "summary": format!("The pool {name}"),
                    "description": "The pool's settings and the user's standing in it.",
                    "operationId": operation_id("describe"),
                    "responses": with_problems(json!({ "200": ok("The pool.", described) }), &[401, 404]),
                },
            }),
        );

        let list_parameters = list_parameters(
            view,
            vec![json!({
                "name": "held",
                "in": "query",
                "required": false,
                "description": "`true` (or `1`): the records held from the pool that the user follows (their own; a manager's team's; every one for an admin), each with `_pool`. `false`, `0`, empty or absent: the records in the pool, nobody's.",
                "schema": { "type": "string", "enum": ["true", "false", "1", "0", ""] },
            })],
            &["held"],
        );
        let page = json!({
            "type": "object",
            "properties": {
                "data": { "type": "array", "items": pooled_record.clone() },
                "next": {
                    "description": "The cursor for the next page (`after`), or null on the last page.",
                    "type": ["string", "null"],
                },
            },
            "required": ["data", "next"],
        });
        paths.insert(
            format!("/pools/{name}/records"),
            json!({
                "get": {
                    "tags": tags,
                    "summary": format!("Records of the pool {name}"),
                    "description": format!(
                        "One page of the records in the pool (fields in `hide_until_claimed` masked), or with `held=true` of the records held from it, exactly like the list of `{}` records. {FILTER_OPERATORS}",
                        view.name()
                    ),
                    "operationId": operation_id("records"),
                    "parameters": list_parameters,
                    "responses": with_problems(
                        json!({
                            "200": ok("One page of records.", page),
                        }),
                        &[401, 403, 404, 422],
                    ),
                },
            }),
        );
        paths.insert(
            format!("/pools/{name}/records/{{id}}"),
            json!({
                "parameters": [id_parameter],
                "get": {
                    "tags": tags,
                    "summary": format!("One record of the pool {name}"),
                    "description": "The record as the pool's list (masked) or held list (with `_pool`) shows it; 404 when it is in neither for this user.",
                    "operationId": operation_id("record"),
                    "responses": with_problems(json!({ "200": ok("The record.", pooled_record) }), &[401, 403, 404]),
                },
            }),
        );
        paths.insert(
            format!("/pools/{name}/records/{{id}}/claim"),
            json!({
                "parameters": [id_parameter],
                "post": {
                    "tags": tags,
                    "summary": format!("Claim a record of the pool {name}"),
                    "description": "Takes the record from the pool: it becomes the user's, unmasked. No body. 409 `pool_refused` with `errors[0].code` `taken`, `claim_limit`, `daily_claim_limit` or `cooldown`.",
                    "operationId": operation_id("claim"),
                    "responses": with_problems(
                        json!({ "200": ok("The record, now the user's.", schema_ref(&view.base)) }),
                        &[401, 403, 404, 409],
                    ),
                },
            }),
        );
        let reason = if pool.release_reasons.is_empty() {
            json!({ "description": "The pool lists no release reasons: none may be given.", "type": "null" })
        } else {
            json!({
                "description": "Why the record goes back: one of the pool's `release_reasons`.",
                "type": "string",
                "enum": pool.release_reasons,
            })
        };
        let mut release_body = json!({
            "type": "object",
            "properties": {
                "reason": reason,
                "note": short_text("A note for the pool history.", MAX_NOTE_CHARS),
            },
            "additionalProperties": false,
        });
        if !pool.release_reasons.is_empty() {
            release_body["required"] = json!(["reason"]);
        }
        let history_answer =
            |description: &str| ok(description, data_of(schema_ref("PoolHistoryEntry")));
        paths.insert(
            format!("/pools/{name}/records/{{id}}/release"),
            json!({
                "parameters": [id_parameter],
                "post": {
                    "tags": tags,
                    "summary": format!("Release a record into the pool {name}"),
                    "description": "Puts a held record back into the pool: its owner may, and the pool's managers and admins (someone else's record is 404 to a member). 409 `in_pool` when it is in the pool already.",
                    "operationId": operation_id("release"),
                    "requestBody": body(release_body),
                    "responses": with_problems(
                        json!({ "200": history_answer("The pool history row of the release.") }),
                        &[401, 403, 404, 409, 413, 415, 422],
                    ),
                },
            }),
        );
        let user = json!({
            "description": "The id or username of an active user with a member or manager role of the pool (a 422 naming `user` otherwise).",
            "type": "string",
        });
        let note = short_text("A note for the pool history.", MAX_NOTE_CHARS);
        paths.insert(
            format!("/pools/{name}/records/{{id}}/assign"),
            json!({
                "parameters": [id_parameter],
                "post": {
                    "tags": tags,
                    "summary": format!("Assign a record of the pool {name}"),
                    "description": "Gives the record (in the pool or held) to a user: the pool's managers and admins only (403 otherwise); claim limits do not apply. The new owner is notified.",
                    "operationId": operation_id("assign"),
                    "requestBody": body(json!({
                        "type": "object",
                        "properties": { "user": user, "note": note },
                        "required": ["user"],
                        "additionalProperties": false,
                    })),
                    "responses": with_problems(
                        json!({ "200": history_answer("The pool history row of the assignment.") }),
                        &[401, 403, 404, 409, 413, 415, 422],
                    ),
                },
            }),
        );
        paths.insert(
            format!("/pools/{name}/assign"),
            json!({
                "post": {
                    "tags": tags,
                    "summary": format!("Assign records of the pool {name}"),
                    "description": format!(
                        "The same as assigning one record, for up to {MAX_BULK_ITEMS} records at once, all or nothing: 404 when any id is not a record of the pool."
                    ),
                    "operationId": operation_id("assign_many"),
                    "requestBody": body(json!({
                        "type": "object",
                        "properties": {
                            "ids": {
                                "type": "array",
                                "minItems": 1,
                                "maxItems": MAX_BULK_ITEMS,
                                "items": { "type": "string" },
                            },
                            "user": user,
                            "note": note,
                        },
                        "required": ["ids", "user"],
                        "additionalProperties": false,
                    })),
                    "responses": with_problems(
                        json!({ "200": ok("The pool history rows, one per record.", data_list(schema_ref("PoolHistoryEntry"))) }),
                        &[401, 403, 404, 409, 413, 415, 422],
                    ),
                },
            }),
        );
        paths.insert(
            format!("/pools/{name}/records/{{id}}/move"),
            json!({
                "parameters": [id_parameter],
                "post": {
                    "tags": tags,
                    "summary": format!("Move a record into the pool {name}"),
                    "description": format!(
                        "Puts a `{}` record the user may read (held, in another pool, or in none) into this pool, nobody's: the pool's managers and admins only (403 otherwise). 409 `in_pool` when it is in the pool already.",
                        view.name()
                    ),
                    "operationId": operation_id("move"),
                    "requestBody": body(json!({
                        "type": "object",
                        "properties": { "note": note },
                        "additionalProperties": false,
                    })),
                    "responses": with_problems(
                        json!({ "200": history_answer("The pool history row of the move.") }),
                        &[401, 403, 404, 409, 413, 415, 422],
                    ),
                },
            }),
        );
    }
    for view in views.iter().filter(|view| !view.pools().is_empty()) {
        let object = view.name();
        paths.insert(
            format!("/records/{object}/{{id}}/pool-history"),
            json!({
                "parameters": [id_parameter],
                "get": {
                    "tags": [object],
                    "summary": format!("Pool history of a {} record", view.label()),
                    "description": "Every claim, release, assignment, return, move and warning of the record, oldest first: for whoever may read the record, and for a record in a pool for whoever may see that pool.",
                    "operationId": view.operation_id("pool_history"),
                    "responses": with_problems(
                        json!({ "200": ok("The pool history.", data_list(schema_ref("PoolHistoryEntry"))) }),
                        &[401, 403, 404],
                    ),
                },
            }),
        );
    }
}

/// The process of `object`, as the runtime finds it (the first one in file order).
fn process_of<'s>(schema: &'s Schema, object: &str) -> Option<&'s Process> {
    schema
        .processes
        .values()
        .find(|process| process.object == object)
}

/// The transition, stage path, stage history and approvals of each object with a process,
/// and the approvals inbox.
pub(super) fn process_paths(
    schema: &Schema,
    views: &[ObjectView<'_>],
    paths: &mut Map<String, Value>,
) {
    if schema.processes.is_empty() {
        return;
    }
    let id_parameter = json!({ "$ref": "#/components/parameters/id" });
    for view in views {
        let Some(process) = process_of(schema, view.name()) else {
            continue;
        };
        let object = view.name();
        let tags = json!([object]);
        let stages: Vec<&str> = process
            .stages
            .iter()
            .map(|stage| stage.key.as_str())
            .collect();
        let mut fields = Map::new();
        if view.may_set_owner {
            fields.insert(
                "owner".to_owned(),
                json!({
                    "description": "The owner's user id. Only admins and users who may edit all records may change it.",
                    "type": "string",
                    "pattern": format!("[^{WHITESPACE}]"),
                }),
            );
        }
        for field in view
            .writable
            .iter()
            .filter(|field| field.name != process.stage_field)
        {
            fields.insert(
                field.name.clone(),
                Value::Object(field_schema(field, Direction::Update)),
            );
        }
        let pending = json!({
            "type": "object",
            "properties": { "approval": schema_ref("Approval") },
            "required": ["approval"],
        });
        paths.insert(
            format!("/records/{object}/{{id}}/transition"),
            json!({
                "parameters": [id_parameter],
                "post": {
                    "tags": tags,
                    "summary": format!("Move a {} record to another stage", view.label()),
                    "description": format!(
                        "Moves the record along the process `{}` (its `{}`), saving `fields` with the move as a PATCH would. 200 with the record when it moved; 202 with the approval when the target stage needs one (the record stays, locked). 409 `transition_refused`: `transition_not_allowed`, `approval_pending` or `guard_refused`; 422 lists every `require`d field still empty.",
                        process.name, process.stage_field
                    ),
                    "operationId": view.operation_id("transition"),
                    "requestBody": body(json!({
                        "type": "object",
                        "properties": {
                            "to": { "description": "The target stage.", "type": "string", "enum": stages },
                            "comment": short_text("Why; kept in the stage history (blank is none).", MAX_COMMENT_CHARS),
                            "fields": {
                                "description": "Values saved with the move, as in a PATCH; not the stage field itself.",
                                "type": "object",
                                "properties": fields,
                                "patternProperties": ignored_keys(),
                                "additionalProperties": false,
                            },
                        },
                        "required": ["to"],
                        "additionalProperties": false,
                    })),
                    "responses": with_problems(
                        json!({
                            "200": ok("Moved: the whole record.", schema_ref(&view.base)),
                            "202": ok("The target stage needs approval: the approval opened.", pending),
                        }),
                        &[401, 403, 404, 409, 413, 415, 422],
                    ),
                },
            }),
        );
        paths.insert(
            format!("/records/{object}/{{id}}/transitions"),
            json!({
                "parameters": [id_parameter],
                "get": {
                    "tags": tags,
                    "summary": format!("The stage path of a {} record", view.label()),
                    "description": "The current stage and the moves open from it (with the required fields still empty, whether an approval applies, the guard), and the pending approval (then no move is open).",
                    "operationId": view.operation_id("transitions"),
                    "responses": with_problems(json!({ "200": ok("The stage path.", schema_ref("StagePath")) }), &[401, 403, 404]),
                },
            }),
        );
        paths.insert(
            format!("/records/{object}/{{id}}/stage-history"),
            json!({
                "parameters": [id_parameter],
                "get": {
                    "tags": tags,
                    "summary": format!("Stage history of a {} record", view.label()),
                    "description": "One row per stage change, oldest first.",
                    "operationId": view.operation_id("stage_history"),
                    "responses": with_problems(
                        json!({ "200": ok("The stage history.", data_list(schema_ref("StageHistoryEntry"))) }),
                        &[401, 403, 404],
                    ),
                },
            }),
        );
        paths.insert(
            format!("/records/{object}/{{id}}/approvals"),
            json!({
                "parameters": [id_parameter],
                "get": {
                    "tags": tags,
                    "summary": format!("Approvals of a {} record", view.label()),
                    "description": "Every approval of the record, newest first, each with its trail.",
                    "operationId": view.operation_id("approvals"),
                    "responses": with_problems(
                        json!({ "200": ok("The approvals.", data_list(schema_ref("Approval"))) }),
                        &[401, 403, 404],
                    ),
                },
            }),
        );
    }

    let listed = json!({
        "allOf": [schema_ref("Approval")],
        "properties": {
            "record_title": { "description": "The record's title as the user sees it; `null` when they may not read the record." },
        },
        "required": ["record_title"],
    });
    paths.insert(
        "/approvals".to_owned(),
        json!({
            "get": {
                "tags": ["Processes"],
                "summary": "My approvals",
                "description": "With `state=pending`, the approvals waiting for the user's decision (the inbox); with another state, those the user requested or took part in, in that state; without, all of those. Newest first, at most 500.",
                "operationId": "approvals",
                "parameters": [enum_parameter(
                    "state",
                    "Which approvals.",
                    &["pending", "approved", "rejected", "recalled"],
                )],
                "responses": with_problems(json!({ "200": ok("The approvals.", data_list(listed)) }), &[401, 422]),
            },
        }),
    );
    let approval_id = path_parameter("id", "The approval's id.", json!({ "type": "string" }));
    paths.insert(
        "/approvals/{id}".to_owned(),
        json!({
            "parameters": [approval_id],
            "get": {
                "tags": ["Processes"],
                "summary": "One approval",
                "description": "The approval with its trail: for its requester, its approvers, admins and whoever may read its record (404 to anyone else).",
                "operationId": "approval_detail",
                "responses": with_problems(json!({ "200": ok("The approval.", schema_ref("Approval")) }), &[401, 404]),
            },
        }),
    );
    let decided = json!({
        "allOf": [schema_ref("Approval")],
        "properties": {
            "record": { "description": "The record as the user sees it now, or `null` when they may not read it." },
        },
        "required": ["record"],
    });
    for (action, summary, description) in [
        (
            "approve",
            "Approve",
            "Approves as an approver of the current step; the last approval completes the transition. 409 `transition_refused`: `not_an_approver` or `approval_decided`.",
        ),
        (
            "reject",
            "Reject",
            "Rejects as an approver of the current step: the approval ends and the record stays in its stage, unlocked. 409 `transition_refused`: `not_an_approver` or `approval_decided`.",
        ),
        (
            "recall",
            "Recall",
            "Withdraws the approval (its requester only): the record is unlocked. 409 `transition_refused`: `not_the_requester` or `approval_decided`.",
        ),
    ] {
        paths.insert(
            format!("/approvals/{{id}}/{action}"),
            json!({
                "parameters": [approval_id],
                "post": {
                    "tags": ["Processes"],
                    "summary": summary,
                    "description": description,
                    "operationId": format!("approval_{action}"),
                    "requestBody": body(json!({
                        "type": "object",
                        "properties": {
                            "comment": short_text("A comment for the trail (blank is none).", MAX_COMMENT_CHARS),
                        },
                        "additionalProperties": false,
                    })),
                    "responses": with_problems(
                        json!({ "200": ok("The approval after the decision.", decided.clone()) }),
                        &[401, 404, 409, 413, 415, 422],
                    ),
                },
            }),
        );
    }
}

/// The funnel (when the app has a process), the briefing and the calendar.
pub(super) fn report_paths(schema: &Schema, paths: &mut Map<String, Value>) {
    let processes: Vec<&str> = schema.processes.keys().map(String::as_str).collect();
    if !processes.is_empty() {
        let owner = json!({
            "name": "owner",
            "in": "query",
            "required": false,
            "description": "Only records owned by this user (an id).",
            "schema": {
                "type": "string",
                "pattern": format!("^[^\\x00]*[^{QUERY_WHITESPACE}\\x00][^\\x00]*$"),
            },
        });
        paths.insert(
            "/reports/funnel".to_owned(),
            json!({
                "get": {
                    "tags": ["Reports"],
                    "summary": "The funnel of a process",
                    "description": "The cohort of the records the user may read created in `[from, to)` (days in the app timezone), how far each got and what they are worth (docs/reports.md). `to` must be after `from` (a 422 naming `to`).",
                    "operationId": "reports_funnel",
                    "parameters": [
                        enum_parameter("process", "The process; the app's first process when absent.", &processes),
                        date_parameter("from", "The first day of the period, `YYYY-MM-DD`; the first of this month when absent."),
                        date_parameter("to", "The day after the period, `YYYY-MM-DD`; a month after `from` when absent."),
                        owner,
                    ],
                    "responses": with_problems(json!({ "200": ok("The funnel.", schema_ref("Funnel")) }), &[401, 403, 422]),
                },
            }),
        );
    }
    paths.insert(
        "/reports/briefing".to_owned(),
        json!({
            "get": {
                "tags": ["Reports"],
                "summary": "The briefing",
                "description": "The current day, week or month in the app timezone against the one before (docs/reports.md); a figure the user may read no record of is `null`.",
                "operationId": "reports_briefing",
                "parameters": [enum_parameter("period", "The period; `week` when absent.", &["day", "week", "month"])],
                "responses": with_problems(json!({ "200": ok("The briefing.", schema_ref("Briefing")) }), &[401, 422]),
            },
        }),
    );
    paths.insert(
        "/calendar".to_owned(),
        json!({
            "get": {
                "tags": ["Reports"],
                "summary": "The calendar",
                "description": format!(
                    "The entries of every object that declares `calendar`, among the records the user may read, in `[from, to)` (days in the app timezone). `to` must be after `from` and at most {} days later (a 422 naming `to`).",
                    keel_runtime::reports::MAX_CALENDAR_DAYS
                ),
                "operationId": "calendar",
                "parameters": [
                    date_parameter("from", "The first day, `YYYY-MM-DD`; the first of this month when absent."),
                    date_parameter("to", "The day after the last, `YYYY-MM-DD`; a month after `from` when absent."),
                    enum_parameter("scope", "`mine` (the default): the user's own records; `team`: also those of everyone below them in the manager chain.", &["mine", "team"]),
                ],
                "responses": with_problems(json!({ "200": ok("The calendar.", schema_ref("CalendarPage")) }), &[401, 422]),
            },
        }),
    );
}

/// The admins' rules console: the list, a job's runs and a manual run.
pub(super) fn rule_paths(schema: &Schema, paths: &mut Map<String, Value>) {
    let jobs = keel_runtime::scheduler::jobs(schema);
    // `/runs` answers for every rule (an event rule has none) and every other job; `/run`
    // only for jobs (an event rule is a 409).
    let mut listed: Vec<String> = schema.rules.keys().cloned().collect();
    listed.extend(
        jobs.iter()
            .filter(|job| !schema.rules.contains_key(&job.name))
            .map(|job| job.name.clone()),
    );
    let runnable: Vec<String> = jobs.iter().map(|job| job.name.clone()).collect();
    paths.insert(
        "/admin/rules".to_owned(),
        json!({
            "get": {
                "tags": ["Rules"],
                "summary": "Rules and their runs",
                "description": "Every rule (scheduled and event), pool sweep and the approval reminders, with the last run and next due time of the scheduled ones. Admins only.",
                "operationId": "admin_rules",
                "responses": with_problems(json!({ "200": ok("The rules.", data_list(schema_ref("RuleSummary"))) }), &[401, 403]),
            },
        }),
    );
    if !listed.is_empty() {
        paths.insert(
            "/admin/rules/{name}/runs".to_owned(),
            json!({
                "get": {
                    "tags": ["Rules"],
                    "summary": "The runs of a rule",
                    "description": "Its run records, newest due first; `next` is the `before` of the following page. An event rule has none. Admins only.",
                    "operationId": "admin_rule_runs",
                    "parameters": [
                        path_parameter("name", "The rule's name, `pool:<pool>` for a pool sweep, `approvals:remind` for the approval reminders.", json!({ "type": "string", "enum": listed })),
                        {
                            "name": "before", "in": "query", "required": false,
                            "description": "The `next` of the previous page (a run id of this rule; any other value is a 422).",
                            "schema": { "type": "string", "pattern": "^[^\\x00]*$" },
                        },
                        {
                            "name": "limit", "in": "query", "required": false,
                            "schema": { "type": "integer", "minimum": 1, "maximum": MAX_RUNS_LIMIT, "default": 50 },
                        },
                    ],
                    "responses": with_problems(
                        json!({
                            "200": ok("One page of runs.", json!({
                                "type": "object",
                                "properties": {
                                    "data": { "type": "array", "items": schema_ref("RuleRun") },
                                    "next": { "type": ["string", "null"] },
                                },
                                "required": ["data", "next"],
                            })),
                        }),
                        &[401, 403, 404, 422],
                    ),
                },
            }),
        );
    }
    if !runnable.is_empty() {
        paths.insert(
            "/admin/rules/{name}/run".to_owned(),
            json!({
                "post": {
                    "tags": ["Rules"],
                    "summary": "Run a rule now",
                    "description": "Starts a manual run and answers it as it starts (`manual: true`, `state: running`); it runs to its end in this process. No body. 409 for an event rule. Admins only.",
                    "operationId": "admin_rule_run",
                    "parameters": [
                        path_parameter("name", "The scheduled rule's name, `pool:<pool>` or `approvals:remind`.", json!({ "type": "string", "enum": runnable })),
                    ],
                    "responses": with_problems(
                        json!({ "202": ok("The run, started.", schema_ref("RuleRun")) }),
                        &[401, 403, 404, 409],
                    ),
                },
            }),
        );
    }
}

/// The component schemas of these paths.
pub(super) fn shared_schemas(schemas: &mut Map<String, Value>) {
    let label = json!({ "description": "A label: text, or text per language.", "type": ["string", "object", "null"] });
    let instant = json!({ "type": "string", "format": "date-time" });
    let maybe_instant = json!({ "type": ["string", "null"], "format": "date-time" });
    let day = json!({ "type": "string", "format": "date" });
    let maybe_text = json!({ "type": ["string", "null"] });
    schemas.insert(
        "PoolDescription".to_owned(),
        json!({
            "title": "Pool",
            "description": "A pool and its settings (docs/pools.md); durations in seconds.",
            "type": "object",
            "properties": {
                "name": { "type": "string" },
                "label": label,
                "object": { "type": "string" },
                "role": { "description": "The user's part in the pool.", "type": "string", "enum": ["member", "manager", "admin"] },
                "members": { "type": "array", "items": { "type": "string" } },
                "managers": { "type": "array", "items": { "type": "string" } },
                "claim_limit": { "type": "integer", "minimum": 0 },
                "holding_excludes": { "description": "A filter (docs/app-format.md, \"Filters\"), or `null`." },
                "daily_claim_limit": { "type": "integer", "minimum": 0 },
                "reclaim_cooldown": { "type": "integer", "minimum": 0 },
                "hide_until_claimed": { "type": "array", "items": { "type": "string" } },
                "release_reasons": { "type": "array", "items": { "type": "string" } },
                "auto_return": {
                    "anyOf": [
                        { "type": "null" },
                        {
                            "type": "object",
                            "properties": {
                                "schedule": { "type": "string" },
                                "warn_before": { "type": "integer", "minimum": 0 },
                                "exempt": { "description": "A filter, or `null`." },
                                "rules": { "type": "array" },
                            },
                            "required": ["schedule", "warn_before", "rules"],
                        },
                    ],
                },
                "notify_on_return": { "type": "boolean" },
            },
            "required": [
                "name", "object", "role", "members", "managers", "claim_limit", "daily_claim_limit",
                "reclaim_cooldown", "hide_until_claimed", "release_reasons", "auto_return",
                "notify_on_return",
            ],
        }),
    );
    schemas.insert(
        "PoolHistoryEntry".to_owned(),
        json!({
            "title": "Pool history row",
            "description": "One move of a record through a pool.",
            "type": "object",
            "properties": {
                "id": { "type": "string" },
                "object": { "type": "string" },
                "record_id": { "type": "string" },
                "pool": { "type": "string" },
                "action": { "type": "string", "enum": ["claim", "release", "assign", "return", "move", "warn"] },
                "actor": { "description": "The user who did it; `system` for the sweep.", "type": "string" },
                "from_user": { "description": "The owner before.", "type": ["string", "null"] },
                "to_user": { "description": "The owner after.", "type": ["string", "null"] },
                "reason": maybe_text,
                "note": maybe_text,
                "at": instant,
                "_refs": {
                    "description": "`actor`, `from_user` and `to_user` named.",
                    "type": "object",
                    "additionalProperties": schema_ref("Ref"),
                },
            },
            "required": ["id", "object", "record_id", "pool", "action", "actor", "from_user", "to_user", "reason", "note", "at", "_refs"],
        }),
    );
    schemas.insert(
        "PoolTiming".to_owned(),
        json!({
            "title": "Auto-return timing",
            "type": "object",
            "properties": {
                "return_at": { "description": "When the first rule to hold returns it; `null` when none will.", "type": ["string", "null"], "format": "date-time" },
                "warn_at": { "description": "When its owner is warned.", "type": ["string", "null"], "format": "date-time" },
                "rule": { "type": ["string", "null"], "enum": ["no_follow_up_for", "not_converted_for", null] },
                "exempt": { "description": "It matches `exempt` and never returns.", "type": "boolean" },
            },
            "required": ["return_at", "warn_at", "rule", "exempt"],
        }),
    );
    schemas.insert(
        "StageHistoryEntry".to_owned(),
        json!({
            "title": "Stage change",
            "type": "object",
            "properties": {
                "id": { "type": "string" },
                "object": { "type": "string" },
                "record_id": { "type": "string" },
                "process": { "type": "string" },
                "from_stage": { "description": "`null` on the row written when the record was created.", "type": ["string", "null"] },
                "to_stage": { "type": "string" },
                "at": instant,
                "by_user": maybe_text,
                "comment": maybe_text,
                "seconds_in_from": { "description": "How long the record stayed in `from_stage`.", "type": ["integer", "null"] },
            },
            "required": ["id", "object", "record_id", "process", "from_stage", "to_stage", "at", "by_user", "comment", "seconds_in_from"],
        }),
    );
    schemas.insert(
        "Approval".to_owned(),
        json!({
            "title": "Approval",
            "description": "An approval of a transition, with its trail (docs/processes.md).",
            "type": "object",
            "properties": {
                "id": { "type": "string" },
                "object": { "type": "string" },
                "record_id": { "type": "string" },
                "process": { "type": "string" },
                "from_stage": { "type": "string" },
                "stage": { "description": "The stage the record enters once approved.", "type": "string" },
                "state": { "type": "string", "enum": ["pending", "approved", "rejected", "recalled"] },
                "step": { "description": "The current step, 0-based.", "type": "integer", "minimum": 0 },
                "steps": { "type": "integer", "minimum": 0 },
                "requested_by": { "type": "string" },
                "requested_at": instant,
                "comment": maybe_text,
                "decided_at": maybe_instant,
                "decided_by": maybe_text,
                "decision_comment": maybe_text,
                "waiting_for": { "description": "The user ids whose decision the current step waits for.", "type": "array", "items": { "type": "string" } },
                "tasks": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "step": { "type": "integer", "minimum": 0 },
                            "approver": { "type": "string" },
                            "state": { "type": "string", "enum": ["pending", "approved", "rejected", "skipped"] },
                            "reached_at": instant,
                            "decided_at": maybe_instant,
                            "comment": maybe_text,
                            "reminders": { "type": "integer", "minimum": 0 },
                        },
                        "required": ["step", "approver", "state", "reached_at", "decided_at", "comment", "reminders"],
                    },
                },
            },
            "required": [
                "id", "object", "record_id", "process", "from_stage", "stage", "state", "step",
                "steps", "requested_by", "requested_at", "comment", "decided_at", "decided_by",
                "decision_comment", "waiting_for", "tasks",
            ],
        }),
    );
    schemas.insert(
        "StagePath".to_owned(),
        json!({
            "title": "Stage path",
            "type": "object",
            "properties": {
                "process": { "type": "string" },
                "stage_field": { "type": "string" },
                "current": maybe_text,
                "transitions": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "to": { "type": "string" },
                            "missing": { "description": "The target stage's required fields the record leaves empty.", "type": "array", "items": { "type": "string" } },
                            "needs_approval": { "type": "boolean" },
                            "guard": { "description": "The guard script that will decide.", "type": ["string", "null"] },
                        },
                        "required": ["to", "missing", "needs_approval", "guard"],
                    },
                },
                "pending_approval": { "anyOf": [schema_ref("Approval"), { "type": "null" }] },
            },
            "required": ["process", "stage_field", "current", "transitions", "pending_approval"],
        }),
    );
    let amount = json!({ "description": "An exact decimal, or `null` without an amount the user may see.", "type": ["string", "null"] });
    let rate = json!({ "description": "A fraction, 4 decimals; `null` when its denominator is zero.", "type": ["number", "null"] });
    schemas.insert(
        "Funnel".to_owned(),
        json!({
            "title": "Funnel",
            "description": "The funnel of one process over one cohort (docs/reports.md, \"Funnel\").",
            "type": "object",
            "properties": {
                "process": { "type": "string" },
                "label": label,
                "object": { "type": "string" },
                "from": day,
                "to": day,
                "owner": maybe_text,
                "amount_field": maybe_text,
                "total": { "type": "integer", "minimum": 0 },
                "total_amount": amount,
                "stages": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "key": { "type": "string" },
                            "label": label,
                            "outcome": { "type": ["string", "null"], "enum": ["won", "lost", null] },
                            "probability": { "type": "integer", "minimum": 0 },
                            "reached": { "type": "integer", "minimum": 0 },
                            "amount": amount,
                            "conversion_next": rate,
                            "conversion_first": rate,
                            "avg_days": { "type": ["number", "null"] },
                        },
                        "required": ["key", "outcome", "probability", "reached", "amount", "conversion_next", "conversion_first", "avg_days"],
                    },
                },
                "won": { "type": "integer", "minimum": 0 },
                "lost": { "type": "integer", "minimum": 0 },
                "open": { "type": "integer", "minimum": 0 },
                "won_amount": amount,
                "lost_amount": amount,
                "won_rate": rate,
                "lost_rate": rate,
                "won_amount_rate": rate,
                "lost_amount_rate": rate,
                "weighted_pipeline": amount,
            },
            "required": [
                "process", "object", "from", "to", "owner", "amount_field", "total", "total_amount",
                "stages", "won", "lost", "open", "won_amount", "lost_amount", "won_rate",
                "lost_rate", "won_amount_rate", "lost_amount_rate", "weighted_pipeline",
            ],
        }),
    );
    let figure = json!({ "anyOf": [schema_ref("BriefingFigure"), { "type": "null" }] });
    let range = json!({
        "type": "object",
        "properties": { "from": day, "to": day },
        "required": ["from", "to"],
    });
    schemas.insert(
        "BriefingFigure".to_owned(),
        json!({
            "title": "Briefing figure",
            "description": "A figure now and in the previous period: a count (a number) or an amount (a decimal string).",
            "type": "object",
            "properties": {
                "value": { "type": ["integer", "string"] },
                "previous": { "type": ["integer", "string"] },
                "change": { "type": ["integer", "string"] },
                "change_rate": rate,
            },
            "required": ["value", "previous", "change", "change_rate"],
        }),
    );
    schemas.insert(
        "Briefing".to_owned(),
        json!({
            "title": "Briefing",
            "description": "The current period against the previous one (docs/reports.md, \"Briefing\"); a figure is `null` when the app has no such object or the user may read none of its records.",
            "type": "object",
            "properties": {
                "period": { "type": "string", "enum": ["day", "week", "month"] },
                "current": range,
                "previous": range,
                "new_leads": figure,
                "new_customers": figure,
                "new_opportunities": {
                    "anyOf": [
                        { "type": "null" },
                        {
                            "type": "object",
                            "properties": {
                                "object": { "type": "string" },
                                "count": schema_ref("BriefingFigure"),
                                "amount": figure,
                            },
                            "required": ["object", "count", "amount"],
                        },
                    ],
                },
                "won_amount": figure,
                "follow_ups": figure,
            },
            "required": ["period", "current", "previous", "new_leads", "new_customers", "new_opportunities", "won_amount", "follow_ups"],
        }),
    );
    schemas.insert(
        "CalendarPage".to_owned(),
        json!({
            "title": "Calendar",
            "description": "The calendar entries of a range, ordered by start (docs/reports.md, \"Calendar\").",
            "type": "object",
            "properties": {
                "from": day,
                "to": day,
                "scope": { "type": "string", "enum": ["mine", "team"] },
                "data": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "object": { "type": "string" },
                            "id": { "type": "string" },
                            "title": { "description": "As the user sees it (masked where it is masked for them).", "type": ["string", "null"] },
                            "start": { "description": "A date or an RFC 3339 instant, as the field holds it.", "type": "string" },
                            "end": { "type": ["string", "null"] },
                            "open": { "type": "boolean" },
                            "url": { "description": "The record's page.", "type": "string" },
                        },
                        "required": ["object", "id", "title", "start", "end", "open", "url"],
                    },
                },
            },
            "required": ["from", "to", "scope", "data"],
        }),
    );
    schemas.insert(
        "RuleRun".to_owned(),
        json!({
            "title": "Run",
            "description": "One run of a scheduled rule, pool sweep or the approval reminders (docs/scheduler.md, \"Run records\").",
            "type": "object",
            "properties": {
                "id": { "type": "string" },
                "job": { "type": "string" },
                "kind": { "type": "string", "enum": ["schedule", "pool", "approvals"] },
                "due_at": instant,
                "started_at": instant,
                "finished_at": maybe_instant,
                "state": { "type": "string", "enum": ["running", "done", "failed", "skipped"] },
                "manual": { "type": "boolean" },
                "catch_up": { "type": "boolean" },
                "missed": { "type": "integer", "minimum": 0 },
                "process": { "type": "string" },
                "attempts": { "type": "integer", "minimum": 0 },
                "matched": { "type": "integer", "minimum": 0 },
                "changed": { "type": "integer", "minimum": 0 },
                "errors": { "type": "integer", "minimum": 0 },
                "error": maybe_text,
            },
            "required": [
                "id", "job", "kind", "due_at", "started_at", "finished_at", "state", "manual",
                "catch_up", "missed", "process", "attempts", "matched", "changed", "errors", "error",
            ],
        }),
    );
    schemas.insert(
        "RuleSummary".to_owned(),
        json!({
            "title": "Rule",
            "description": "A rule, pool sweep or the approval reminders, as the rules console lists it.",
            "type": "object",
            "properties": {
                "name": { "type": "string" },
                "kind": { "type": "string", "enum": ["schedule", "event", "pool", "approvals"] },
                "object": { "description": "The object it works on (empty for the approval reminders).", "type": "string" },
                "schedule": { "description": "A six-field cron, app timezone; `null` for an event rule.", "type": ["string", "null"] },
                "misfire": { "type": ["string", "null"] },
                "enabled": { "type": "boolean" },
                "last_run": { "anyOf": [schema_ref("RuleRun"), { "type": "null" }] },
                "next_due": maybe_instant,
            },
            "required": ["name", "kind", "object", "schedule", "misfire", "enabled", "last_run", "next_due"],
        }),
    );
}
