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

#[test]
fn a_money_field_is_a_string_with_an_exact_decimal_pattern() {
    let fixture = fixture_app();
    let document = openapi::document(&load(fixture.path()));
    let amount = &document["components"]["schemas"]["Deal"]["properties"]["amount"];
    assert_eq!(amount["type"], json!(["string", "null"]));
    assert_eq!(amount["pattern"], json!(r"^-?\d+(\.\d+)?$"));
    assert_eq!(
        amount["title"],
        json!("金额"),
        "a label without English falls back to any"
    );
    // On input a number is accepted too.
    let input = &document["components"]["schemas"]["DealInput"]["properties"]["amount"];
    assert_eq!(input["type"], json!(["string", "number", "null"]));
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
    /// The validator, or `None` when it is not installed and the developer asked to skip
    /// the validation with `KEEL_SKIP_OPENAPI_VALIDATOR=1` (outside CI; a note goes to the
    /// real stderr). Otherwise a missing validator fails the test.
    fn find() -> Option<OpenApiValidator> {
        let installed = Command::new("python3")
            .args(["-c", "import openapi_spec_validator"])
            .output()
            .is_ok_and(|output| output.status.success());
        if installed {
            return Some(OpenApiValidator);
        }
        keel_testkit::skip_or_fail(
            "openapi-spec-validator",
            "python3 -m pip install openapi-spec-validator",
            "KEEL_SKIP_OPENAPI_VALIDATOR",
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
