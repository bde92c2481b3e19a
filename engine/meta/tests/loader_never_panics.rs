//! Property tests: whatever bytes or YAML trees an app directory holds, loading returns a
//! schema or diagnostics — it never panics, and every diagnostic points inside the file.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use proptest::prelude::*;

const VALID_OBJECT: &str = "\
name: lead
label: { en: Lead, zh: 线索 }
title: name
search: [name, company]
fields:
  name: { type: text, required: true, max_length: 100 }
  company: { type: text }
  status: { type: choice, options: [new, { key: done, label: { zh: 完成 } }], default: new }
  score: { type: integer, min: 0, max: 100 }
  amount: { type: money, scale: 2 }
  code: { type: autonumber, format: \"L-{YYYY}-{seq:6}\" }
  weighted: { type: formula, expr: 'record.score * 2', returns: integer }
indexes: [[status, score]]
duplicates:
  - { fields: [company, name], action: warn }
validations:
  - when: 'record.score > 90'
    message: { en: Too high }
layout:
  - section: Basic
    fields: [name, company]
list: { columns: [name, status], order: -created_at }
";

const VALID_POOL: &str = "\
name: pool
object: lead
claim_limit: 3
reclaim_cooldown: 7d
auto_return:
  schedule: \"0 */10 * * * *\"
  rules:
    - no_follow_up_for: 3d
";

fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("metadata/objects")).unwrap();
    std::fs::create_dir_all(dir.path().join("metadata/pools")).unwrap();
    std::fs::write(dir.path().join("metadata/app.yaml"), "name: Test\n").unwrap();
    dir
}

fn load_and_check_positions(dir: &Path, files: &[(&str, &str)]) {
    for (relative, text) in files {
        std::fs::write(dir.join(relative), text).unwrap();
    }
    if let Err(errors) = keel_meta::load_app(dir) {
        assert!(!errors.diagnostics.is_empty());
        for diagnostic in &errors.diagnostics {
            assert!(
                diagnostic.position.line >= 1 && diagnostic.position.column >= 1,
                "{diagnostic}"
            );
            if let Some((_, text)) = files
                .iter()
                .find(|(relative, _)| *relative == diagnostic.file)
            {
                let lines = text.split(['\n', '\r']).count() + 1;
                assert!(
                    diagnostic.position.line <= lines,
                    "{diagnostic} is past the end of the file:\n{text}"
                );
            }
        }
    }
}

/// Small edits that tend to break YAML in interesting ways.
fn mutate(text: &str, edits: &[(usize, u8, usize)]) -> String {
    const SPECIAL: &[u8] = b":{}[]-#&*!|>'\"%@`\t\n ,?0a_";
    let mut bytes = text.as_bytes().to_vec();
    for &(at, what, length) in edits {
        if bytes.is_empty() {
            break;
        }
        let at = at % bytes.len();
        match what % 4 {
            0 => bytes.insert(at, SPECIAL[length % SPECIAL.len()]),
            1 => {
                let end = (at + length % 8).min(bytes.len());
                bytes.drain(at..end);
            }
            2 => {
                let end = (at + length % 16).min(bytes.len());
                let copy = bytes[at..end].to_vec();
                bytes.splice(at..at, copy);
            }
            _ => bytes[at] = SPECIAL[length % SPECIAL.len()],
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn yaml_tree() -> impl Strategy<Value = serde_yaml::Value> {
    let leaf = prop_oneof![
        Just(serde_yaml::Value::Null),
        any::<bool>().prop_map(serde_yaml::Value::Bool),
        any::<i64>().prop_map(|n| serde_yaml::Value::Number(n.into())),
        "[a-z_]{0,12}".prop_map(serde_yaml::Value::String),
        prop_oneof![
            Just("text"),
            Just("lookup"),
            Just("choice"),
            Just("3d"),
            Just("0 0 9 * * *"),
            Just("@today+1d"),
            Just("record.x > 1"),
            Just("name"),
            Just("lead"),
            Just("*"),
        ]
        .prop_map(|s| serde_yaml::Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(serde_yaml::Value::Sequence),
            prop::collection::vec(
                (
                    prop_oneof![
                        Just("name"),
                        Just("fields"),
                        Just("type"),
                        Just("object"),
                        Just("options"),
                        Just("label"),
                        Just("title"),
                        Just("layout"),
                        Just("rules"),
                        Just("schedule"),
                        Just("or"),
                        Just("not"),
                        Just("status"),
                        Just("key"),
                        Just("section"),
                    ],
                    inner
                ),
                0..6
            )
            .prop_map(|entries| {
                serde_yaml::Value::Mapping(
                    entries
                        .into_iter()
                        .map(|(k, v)| (serde_yaml::Value::String(k.to_owned()), v))
                        .collect(),
                )
            }),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn mutated_yaml_never_panics(edits in prop::collection::vec((any::<usize>(), any::<u8>(), any::<usize>()), 1..6)) {
        let dir = setup();
        let object = mutate(VALID_OBJECT, &edits);
        let pool = mutate(VALID_POOL, &edits);
        load_and_check_positions(dir.path(), &[("metadata/objects/lead.yaml", &object), ("metadata/pools/pool.yaml", &pool)]);
    }

    #[test]
    fn random_yaml_trees_never_panic(tree in yaml_tree(), pool_tree in yaml_tree()) {
        let dir = setup();
        let object = serde_yaml::to_string(&tree).unwrap();
        let pool = serde_yaml::to_string(&pool_tree).unwrap();
        load_and_check_positions(dir.path(), &[("metadata/objects/lead.yaml", &object), ("metadata/pools/pool.yaml", &pool)]);
    }

    #[test]
    fn arbitrary_text_never_panics(text in ".{0,300}") {
        let dir = setup();
        load_and_check_positions(dir.path(), &[("metadata/objects/lead.yaml", &text)]);
    }
}

#[test]
fn the_unmutated_fixtures_load() {
    let dir = setup();
    std::fs::write(dir.path().join("metadata/objects/lead.yaml"), VALID_OBJECT).unwrap();
    std::fs::write(dir.path().join("metadata/pools/pool.yaml"), VALID_POOL).unwrap();
    if let Err(errors) = keel_meta::load_app(dir.path()) {
        panic!("{errors}");
    }
}
