//! Hostile query inputs answer 4xx, never 5xx: filters over the caps of
//! `keel_meta::filter`, NUL characters in query strings and paths, mistyped filter
//! operators, and exports with a bad filter (docs/api.md, "Query strings" and "Limits"). Each
//! case was a 500, or a silent empty answer, before the caps existed.

use keel_meta::filter::{MAX_FILTER_DEPTH, MAX_FILTER_TERMS, MAX_IN_VALUES, MAX_PATTERN_CHARS};
use proptest::strategy::{Strategy as _, ValueTree as _};
use proptest::test_runner::TestRunner;

use super::*;

/// `POST /records/lead/query` with `where`: the answer.
async fn query(app: &TestApp, token: &str, filter: Value) -> Response {
    app.as_user(token, Method::POST, "/records/lead/query")
        .json(&json!({ "where": filter }))
        .send()
        .await
        .unwrap()
}

async fn get(app: &TestApp, token: &str, path: &str) -> Response {
    app.as_user(token, Method::GET, path).send().await.unwrap()
}

/// Asserts a 422 `invalid_request` whose first error names `field` and whose detail
/// contains `mentions`.
async fn refused(response: Response, field: &str, mentions: &str) -> Value {
    let body = problem(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_request",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], field, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains(mentions),
        "the detail should mention {mentions:?}: {body}"
    );
    body
}

/// The number of records in a list answer.
async fn count(response: Response) -> usize {
    json_ok(response).await["data"].as_array().unwrap().len()
}

/// `{"name": "x<i>"}` for each i in `range`.
fn name_terms(range: std::ops::Range<usize>) -> Vec<Value> {
    range.map(|i| json!({ "name": format!("x{i}") })).collect()
}

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("x{i}")).collect()
}

keel_testkit::db_test!(
    filters_over_the_caps_are_a_422_naming_the_cap_and_filters_at_the_caps_run,
    |db| async move {
        let app = spawn_app(&db.url).await;
        let rep = app.token("rep", REP_PASSWORD).await;
        app.create_lead(&rep, json!({ "name": "x7" })).await;

        // The probe's former 500s: an `or` of 1,000 items, `in` lists of 32,766 and 65,535.
        let big_or = query(&app, &rep, json!({ "or": name_terms(0..1_000) })).await;
        refused(big_or, "where", "at most 200 terms").await;
        for length in [32_766, 65_535] {
            let big_in = query(&app, &rep, json!({ "name": { "in": names(length) } })).await;
            refused(
                big_in,
                "where/name/in",
                "at most 500 values in an `in` list",
            )
            .await;
        }

        // At the caps, both databases run the query.
        let widest_or = json!({ "or": name_terms(0..MAX_FILTER_TERMS - 1) });
        assert_eq!(count(query(&app, &rep, widest_or).await).await, 1);
        let over = json!({ "or": name_terms(0..MAX_FILTER_TERMS) });
        refused(query(&app, &rep, over).await, "where", "201").await;
        let longest_in = json!({ "name": { "in": names(MAX_IN_VALUES) } });
        assert_eq!(count(query(&app, &rep, longest_in).await).await, 1);
        // Two full `in` lists: 1,000 values, the most one filter may bind; then one more.
        let most_values = json!({ "or": [
            { "name": { "in": names(MAX_IN_VALUES) } },
            { "company": { "in": names(MAX_IN_VALUES) } },
        ] });
        assert_eq!(count(query(&app, &rep, most_values).await).await, 1);
        let too_many_values = json!({ "or": [
            { "name": { "in": names(MAX_IN_VALUES) } },
            { "company": { "in": names(MAX_IN_VALUES) } },
            { "name": "x7" },
        ] });
        refused(
            query(&app, &rep, too_many_values).await,
            "where",
            "at most 1000 values",
        )
        .await;

        // Nesting: `not` inside `not` … around one comparison.
        let nested = |levels: usize| {
            (1..levels).fold(json!({ "name": "x7" }), |inner, _| json!({ "not": inner }))
        };
        assert_eq!(
            count(query(&app, &rep, nested(MAX_FILTER_DEPTH)).await).await,
            usize::from(MAX_FILTER_DEPTH % 2 == 1)
        );
        refused(
            query(&app, &rep, nested(MAX_FILTER_DEPTH + 1)).await,
            &format!("where{}", "/not".repeat(MAX_FILTER_DEPTH)),
            "at most 16 levels",
        )
        .await;

        // The query string, aggregates and exports share the caps.
        let list_in = |n: usize| format!("name=in.({})", names(n).join(","));
        assert_eq!(
            count(
                get(
                    &app,
                    &rep,
                    &format!("/records/lead?{}", list_in(MAX_IN_VALUES))
                )
                .await
            )
            .await,
            1
        );
        for route in ["/records/lead", "/aggregate/lead", "/records/lead/export"] {
            let path = format!("{route}?{}", list_in(MAX_IN_VALUES + 1));
            refused(get(&app, &rep, &path).await, "name", "at most 500 values").await;
        }
        // Several parameters count together: 101 comparisons and their `and` is 102 terms,
        // 200 of them 201.
        let many = (0..MAX_FILTER_TERMS)
            .map(|i| format!("name=ne.y{i}"))
            .collect::<Vec<_>>()
            .join("&");
        refused(
            get(&app, &rep, &format!("/records/lead?{many}")).await,
            "name",
            "at most 200 terms",
        )
        .await;

        // Patterns and search text.
        let long = "a".repeat(MAX_PATTERN_CHARS);
        assert_eq!(
            count(get(&app, &rep, &format!("/records/lead?q={long}")).await).await,
            0
        );
        assert_eq!(
            count(get(&app, &rep, &format!("/records/lead?name=like.{long}")).await).await,
            0
        );
        refused(
            get(&app, &rep, &format!("/records/lead?q={long}a")).await,
            "q",
            "at most 1000 characters",
        )
        .await;
        refused(
            get(&app, &rep, &format!("/records/lead?name=like.{long}a")).await,
            "name",
            "at most 1000 characters",
        )
        .await;
        let long_q = app
            .as_user(&rep, Method::POST, "/records/lead/query")
            .json(&json!({ "q": "b".repeat(60_000) }))
            .send()
            .await
            .unwrap();
        refused(long_q, "q", "at most 1000 characters").await;
    }
);

keel_testkit::db_test!(
    a_nul_character_in_a_query_string_or_a_path_never_reaches_sql,
    |db| async move {
        let app = spawn_app(&db.url).await;
        let rep = app.token("rep", REP_PASSWORD).await;
        let admin = app.token("admin", ADMIN_PASSWORD).await;
        let lead = app.create_lead(&rep, json!({ "name": "Ada" })).await;

        for (path, field) in [
            ("/records/lead?name=eq.%00", "name"),
            ("/records/lead?name=eq.a%00b", "name"),
            ("/records/lead?name=like.%00*", "name"),
            ("/records/lead?name=in.(a,%00)", "name"),
            ("/records/lead?q=%00", "q"),
            ("/records/lead?after=%00", "after"),
            ("/records/lead?order=name%00", "order"),
            ("/records/lead/duplicates?company=%00&name=Ada", "company"),
            ("/aggregate/lead?name=eq.%00", "name"),
            ("/aggregate/lead?group_by=status&name=ne.%00", "name"),
            ("/records/lead/export?name=eq.%00", "name"),
            ("/records/lead/export?format=ndjson&q=%00", "q"),
        ] {
            let body = problem(
                get(&app, &rep, path).await,
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_request",
            )
            .await;
            assert_eq!(body["errors"][0]["field"], field, "{path}: {body}");
            assert!(body["detail"].as_str().unwrap().contains("NUL"), "{body}");
        }
        let access = get(&app, &admin, "/admin/access?user=%00&object=lead").await;
        refused(access, "user", "NUL").await;

        // In a path, no record, object or user has such a name: the 404 of an unknown one.
        for (method, path) in [
            (Method::GET, "/records/lead/%00"),
            (Method::GET, "/records/lead/a%00b/history"),
            (Method::DELETE, "/records/lead/%00"),
            (Method::POST, "/records/lead/%00/restore"),
        ] {
            let answer = app.as_user(&rep, method, path).send().await.unwrap();
            problem(answer, StatusCode::NOT_FOUND, "not_found").await;
        }
        let patch = app
            .as_user(&rep, Method::PATCH, "/records/lead/%00")
            .json(&json!({ "name": "Bea" }))
            .send()
            .await
            .unwrap();
        problem(patch, StatusCode::NOT_FOUND, "not_found").await;
        let user = app
            .as_user(&admin, Method::PATCH, "/admin/users/rep%00")
            .json(&json!({ "display_name": "Rep" }))
            .send()
            .await
            .unwrap();
        problem(user, StatusCode::NOT_FOUND, "not_found").await;
        problem(
            get(&app, &rep, "/records/le%00ad?name=eq.Ada").await,
            StatusCode::NOT_FOUND,
            "unknown_object",
        )
        .await;

        // The JSON form of a filter is refused too (by the strict body reader, before the
        // filter is parsed), naming where the value is.
        let body = problem(
            query(
                &app,
                &rep,
                json!({ "or": [{ "name": "Ada" }, { "name": "\u{0}" }] }),
            )
            .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        )
        .await;
        assert!(
            body["errors"][0]["field"]
                .as_str()
                .unwrap()
                .starts_with("where.or.1"),
            "{body}"
        );

        // The record is untouched and still found by an ordinary filter.
        let id = lead["id"].as_str().unwrap();
        assert_eq!(
            json_ok(get(&app, &rep, &format!("/records/lead/{id}")).await).await["name"],
            "Ada"
        );
        assert_eq!(
            count(get(&app, &rep, "/records/lead?name=eq.Ada").await).await,
            1
        );
    }
);

keel_testkit::db_test!(
    mistyped_filter_operators_and_malformed_values_are_a_422_naming_the_parameter,
    |db| async move {
        let app = spawn_app(&db.url).await;
        let rep = app.token("rep", REP_PASSWORD).await;
        app.create_lead(
            &rep,
            json!({ "name": "a.b", "company": "ada.l@example.com" }),
        )
        .await;

        let body = refused(
            get(&app, &rep, "/records/lead?status=neq.new").await,
            "status",
            "unknown operator `neq`",
        )
        .await;
        let message = body["errors"][0]["message"].as_str().unwrap();
        assert!(
            message.contains("eq, ne, gt, gte, lt, lte, in, like, is"),
            "{message}"
        );
        refused(
            get(&app, &rep, "/records/lead?name=bogus.1").await,
            "name",
            "unknown operator `bogus`",
        )
        .await;
        // A value without an operator is not an equality that silently matches nothing.
        refused(
            get(&app, &rep, "/records/lead?name=Ada").await,
            "name",
            "operator.value",
        )
        .await;
        refused(
            get(&app, &rep, "/records/lead?name=").await,
            "name",
            "operator",
        )
        .await;

        // Malformed values for an operator, or for the field's type.
        for (path, field, mentions) in [
            ("/records/lead?status=in.new", "status", "in.(a,b)"),
            ("/records/lead?company=is.maybe", "company", "null"),
            (
                "/records/lead?created_at=lte.@yesterday",
                "created_at",
                "relative date",
            ),
            (
                "/records/lead?created_at=lte.@now+3x",
                "created_at",
                "relative date",
            ),
            ("/records/lead?score=gt.abc", "score", "whole number"),
            ("/records/lead?amount=gt.99999999999999999999999", "", ""),
            ("/records/lead?created_at=gt.tomorrow", "created_at", "date"),
            ("/records/lead?secret=eq.x", "secret", "not a field"),
            ("/records/lead?nope=eq.x", "nope", "not a field"),
        ] {
            let body = problem(
                get(&app, &rep, path).await,
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_request",
            )
            .await;
            if !field.is_empty() {
                assert_eq!(body["errors"][0]["field"], field, "{path}: {body}");
            }
            assert!(
                body["detail"].as_str().unwrap().contains(mentions),
                "{path}: {body}"
            );
        }

        // Values that contain dots still work after the operator.
        assert_eq!(
            count(get(&app, &rep, "/records/lead?name=eq.a.b").await).await,
            1
        );
        assert_eq!(
            count(get(&app, &rep, "/records/lead?company=eq.ada.l@example.com").await).await,
            1
        );
        assert_eq!(
            count(get(&app, &rep, "/records/lead?name=in.(a.b,c.d)").await).await,
            1
        );

        // The JSON form names the operator by its pointer.
        refused(
            query(&app, &rep, json!({ "status": { "neq": "new" } })).await,
            "where/status/neq",
            "unknown filter operator `neq`",
        )
        .await;
    }
);

keel_testkit::db_test!(
    an_export_with_a_bad_filter_is_a_422_before_any_byte_is_sent,
    |db| async move {
        let app = spawn_app(&db.url).await;
        let rep = app.token("rep", REP_PASSWORD).await;
        app.create_lead(&rep, json!({ "name": "Ada" })).await;

        for format in ["csv", "ndjson"] {
            for (filter, field) in [
                ("status=neq.new", "status"),
                ("name=eq.%00", "name"),
                ("score=gt.abc", "score"),
                // Parses as a number, but no database column holds it: refused by the store
                // while reading the first page, still before the answer starts.
                ("amount=gt.99999999999999999999999", ""),
            ] {
                let path = format!("/records/lead/export?format={format}&{filter}");
                let body = problem(
                    get(&app, &rep, &path).await,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_request",
                )
                .await;
                if !field.is_empty() {
                    assert_eq!(body["errors"][0]["field"], field, "{path}: {body}");
                }
            }
        }
        // A good export still streams every record.
        let answer = get(&app, &rep, "/records/lead/export?format=ndjson&name=eq.Ada").await;
        assert_eq!(answer.status(), StatusCode::OK);
        assert_eq!(answer.text().await.unwrap().lines().count(), 1);
    }
);

/// Fragments random query strings are made of: operators, separators, encodings (good, bad
/// and NUL), relative dates, list syntax, field names and non-ASCII text.
const FRAGMENTS: &[&str] = &[
    "name",
    "score",
    "amount",
    "created_at",
    "status",
    "secret",
    "nope",
    "q",
    "after",
    "order",
    "limit",
    "fields",
    "group_by",
    "sum",
    "format",
    "=",
    "&",
    ".",
    ",",
    "(",
    ")",
    "eq",
    "ne",
    "gt",
    "gte",
    "lt",
    "lte",
    "in",
    "like",
    "is",
    "null",
    "not_null",
    "neq",
    "@now",
    "@today",
    "+1d",
    "-3x",
    "*",
    "%00",
    "%25",
    "%FF",
    "%",
    "%2",
    "+",
    "-",
    "1",
    "0",
    "-1",
    "99999999999999999999",
    "1.5",
    "2026-01-02",
    "true",
    "张",
    "é",
    "~",
    "'",
    "\"",
    ";",
    "%20",
    "csv",
    "ndjson",
];

keel_testkit::db_test!(
    random_query_strings_never_answer_a_server_error,
    |db| async move {
        let app = spawn_app(&db.url).await;
        let rep = app.token("rep", REP_PASSWORD).await;
        app.create_lead(&rep, json!({ "name": "Ada", "score": 5 }))
            .await;
        let strategy = proptest::collection::vec(proptest::sample::select(FRAGMENTS), 1..24)
            .prop_map(|parts| parts.concat());
        // A fixed seed: the same 150 strings on every run and on both databases.
        let mut runner = TestRunner::deterministic();
        for case in 0..150 {
            let query = strategy.new_tree(&mut runner).unwrap().current();
            let route = ["/records/lead", "/aggregate/lead", "/records/lead/export"][case % 3];
            let path = format!("{route}?{query}");
            let answer = get(&app, &rep, &path).await;
            let status = answer.status();
            // Reading the whole body also catches an export cut short after its 200.
            let body = answer.bytes().await;
            assert!(
                !status.is_server_error() && body.is_ok(),
                "{path} → {status}, body read: {:?}",
                body.map(|bytes| bytes.len())
            );
        }
    }
);
