//! The OpenAPI document (`keel_web::openapi`): a snapshot of the standard app's document, a
//! check of the standard app and every template by a real OpenAPI 3.1 validator
//! (`openapi-spec-validator` from PyPI, which CI installs), and the promises clients rely on.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use keel_meta::Schema;
use keel_web::openapi;
use serde_json::{Value, json};

use crate::support::{AppDir, repository_root};

fn load(dir: &Path) -> Schema {
    keel_meta::load_app(dir)
        .unwrap_or_else(|errors| panic!("fixture app {}:\n{errors}", dir.display()))
}

/// A small app with one object whose fields cover the promises below, plus an object named
/// like a shared schema.
fn fixture_app() -> AppDir {
    AppDir::new(&[
        ("metadata/app.yaml", "name: { en: Fixture CRM, zh: 测试 }\n"),
        ("metadata/roles.yaml", "roles:\n  admin: { admin: true }\n"),
        (
            "metadata/objects/deal.yaml",
            "name: deal\n\
             label: { en: Deal, zh: 商机 }\n\
             title: name\n\
             fields:\n\
             \x20 name: { type: text, required: true, max_length: 100, label: { en: Name, zh: 名称 } }\n\
             \x20 stage:\n\
             \x20   type: choice\n\
             \x20   required: true\n\
             \x20   default: open\n\
             \x20   options: [open, won, lost]\n\
             \x20 amount: { type: money, label: { zh: 金额 } }\n\
             \x20 secret: { type: text }\n",
        ),
        (
            "metadata/objects/problem.yaml",
            "name: problem\ntitle: name\nfields:\n  name: { type: text }\n",
        ),
    ])
}

fn operations(document: &Value) -> Vec<(String, String, &Value)> {
    let mut found = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            if method != "parameters" {
                found.push((path.clone(), method.clone(), operation));
            }
        }
    }
    found
}

#[test]
fn the_standard_app_document_matches_its_snapshot() {
    let schema = load(&repository_root());
    let mut document = openapi::document(&schema);
    // The version is the metadata fingerprint, which any edit of any app file changes; the
    // snapshot should change only when the document's shape does.
    assert_eq!(document["info"]["version"], json!(schema.fingerprint[..12]));
    document["info"]["version"] = json!("<fingerprint>");
    insta::assert_json_snapshot!("openapi_standard_app", document);
}

#[test]
fn the_standard_app_and_every_template_are_valid_openapi_3_1() {
    let mut apps = vec![repository_root()];
    let templates = repository_root().join("templates");
    let mut template_dirs: Vec<_> = std::fs::read_dir(&templates)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.join("metadata").is_dir())
        .collect();
    template_dirs.sort();
    assert!(
        template_dirs.iter().any(|dir| dir.ends_with("education")),
        "templates/education is missing"
    );
    apps.extend(template_dirs);
    let fixture = fixture_app();
    apps.push(fixture.path().to_path_buf());

    let Some(validator) = OpenApiValidator::find() else {
        return;
    };
    for app in apps {
        let document = openapi::document(&load(&app));
        validator.check(&document, &app);
    }
}

#[test]
fn every_operation_has_a_unique_operation_id() {
    let document = openapi::document(&load(&repository_root()));
    let mut seen = BTreeSet::new();
    for (path, method, operation) in operations(&document) {
        let id = operation["operationId"]
            .as_str()
            .unwrap_or_else(|| panic!("{method} {path} has no operationId"));
        assert!(seen.insert(id.to_owned()), "operationId {id} is used twice");
    }
    for id in [
        "lead_list",
        "lead_create",
        "lead_get",
        "lead_update",
        "lead_delete",
        "auth_login",
    ] {
        assert!(seen.contains(id), "no operation {id}");
    }
}

/// The API routes of `keel_web::router`, read from its source (axum's router cannot be
/// listed): `(method, path under /api/v1)` for every `.route("/api/v1/…", …)`.
fn router_api_routes() -> Vec<(String, String)> {
    let source = std::fs::read_to_string(repository_root().join("engine/web/src/lib.rs")).unwrap();
    // The route table of `router`: from its `Router::new()` to the pages it merges.
    let start = source
        .find("let routes = Router::new()")
        .expect("keel_web::router builds `routes`");
    let table = &source[start..];
    let table = &table[..table.find(".merge(").expect("the pages are merged")];
    let method = regex::Regex::new(r"\b(get|post|patch|put|delete)\(").unwrap();
    let mut routes = Vec::new();
    for chunk in table.split(".route(").skip(1) {
        let Some(path) = chunk
            .trim_start()
            .strip_prefix('"')
            .and_then(|rest| rest.split('"').next())
        else {
            continue;
        };
        let Some(path) = path.strip_prefix("/api/v1") else {
            continue;
        };
        for found in method.captures_iter(chunk) {
            routes.push((found[1].to_owned(), path.to_owned()));
        }
    }
    routes
}

/// Routes of the router that the document leaves out on purpose, each with its reason.
const UNDOCUMENTED_ROUTES: &[(&str, &str, &str)] = &[
    (
        "get",
        "/metrics",
        "Prometheus text for scrapers (docs/api.md, \"Operations\")",
    ),
    (
        "get",
        "/notifications/stream",
        "server-sent events, which the list operation's description points to",
    ),
    (
        "get",
        "/meta/schema/{file}",
        "not described yet (docs/api.md)",
    ),
    ("get", "/admin/outbox", "not described yet (docs/api.md)"),
    (
        "post",
        "/admin/outbox/{id}/retry",
        "not described yet (docs/api.md)",
    ),
    ("get", "/admin/users", "not described yet (docs/api.md)"),
    ("post", "/admin/users", "not described yet (docs/api.md)"),
    (
        "patch",
        "/admin/users/{name}",
        "not described yet (docs/api.md)",
    ),
    ("get", "/admin/access", "not described yet (docs/api.md)"),
    (
        "get",
        "/admin/access-changes",
        "not described yet (docs/api.md)",
    ),
    (
        "get",
        "/admin/departments",
        "not described yet (docs/api.md)",
    ),
    (
        "post",
        "/admin/departments",
        "not described yet (docs/api.md)",
    ),
];

/// Whether the document's `path` is an instance of the router's `route`: a `{object}` or
/// `{pool}` segment of the route stands for an object's or a pool's name (the document
/// lists those paths per object and per pool) or a template; any other `{…}` for a
/// template.
fn instance_of(route: &str, path: &str, schema: &Schema) -> bool {
    let route: Vec<&str> = route.split('/').collect();
    let path: Vec<&str> = path.split('/').collect();
    route.len() == path.len()
        && route.iter().zip(&path).all(|(wanted, given)| {
            let template = given.starts_with('{') && given.ends_with('}');
            match *wanted {
                "{object}" => template || schema.objects.contains_key(*given),
                "{pool}" => template || schema.pools.contains_key(*given),
                parameter if parameter.starts_with('{') => template,
                literal => literal == *given,
            }
        })
}

#[test]
fn every_api_route_of_the_router_is_in_the_standard_app_document() {
    let schema = load(&repository_root());
    let document = openapi::document(&schema);
    let routes = router_api_routes();
    for expected in [
        ("post", "/records/{object}/{id}/transition"),
        ("get", "/pools/{pool}/records"),
        ("get", "/admin/rules"),
    ] {
        assert!(
            routes.contains(&(expected.0.to_owned(), expected.1.to_owned())),
            "the routes were not read from the router: {routes:?}"
        );
    }
    let documented = operations(&document);
    let mut missing = Vec::new();
    for (method, route) in &routes {
        if UNDOCUMENTED_ROUTES
            .iter()
            .any(|(m, r, _)| m == method && r == route)
        {
            continue;
        }
        if !documented
            .iter()
            .any(|(path, m, _)| m == method && instance_of(route, path, &schema))
        {
            missing.push(format!("{} {route}", method.to_uppercase()));
        }
    }
    assert!(
        missing.is_empty(),
        "routes of the router missing from the OpenAPI document:\n{}",
        missing.join("\n")
    );
    // And the list of exceptions holds no route the router lost or the document gained.
    for (method, route, _) in UNDOCUMENTED_ROUTES {
        assert!(
            routes.contains(&((*method).to_owned(), (*route).to_owned())),
            "{method} {route} is no route of the router any more"
        );
        assert!(
            !documented
                .iter()
                .any(|(path, m, _)| m == method && instance_of(route, path, &schema)),
            "{method} {route} is documented now: take it off UNDOCUMENTED_ROUTES"
        );
    }
}

#[test]
fn pool_operations_are_listed_for_the_pools_the_user_may_see_only() {
    let schema = load(&repository_root());
    let document = openapi::document_for_user(
        &schema,
        &openapi::UserAccess {
            visible: &|_object, _field| true,
            writable: &|_object, _field| true,
            masked: &|_object, _field| false,
            may_set_owner: &|_object| false,
            may_set_pool: &|_object| false,
            sees_pool: &|pool| pool == "public_leads",
        },
    );
    let paths = document["paths"].as_object().unwrap();
    assert!(paths.contains_key("/pools/public_leads/records/{id}/claim"));
    assert!(
        !paths
            .keys()
            .any(|path| path.starts_with("/pools/customer_pool")),
        "a pool the user may not see is listed"
    );
    let release = &paths["/pools/public_leads/records/{id}/release"]["post"]["requestBody"]["content"]
        ["application/json"]["schema"];
    assert_eq!(release["additionalProperties"], json!(false));
    assert_eq!(release["required"], json!(["reason"]));
    assert_eq!(
        release["properties"]["reason"]["enum"],
        json!(["no_need", "unreachable", "duplicate", "other"])
    );
    // Process operations only for objects with a process, the stages as an enum.
    let transition = &paths["/records/opportunity/{id}/transition"]["post"];
    let to =
        &transition["requestBody"]["content"]["application/json"]["schema"]["properties"]["to"];
    assert_eq!(to["enum"][0], json!("qualification"));
    let fields = &transition["requestBody"]["content"]["application/json"]["schema"]["properties"]
        ["fields"]["properties"];
    assert!(fields.get("stage").is_none(), "the stage is given as `to`");
    assert!(fields.get("amount").is_some());
    assert!(!paths.contains_key("/records/lead/{id}/transition"));
    for status in ["200", "202", "404", "409", "422"] {
        assert!(
            transition["responses"].get(status).is_some(),
            "a transition's {status} is not documented"
        );
    }
}

#[test]
fn a_money_field_is_a_string_with_an_exact_decimal_pattern() {
    let fixture = fixture_app();
    let document = openapi::document(&load(fixture.path()));
    let amount = &document["components"]["schemas"]["Deal"]["properties"]["amount"];
    assert_eq!(amount["type"], json!(["string", "null"]));
    assert_eq!(amount["pattern"], json!(r"^-?[0-9]+(\.[0-9]+)?$"));
    assert_eq!(
        amount["title"],
        json!("金额"),
        "a label without English falls back to any"
    );
    // On input a number is accepted too, with at most two decimals.
    let input = &document["components"]["schemas"]["DealInput"]["properties"]["amount"];
    let kinds: Vec<&Value> = input["anyOf"]
        .as_array()
        .unwrap()
        .iter()
        .map(|alternative| &alternative["type"])
        .collect();
    assert_eq!(kinds, [&json!("number"), &json!("string"), &json!("null")]);
    assert_eq!(input["anyOf"][0]["multipleOf"], json!(0.01));
    let text = regex::Regex::new(input["anyOf"][1]["pattern"].as_str().unwrap()).unwrap();
    for accepted in ["1999.00", "-0.5", "12", "1.50000"] {
        assert!(text.is_match(accepted), "{accepted}");
    }
    for refused in ["1e3", " 1", "1.", ".5", "1,5", "1.234", "12345678901234567"] {
        assert!(!text.is_match(refused), "{refused}");
    }
}

/// The compiled pattern of a component parameter.
fn parameter_pattern(document: &Value, name: &str) -> regex::Regex {
    let pattern = document["components"]["parameters"][name]["schema"]["pattern"]
        .as_str()
        .unwrap_or_else(|| panic!("{name} has no pattern"));
    regex::Regex::new(pattern).unwrap()
}

#[test]
fn filter_parameters_carry_the_filter_syntax_of_their_field_type() {
    let document = openapi::document(&load(&repository_root()));
    let score = parameter_pattern(&document, "Lead.score");
    for accepted in ["gte.50", "eq.-3", "in.(1,2,3)", "in.()", "is.null", "lt.7"] {
        assert!(score.is_match(accepted), "score={accepted}");
    }
    for refused in [
        "50",
        "",
        "neq.1",
        "gte.abc",
        "like.5*",
        "is.maybe",
        "gte.@today",
        "in.1,2",
    ] {
        assert!(!score.is_match(refused), "score={refused}");
    }
    let name = parameter_pattern(&document, "Lead.name");
    for accepted in ["eq.张三", "like.张*", "eq.a.b", "in.(a,b)", "eq."] {
        assert!(name.is_match(accepted), "name={accepted}");
    }
    for refused in ["张三", "bogus.1", "eq.@now", "eq.a\u{0}"] {
        assert!(!name.is_match(refused), "name={refused}");
    }
    let created = parameter_pattern(&document, "Lead.created_at");
    for accepted in [
        "gte.@now-3d",
        "lt.@today+1d",
        "gte.2026-05-01",
        "gte.2026-05-01T09:30:00+08:00",
        "lte.2026-05-01T09:30",
    ] {
        assert!(created.is_match(accepted), "created_at={accepted}");
    }
    for refused in [
        "",
        "gte.",
        "gte.@yesterday",
        "gte.@now+1y",
        "like.2026*",
        "gte.May 1",
    ] {
        assert!(!created.is_match(refused), "created_at={refused}");
    }
    let order = parameter_pattern(&document, "Lead.order");
    for accepted in ["-score,name", "+name", "", "name,,-created_at"] {
        assert!(order.is_match(accepted), "order={accepted}");
    }
    for refused in ["bogus", "-", "--score", "- score", " name"] {
        assert!(!order.is_match(refused), "order={refused}");
    }
}

#[test]
fn a_create_links_to_the_new_record_s_other_operations_and_errors_are_documented() {
    let document = openapi::document(&load(&repository_root()));
    let create = &document["paths"]["/records/lead"]["post"];
    let links = create["responses"]["201"]["links"].as_object().unwrap();
    let targets: BTreeSet<&str> = links
        .values()
        .map(|link| {
            assert_eq!(link["parameters"]["id"], json!("$response.body#/id"));
            link["operationId"].as_str().unwrap()
        })
        .collect();
    assert_eq!(
        targets,
        BTreeSet::from([
            "lead_get",
            "lead_update",
            "lead_delete",
            "lead_history",
            "lead_restore"
        ])
    );
    for (path, method, operation) in operations(&document) {
        let responses = operation["responses"].as_object().unwrap();
        if path != "/healthz" {
            for status in ["400", "414"] {
                assert!(
                    responses.contains_key(status),
                    "{method} {path} lacks {status}"
                );
            }
        }
        if operation.get("requestBody").is_some() {
            for status in ["413", "415", "422"] {
                assert!(
                    responses.contains_key(status),
                    "{method} {path} lacks {status}"
                );
            }
        }
    }
}

#[test]
fn the_per_user_document_leaves_out_what_the_user_may_not_write() {
    let fixture = fixture_app();
    let schema = load(fixture.path());
    let document = openapi::document_for_user(
        &schema,
        &openapi::UserAccess {
            visible: &|_object, _field| true,
            writable: &|object, field| !(object == "deal" && field == "amount"),
            masked: &|object, field| object == "deal" && field == "secret",
            may_set_owner: &|_object| false,
            may_set_pool: &|_object| false,
            sees_pool: &|_pool| true,
        },
    );
    let schemas = &document["components"]["schemas"];
    for input in ["DealInput", "DealPatch", "DealBulkUpdate"] {
        let properties = schemas[input]["properties"].as_object().unwrap();
        assert!(!properties.contains_key("amount"), "{input} offers amount");
        assert!(!properties.contains_key("owner"), "{input} offers owner");
        assert!(properties.contains_key("name"), "{input} lacks name");
    }
    assert!(schemas["Deal"]["properties"].get("amount").is_some());
    let sortable = schemas["DealSortableField"]["enum"].as_array().unwrap();
    assert!(!sortable.contains(&json!("secret")), "a masked field sorts");
    let admin = openapi::document(&schema);
    assert!(
        admin["components"]["schemas"]["DealInput"]["properties"]
            .get("owner")
            .is_some()
    );
}

#[test]
fn a_choice_field_lists_its_option_keys() {
    let fixture = fixture_app();
    let document = openapi::document(&load(fixture.path()));
    let schemas = &document["components"]["schemas"];
    assert_eq!(
        schemas["Deal"]["properties"]["stage"]["enum"],
        json!(["open", "won", "lost", null])
    );
    assert_eq!(
        schemas["DealInput"]["properties"]["stage"]["enum"],
        json!(["open", "won", "lost"]),
        "a required choice cannot be emptied"
    );
}

#[test]
fn required_fields_without_a_default_are_required_on_create_only() {
    let fixture = fixture_app();
    let document = openapi::document(&load(fixture.path()));
    let schemas = &document["components"]["schemas"];
    assert_eq!(schemas["DealInput"]["required"], json!(["name"]));
    assert_eq!(schemas["DealInput"]["additionalProperties"], json!(false));
    assert!(schemas["DealPatch"].get("required").is_none());
    assert_eq!(
        schemas["DealInput"]["properties"]["name"]["maxLength"],
        json!(100)
    );
    assert!(schemas["DealInput"]["properties"].get("id").is_none());
    assert_eq!(schemas["Deal"]["properties"]["id"]["readOnly"], json!(true));
}

#[test]
fn an_object_named_like_a_shared_schema_gets_other_names() {
    let fixture = fixture_app();
    let document = openapi::document(&load(fixture.path()));
    let schemas = &document["components"]["schemas"];
    assert!(schemas["Problem"]["properties"].get("status").is_some());
    assert!(schemas.get("ProblemRecord").is_some());
    assert!(schemas.get("ProblemRecordInput").is_some());
}

#[test]
fn hidden_fields_are_left_out_everywhere() {
    let fixture = fixture_app();
    let schema = load(fixture.path());
    let document = openapi::document_for_fields(&schema, &|object, field| {
        !(object == "deal" && field == "secret")
    });
    let text = serde_json::to_string(&document).unwrap();
    assert!(
        !text.contains("secret"),
        "a hidden field shows in the document"
    );
    assert!(openapi::document(&schema).to_string().contains("secret"));
}

/// `python3 -m openapi_spec_validator`, when installed.
struct OpenApiValidator;

impl OpenApiValidator {
    /// The validator, or `None` when it is not installed outside CI (a `SKIPPED` line goes to
    /// the real stderr); under `CI=true` a missing validator fails the test.
    fn find() -> Option<OpenApiValidator> {
        let installed = Command::new("python3")
            .args(["-c", "import openapi_spec_validator"])
            .output()
            .is_ok_and(|output| output.status.success());
        if installed {
            return Some(OpenApiValidator);
        }
        keel_testkit::skip_tool_locally_or_fail_in_ci(
            "openapi-spec-validator",
            "python3 -m pip install openapi-spec-validator",
        );
        None
    }

    fn check(&self, document: &Value, app: &Path) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("openapi.json");
        std::fs::write(&file, serde_json::to_vec_pretty(document).unwrap()).unwrap();
        let output = Command::new("python3")
            .args(["-m", "openapi_spec_validator"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "the OpenAPI document of {} is not valid:\n{}{}",
            app.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
