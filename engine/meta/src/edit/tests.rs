use serde_json::json;

use super::*;

const FIELDS: &str = "\
# A lead.
name: lead
label: { en: Lead, zh: 线索 }   # shown in the menu
search: [name, company]
fields:
  name:
    type: text
    label: { en: Name, zh: 姓名 }

  # How the lead came in.
  source:
    type: choice
    options:
      - { key: web, label: Website }
      - { key: fair, label: Fair }
stages:
- key: new
  probability: 10
- key: won   # the end
  probability: 100
help: |
  First line.
  Second line.
tail: end
";

fn set(path: &str, value: Value) -> Edit {
    Edit::Set {
        path: path.to_owned(),
        value,
    }
}

fn edited(text: &str, edits: &[Edit]) -> String {
    apply(text, edits).unwrap_or_else(|error| panic!("{error}"))
}

#[test]
fn setting_a_scalar_changes_only_its_bytes() {
    let text = edited(FIELDS, &[set("/fields/name/type", json!("long_text"))]);
    assert_eq!(
        text,
        FIELDS.replace("    type: text", "    type: long_text")
    );
}

#[test]
fn setting_a_value_inside_a_flow_mapping_keeps_the_rest_of_the_line() {
    let text = edited(FIELDS, &[set("/label/zh", json!("潜在客户"))]);
    assert_eq!(
        text,
        FIELDS.replace("zh: 线索 }   # shown", "zh: 潜在客户 }   # shown")
    );
}

#[test]
fn strings_yaml_would_read_as_another_type_are_quoted() {
    for (value, written) in [
        ("yes", "\"yes\""),
        ("1.0", "\"1.0\""),
        ("null", "\"null\""),
        ("a: b", "\"a: b\""),
        (" padded", "\" padded\""),
        ("12", "\"12\""),
        ("\"quoted\" first", "'\"quoted\" first'"),
        ("say \"hi\"", "say \"hi\""),
        ("", "\"\""),
        ("#tag", "\"#tag\""),
        ("中文也可以", "中文也可以"),
        ("7d", "7d"),
        ("-created_at", "-created_at"),
    ] {
        let text = edited(FIELDS, &[set("/tail", json!(value))]);
        assert!(
            text.ends_with(&format!("tail: {written}\n")),
            "{value:?} was written as {text}"
        );
    }
}

#[test]
fn a_quoted_string_keeps_its_quotes_and_the_comment_after_it() {
    let text = "a: \"0 0 9 * * *\"   # daily\nb: { c: 'x', d: \"y\" }   # note\n";
    let text = edited(
        text,
        &[
            set("/a", json!("0 30 8 * * *")),
            set("/b/c", json!("it's")),
            set("/b/d", json!("z")),
        ],
    );
    assert_eq!(
        text,
        "a: \"0 30 8 * * *\"   # daily\nb: { c: 'it''s', d: \"z\" }   # note\n"
    );
}

#[test]
fn a_string_in_a_flow_collection_with_a_comma_is_quoted() {
    let text = edited(FIELDS, &[set("/search/1", json!("a, b"))]);
    assert!(text.contains("search: [name, \"a, b\"]\n"), "{text}");
}

#[test]
fn a_multi_line_string_becomes_a_literal_block() {
    let text = edited(FIELDS, &[set("/tail", json!("one\ntwo\n"))]);
    assert!(text.ends_with("tail: |\n  one\n  two\n"), "{text}");
    let text = edited(FIELDS, &[set("/help", json!("only"))]);
    assert!(text.contains("help: only\ntail: end\n"), "{text}");
}

#[test]
fn replacing_a_subtree_writes_block_style_at_its_indentation() {
    let text = edited(
        FIELDS,
        &[set(
            "/fields/name",
            json!({"type": "text", "required": true, "label": {"en": "Full name", "zh": "姓名"}}),
        )],
    );
    assert!(
        text.contains(
            "  name:\n    type: text\n    required: true\n    label: { en: Full name, zh: 姓名 }\n\n  # How"
        ),
        "{text}"
    );
}

#[test]
fn a_scalar_replaced_by_a_mapping_moves_below_its_key() {
    let text = edited(FIELDS, &[set("/tail", json!({"a": 1, "b": [1, 2]}))]);
    assert!(
        text.ends_with("tail:\n  a: 1\n  b:\n    - 1\n    - 2\n"),
        "{text}"
    );
}

#[test]
fn inserting_a_key_after_another_keeps_the_comment_and_blank_line() {
    let text = edited(
        FIELDS,
        &[Edit::Insert {
            path: "/fields/name".to_owned(),
            key: "required".to_owned(),
            value: json!(true),
            after: Some("type".to_owned()),
        }],
    );
    assert_eq!(
        text,
        FIELDS.replace("    type: text\n", "    type: text\n    required: true\n")
    );
}

#[test]
fn a_new_field_is_written_like_its_siblings() {
    let text = edited(
        FIELDS,
        &[Edit::Insert {
            path: "/fields".to_owned(),
            key: "level".to_owned(),
            value: json!({
                "type": "choice",
                "label": {"en": "Level", "zh": "级别"},
                "options": [{"key": "a", "label": "A"}, {"key": "b", "label": "B"}],
            }),
            after: None,
        }],
    );
    assert!(
        text.contains(
            "      - { key: fair, label: Fair }\n  level:\n    type: choice\n    label: { en: Level, zh: 级别 }\n    options:\n      - { key: a, label: A }\n      - { key: b, label: B }\nstages:"
        ),
        "{text}"
    );
}

#[test]
fn inserting_into_a_flow_mapping_and_sequence_stays_on_their_line() {
    let text = edited(
        FIELDS,
        &[
            Edit::Insert {
                path: "/label".to_owned(),
                key: "ja".to_owned(),
                value: json!("リード"),
                after: None,
            },
            Edit::InsertItem {
                path: "/search".to_owned(),
                index: 0,
                value: json!("email"),
            },
            Edit::Append {
                path: "/search".to_owned(),
                value: json!("phone"),
            },
        ],
    );
    assert!(
        text.contains(
            "label: { en: Lead, zh: 线索, ja: リード }   # shown in the menu\nsearch: [email, name, company, phone]\n"
        ),
        "{text}"
    );
}

#[test]
fn removing_keys_and_items_removes_only_their_lines() {
    let text = edited(
        FIELDS,
        &[
            Edit::Remove {
                path: "/fields/name/label".to_owned(),
            },
            Edit::Remove {
                path: "/fields/source/options/0".to_owned(),
            },
            Edit::Remove {
                path: "/search/0".to_owned(),
            },
            Edit::Remove {
                path: "/label/en".to_owned(),
            },
        ],
    );
    let expected = FIELDS
        .replace("    label: { en: Name, zh: 姓名 }\n", "")
        .replace("      - { key: web, label: Website }\n", "")
        .replace("search: [name, company]", "search: [company]")
        .replace("{ en: Lead, zh: 线索 }", "{ zh: 线索 }");
    assert_eq!(text, expected);
}

#[test]
fn removing_the_first_key_of_an_item_moves_the_next_key_onto_the_dash_line() {
    let text = edited(
        FIELDS,
        &[Edit::Remove {
            path: "/stages/0/key".to_owned(),
        }],
    );
    assert!(
        text.contains("stages:\n- probability: 10\n- key: won"),
        "{text}"
    );
}

#[test]
fn removing_the_last_entry_leaves_an_empty_collection() {
    let text = edited(
        "a:\n  b: 1\nc: [x]\n",
        &[
            Edit::Remove {
                path: "/a/b".to_owned(),
            },
            Edit::Remove {
                path: "/c/0".to_owned(),
            },
        ],
    );
    assert_eq!(text, "a: {}\nc: []\n");
}

#[test]
fn items_are_inserted_and_moved_with_their_comments() {
    let text = edited(
        FIELDS,
        &[
            Edit::InsertItem {
                path: "/stages".to_owned(),
                index: 1,
                value: json!({"key": "proposal", "probability": 50}),
            },
            Edit::MoveItem {
                path: "/stages".to_owned(),
                from: 2,
                to: 0,
            },
        ],
    );
    assert!(
        text.contains(
            "stages:\n- key: won   # the end\n  probability: 100\n- key: new\n  probability: 10\n- key: proposal\n  probability: 50\nhelp:"
        ),
        "{text}"
    );
}

#[test]
fn a_missing_key_is_set_by_inserting_it_and_an_empty_value_is_filled_in() {
    let text = edited(
        "a:\nb: 1\n",
        &[set("/a", json!({"x": 1})), set("/c", json!([1]))],
    );
    assert_eq!(text, "a:\n  x: 1\nb: 1\nc:\n  - 1\n");
}

#[test]
fn a_file_with_windows_line_breaks_keeps_them() {
    let text = "a: 1\r\nb:\r\n  c: 2\r\nd: [x]\r\n";
    let text = edited(
        text,
        &[
            Edit::Insert {
                path: "/b".to_owned(),
                key: "e".to_owned(),
                value: json!({"f": [1, 2]}),
                after: None,
            },
            Edit::Remove {
                path: "/a".to_owned(),
            },
            set("/d/0", json!("y\nz")),
        ],
    );
    assert_eq!(
        text,
        "b:\r\n  c: 2\r\n  e:\r\n    f:\r\n      - 1\r\n      - 2\r\nd: [\"y\\nz\"]\r\n"
    );
    let text = edited("a: 1\r\nb: |\r\n  x\r\n", &[set("/b", json!("z"))]);
    assert_eq!(text, "a: 1\r\nb: z\r\n");
}

#[test]
fn a_file_of_comments_only_gets_its_first_key_after_them() {
    let text = edited(
        "# Roles.\n",
        &[set("/roles", json!({"admin": {"admin": true}}))],
    );
    assert_eq!(text, "# Roles.\nroles:\n  admin:\n    admin: true\n");
    assert_eq!(edited("", &[set("/a", json!(1))]), "a: 1\n");
}

#[test]
fn removing_the_last_line_of_a_file_without_a_final_line_break() {
    assert_eq!(
        edited(
            "a: 1\nb: 2",
            &[Edit::Remove {
                path: "/b".to_owned()
            }]
        ),
        "a: 1"
    );
}

#[test]
fn new_values_follow_the_file_s_own_indentation() {
    let text = edited(
        "a:\n    b: 1\nlist:\n- x\n",
        &[
            Edit::Insert {
                path: "/a".to_owned(),
                key: "c".to_owned(),
                value: json!({"d": [1]}),
                after: None,
            },
            set("/e", json!([{"f": 1, "g": 2}])),
        ],
    );
    assert_eq!(
        text,
        "a:\n    b: 1\n    c:\n        d:\n        - 1\nlist:\n- x\ne:\n- f: 1\n  g: 2\n"
    );
}

#[test]
fn errors_name_the_path() {
    let error = apply(FIELDS, &[set("/fields/nothing/type", json!("x"))]).unwrap_err();
    assert_eq!(error.path, "/fields/nothing/type");
    let error = apply(
        FIELDS,
        &[Edit::Insert {
            path: "/fields".to_owned(),
            key: "name".to_owned(),
            value: json!({}),
            after: None,
        }],
    )
    .unwrap_err();
    assert!(error.message.contains("already"), "{error}");
}

#[test]
fn rewrite_turns_a_new_value_into_the_fewest_edits() {
    let mut value = SourceDocument::parse(FIELDS).unwrap().value;
    value["fields"]["source"]["options"]
        .as_array_mut()
        .unwrap()
        .push(json!({"key": "ad", "label": "Advert"}));
    value["stages"].as_array_mut().unwrap().swap(0, 1);
    value["label"]["en"] = json!("Prospect");
    let text = rewrite(FIELDS, &value).unwrap();
    let expected = FIELDS
        .replace("Lead, zh", "Prospect, zh")
        .replace(
            "      - { key: fair, label: Fair }\n",
            "      - { key: fair, label: Fair }\n      - { key: ad, label: Advert }\n",
        )
        .replace(
            "- key: new\n  probability: 10\n- key: won   # the end\n  probability: 100\n",
            "- key: won   # the end\n  probability: 100\n- key: new\n  probability: 10\n",
        );
    assert_eq!(text, expected);
}

#[test]
fn sequences_too_long_to_align_are_set_whole() {
    let old: Vec<Value> = (0..600).map(|n| json!(n)).collect();
    let mut new = old.clone();
    new.insert(300, json!("x"));
    new.pop();
    let edits = diff(&json!({ "a": old }), &json!({ "a": new.clone() }));
    assert_eq!(
        edits,
        [Edit::Set {
            path: "/a".to_owned(),
            value: json!(new)
        }]
    );
    let short = diff(&json!({"a": [1, 2, 3]}), &json!({"a": [1, 9, 2, 3]}));
    assert_eq!(
        short,
        [Edit::InsertItem {
            path: "/a".to_owned(),
            index: 1,
            value: json!(9)
        }]
    );
}

#[test]
fn a_new_document_is_block_style() {
    assert_eq!(
        render_document(&json!({"name": "x", "fields": {"a": {"type": "text"}}, "list": ["a"]})),
        "name: x\nfields:\n  a:\n    type: text\nlist:\n  - a\n"
    );
}

/// The property test: random edits of the standard app's files (which have comments, blank
/// lines, flow and block collections) keep every line outside the edited node.
mod standard_app {
    use std::path::{Path, PathBuf};

    use proptest::prelude::*;
    use serde_json::json;

    use super::super::tree::{self, Kind, Node};
    use super::super::*;

    /// The standard app's files and the templates'.
    fn app_files() -> Vec<(PathBuf, String)> {
        files_of(&["metadata", "workflows", "templates"])
    }

    /// The YAML files under `directories` of the repository root.
    fn files_of(directories: &[&str]) -> Vec<(PathBuf, String)> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut files = Vec::new();
        for directory in directories {
            collect_yaml(&root.join(directory), &mut files);
        }
        files.sort();
        assert!(files.len() > 10, "the standard app's files are missing");
        files
            .into_iter()
            .map(|path| {
                let text = std::fs::read_to_string(&path).unwrap();
                (path, text)
            })
            .collect()
    }

    fn collect_yaml(directory: &Path, files: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(directory).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                collect_yaml(&path, files);
            } else if path
                .extension()
                .is_some_and(|extension| extension == "yaml")
            {
                files.push(path);
            }
        }
    }

    /// Every node's pointer, and whether it is a mapping or a sequence (with its length).
    fn pointers(value: &Value, path: String, out: &mut Vec<(String, Value)>) {
        out.push((path.clone(), value.clone()));
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    pointers(
                        child,
                        format!("{path}/{}", crate::source::escape_pointer(key)),
                        out,
                    );
                }
            }
            Value::Array(items) => {
                for (index, child) in items.iter().enumerate() {
                    pointers(child, format!("{path}/{index}"), out);
                }
            }
            _ => {}
        }
    }

    fn tricky_text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z][a-z_]{0,7}",
            "[a-zA-Z0-9 ,:#'\"\\[\\]{}\\-]{0,12}",
            "\\PC{0,6}",
            prop::sample::select(vec![
                "yes", "No", "1.0", "null", "~", "a: b", " lead", "trail ", "#x", "- x", "中文",
                "'q'", "\"q\"", "it's", "a\nb", "x\n", "x\n\n", "[x]", "{y}", "a, b", "", "0x1F",
                "1_000", "@x", "%x", "`x`", "*x", "&x", "!x", "|", ">", "?", ":", "-", "---",
                "...", "a #b", "a#b", "x\ty", "0o17", ".inf", "+1", "1e3", "7d", "09:30", "\u{7f}",
                "a\r\nb", "\n", " \n x",
            ])
            .prop_map(str::to_owned),
        ]
    }

    fn arbitrary_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            tricky_text().prop_map(Value::String),
            any::<i64>().prop_map(Value::from),
            (-1000i32..1000).prop_map(|n| json!(f64::from(n) / 8.0)),
            any::<bool>().prop_map(Value::Bool),
            Just(Value::Null),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec(("[a-z_]{1,6}|[0-9]{1,2}|yes", inner), 0..4).prop_map(
                    |entries| Value::Object(entries.into_iter().collect::<serde_json::Map<_, _>>())
                ),
            ]
        })
    }

    #[derive(Debug, Clone)]
    enum Operation {
        Set,
        Insert,
        Remove,
        InsertItem,
        Move,
    }

    /// 0-based line of a byte offset.
    fn line_of(text: &str, offset: usize) -> usize {
        text[..offset].matches('\n').count()
    }

    /// The node at `path` with its parent and its index there.
    fn locate<'n>(root: &'n Node, path: &str) -> (Option<(&'n Node, usize)>, &'n Node) {
        let mut parent = None;
        let mut node = root;
        for segment in segments(path).unwrap() {
            let (index, next) = match &node.kind {
                Kind::Mapping { entries, .. } => entries
                    .iter()
                    .enumerate()
                    .find(|(_, entry)| entry.key == segment)
                    .map(|(index, entry)| (index, &entry.value))
                    .unwrap(),
                Kind::Sequence { items, .. } => {
                    let index: usize = segment.parse().unwrap();
                    (index, &items[index].value)
                }
                Kind::Scalar(_) => panic!("no node at {path}"),
            };
            parent = Some((node, index));
            node = next;
        }
        (parent, node)
    }

    /// The lines of the child `index` of `parent` with its neighbours' nearest ends: what an
    /// edit of that child may change.
    fn child_lines(text: &str, parent: &Node, index: usize) -> (usize, usize) {
        let count = super::super::children(parent);
        let start = super::super::child_start(parent, index).unwrap();
        let end = super::super::child_end(parent, index).unwrap();
        let first = match index.checked_sub(1) {
            Some(previous) => super::super::child_end(parent, previous).unwrap(),
            None => start,
        };
        let last = if index + 1 < count {
            super::super::child_start(parent, index + 1).unwrap()
        } else {
            end
        };
        (
            line_of(text, first.min(start)),
            line_of(text, last.max(end)),
        )
    }

    /// The lines a whole node (with its key or dash) occupies.
    fn slot_lines(text: &str, root: &Node, path: &str) -> (usize, usize) {
        match locate(root, path).0 {
            Some((parent, index)) => child_lines(text, parent, index),
            None => (0, text.lines().count()),
        }
    }

    fn parent_path(path: &str) -> &str {
        &path[..path.rfind('/').unwrap_or(0)]
    }

    /// The random parts of one edit: which node, what to do, with what.
    #[derive(Debug, Clone)]
    struct RandomEdit {
        node: prop::sample::Index,
        operation: Operation,
        value: Value,
        key: String,
        pick: prop::sample::Index,
        second_pick: prop::sample::Index,
    }

    fn random_edit() -> impl Strategy<Value = RandomEdit> {
        (
            any::<prop::sample::Index>(),
            prop_oneof![
                Just(Operation::Set),
                Just(Operation::Insert),
                Just(Operation::Remove),
                Just(Operation::InsertItem),
                Just(Operation::Move),
            ],
            arbitrary_value(),
            "[a-z_]{1,8}|[0-9]|yes|a b|中文",
            any::<prop::sample::Index>(),
            any::<prop::sample::Index>(),
        )
            .prop_map(
                |(node, operation, value, key, pick, second_pick)| RandomEdit {
                    node,
                    operation,
                    value,
                    key,
                    pick,
                    second_pick,
                },
            )
    }

    /// Makes `random` on `text` and checks the result: it parses, it holds the old value with
    /// the edit applied, and every line outside the edited node's is unchanged (and in a file
    /// with `\r\n` line breaks, every line break written is one).
    fn check_random_edit(name: &str, text: &str, random: RandomEdit) -> Result<(), TestCaseError> {
        let RandomEdit {
            node,
            operation,
            value,
            key,
            pick,
            second_pick,
        } = random;
        let windows_line_breaks = text.contains("\r\n");
        let original = SourceDocument::parse(text).unwrap().value;
        let root = tree::parse(text).unwrap();
        let mut nodes = Vec::new();
        pointers(&original, String::new(), &mut nodes);
        let candidates: Vec<&(String, Value)> = nodes
            .iter()
            .filter(|(path, found)| match operation {
                Operation::Set | Operation::Remove => !path.is_empty(),
                Operation::Insert => found.is_object(),
                Operation::InsertItem => found.is_array(),
                Operation::Move => found.as_array().is_some_and(|items| items.len() > 1),
            })
            .collect();
        prop_assume!(!candidates.is_empty());
        let (path, found) = node.get(&candidates);
        let (edit, lines) = match operation {
            Operation::Set => (
                Edit::Set {
                    path: path.clone(),
                    value,
                },
                slot_lines(text, &root, path),
            ),
            Operation::Remove => {
                let (parent, index) = locate(&root, path).0.unwrap();
                let lines = if super::super::children(parent) == 1 {
                    slot_lines(text, &root, parent_path(path))
                } else {
                    child_lines(text, parent, index)
                };
                (Edit::Remove { path: path.clone() }, lines)
            }
            Operation::Insert => {
                let map = found.as_object().unwrap();
                prop_assume!(!map.contains_key(&key));
                let (_, target) = locate(&root, path);
                let (after, lines) = if map.is_empty() {
                    (None, slot_lines(text, &root, path))
                } else {
                    let index = pick.index(map.len());
                    let last = line_of(text, super::super::child_end(target, index).unwrap());
                    let after =
                        (second_pick.index(2) == 0).then(|| map.keys().nth(index).unwrap().clone());
                    let index = if after.is_some() {
                        index
                    } else {
                        map.len() - 1
                    };
                    let last_line = line_of(text, super::super::child_end(target, index).unwrap());
                    (after, (last_line.min(last), last_line.max(last)))
                };
                (
                    Edit::Insert {
                        path: path.clone(),
                        key,
                        value,
                        after,
                    },
                    lines,
                )
            }
            Operation::InsertItem => {
                let items = found.as_array().unwrap();
                let index = pick.index(items.len() + 1);
                let (_, target) = locate(&root, path);
                let lines = if items.is_empty() {
                    slot_lines(text, &root, path)
                } else {
                    let before = child_lines(text, target, index.saturating_sub(1));
                    let at = child_lines(text, target, index.min(items.len() - 1));
                    (before.0.min(at.0), before.1.max(at.1))
                };
                (
                    Edit::InsertItem {
                        path: path.clone(),
                        index,
                        value,
                    },
                    lines,
                )
            }
            Operation::Move => {
                let items = found.as_array().unwrap();
                let from = pick.index(items.len());
                let to = second_pick.index(items.len());
                let (_, target) = locate(&root, path);
                let a = child_lines(text, target, from.min(to));
                let b = child_lines(text, target, from.max(to));
                (
                    Edit::MoveItem {
                        path: path.clone(),
                        from,
                        to,
                    },
                    (a.0, b.1),
                )
            }
        };
        let result = apply(text, std::slice::from_ref(&edit))
            .map_err(|error| TestCaseError::fail(format!("{}: {edit:?}: {error}", name)))?;
        let mut expected = original.clone();
        apply_to_value(&mut expected, &edit).unwrap();
        let actual = SourceDocument::parse(&result)
            .map_err(|error| TestCaseError::fail(format!("{error:?}\n{result}")))?
            .value;
        prop_assert_eq!(&actual, &expected, "{:?}\n{}", edit, result);
        if windows_line_breaks {
            prop_assert!(!result.replace("\r\n", "").contains('\n'), "{}", result);
        }
        let old_lines: Vec<&str> = text.lines().collect();
        let new_lines: Vec<&str> = result.lines().collect();
        let (first, last) = lines;
        prop_assert_eq!(
            &old_lines[..first],
            &new_lines[..first],
            "{:?}\n{}",
            edit,
            result
        );
        let kept_after = old_lines.len().saturating_sub(last + 1);
        prop_assert!(new_lines.len() >= kept_after);
        prop_assert_eq!(
            &old_lines[old_lines.len() - kept_after..],
            &new_lines[new_lines.len() - kept_after..],
            "{:?}\n{}",
            edit,
            result
        );
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 400,
            max_global_rejects: 100_000,
            ..ProptestConfig::default()
        })]

        #[test]
        fn random_edits_of_the_standard_app_change_only_the_edited_lines(
            file in any::<prop::sample::Index>(),
            random in random_edit(),
            windows_line_breaks in prop::bool::weighted(0.2),
            double_indentation in prop::bool::weighted(0.2),
        ) {
            let files = app_files();
            let (file_path, text) = file.get(&files);
            let mut text = text.clone();
            if double_indentation {
                // The same file indented by four, where that keeps its meaning (not where a
                // mapping starts on a dash line): new values must follow it.
                let doubled: String = text
                    .split_inclusive('\n')
                    .map(|line| {
                        let spaces = line.len() - line.trim_start_matches(' ').len();
                        format!("{}{line}", " ".repeat(spaces))
                    })
                    .collect();
                let same = SourceDocument::parse(&doubled)
                    .is_ok_and(|document| document.value == SourceDocument::parse(&text).unwrap().value);
                if same {
                    text = doubled;
                }
            }
            if windows_line_breaks {
                text = text.replace('\n', "\r\n");
            }
            check_random_edit(&file_path.display().to_string(), &text, random)?;
        }

        #[test]
        fn random_edits_of_documents_another_writer_wrote_change_only_the_edited_lines(
            document in prop::collection::vec(("[a-z_]{1,6}", arbitrary_value()), 1..6)
                .prop_map(|entries| Value::Object(entries.into_iter().collect())),
            random in random_edit(),
        ) {
            // serde_yaml's layout differs from the app's: sequences at their key's
            // indentation, its own quoting and block scalars.
            let text = serde_yaml::to_string(&document).unwrap();
            check_random_edit("serde_yaml", &text, random)?;
        }
    }

    /// A random change of a file's value: set a node, remove one, add a key or an item, or
    /// swap two items.
    fn mutate(value: &mut Value, choice: (usize, prop::sample::Index, Value, String)) {
        let (operation, pick, new, key) = choice;
        let mut nodes = Vec::new();
        pointers(value, String::new(), &mut nodes);
        let (path, found) = pick.get(&nodes).clone();
        match (operation, found) {
            (0, _) if !path.is_empty() => {
                *value.pointer_mut(&path).unwrap() = new;
            }
            (1, _) if !path.is_empty() => {
                apply_to_value(value, &Edit::Remove { path }).unwrap();
            }
            (2, Value::Object(map)) if !map.contains_key(&key) => {
                value.pointer_mut(&path).unwrap()[&key] = new;
            }
            (3, Value::Array(items)) => {
                let index = items.len() / 2;
                value
                    .pointer_mut(&path)
                    .unwrap()
                    .as_array_mut()
                    .unwrap()
                    .insert(index, new);
            }
            (4, Value::Array(items)) if items.len() > 1 => {
                let items = value.pointer_mut(&path).unwrap().as_array_mut().unwrap();
                let last = items.len() - 1;
                items.swap(0, last);
            }
            _ => {}
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

        #[test]
        fn edits_of_any_text_never_panic(
            text in "[a-c :\\-\n#'\"{}\\[\\],|>&*!?%@`~0-9+.\t\r]{0,80}",
            random in random_edit(),
        ) {
            // Whatever the text, an edit returns a new text or an error.
            let path = match SourceDocument::parse(&text) {
                Ok(document) => {
                    let mut nodes = Vec::new();
                    pointers(&document.value, String::new(), &mut nodes);
                    random.node.get(&nodes).0.clone()
                }
                Err(_) => "/a".to_owned(),
            };
            let edits = [
                Edit::Set { path: path.clone(), value: random.value.clone() },
                Edit::Remove { path: path.clone() },
                Edit::Insert { path: path.clone(), key: random.key.clone(), value: random.value.clone(), after: None },
                Edit::Append { path: path.clone(), value: random.value.clone() },
                Edit::MoveItem { path: path.clone(), from: 0, to: 1 },
            ];
            for edit in &edits {
                let _ = apply(&text, std::slice::from_ref(edit));
            }
            let _ = rewrite(&text, &random.value);
        }
    }

    fn check_rewrite(
        name: &str,
        text: &str,
        changes: Vec<(usize, prop::sample::Index, Value, String)>,
    ) -> Result<(), TestCaseError> {
        let original = SourceDocument::parse(text).unwrap().value;
        let mut value = original.clone();
        for change in changes {
            mutate(&mut value, change);
        }
        let result = rewrite(text, &value)
            .map_err(|error| TestCaseError::fail(format!("{name}: {error}")))?;
        let actual = SourceDocument::parse(&result)
            .map_err(|error| TestCaseError::fail(format!("{error:?}\n{result}")))?
            .value;
        prop_assert_eq!(&actual, &value, "{}", result);
        if value == original {
            prop_assert_eq!(&result, text);
        }
        Ok(())
    }

    fn random_changes() -> impl Strategy<Value = Vec<(usize, prop::sample::Index, Value, String)>> {
        prop::collection::vec(
            (
                0usize..5,
                any::<prop::sample::Index>(),
                arbitrary_value(),
                "[a-z_]{1,8}|yes|中文",
            ),
            1..5,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

        #[test]
        fn rewriting_a_file_to_a_changed_value_reads_back_as_that_value(
            file in any::<prop::sample::Index>(),
            changes in random_changes(),
        ) {
            let files = app_files();
            let (file_path, text) = file.get(&files);
            check_rewrite(&file_path.display().to_string(), text, changes)?;
        }

        #[test]
        fn rewriting_a_document_another_writer_wrote_reads_back_as_the_changed_value(
            document in arbitrary_value(),
            changes in random_changes(),
        ) {
            let text = serde_yaml::to_string(&document).unwrap();
            check_rewrite("serde_yaml", &text, changes)?;
        }
    }
}
