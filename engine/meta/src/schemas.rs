//! The JSON Schemas (draft 2020-12) Keel ships for each kind of YAML file, and their
//! compiled validators. The same documents are served to editors at
//! `/api/v1/meta/schema/{kind}.json`.

use std::sync::OnceLock;

use jsonschema::Validator;
use serde_json::Value;

/// The kinds of YAML file in an app directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    App,
    Object,
    Roles,
    Pool,
    Process,
    Rule,
}

impl FileKind {
    pub const ALL: [FileKind; 6] = [
        FileKind::App,
        FileKind::Object,
        FileKind::Roles,
        FileKind::Pool,
        FileKind::Process,
        FileKind::Rule,
    ];

    /// The name used in `/meta/schema/{name}.json`.
    pub fn name(self) -> &'static str {
        match self {
            FileKind::App => "app",
            FileKind::Object => "object",
            FileKind::Roles => "roles",
            FileKind::Pool => "pool",
            FileKind::Process => "process",
            FileKind::Rule => "rule",
        }
    }

    pub fn from_name(name: &str) -> Option<FileKind> {
        FileKind::ALL.into_iter().find(|kind| kind.name() == name)
    }

    /// The kind of the YAML file at `path` in an app directory (`metadata/objects/lead.yaml`
    /// → `Object`); `None` for a script or a file the loader does not read (see
    /// `crate::is_app_file`). The studio's file editor completes keys from its schema.
    pub fn of_path(path: &str) -> Option<FileKind> {
        if !crate::is_app_file(path) {
            return None;
        }
        match path {
            "metadata/app.yaml" => return Some(FileKind::App),
            "metadata/roles.yaml" => return Some(FileKind::Roles),
            _ => {}
        }
        match path.rsplit_once('/')?.0 {
            "metadata/objects" => Some(FileKind::Object),
            "metadata/pools" => Some(FileKind::Pool),
            "workflows/processes" => Some(FileKind::Process),
            "workflows/rules" => Some(FileKind::Rule),
            _ => None,
        }
    }

    /// The schema document as text.
    pub fn schema_text(self) -> &'static str {
        match self {
            FileKind::App => include_str!("../schemas/app.json"),
            FileKind::Object => include_str!("../schemas/object.json"),
            FileKind::Roles => include_str!("../schemas/roles.json"),
            FileKind::Pool => include_str!("../schemas/pool.json"),
            FileKind::Process => include_str!("../schemas/process.json"),
            FileKind::Rule => include_str!("../schemas/rule.json"),
        }
    }

    /// The schema document, parsed once per process.
    pub fn schema_document(self) -> &'static Value {
        static DOCUMENTS: OnceLock<Vec<Value>> = OnceLock::new();
        let documents = DOCUMENTS.get_or_init(|| {
            FileKind::ALL
                .iter()
                .map(|kind| {
                    serde_json::from_str(kind.schema_text()).unwrap_or_else(|error| {
                        panic!("shipped schema {} is not JSON: {error}", kind.name())
                    })
                })
                .collect()
        });
        &documents[self.index()]
    }

    fn index(self) -> usize {
        FileKind::ALL
            .iter()
            .position(|kind| *kind == self)
            .unwrap_or(0)
    }

    /// The compiled validator, built once per process.
    pub(crate) fn validator(self) -> &'static Validator {
        static VALIDATORS: OnceLock<Vec<Validator>> = OnceLock::new();
        let validators = VALIDATORS.get_or_init(|| {
            FileKind::ALL
                .iter()
                .map(|kind| {
                    jsonschema::draft202012::new(kind.schema_document()).unwrap_or_else(|error| {
                        panic!("shipped schema {} does not compile: {error}", kind.name())
                    })
                })
                .collect()
        });
        &validators[self.index()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_schema_compiles() {
        for kind in FileKind::ALL {
            let _ = kind.validator();
            assert_eq!(FileKind::from_name(kind.name()), Some(kind));
        }
    }

    #[test]
    fn a_files_kind_follows_its_directory() {
        for (path, kind) in [
            ("metadata/app.yaml", Some(FileKind::App)),
            ("metadata/roles.yaml", Some(FileKind::Roles)),
            ("metadata/objects/lead.yaml", Some(FileKind::Object)),
            ("metadata/objects/lead.yml", Some(FileKind::Object)),
            ("metadata/pools/public_leads.yaml", Some(FileKind::Pool)),
            ("workflows/processes/sales.yaml", Some(FileKind::Process)),
            ("workflows/rules/remind.yaml", Some(FileKind::Rule)),
            ("scripts/lead_normalize.rhai", None),
            ("metadata/objects/notes.txt", None),
            ("seed/lead.csv", None),
            ("metadata/objects/deeper/lead.yaml", None),
        ] {
            assert_eq!(FileKind::of_path(path), kind, "{path}");
        }
    }
}
