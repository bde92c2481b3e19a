//! `keel check`: the shipped apps pass, and every kind of mistake in an app directory is
//! reported as `file:line:col: message` with exit code 1. Messages are snapshotted.

use crate::support::{AppDir, repository_root, run_keel, text};

const APP: &str =
    "name: { en: Test CRM, zh: 测试 }\nlanguage: zh\ntimezone: Asia/Shanghai\ncurrency: CNY\n";

const ROLES: &str = "\
roles:
  admin: { admin: true }
  sales_rep: { label: { zh: 销售代表 } }
permissions:
  sales_rep:
    lead: { read: own, create: true, edit: own }
";

const ACCOUNT: &str = "\
name: account
label: { en: Account, zh: 客户 }
title: name
fields:
  name: { type: text, required: true }
";

const LEAD: &str = "\
name: lead
label: { en: Lead, zh: 线索 }
title: name
search: [name]
fields:
  name: { type: text, required: true, max_length: 100 }
  phone: { type: phone }
  status: { type: choice, options: [new, converted], default: new }
  account: { type: lookup, object: account, on_delete: set_null }
  last_follow_up_at: { type: datetime }
layout:
  - section: { en: Basic, zh: 基本信息 }
    fields: [name, phone, status]
triggers:
  before_save: [normalize]
";

const DEAL: &str = "\
name: deal
title: name
fields:
  name: { type: text }
  stage: { type: choice, options: [open, won, lost] }
";

const PROCESS: &str = "\
name: deal_flow
object: deal
stage_field: stage
stages:
  - { key: open, probability: 10 }
  - { key: won, probability: 100, outcome: won }
  - { key: lost, probability: 0, outcome: lost }
transitions: [ { from: \"*\", to: lost }, { linear: true } ]
";

const POOL: &str = "\
name: public_leads
object: lead
members: [sales_rep]
claim_limit: 30
reclaim_cooldown: 7d
auto_return:
  schedule: \"0 */10 * * * *\"
  warn_before: 1d
  rules:
    - no_follow_up_for: 3d
      follow_up_field: last_follow_up_at
";

const RULE: &str = "\
name: reminder
schedule: \"0 0 9 * * *\"
object: lead
where: { status: new }
action:
  notify: owner
  message: { zh: \"请跟进 {{ record.title }}\" }
";

const SCRIPT: &str = "let name = record.name;\nif name != () {\n  record.name = name.trim();\n}\n";

/// A small app that uses every kind of file and passes `keel check`.
fn valid_app() -> AppDir {
    AppDir::new(&[
        ("metadata/app.yaml", APP),
        ("metadata/roles.yaml", ROLES),
        ("metadata/objects/account.yaml", ACCOUNT),
        ("metadata/objects/lead.yaml", LEAD),
        ("metadata/objects/deal.yaml", DEAL),
        ("metadata/pools/public_leads.yaml", POOL),
        ("workflows/processes/deal_flow.yaml", PROCESS),
        ("workflows/rules/reminder.yaml", RULE),
        ("scripts/normalize.rhai", SCRIPT),
    ])
}

/// Runs `keel check` in the app directory; returns (exit code, stdout, stderr).
fn check(app: &AppDir) -> (i32, String, String) {
    let output = run_keel(&["check", "--app", "."], app.path());
    (
        output.status.code().unwrap_or(-1),
        text(&output.stdout),
        text(&output.stderr),
    )
}

/// Applies one broken file to the valid app and returns what `keel check` printed, after
/// asserting it failed with exit code 1.
fn broken(relative: &str, contents: &str) -> String {
    let app = valid_app();
    app.write(relative, contents);
    let (code, _, stderr) = check(&app);
    assert_eq!(code, 1, "keel check should fail; stderr:\n{stderr}");
    stderr
}

#[test]
fn the_valid_fixture_app_passes() {
    let (code, stdout, stderr) = check(&valid_app());
    assert_eq!(code, 0, "stderr:\n{stderr}");
    assert!(
        stdout.starts_with("ok: 3 objects, 1 pools, 1 processes, 1 rules, 1 scripts"),
        "{stdout}"
    );
}

#[test]
fn the_standard_app_and_every_template_pass() {
    let root = repository_root();
    let mut apps = vec![root.clone()];
    for entry in std::fs::read_dir(root.join("templates")).unwrap() {
        let path = entry.unwrap().path();
        if path.join("metadata").is_dir() {
            apps.push(path);
        }
    }
    for app in apps {
        let output = run_keel(&["check", "--app", app.to_str().unwrap()], &root);
        assert!(
            output.status.success(),
            "{} fails:\n{}",
            app.display(),
            text(&output.stderr)
        );
    }
}

#[test]
fn a_yaml_syntax_error_names_its_line() {
    insta::assert_snapshot!(broken(
        "metadata/objects/lead.yaml",
        "name: lead\nfields:\n  name: { type: text\n  phone: { type: phone }\n"
    ));
}

#[test]
fn an_unknown_key_points_at_the_key() {
    insta::assert_snapshot!(broken(
        "metadata/objects/account.yaml",
        "name: account\ntitle: name\nfields:\n  name: { type: text, requird: true }\n"
    ));
}

#[test]
fn an_unknown_field_type_lists_the_known_ones() {
    insta::assert_snapshot!(broken(
        "metadata/objects/account.yaml",
        "name: account\ntitle: name\nfields:\n  name:\n    type: string\n"
    ));
}

#[test]
fn a_lookup_to_a_missing_object_is_reported_at_its_object_key() {
    insta::assert_snapshot!(broken(
        "metadata/objects/lead.yaml",
        &LEAD.replace("object: account", "object: acount")
    ));
}

#[test]
fn a_layout_naming_a_missing_field_is_reported() {
    insta::assert_snapshot!(broken(
        "metadata/objects/lead.yaml",
        &LEAD.replace(
            "fields: [name, phone, status]",
            "fields: [name, mobile, status]"
        )
    ));
}

#[test]
fn a_duplicate_stage_key_names_the_first_use() {
    insta::assert_snapshot!(broken(
        "workflows/processes/deal_flow.yaml",
        &PROCESS.replace(
            "  - { key: won, probability: 100, outcome: won }",
            "  - { key: won, probability: 100, outcome: won }\n  - { key: open, probability: 20 }"
        )
    ));
}

#[test]
fn a_bad_cron_string_is_reported_at_the_schedule() {
    insta::assert_snapshot!(broken(
        "workflows/rules/reminder.yaml",
        &RULE.replace("0 0 9 * * *", "0 0 25 * *")
    ));
}

#[test]
fn a_bad_duration_is_reported_at_its_value() {
    insta::assert_snapshot!(broken(
        "metadata/pools/public_leads.yaml",
        &POOL.replace("reclaim_cooldown: 7d", "reclaim_cooldown: 7days")
    ));
}

#[test]
fn a_rhai_syntax_error_names_the_script_line() {
    insta::assert_snapshot!(broken(
        "scripts/normalize.rhai",
        "let name = record.name;\nif name != () {\n  record.name = ;\n}\n"
    ));
}

#[test]
fn reserved_and_invalid_identifiers_are_refused() {
    insta::assert_snapshot!(broken(
        "metadata/objects/account.yaml",
        "name: account\ntitle: name\nfields:\n  name: { type: text }\n  order: { type: integer }\n  Owner-Name: { type: text }\n  version: { type: integer }\n"
    ));
}

#[test]
fn every_problem_is_reported_not_just_the_first() {
    let app = valid_app();
    app.write(
        "metadata/objects/account.yaml",
        "name: account\ntitle: nmae\nfields:\n  name: { type: txt }\n",
    );
    app.write(
        "workflows/rules/reminder.yaml",
        &RULE.replace("0 0 9 * * *", "daily"),
    );
    app.write("scripts/normalize.rhai", "let = 1;\n");
    app.write(
        "metadata/pools/public_leads.yaml",
        &POOL.replace("members: [sales_rep]", "members: [sales_rep, intern]"),
    );
    let (code, _, stderr) = check(&app);
    assert_eq!(code, 1);
    insta::assert_snapshot!(stderr);
}

#[test]
fn a_missing_app_yaml_is_reported() {
    let app = valid_app();
    app.remove("metadata/app.yaml");
    let (code, _, stderr) = check(&app);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("metadata/app.yaml:1:1: this file is missing"),
        "{stderr}"
    );
}

#[test]
fn cross_file_references_are_checked() {
    let app = valid_app();
    app.write(
        "metadata/objects/lead.yaml",
        &LEAD.replace("before_save: [normalize]", "before_save: [normalise]"),
    );
    app.write(
        "workflows/processes/deal_flow.yaml",
        &PROCESS.replace("stage_field: stage", "stage_field: phase"),
    );
    app.write(
        "metadata/roles.yaml",
        &ROLES.replace("    lead: {", "    leads: {"),
    );
    let (code, _, stderr) = check(&app);
    assert_eq!(code, 1);
    insta::assert_snapshot!(stderr);
}

#[test]
fn an_unknown_field_deep_in_a_filter_is_reported_at_its_key() {
    let app = valid_app();
    app.write(
        "workflows/rules/reminder.yaml",
        &RULE.replace(
            "where: { status: new }",
            "where:\n  or:\n    - status: new\n    - not:\n        stauts: { eq: converted }\n",
        ),
    );
    app.write(
        "metadata/pools/public_leads.yaml",
        &POOL.replace(
            "  warn_before: 1d\n",
            "  warn_before: 1d\n  exempt:\n    not: { or: [ { status: converted }, { phonee: { is: null } } ] }\n",
        ),
    );
    let (code, _, stderr) = check(&app);
    assert_eq!(code, 1);
    insta::assert_snapshot!(stderr);
}

#[test]
fn a_cross_file_error_is_reported_beside_another_files_schema_error() {
    let app = valid_app();
    // Schema errors in three files: a mistyped key in `lead.yaml` and in `roles.yaml`'s
    // permissions (both leave what other files refer to intact), and a bad field type in
    // `deal.yaml` (which does not).
    app.write(
        "metadata/objects/lead.yaml",
        &LEAD.replace("search: [name]", "serach: [name]"),
    );
    app.write(
        "metadata/roles.yaml",
        &ROLES.replace("read: own", "raed: own"),
    );
    app.write(
        "metadata/objects/deal.yaml",
        &DEAL.replace("name: { type: text }", "name: { type: txt }"),
    );
    // The cross-file errors of the other files are all reported: a pool naming a missing
    // role, a rule's filter naming a field `lead` does not have, an action naming a script
    // that does not exist. Only the process on the broken `deal` is not checked against it
    // (its `stage_field: phase` would be checked against a half-read object).
    app.write(
        "metadata/pools/public_leads.yaml",
        &POOL.replace("members: [sales_rep]", "members: [sales_rep, intern]"),
    );
    app.write(
        "workflows/rules/reminder.yaml",
        "name: reminder\nschedule: \"0 0 9 * * *\"\nobject: lead\nwhere: { stage: new }\naction: { script: remind }\n",
    );
    app.write(
        "workflows/processes/deal_flow.yaml",
        &PROCESS.replace("stage_field: stage", "stage_field: phase"),
    );
    let (code, _, stderr) = check(&app);
    assert_eq!(code, 1);
    insta::assert_snapshot!(stderr);
}

#[test]
fn a_file_with_a_schema_error_still_reports_its_own_cross_checks() {
    let app = valid_app();
    // An unknown key and an unknown field type, beside mistakes the schema cannot see: the
    // title, a lookup, a trigger and the layout name things that do not exist. The field with
    // the bad type is not reported again where the file names it (`search`), and the lead's
    // lookup to this broken object is not reported at all.
    app.write(
        "metadata/objects/account.yaml",
        "\
name: account
title: nmae
search: [name, code]
serach: [name]
fields:
  name: { type: text, required: true }
  code: { type: txt }
  parent: { type: lookup, object: acount }
triggers:
  before_save: [normalise]
layout:
  - section: Basic
    fields: [name, mobile]
",
    );
    // A rule whose `on` has the wrong shape still reports its filter's unknown field, but
    // not "a rule needs exactly one of `schedule` or `on`", which only follows from it.
    app.write(
        "workflows/rules/reminder.yaml",
        &RULE
            .replace("schedule: \"0 0 9 * * *\"", "on: create")
            .replace("where: { status: new }", "where: { stauts: new }"),
    );
    let (code, _, stderr) = check(&app);
    assert_eq!(code, 1);
    insta::assert_snapshot!(stderr);
}

#[test]
fn a_bad_cron_field_is_named_with_its_value() {
    insta::assert_snapshot!(broken(
        "workflows/rules/reminder.yaml",
        &RULE.replace("0 0 9 * * *", "0 0 25 * * *")
    ));
}

#[test]
fn a_rhai_block_never_closed_is_reported_at_its_brace() {
    insta::assert_snapshot!(broken(
        "scripts/normalize.rhai",
        "let name = record.name;\nif name != () {\n  if name.len() > 10 {\n    record.name = name.trim();\n}\nrecord.phone = ();\n"
    ));
}

#[test]
fn a_rhai_call_never_closed_is_reported_at_its_parenthesis() {
    insta::assert_snapshot!(broken(
        "scripts/normalize.rhai",
        "let name = record.name;\nrecord.name = name.sub_string(0, 10;\n"
    ));
}

#[test]
fn an_expression_bracket_never_closed_is_reported_where_it_is_in_the_file() {
    insta::assert_snapshot!(broken(
        "metadata/objects/deal.yaml",
        &format!(
            "{DEAL}  quick: {{ type: formula, expr: 'max(1, 2', returns: integer }}\nvalidations:\n  - when: |\n      record.name == \"x\" &&\n        (record.stage == \"won\"\n    message: bad\n"
        )
    ));
}

#[test]
fn a_script_calling_an_unknown_function_is_reported_at_the_call() {
    insta::assert_snapshot!(broken(
        "scripts/normalize.rhai",
        "let name = record.name;\nlet others = fnd(\"lead\", #{ name: name });\nlet n = count(\"lead\");\nlet a = get(\"acount\", record.account);\n"
    ));
}

#[test]
fn a_script_reading_or_writing_a_field_the_object_does_not_have_is_reported() {
    insta::assert_snapshot!(broken(
        "scripts/normalize.rhai",
        "if record.amout != () {\n  record.stauts = \"new\";\n}\nlet m = user.email;\ncreate(\"account\", #{ nme: record.name });\n"
    ));
}

#[test]
fn an_expression_naming_an_unknown_field_is_reported_where_it_is_in_the_file() {
    insta::assert_snapshot!(broken(
        "metadata/objects/deal.yaml",
        &format!(
            "{DEAL}  doubled: {{ type: formula, expr: 'record.amount * 2', returns: integer }}\nvalidations:\n  - when: |\n      record.name == \"x\" &&\n        record.stgae == \"won\"\n    message: bad\n"
        )
    ));
}

#[test]
fn a_script_used_by_two_objects_is_checked_against_each() {
    let app = valid_app();
    app.write(
        "metadata/objects/deal.yaml",
        &format!("{DEAL}triggers:\n  after_delete: [normalize]\n"),
    );
    app.write(
        "scripts/normalize.rhai",
        "let name = record.name;\nif record.phone != () {\n  record.phone = record.phone.trim();\n}\n",
    );
    let (code, _, stderr) = check(&app);
    assert_eq!(code, 1, "keel check should fail; stderr:\n{stderr}");
    insta::assert_snapshot!(stderr);
}
