//! Loading an app from its files' text in memory (what the studio's validate does) gives
//! the same result as loading the directory, with the same `file:line:col` diagnostics.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

fn repository_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn the_standard_app_loads_the_same_from_its_files_in_memory() {
    let root = repository_root();
    let from_dir = keel_meta::load_app(&root).unwrap();
    let files = keel_meta::read_app_files(&root).unwrap();
    assert!(files.contains_key("metadata/objects/lead.yaml"));
    assert!(files.contains_key("scripts/lead_normalize.rhai"));
    assert!(
        !files.keys().any(|path| path.starts_with("seed/")),
        "seed data is not metadata: {:?}",
        files.keys().collect::<Vec<_>>()
    );
    let from_memory = keel_meta::load_files(&files).unwrap();
    assert_eq!(from_memory.fingerprint, from_dir.fingerprint);
    assert_eq!(from_memory.files, files);
    assert_eq!(from_dir.files, files);
    assert_eq!(
        from_memory.objects.keys().collect::<Vec<_>>(),
        from_dir.objects.keys().collect::<Vec<_>>()
    );
}

#[test]
fn a_replaced_file_is_checked_with_its_line_and_column_and_a_removed_one_is_gone() {
    let mut files = keel_meta::read_app_files(&repository_root()).unwrap();
    files.insert(
        "metadata/objects/lead.yaml".to_owned(),
        "name: lead\nlabel: { en: Lead }\nfields:\n  company: { type: text }\n  size: { type: nope }\n"
            .to_owned(),
    );
    let errors = keel_meta::load_files(&files).unwrap_err();
    let diagnostic = errors
        .diagnostics
        .iter()
        .find(|d| d.file == "metadata/objects/lead.yaml")
        .unwrap_or_else(|| panic!("{errors}"));
    assert_eq!(
        (diagnostic.position.line, diagnostic.position.column),
        (5, 17),
        "{errors}"
    );

    let mut files = keel_meta::read_app_files(&repository_root()).unwrap();
    files.remove("scripts/big_deal_alert.rhai");
    let errors = keel_meta::load_files(&files).unwrap_err();
    assert!(
        errors
            .diagnostics
            .iter()
            .any(|d| d.message.contains("big_deal_alert")),
        "{errors}"
    );
}

#[test]
fn a_file_outside_the_metadata_directories_is_refused_by_path() {
    let mut files = keel_meta::read_app_files(&repository_root()).unwrap();
    files.insert("seed/lead.csv".to_owned(), "name\n".to_owned());
    files.insert("metadata/objects/../../x.yaml".to_owned(), String::new());
    let errors = keel_meta::load_files(&files).unwrap_err();
    let refused: Vec<&str> = errors.diagnostics.iter().map(|d| d.file.as_str()).collect();
    assert_eq!(refused, ["metadata/objects/../../x.yaml", "seed/lead.csv"]);
    assert!(!keel_meta::is_app_file("metadata/objects/sub/x.yaml"));
    assert!(keel_meta::is_app_file("workflows/rules/x.yml"));
    assert!(!keel_meta::is_app_file("scripts/x.yaml"));
}
