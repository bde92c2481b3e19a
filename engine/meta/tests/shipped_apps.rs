//! The apps shipped in this repository are fixtures: each must load without a problem.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

fn repository_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn assert_loads(dir: PathBuf) {
    if let Err(errors) = keel_meta::load_app(&dir) {
        panic!("{} does not load:\n{errors}", dir.display());
    }
}

#[test]
fn the_standard_app_loads() {
    assert_loads(repository_root());
}

#[test]
fn every_template_loads() {
    let templates = repository_root().join("templates");
    let mut count = 0;
    for entry in std::fs::read_dir(&templates).unwrap() {
        let path = entry.unwrap().path();
        if path.join("metadata").is_dir() {
            assert_loads(path);
            count += 1;
        }
    }
    assert!(count >= 1, "templates/ holds no app");
}
