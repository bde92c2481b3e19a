//! Scripts and expressions are analysed against the objects they run over: triggers against
//! their object (pool fields included when a pool uses it), rule actions and conditions
//! against the rule's object, process guards, `on_enter` scripts and approvals against the
//! process's object.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::Path;

const APP: &str = "name: Test\nlanguage: en\ntimezone: UTC\ncurrency: CNY\n";

const LEAD: &str = "\
name: lead
title: name
fields:
  name: { type: text }
  last_follow_up_at: { type: datetime }
";

const DEAL: &str = "\
name: deal
title: name
fields:
  name: { type: text }
  amount: { type: money }
  stage: { type: choice, options: [open, won] }
";

const POOL: &str = "\
name: public_leads
object: lead
claim_limit: 3
reclaim_cooldown: 7d
";

/// Writes an app with the given extra files and returns every diagnostic as a line.
fn load(files: &[(&str, &str)]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let write = |relative: &str, text: &str| {
        let path = dir.path().join(relative);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    };
    write("metadata/app.yaml", APP);
    write("metadata/objects/lead.yaml", LEAD);
    write("metadata/objects/deal.yaml", DEAL);
    for (relative, text) in files {
        write(relative, text);
    }
    diagnostics(dir.path())
}

fn diagnostics(dir: &Path) -> Vec<String> {
    match keel_meta::load_app(dir) {
        Ok(_) => Vec::new(),
        Err(errors) => errors.diagnostics.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn a_trigger_script_sees_the_pool_fields_only_when_a_pool_uses_its_object() {
    let lead = format!("{LEAD}triggers:\n  before_save: [stamp]\n");
    let script = "if record.claimed_at != () { record.last_follow_up_at = record.claimed_at; }\n";
    let without_pool = load(&[
        ("metadata/objects/lead.yaml", &lead),
        ("scripts/stamp.rhai", script),
    ]);
    assert_eq!(
        without_pool,
        [
            "scripts/stamp.rhai:1:11: script `stamp`: `claimed_at` is not a field of `lead`",
            "scripts/stamp.rhai:1:64: script `stamp`: `claimed_at` is not a field of `lead`",
        ]
    );
    let with_pool = load(&[
        ("metadata/objects/lead.yaml", &lead),
        ("metadata/pools/public_leads.yaml", POOL),
        ("scripts/stamp.rhai", script),
    ]);
    assert_eq!(with_pool, Vec::<String>::new());
}

#[test]
fn an_after_delete_trigger_is_loaded_and_its_script_checked() {
    let lead = format!("{LEAD}triggers:\n  after_delete: [goodbye]\n");
    let dir = tempfile::tempdir().unwrap();
    for (relative, text) in [
        ("metadata/app.yaml", APP),
        ("metadata/objects/lead.yaml", lead.as_str()),
        ("scripts/goodbye.rhai", "log(`deleted ${record.name}`);\n"),
    ] {
        let path = dir.path().join(relative);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }
    let schema = keel_meta::load_app(dir.path()).unwrap();
    assert_eq!(schema.objects["lead"].triggers.after_delete, ["goodbye"]);

    let found = load(&[
        ("metadata/objects/lead.yaml", &lead),
        ("scripts/goodbye.rhai", "log(`deleted ${record.nam}`);\n"),
    ]);
    assert_eq!(
        found,
        [
            "scripts/goodbye.rhai:1:23: script `goodbye`: `nam` is not a field of `lead`; did you mean `name`?"
        ]
    );
}

#[test]
fn rules_are_checked_against_their_object() {
    let rule = "\
name: big
object: deal
on: [update]
when: 'record.amount > 100 && old?.amonut != record.amount'
action: { script: big }
";
    let found = load(&[
        ("workflows/rules/big.yaml", rule),
        ("scripts/big.rhai", "notify(record.owner, record.nme);\n"),
    ]);
    assert_eq!(
        found,
        [
            "scripts/big.rhai:1:29: script `big`: `nme` is not a field of `deal`; did you mean `name`?",
            "workflows/rules/big.yaml:4:36: `amonut` is not a field of `deal`; did you mean `amount`?",
        ]
    );
}

#[test]
fn processes_are_checked_against_their_object() {
    let process = "\
name: deal_flow
object: deal
stage_field: stage
stages:
  - { key: open, probability: 10 }
  - key: won
    probability: 100
    outcome: won
    on_enter: [won]
    approval:
      when: 'record.amout > 1000'
      steps: [ { approvers: manager } ]
transitions: [ { from: open, to: won, guard: may_win } ]
";
    let found = load(&[
        ("workflows/processes/deal_flow.yaml", process),
        (
            "scripts/won.rhai",
            "update(\"lead\", record.id, #{ stage: \"won\" });\n",
        ),
        (
            "scripts/may_win.rhai",
            "user.roles.contains(\"admin\") && record.stag == \"open\"\n",
        ),
    ]);
    assert_eq!(
        found,
        [
            "scripts/may_win.rhai:1:40: script `may_win`: `stag` is not a field of `deal`; did you mean `stage`?",
            "scripts/won.rhai:1:30: script `won`: `stage` is not a field of `lead`",
            "workflows/processes/deal_flow.yaml:11:21: `amout` is not a field of `deal`; did you mean `amount`?",
        ]
    );
}

#[test]
fn a_field_that_failed_is_not_reported_again_by_the_expressions_naming_it() {
    let deal = format!(
        "{DEAL}  select: {{ type: text }}\nvalidations:\n  - when: 'record.select == ()'\n    message: bad\n"
    );
    let found = load(&[("metadata/objects/deal.yaml", &deal)]);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("metadata/objects/deal.yaml:7:3:"),
        "{found:?}"
    );
}
