//! Loading an app directory: read every file, check it against its JSON Schema, turn it into
//! the model, then cross-check references between files.
//!
//! The loader works on the files' text, path → text ([`AppFiles`]): [`load_app`] reads
//! the files of a directory ([`read_app_files`]) and loads them; [`load_files`] loads a map
//! held in memory, so the studio can check "the app with these files replaced" without
//! touching the disk (docs/studio.md). Diagnostics name the file by that path either way.
//!
//! Every problem is collected (not just the first), each with `file:line:col`. A file whose
//! YAML does not parse is left out of the later checks. A file that parses but fails its
//! schema is still read as far as it can be (the values the schema refused are left out) and
//! cross-checked, so its other mistakes are reported in the same run. Two things keep one
//! typo from causing a cascade of follow-on errors: a cross-check of that file is silent at
//! any place on the path of a schema error, and other files are not checked against a part
//! that failed (references *to* an object whose name or fields failed, or to roles when the
//! `roles:` of `roles.yaml` failed, are not reported).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::path::Path;

use indexmap::IndexMap;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Number, Value};
use sha2::{Digest, Sha256};

use crate::diagnostic::{Diagnostic, LoadErrors};
use crate::duration::Duration;
use crate::filter::Filter;
use crate::ident::{check_identifier, check_table_or_column_name};
use crate::label::Label;
use crate::model::*;
use crate::schedule::CronSchedule;
use crate::schemas::FileKind;
use crate::source::{Position, SourceDocument, escape_pointer};
use crate::system::is_system_field;
use keel_script::analyze::{CONDITION, ExpressionKind, FORMULA};

/// The parts of an object file that other files refer to: when one of them fails its schema,
/// references to the object are not checked.
const OBJECT_SHARED_PARTS: &[&str] = &["/name", "/fields"];

/// The part of `roles.yaml` that other files refer to (role names).
const ROLES_SHARED_PARTS: &[&str] = &["/roles"];

/// The files of an app, path (relative to the app directory, with `/`) → text: exactly the
/// files the loader reads (see [`is_app_file`]).
pub type AppFiles = BTreeMap<String, String>;

/// The directories whose YAML files the loader reads, besides `metadata/app.yaml` and
/// `metadata/roles.yaml`.
const YAML_DIRS: &[&str] = &[
    "metadata/objects",
    "metadata/pools",
    "workflows/processes",
    "workflows/rules",
];
const YAML_EXTENSIONS: &[&str] = &["yaml", "yml"];
const SCRIPT_DIR: &str = "scripts";
const SCRIPT_EXTENSIONS: &[&str] = &["rhai"];

/// Whether the loader reads a file at `path` (relative, with `/`): `metadata/app.yaml`,
/// `metadata/roles.yaml`, a `.yaml`/`.yml` file directly in `metadata/objects`,
/// `metadata/pools`, `workflows/processes` or `workflows/rules`, or a `.rhai` file directly
/// in `scripts`. Other files of the app directory (`seed/`, a README) are not metadata.
pub fn is_app_file(path: &str) -> bool {
    if path == "metadata/app.yaml" || path == "metadata/roles.yaml" {
        return true;
    }
    let Some((dir, name)) = path.rsplit_once('/') else {
        return false;
    };
    let plain_name =
        !name.is_empty() && !name.contains(['\\', '\0']) && name.chars().all(|c| !c.is_control());
    let has = |extensions: &[&str]| {
        Path::new(name)
            .extension()
            .is_some_and(|ext| extensions.iter().any(|wanted| ext == *wanted))
    };
    plain_name
        && ((YAML_DIRS.contains(&dir) && has(YAML_EXTENSIONS))
            || (dir == SCRIPT_DIR && has(SCRIPT_EXTENSIONS)))
}

/// Reads the files of the app directory at `dir` that the loader reads (see
/// [`is_app_file`]). A file that is not UTF-8 or cannot be read is a diagnostic.
pub fn read_app_files(dir: &Path) -> Result<AppFiles, LoadErrors> {
    let source = DirSource::read(dir);
    if source.problems.is_empty() {
        Ok(source.files)
    } else {
        Err(LoadErrors {
            diagnostics: source.problems,
        })
    }
}

/// Loads and checks the app directory at `dir`.
pub fn load_app(dir: &Path) -> Result<Schema, LoadErrors> {
    if !dir.is_dir() {
        return Err(LoadErrors {
            diagnostics: vec![Diagnostic {
                file: dir.display().to_string(),
                position: Position::START,
                message: "the app directory does not exist or is not a directory".to_owned(),
            }],
        });
    }
    let source = DirSource::read(dir);
    finish(Loader::new(
        source.files,
        source.unreadable,
        source.problems,
    ))
}

/// Loads and checks an app given as its files' text (see [`AppFiles`]): the same checks and
/// the same diagnostics as [`load_app`] on a directory holding exactly those files.
pub fn load_files(files: &AppFiles) -> Result<Schema, LoadErrors> {
    let mut problems = Vec::new();
    let files: AppFiles = files
        .iter()
        .filter(|(path, _)| {
            let known = is_app_file(path);
            if !known {
                problems.push(Diagnostic {
                    file: (*path).clone(),
                    position: Position::START,
                    message: "not a metadata file: the app's files are metadata/app.yaml, metadata/roles.yaml, metadata/{objects,pools}/*.yaml, workflows/{processes,rules}/*.yaml and scripts/*.rhai".to_owned(),
                });
            }
            known
        })
        .map(|(path, text)| (path.clone(), text.clone()))
        .collect();
    finish(Loader::new(files, BTreeMap::new(), problems))
}

fn finish(mut loader: Loader) -> Result<Schema, LoadErrors> {
    let schema = loader.load();
    if loader.diagnostics.is_empty() {
        schema.ok_or_else(|| LoadErrors {
            diagnostics: Vec::new(),
        })
    } else {
        let mut diagnostics = loader.diagnostics;
        diagnostics.sort();
        diagnostics.dedup();
        Err(LoadErrors { diagnostics })
    }
}

/// The metadata files of a directory as read from disk.
struct DirSource {
    files: AppFiles,
    /// Files that exist but could not be read (not UTF-8, no permission): path → why.
    unreadable: BTreeMap<String, String>,
    problems: Vec<Diagnostic>,
}

impl DirSource {
    fn read(dir: &Path) -> DirSource {
        let mut source = DirSource {
            files: AppFiles::new(),
            unreadable: BTreeMap::new(),
            problems: Vec::new(),
        };
        let mut paths: Vec<String> = ["metadata/app.yaml", "metadata/roles.yaml"]
            .into_iter()
            .filter(|path| dir.join(path).is_file())
            .map(str::to_owned)
            .collect();
        for relative_dir in YAML_DIRS.iter().chain([&SCRIPT_DIR]) {
            let Ok(entries) = fs::read_dir(dir.join(relative_dir)) else {
                continue;
            };
            paths.extend(
                entries
                    .filter_map(Result::ok)
                    .filter(|entry| entry.path().is_file())
                    .map(|entry| format!("{relative_dir}/{}", entry.file_name().to_string_lossy()))
                    .filter(|path| is_app_file(path)),
            );
        }
        for relative in paths {
            match fs::read(dir.join(&relative)) {
                Ok(bytes) => match String::from_utf8(bytes) {
                    Ok(text) => {
                        source.files.insert(relative, text);
                    }
                    Err(_) => {
                        source
                            .unreadable
                            .insert(relative, "the file is not valid UTF-8".to_owned());
                    }
                },
                Err(error) => {
                    source
                        .unreadable
                        .insert(relative, format!("cannot read the file: {error}"));
                }
            }
        }
        source
    }
}

/// One YAML file, parsed and schema-checked.
struct YamlFile {
    /// Path relative to the app directory, with `/`.
    path: String,
    /// The file name without extension.
    stem: String,
    document: SourceDocument,
    /// The JSON pointers at which the schema check failed (already reported); empty when the
    /// file passed its schema.
    schema_errors: Vec<String>,
}

impl YamlFile {
    fn passed_schema(&self) -> bool {
        self.schema_errors.is_empty()
    }

    /// Whether the parts of the file at `pointers` read exactly as written: no schema error
    /// lies on their path. Other files may then be checked against those parts.
    fn intact(&self, pointers: &[&str]) -> bool {
        self.schema_errors
            .iter()
            .all(|error| !pointers.iter().any(|part| on_one_path(error, part)))
    }

    /// Whether a cross-check problem at `pointer` would only repeat or follow from a schema
    /// error: it lies on the same path (the same node, inside it, or around it).
    fn silenced(&self, pointer: &str) -> bool {
        self.schema_errors
            .iter()
            .any(|error| on_one_path(error, pointer))
    }
}

/// Whether one of two JSON pointers is the other or an ancestor of it.
fn on_one_path(a: &str, b: &str) -> bool {
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    long == short
        || long
            .strip_prefix(short)
            .is_some_and(|rest| rest.starts_with('/'))
}

struct Loader {
    /// The files being loaded, path → text.
    files: AppFiles,
    /// Files that exist but could not be read: path → why (reported when read).
    unreadable: BTreeMap<String, String>,
    diagnostics: Vec<Diagnostic>,
    hasher: Sha256,
    /// Objects whose file exists but could not be read (already reported): references to
    /// them are not reported again, so one typo does not cascade.
    unreadable_objects: HashSet<String>,
    /// `roles.yaml` exists but could not be read (already reported).
    roles_unreadable: bool,
    /// Each script named by a trigger, process or rule, with the object it runs over (`None`
    /// when that object is unknown), for `analyze_scripts`.
    script_uses: Vec<(String, Option<String>)>,
    /// Each expression that compiled, for `analyze_expressions`.
    expression_uses: Vec<ExpressionUse>,
    /// Objects with a declared field that did not resolve (already reported): scripts and
    /// expressions are not checked against their fields, which would repeat that error.
    partial_objects: HashSet<String>,
}

/// An expression that compiled, waiting to be analysed once every object is known.
struct ExpressionUse {
    /// The YAML file it is in, and where.
    file: String,
    pointer: String,
    expression: String,
    /// The object `record` and `old` are records of.
    object: Option<String>,
    /// A formula or a condition.
    kind: ExpressionKind,
}

impl Loader {
    fn new(
        files: AppFiles,
        unreadable: BTreeMap<String, String>,
        diagnostics: Vec<Diagnostic>,
    ) -> Loader {
        Loader {
            files,
            unreadable,
            diagnostics,
            hasher: Sha256::new(),
            unreadable_objects: HashSet::new(),
            roles_unreadable: false,
            script_uses: Vec::new(),
            expression_uses: Vec::new(),
            partial_objects: HashSet::new(),
        }
    }

    fn error_at(&mut self, file: &str, position: Position, message: impl Into<String>) {
        self.diagnostics.push(Diagnostic {
            file: file.to_owned(),
            position,
            message: message.into(),
        });
    }

    fn value_error(&mut self, file: &YamlFile, pointer: &str, message: impl Into<String>) {
        if file.silenced(pointer) {
            return;
        }
        let position = file.document.value_position(pointer);
        self.error_at(&file.path, position, message);
    }

    fn key_error(&mut self, file: &YamlFile, pointer: &str, message: impl Into<String>) {
        if file.silenced(pointer) {
            return;
        }
        let position = file.document.key_position(pointer);
        self.error_at(&file.path, position, message);
    }

    fn load(&mut self) -> Option<Schema> {
        let app_file = self.read_yaml("metadata/app.yaml", FileKind::App, true);
        let object_files = self.read_yaml_dir("metadata/objects", FileKind::Object);
        for relative in self.list_dir("metadata/objects", &["yaml", "yml"]) {
            let stem = Path::new(&relative)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            if !object_files.iter().any(|file| file.stem == stem) {
                self.unreadable_objects.insert(stem);
            }
        }
        for file in &object_files {
            if !file.intact(OBJECT_SHARED_PARTS) {
                self.unreadable_objects.insert(file.stem.clone());
            }
        }
        let roles_file = self.read_yaml("metadata/roles.yaml", FileKind::Roles, false);
        self.roles_unreadable = match &roles_file {
            Some(file) => !file.intact(ROLES_SHARED_PARTS),
            None => self.is_file("metadata/roles.yaml"),
        };
        let pool_files = self.read_yaml_dir("metadata/pools", FileKind::Pool);
        let process_files = self.read_yaml_dir("workflows/processes", FileKind::Process);
        let rule_files = self.read_yaml_dir("workflows/rules", FileKind::Rule);
        let scripts = self.read_scripts();

        let app = app_file
            .as_ref()
            .and_then(|file| self.resolve_app(file).filter(|_| file.passed_schema()));

        let mut objects = IndexMap::new();
        // Objects whose name or fields failed their schema: checked for their own mistakes,
        // but kept out of `objects` so that no other file is checked against an incomplete
        // object. (A schema error elsewhere in the file, say a mistyped `serach:`, leaves the
        // fields as written, and other files are checked against them as usual.)
        let mut broken_objects = IndexMap::new();
        for file in &object_files {
            let resolved = self.resolve_object(file, &scripts);
            if resolved.is_none() {
                self.unreadable_objects.insert(file.stem.clone());
            }
            if let Some(object) = resolved {
                let target = if file.intact(OBJECT_SHARED_PARTS) {
                    &mut objects
                } else {
                    &mut broken_objects
                };
                if target.contains_key(&object.name) {
                    continue; // file names are unique, and names must match them
                }
                target.insert(object.name.clone(), object);
            }
        }
        if let (Some(file), Some(app)) = (&app_file, &app) {
            self.check_navigation(file, app, &objects, &broken_objects);
        }
        for file in &object_files {
            let own = if file.intact(OBJECT_SHARED_PARTS) {
                &objects
            } else {
                &broken_objects
            };
            self.check_lookup_targets(file, own.get(&file.stem), &objects);
        }

        let roles = match &roles_file {
            Some(file) => match self.resolve_roles(file, &objects) {
                Some(roles) if !self.roles_unreadable => roles,
                _ => {
                    self.roles_unreadable = true;
                    default_roles()
                }
            },
            None => default_roles(),
        };

        let mut pools = IndexMap::new();
        for file in &pool_files {
            if let Some(pool) = self.resolve_pool(file, &objects, &roles)
                && file.passed_schema()
            {
                pools.insert(pool.name.clone(), pool);
            }
        }
        for pool in pools.values() {
            if let Some(object) = objects.get_mut(&pool.object) {
                object.pooled = true;
            }
        }

        let mut processes: IndexMap<String, Process> = IndexMap::new();
        for file in &process_files {
            if let Some(process) = self.resolve_process(file, &objects, &roles, &scripts)
                && file.passed_schema()
            {
                if let Some(other) = processes
                    .values()
                    .find(|other| other.object == process.object)
                {
                    let message = format!(
                        "object `{}` already has the process `{}`; an object has at most one process",
                        process.object, other.name
                    );
                    self.value_error(file, "/object", message);
                    continue;
                }
                processes.insert(process.name.clone(), process);
            }
        }

        let mut rules = IndexMap::new();
        for file in &rule_files {
            if let Some(rule) = self.resolve_rule(file, &objects, &roles, &scripts)
                && file.passed_schema()
            {
                rules.insert(rule.name.clone(), rule);
            }
        }

        // Scripts and expressions name fields of any object, and an object's pool adds
        // fields: they are analysed once all of that is known.
        let catalog = self.catalog(&objects, &broken_objects);
        self.analyze_scripts(&scripts, &objects, &catalog);
        let yaml_files: Vec<&YamlFile> = object_files
            .iter()
            .chain(&process_files)
            .chain(&rule_files)
            .collect();
        self.analyze_expressions(&yaml_files, &objects, &catalog);

        let fingerprint = hex::encode(std::mem::take(&mut self.hasher).finalize());
        let files = std::mem::take(&mut self.files);
        Some(Schema {
            app: app?,
            objects,
            roles,
            pools,
            processes,
            rules,
            scripts,
            fingerprint,
            files,
        })
    }

    // ----- analysing scripts and expressions ------------------------------------------------

    /// Every object with its declared and system fields (pool fields included); objects whose
    /// file failed are known by name only.
    fn catalog(
        &self,
        objects: &IndexMap<String, Object>,
        broken_objects: &IndexMap<String, Object>,
    ) -> keel_script::analyze::Catalog {
        let mut catalog = keel_script::analyze::Catalog::new();
        for name in broken_objects.keys().chain(&self.unreadable_objects) {
            catalog.add_unchecked_object(name);
        }
        for object in objects.values() {
            // Every system column, the recycle bin's too: a delete trigger may well read
            // `deleted_at`, and none of them is a misspelt field.
            let system = object.system_fields().map(|field| field.name);
            catalog.add_object(
                &object.name,
                object.fields.keys().map(String::as_str).chain(system),
            );
        }
        for name in &self.partial_objects {
            catalog.add_unchecked_object(name);
        }
        catalog
    }

    /// Analyses every script against each object it runs over (a script used by several
    /// objects is checked against each; one used by none, for its calls only), reporting
    /// findings in the script's own file.
    fn analyze_scripts(
        &mut self,
        scripts: &IndexMap<String, Script>,
        objects: &IndexMap<String, Object>,
        catalog: &keel_script::analyze::Catalog,
    ) {
        let uses = std::mem::take(&mut self.script_uses);
        for script in scripts.values() {
            let mut over: Vec<Option<&str>> = uses
                .iter()
                .filter(|(name, _)| *name == script.name)
                // An object that did not load is not checked against.
                .map(|(_, object)| object.as_deref().filter(|o| objects.contains_key(*o)))
                .collect();
            over.sort_unstable();
            over.dedup();
            if over.is_empty() {
                over.push(None);
            }
            for object in over {
                for finding in keel_script::analyze::analyze_script(&script.source, catalog, object)
                {
                    self.error_at(
                        &script.path,
                        Position {
                            line: finding.line,
                            column: finding.column,
                        },
                        format!("script `{}`: {}", script.name, finding.message),
                    );
                }
            }
        }
    }

    /// Analyses every expression that compiled, reporting findings where they are in the
    /// YAML file.
    fn analyze_expressions(
        &mut self,
        files: &[&YamlFile],
        objects: &IndexMap<String, Object>,
        catalog: &keel_script::analyze::Catalog,
    ) {
        for expression in std::mem::take(&mut self.expression_uses) {
            let Some(file) = files.iter().find(|file| file.path == expression.file) else {
                continue;
            };
            let object = expression
                .object
                .as_deref()
                .filter(|object| objects.contains_key(*object));
            for finding in keel_script::analyze::analyze_expression(
                &expression.expression,
                catalog,
                object,
                expression.kind,
            ) {
                let position = file.document.position_in_text(
                    &expression.pointer,
                    finding.line,
                    finding.column,
                );
                self.error_at(&file.path, position, finding.message);
            }
        }
    }

    // ----- reading files -------------------------------------------------------------------

    fn is_file(&self, relative: &str) -> bool {
        self.files.contains_key(relative) || self.unreadable.contains_key(relative)
    }

    fn read_text(&mut self, relative: &str) -> Option<String> {
        if let Some(why) = self.unreadable.get(relative).cloned() {
            self.error_at(relative, Position::START, why);
            return None;
        }
        let Some(text) = self.files.get(relative).cloned() else {
            self.error_at(
                relative,
                Position::START,
                "cannot read the file: it does not exist",
            );
            return None;
        };
        self.hasher.update(relative.as_bytes());
        self.hasher.update([0]);
        self.hasher.update(text.as_bytes());
        self.hasher.update([0]);
        Some(text)
    }

    fn read_yaml(&mut self, relative: &str, kind: FileKind, required: bool) -> Option<YamlFile> {
        if !self.is_file(relative) {
            if required {
                self.error_at(
                    relative,
                    Position::START,
                    "this file is missing; every app needs it",
                );
            }
            return None;
        }
        let text = self.read_text(relative)?;
        let document = match SourceDocument::parse(&text) {
            Ok(document) => document,
            Err(error) => {
                self.error_at(relative, error.position, error.message);
                return None;
            }
        };
        let stem = Path::new(relative)
            .file_stem()
            .map(|stem| stem.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut file = YamlFile {
            path: relative.to_owned(),
            stem,
            document,
            schema_errors: Vec::new(),
        };
        file.schema_errors = self.check_schema(&file, kind);
        Some(file)
    }

    /// Every `*.yaml` / `*.yml` file of a directory, in name order. A missing directory is an
    /// empty one.
    fn read_yaml_dir(&mut self, relative_dir: &str, kind: FileKind) -> Vec<YamlFile> {
        self.list_dir(relative_dir, &["yaml", "yml"])
            .into_iter()
            .filter_map(|relative| self.read_yaml(&relative, kind, true))
            .collect()
    }

    /// The files directly in `relative_dir` with one of `extensions`, in name order.
    fn list_dir(&mut self, relative_dir: &str, extensions: &[&str]) -> Vec<String> {
        let prefix = format!("{relative_dir}/");
        let mut paths: Vec<String> = self
            .files
            .keys()
            .chain(self.unreadable.keys())
            .filter(|path| {
                path.strip_prefix(&prefix).is_some_and(|name| {
                    !name.contains('/')
                        && Path::new(name)
                            .extension()
                            .is_some_and(|ext| extensions.iter().any(|wanted| ext == *wanted))
                })
            })
            .cloned()
            .collect();
        paths.sort();
        paths.dedup();
        paths
    }

    fn read_scripts(&mut self) -> IndexMap<String, Script> {
        let mut scripts = IndexMap::new();
        for relative in self.list_dir("scripts", &["rhai"]) {
            let Some(source) = self.read_text(&relative) else {
                continue;
            };
            let name = Path::new(&relative)
                .file_stem()
                .map(|stem| stem.to_string_lossy().into_owned())
                .unwrap_or_default();
            if let Err(message) = check_identifier(&name) {
                self.error_at(
                    &relative,
                    Position::START,
                    format!("script name: {message}"),
                );
                continue;
            }
            if let Err(error) = keel_script::check_script(&source) {
                let noticed = match error.noticed {
                    Some((line, column)) => format!(" (noticed at {line}:{column})"),
                    None => String::new(),
                };
                self.error_at(
                    &relative,
                    Position {
                        line: error.line,
                        column: error.column,
                    },
                    format!(
                        "script `{name}` does not compile: {}{noticed}",
                        error.message
                    ),
                );
            }
            scripts.insert(
                name.clone(),
                Script {
                    name,
                    path: relative,
                    source,
                },
            );
        }
        scripts
    }

    // ----- JSON Schema ---------------------------------------------------------------------

    /// Reports every schema error of `file` and returns the pointers of the refused values
    /// (for an unknown key, the key's own pointer).
    fn check_schema(&mut self, file: &YamlFile, kind: FileKind) -> Vec<String> {
        if !file.document.value.is_object() {
            self.value_error(
                file,
                "",
                format!("the file must hold a map (a {} definition)", kind.name()),
            );
            return vec![String::new()];
        }
        let validator = kind.validator();
        let mut found = Vec::new();
        let mut refused = Vec::new();
        for error in validator.iter_errors(&file.document.value) {
            let pointer = error.instance_path().as_str().to_owned();
            if let jsonschema::error::ValidationErrorKind::AdditionalProperties { unexpected } =
                error.kind()
            {
                refused.extend(
                    unexpected
                        .iter()
                        .map(|key| format!("{pointer}/{}", escape_pointer(key))),
                );
            }
            let schema_node = schema_node_at(kind.schema_document(), error.schema_path().as_str());
            found.push(schema_problem(
                &file.document.value,
                &pointer,
                error.kind(),
                schema_node,
                &error.to_string(),
            ));
        }
        found.sort_by(|a, b| a.0.cmp(&b.0));
        for (pointer, at_key, message) in found {
            if at_key {
                self.key_error(file, &pointer, message);
            } else {
                self.value_error(file, &pointer, message);
            }
            refused.push(pointer);
        }
        refused.sort();
        refused.dedup();
        refused
    }

    /// Reads a file into its raw serde shape. A file that failed its schema is read as far as
    /// it can be: as it is (serde accepts more than the schema, e.g. any text for a field
    /// type), else with the refused values left out; when neither reads, its cross-checks are
    /// skipped silently, since its schema errors are already reported.
    fn deserialize<T: DeserializeOwned>(&mut self, file: &YamlFile) -> Option<T> {
        let error = match serde_json::from_value(file.document.value.clone()) {
            Ok(value) => return Some(value),
            Err(error) => error,
        };
        if file.passed_schema() {
            self.value_error(file, "", format!("cannot read this file: {error}"));
            return None;
        }
        let mut pruned = file.document.value.clone();
        for pointer in &file.schema_errors {
            remove_at(&mut pruned, pointer);
        }
        if let Ok(value) = serde_json::from_value(pruned.clone()) {
            return Some(value);
        }
        // A refused list item left as `null` still does not read: leave out the whole list.
        for pointer in &file.schema_errors {
            if let Some(list) = enclosing_list(&pruned, pointer) {
                remove_at(&mut pruned, &list);
            }
        }
        serde_json::from_value(pruned).ok()
    }

    fn check_name(&mut self, file: &YamlFile, name: &str, table_name: bool) -> bool {
        let checked = if table_name {
            check_table_or_column_name(name)
        } else {
            check_identifier(name)
        };
        if let Err(message) = checked {
            self.value_error(file, "/name", message);
            return false;
        }
        if name != file.stem {
            self.value_error(
                file,
                "/name",
                format!("the name `{name}` must match the file name `{}`", file.stem),
            );
            return false;
        }
        true
    }

    // ----- app.yaml ------------------------------------------------------------------------

    fn resolve_app(&mut self, file: &YamlFile) -> Option<App> {
        let app: App = self.deserialize(file)?;
        if app.timezone.parse::<chrono_tz::Tz>().is_err() {
            self.value_error(
                file,
                "/timezone",
                format!(
                    "`{}` is not an IANA timezone such as Asia/Shanghai",
                    app.timezone
                ),
            );
        }
        for (index, channel) in app.channels.iter().enumerate() {
            if channel.url.is_some() == channel.url_env.is_some() {
                self.value_error(
                    file,
                    &format!("/channels/{index}"),
                    "a channel needs exactly one of `url` or `url_env`",
                );
            }
            if channel.secret_env.is_some() && !channel.kind.signs() {
                self.value_error(
                    file,
                    &format!("/channels/{index}/secret_env"),
                    "only `dingtalk` and `feishu` bots sign messages: this kind takes no \
                     `secret_env`",
                );
            }
        }
        Some(app)
    }

    /// Every object a navigation group names exists, and appears in one group only.
    fn check_navigation(
        &mut self,
        file: &YamlFile,
        app: &App,
        objects: &IndexMap<String, Object>,
        broken_objects: &IndexMap<String, Object>,
    ) {
        let mut placed: HashMap<&str, usize> = HashMap::new();
        for (group_index, group) in app.navigation.iter().enumerate() {
            for (index, name) in group.objects.iter().enumerate() {
                let pointer = format!("/navigation/{group_index}/objects/{index}");
                let known = objects.contains_key(name)
                    || broken_objects.contains_key(name)
                    || self.unreadable_objects.contains(name);
                if !known {
                    self.value_error(file, &pointer, format!("there is no object `{name}`"));
                } else if placed.insert(name.as_str(), group_index).is_some() {
                    self.value_error(
                        file,
                        &pointer,
                        format!("`{name}` is in the navigation more than once"),
                    );
                }
            }
        }
    }

    // ----- objects -------------------------------------------------------------------------

    fn resolve_object(
        &mut self,
        file: &YamlFile,
        scripts: &IndexMap<String, Script>,
    ) -> Option<Object> {
        let raw: RawObject = self.deserialize(file)?;
        if !self.check_name(file, &raw.name, true) {
            return None;
        }
        let mut fields = IndexMap::new();
        for (name, raw_field) in &raw.fields {
            let pointer = format!("/fields/{}", escape_pointer(name));
            if let Err(message) = check_table_or_column_name(name) {
                self.key_error(file, &pointer, message);
                continue;
            }
            if let Some(field) = self.resolve_field(file, &pointer, name, raw_field) {
                fields.insert(name.clone(), field);
            }
        }
        if fields.len() != raw.fields.len() {
            self.partial_objects.insert(raw.name.clone());
        }
        for (name, field) in &fields {
            if let Some(old) = &field.renamed_from
                && (fields.contains_key(old) || old == name)
            {
                let message = format!("`renamed_from: {old}` names a field that still exists");
                self.value_error(
                    file,
                    &format!("/fields/{}/renamed_from", escape_pointer(name)),
                    message,
                );
            }
        }
        let declared: HashSet<&str> = raw.fields.keys().map(String::as_str).collect();
        let known = |name: &str| declared.contains(name) || is_system_field(name);

        let title = match &raw.title {
            Some(title) => {
                if !declared.contains(title.as_str()) {
                    self.value_error(
                        file,
                        "/title",
                        format!("`title` names `{title}`, which is not a field of this object"),
                    );
                }
                title.clone()
            }
            None => default_title(&fields),
        };
        for (index, name) in raw.search.iter().enumerate() {
            match fields.get(name) {
                // A declared field that did not resolve has its own error already.
                None if declared.contains(name.as_str()) => {}
                None => self.value_error(
                    file,
                    &format!("/search/{index}"),
                    unknown_field(name, &raw.name),
                ),
                Some(field)
                    if field.storage() != Storage::Text
                        || matches!(field.kind, FieldKind::Lookup { .. } | FieldKind::User) =>
                {
                    self.value_error(
                        file,
                        &format!("/search/{index}"),
                        format!(
                            "`{name}` is a {} field; `search` takes text fields",
                            field.kind.type_name()
                        ),
                    );
                }
                Some(_) => {}
            }
        }
        for (index, columns) in raw.indexes.iter().enumerate() {
            self.check_field_list(
                file,
                &format!("/indexes/{index}"),
                columns,
                &known,
                &raw.name,
            );
        }
        let mut duplicates = Vec::new();
        for (index, key) in raw.duplicates.iter().enumerate() {
            let pointer = format!("/duplicates/{index}/fields");
            self.check_field_list(
                file,
                &pointer,
                &key.fields,
                &|name| declared.contains(name),
                &raw.name,
            );
            duplicates.push(DuplicateKey {
                fields: key.fields.clone(),
                action: key.action.unwrap_or(DuplicateAction::Block),
            });
        }
        let mut validations = Vec::new();
        for (index, validation) in raw.validations.iter().enumerate() {
            self.check_expression(
                file,
                &format!("/validations/{index}/when"),
                &validation.when,
                Some(&raw.name),
                CONDITION,
            );
            self.check_field_list(
                file,
                &format!("/validations/{index}/fields"),
                &validation.fields,
                &|name| declared.contains(name),
                &raw.name,
            );
            validations.push(Validation {
                when: validation.when.clone(),
                message: validation.message.clone(),
                fields: validation.fields.clone(),
            });
        }
        for (event, names) in [
            ("before_save", &raw.triggers.before_save),
            ("after_save", &raw.triggers.after_save),
            ("before_delete", &raw.triggers.before_delete),
            ("after_delete", &raw.triggers.after_delete),
        ] {
            self.check_scripts(
                file,
                &format!("/triggers/{event}"),
                names,
                scripts,
                Some(&raw.name),
            );
        }
        let mut in_layout: HashMap<&str, usize> = HashMap::new();
        let mut layout = Vec::new();
        for (section_index, section) in raw.layout.iter().enumerate() {
            for (index, name) in section.fields.iter().enumerate() {
                let pointer = format!("/layout/{section_index}/fields/{index}");
                if !known(name) {
                    self.value_error(file, &pointer, unknown_field(name, &raw.name));
                } else if in_layout.insert(name.as_str(), section_index).is_some() {
                    self.value_error(
                        file,
                        &pointer,
                        format!("`{name}` appears in the layout more than once"),
                    );
                }
            }
            layout.push(LayoutSection {
                section: section.section.clone(),
                fields: section.fields.clone(),
            });
        }
        let list = self.resolve_list(file, raw.list.as_ref(), &known, &raw.name, &title);
        let calendar = raw.calendar.as_ref().map(|calendar| {
            for (key, name) in [("start", Some(&calendar.start)), ("end", calendar.end.as_ref())] {
                let Some(name) = name else { continue };
                if declared.contains(name.as_str()) && !fields.contains_key(name) {
                    continue; // a declared field that did not resolve has its own error
                }
                let is_time = fields
                    .get(name)
                    .is_some_and(|field| matches!(field.storage(), Storage::Date | Storage::Datetime))
                    || matches!(name.as_str(), "created_at" | "updated_at");
                if !is_time {
                    self.value_error(
                        file,
                        &format!("/calendar/{key}"),
                        format!("calendar `{key}` must name a date or datetime field of `{}`; `{name}` is not one", raw.name),
                    );
                }
            }
            let calendar_title = calendar.title.clone().unwrap_or_else(|| title.clone());
            if !known(&calendar_title) {
                self.value_error(file, "/calendar/title", unknown_field(&calendar_title, &raw.name));
            }
            let open = calendar.open.as_ref().and_then(|open| {
                let filter = self.check_filter(file, "/calendar/open", open, None)?;
                let mut keys = Vec::new();
                filter_field_keys(open, "/calendar/open", &mut keys);
                for (name, key_pointer) in keys {
                    if !known(&name) {
                        self.key_error(file, &key_pointer, unknown_field(&name, &raw.name));
                    }
                }
                Some(filter)
            });
            CalendarView { start: calendar.start.clone(), end: calendar.end.clone(), title: calendar_title, open }
        });

        Some(Object {
            label: raw
                .label
                .clone()
                .unwrap_or_else(|| Label::plain(raw.name.clone())),
            name: raw.name,
            title,
            search: raw.search,
            fields,
            indexes: raw.indexes,
            duplicates,
            validations,
            triggers: Triggers {
                before_save: raw.triggers.before_save,
                after_save: raw.triggers.after_save,
                before_delete: raw.triggers.before_delete,
                after_delete: raw.triggers.after_delete,
            },
            layout,
            list,
            calendar,
            pooled: false,
        })
    }

    fn resolve_list(
        &mut self,
        file: &YamlFile,
        raw: Option<&RawList>,
        known: &dyn Fn(&str) -> bool,
        object: &str,
        title: &str,
    ) -> ListView {
        let columns = match raw.and_then(|list| list.columns.clone()) {
            Some(columns) => {
                self.check_field_list(file, "/list/columns", &columns, known, object);
                columns
            }
            None => vec![
                title.to_owned(),
                "owner".to_owned(),
                "updated_at".to_owned(),
            ],
        };
        let order_terms: Vec<String> = match raw.and_then(|list| list.order.clone()) {
            None => vec!["-created_at".to_owned()],
            Some(RawOrder::Text(text)) => {
                text.split(',').map(|term| term.trim().to_owned()).collect()
            }
            Some(RawOrder::List(terms)) => terms,
        };
        let mut order = Vec::new();
        for (index, term) in order_terms.iter().enumerate() {
            let (descending, name) = match term.strip_prefix('-') {
                Some(name) => (true, name),
                None => (false, term.strip_prefix('+').unwrap_or(term)),
            };
            let pointer = match raw.and_then(|list| list.order.as_ref()) {
                Some(RawOrder::List(_)) => format!("/list/order/{index}"),
                _ => "/list/order".to_owned(),
            };
            if !known(name) {
                self.value_error(
                    file,
                    &pointer,
                    format!("`order` names `{name}`, which is not a field of `{object}`"),
                );
            }
            order.push(OrderTerm {
                field: name.to_owned(),
                descending,
            });
        }
        ListView { columns, order }
    }

    fn check_field_list(
        &mut self,
        file: &YamlFile,
        pointer: &str,
        names: &[String],
        known: &dyn Fn(&str) -> bool,
        object: &str,
    ) {
        for (index, name) in names.iter().enumerate() {
            if !known(name) {
                self.value_error(
                    file,
                    &format!("{pointer}/{index}"),
                    unknown_field(name, object),
                );
            }
        }
    }

    /// Checks that each script exists, and notes that it runs over records of `object`, to be
    /// analysed once every object is known (see `analyze_scripts`).
    fn check_scripts(
        &mut self,
        file: &YamlFile,
        pointer: &str,
        names: &[String],
        scripts: &IndexMap<String, Script>,
        object: Option<&str>,
    ) {
        for (index, name) in names.iter().enumerate() {
            if scripts.contains_key(name) {
                self.script_uses
                    .push((name.clone(), object.map(str::to_owned)));
            } else {
                self.value_error(
                    file,
                    &format!("{pointer}/{index}"),
                    format!("there is no script `scripts/{name}.rhai`"),
                );
            }
        }
    }

    /// Compiles an expression, reporting a syntax error; one that compiles is noted for the
    /// analysis against `object` once every object is known (see `analyze_expressions`).
    fn check_expression(
        &mut self,
        file: &YamlFile,
        pointer: &str,
        expression: &str,
        object: Option<&str>,
        kind: ExpressionKind,
    ) {
        if file.silenced(pointer) {
            return;
        }
        if let Err(error) = keel_script::check_expression(expression) {
            let position = file
                .document
                .position_in_text(pointer, error.line, error.column);
            let noticed = match error.noticed {
                Some((line, column)) => {
                    let at = file.document.position_in_text(pointer, line, column);
                    format!(" (noticed at {}:{})", at.line, at.column)
                }
                None => String::new(),
            };
            self.error_at(
                &file.path,
                position,
                format!("expression does not compile: {}{noticed}", error.message),
            );
        } else {
            self.expression_uses.push(ExpressionUse {
                file: file.path.clone(),
                pointer: pointer.to_owned(),
                expression: expression.to_owned(),
                object: object.map(str::to_owned),
                kind,
            });
        }
    }

    fn resolve_field(
        &mut self,
        file: &YamlFile,
        pointer: &str,
        name: &str,
        raw: &RawField,
    ) -> Option<Field> {
        let kind = match raw.field_type.as_str() {
            "text" => FieldKind::Text,
            "long_text" => FieldKind::LongText,
            "integer" => FieldKind::Integer,
            "decimal" => FieldKind::Decimal {
                scale: raw.scale.unwrap_or(2),
            },
            "money" => FieldKind::Money {
                scale: raw.scale.unwrap_or(2),
            },
            "percent" => FieldKind::Percent {
                scale: raw.scale.unwrap_or(2),
            },
            "boolean" => FieldKind::Boolean,
            "date" => FieldKind::Date,
            "datetime" => FieldKind::Datetime,
            "choice" | "multi_choice" => {
                let options =
                    self.resolve_options(file, pointer, raw.options.as_deref().unwrap_or_default());
                if raw.field_type == "choice" {
                    FieldKind::Choice { options }
                } else {
                    FieldKind::MultiChoice { options }
                }
            }
            "email" => FieldKind::Email,
            "phone" => FieldKind::Phone,
            "url" => FieldKind::Url,
            "lookup" => FieldKind::Lookup {
                object: raw.object.clone().unwrap_or_default(),
                on_delete: raw.on_delete.unwrap_or_default(),
            },
            "user" => FieldKind::User,
            "autonumber" => {
                let format = raw.format.clone().unwrap_or_default();
                if let Err(message) = check_autonumber_format(&format) {
                    self.value_error(file, &format!("{pointer}/format"), message);
                }
                FieldKind::Autonumber { format }
            }
            "formula" => {
                let expr = raw.expr.clone().unwrap_or_default();
                // An object's name is its file's name (a mismatch is reported, and the object
                // is then not in the catalog, so nothing is checked against its fields).
                self.check_expression(
                    file,
                    &format!("{pointer}/expr"),
                    &expr,
                    Some(&file.stem),
                    FORMULA,
                );
                FieldKind::Formula {
                    expr,
                    returns: raw.returns.unwrap_or_default(),
                }
            }
            other => {
                self.value_error(
                    file,
                    &format!("{pointer}/type"),
                    format!("unknown field type `{other}`"),
                );
                return None;
            }
        };
        let type_name = kind.type_name();
        let numeric = matches!(type_name, "integer" | "decimal" | "money" | "percent");
        let textual = matches!(type_name, "text" | "long_text" | "email" | "phone" | "url");
        let computed = matches!(type_name, "formula" | "autonumber");
        let applies: [(&str, bool, bool); 15] = [
            ("required", raw.required.is_some(), !computed),
            (
                "unique",
                raw.unique.is_some(),
                matches!(
                    type_name,
                    "text" | "email" | "phone" | "url" | "integer" | "date" | "lookup" | "user"
                ),
            ),
            ("default", raw.default.is_some(), !computed),
            ("min", raw.min.is_some(), numeric),
            ("max", raw.max.is_some(), numeric),
            ("max_length", raw.max_length.is_some(), textual),
            (
                "pattern",
                raw.pattern.is_some(),
                textual && type_name != "long_text",
            ),
            (
                "mask",
                raw.mask.is_some(),
                matches!(type_name, "text" | "email" | "phone"),
            ),
            (
                "scale",
                raw.scale.is_some(),
                matches!(type_name, "decimal" | "money" | "percent"),
            ),
            (
                "options",
                raw.options.is_some(),
                matches!(type_name, "choice" | "multi_choice"),
            ),
            ("object", raw.object.is_some(), type_name == "lookup"),
            ("on_delete", raw.on_delete.is_some(), type_name == "lookup"),
            ("format", raw.format.is_some(), type_name == "autonumber"),
            ("expr", raw.expr.is_some(), type_name == "formula"),
            ("returns", raw.returns.is_some(), type_name == "formula"),
        ];
        for (option, given, allowed) in applies {
            if given && !allowed {
                self.key_error(
                    file,
                    &format!("{pointer}/{option}"),
                    format!("`{option}` does not apply to a field of type {type_name}"),
                );
            }
        }
        if let (Some(min), Some(max)) = (&raw.min, &raw.max)
            && min.as_f64() > max.as_f64()
        {
            self.value_error(
                file,
                &format!("{pointer}/min"),
                format!("`min` ({min}) is greater than `max` ({max})"),
            );
        }
        if let Some(pattern) = &raw.pattern
            && let Err(error) = regex::Regex::new(pattern)
        {
            self.value_error(
                file,
                &format!("{pointer}/pattern"),
                format!("`pattern` is not a valid regular expression: {error}"),
            );
        }
        if let FieldKind::Lookup {
            on_delete: OnDelete::SetNull,
            ..
        } = kind
            && raw.required == Some(true)
        {
            self.value_error(
                file,
                &format!("{pointer}/on_delete"),
                "a required lookup cannot use `on_delete: set_null`",
            );
        }
        if let Some(default) = &raw.default
            && let Err(message) = check_default(&kind, default)
        {
            self.value_error(file, &format!("{pointer}/default"), message);
        }
        Some(Field {
            name: name.to_owned(),
            kind,
            label: raw.label.clone(),
            help: raw.help.clone(),
            required: raw.required.unwrap_or(false),
            unique: raw.unique.unwrap_or(false),
            default: raw.default.clone(),
            min: raw.min.clone(),
            max: raw.max.clone(),
            max_length: raw.max_length,
            pattern: raw.pattern.clone(),
            mask: raw.mask.unwrap_or(false),
            renamed_from: raw.renamed_from.clone(),
        })
    }

    fn resolve_options(
        &mut self,
        file: &YamlFile,
        pointer: &str,
        raw: &[RawOption],
    ) -> Vec<ChoiceOption> {
        let mut options: Vec<ChoiceOption> = Vec::with_capacity(raw.len());
        for (index, option) in raw.iter().enumerate() {
            let (key, label) = match option {
                RawOption::Key(key) => (key.text(), None),
                RawOption::Full { key, label } => (key.text(), label.clone()),
            };
            if options.iter().any(|existing| existing.key == key) {
                self.value_error(
                    file,
                    &format!("{pointer}/options/{index}"),
                    format!("the option `{key}` is listed twice"),
                );
                continue;
            }
            options.push(ChoiceOption { key, label });
        }
        options
    }

    /// Lookups must point at objects that exist; done after every object file is read.
    fn check_lookup_targets(
        &mut self,
        file: &YamlFile,
        object: Option<&Object>,
        objects: &IndexMap<String, Object>,
    ) {
        let Some(object) = object else {
            return;
        };
        for field in object.fields.values() {
            if let FieldKind::Lookup { object: target, .. } = &field.kind
                && !objects.contains_key(target)
                && !self.unreadable_objects.contains(target)
            {
                let pointer = format!("/fields/{}/object", escape_pointer(&field.name));
                self.value_error(
                    file,
                    &pointer,
                    format!(
                        "lookup `{}` points at `{target}`, which is not an object of this app",
                        field.name
                    ),
                );
            }
        }
    }

    // ----- roles ---------------------------------------------------------------------------

    fn resolve_roles(
        &mut self,
        file: &YamlFile,
        objects: &IndexMap<String, Object>,
    ) -> Option<Roles> {
        let raw: RawRoles = self.deserialize(file)?;
        let mut roles = IndexMap::new();
        for (name, role) in &raw.roles {
            roles.insert(
                name.clone(),
                Role {
                    name: name.clone(),
                    label: role.label.clone(),
                    admin: role.admin.unwrap_or(false),
                },
            );
        }
        match roles.get("admin") {
            None => self.value_error(
                file,
                "/roles",
                "the role `admin` (with `admin: true`) is required: the first user gets it",
            ),
            Some(role) if !role.admin => self.value_error(
                file,
                "/roles/admin",
                "the role `admin` must have `admin: true`",
            ),
            Some(_) => {}
        }
        let mut permissions = IndexMap::new();
        for (role, grants) in &raw.permissions {
            let role_pointer = format!("/permissions/{}", escape_pointer(role));
            if !roles.contains_key(role) {
                self.key_error(
                    file,
                    &role_pointer,
                    format!("`{role}` is not a role declared under `roles`"),
                );
            }
            let mut resolved = IndexMap::new();
            for (object_name, grant) in grants {
                let object_pointer = format!("{role_pointer}/{}", escape_pointer(object_name));
                let Some(object) = objects.get(object_name) else {
                    if !self.unreadable_objects.contains(object_name) {
                        self.key_error(
                            file,
                            &object_pointer,
                            format!("`{object_name}` is not an object of this app"),
                        );
                    }
                    continue;
                };
                for field in grant.fields.keys() {
                    if object.field(field).is_none() {
                        self.key_error(
                            file,
                            &format!("{object_pointer}/fields/{}", escape_pointer(field)),
                            unknown_field(field, object_name),
                        );
                    }
                }
                resolved.insert(
                    object_name.clone(),
                    Grant {
                        read: grant.read.unwrap_or_default(),
                        create: grant.create.unwrap_or(false),
                        edit: grant.edit.unwrap_or_default(),
                        delete: grant.delete.unwrap_or_default(),
                        unmask: grant.unmask.unwrap_or(false),
                        fields: grant.fields.clone(),
                    },
                );
            }
            permissions.insert(role.clone(), resolved);
        }
        Some(Roles { roles, permissions })
    }

    // ----- pools ---------------------------------------------------------------------------

    fn check_filter(
        &mut self,
        file: &YamlFile,
        pointer: &str,
        raw: &Value,
        object: Option<&Object>,
    ) -> Option<Filter> {
        match Filter::from_json(raw) {
            Ok(filter) => {
                if let Some(object) = object {
                    let mut keys = Vec::new();
                    filter_field_keys(raw, pointer, &mut keys);
                    for (name, key_pointer) in keys {
                        if object.field(&name).is_none() && !is_system_field(&name) {
                            self.key_error(file, &key_pointer, unknown_field(&name, &object.name));
                        }
                    }
                }
                Some(filter)
            }
            Err(error) => {
                self.value_error(file, &format!("{pointer}{}", error.path), error.message);
                None
            }
        }
    }

    fn check_roles(&mut self, file: &YamlFile, pointer: &str, names: &[String], roles: &Roles) {
        if self.roles_unreadable {
            return;
        }
        for (index, name) in names.iter().enumerate() {
            if !roles.roles.contains_key(name) {
                self.value_error(
                    file,
                    &format!("{pointer}/{index}"),
                    format!("`{name}` is not a role of this app"),
                );
            }
        }
    }

    fn object_of<'a>(
        &mut self,
        file: &YamlFile,
        name: &str,
        objects: &'a IndexMap<String, Object>,
    ) -> Option<&'a Object> {
        let object = objects.get(name);
        if object.is_none() && !self.unreadable_objects.contains(name) {
            self.value_error(
                file,
                "/object",
                format!("`{name}` is not an object of this app"),
            );
        }
        object
    }

    fn check_schedule(
        &mut self,
        file: &YamlFile,
        pointer: &str,
        text: &str,
    ) -> Option<CronSchedule> {
        match CronSchedule::parse(text) {
            Ok(schedule) => Some(schedule),
            Err(message) => {
                self.value_error(file, pointer, message);
                None
            }
        }
    }

    fn duration(&mut self, file: &YamlFile, pointer: &str, raw: Option<&Value>) -> Duration {
        match raw {
            None => Duration::ZERO,
            Some(value) => match Duration::deserialize(value) {
                Ok(duration) => duration,
                Err(error) => {
                    self.value_error(file, pointer, error.to_string());
                    Duration::ZERO
                }
            },
        }
    }

    fn resolve_pool(
        &mut self,
        file: &YamlFile,
        objects: &IndexMap<String, Object>,
        roles: &Roles,
    ) -> Option<Pool> {
        let raw: RawPool = self.deserialize(file)?;
        let name_ok = self.check_name(file, &raw.name, false);
        let object = self.object_of(file, &raw.object, objects);
        self.check_roles(file, "/members", &raw.members, roles);
        self.check_roles(file, "/managers", &raw.managers, roles);
        let holding_excludes = raw
            .holding_excludes
            .as_ref()
            .and_then(|f| self.check_filter(file, "/holding_excludes", f, object));
        if let Some(object) = object {
            for (index, name) in raw.hide_until_claimed.iter().enumerate() {
                match object.field(name).map(|field| &field.kind) {
                    None => self.value_error(
                        file,
                        &format!("/hide_until_claimed/{index}"),
                        unknown_field(name, &object.name),
                    ),
                    // A masked value is text (`138****5678`): only the field types that may
                    // be `mask: true` can be hidden, so a record's shape stays the same.
                    Some(FieldKind::Text | FieldKind::Email | FieldKind::Phone) => {}
                    Some(_) => self.value_error(
                        file,
                        &format!("/hide_until_claimed/{index}"),
                        format!(
                            "`{name}` cannot be hidden until claimed: only text, email and phone fields can"
                        ),
                    ),
                }
            }
        }
        let reclaim_cooldown =
            self.duration(file, "/reclaim_cooldown", raw.reclaim_cooldown.as_ref());
        let auto_return = match &raw.auto_return {
            None => None,
            Some(auto) => {
                let schedule = self.check_schedule(file, "/auto_return/schedule", &auto.schedule);
                let warn_before =
                    self.duration(file, "/auto_return/warn_before", auto.warn_before.as_ref());
                let exempt = auto
                    .exempt
                    .as_ref()
                    .and_then(|f| self.check_filter(file, "/auto_return/exempt", f, object));
                let mut rules = Vec::new();
                for (index, rule) in auto.rules.iter().enumerate() {
                    let pointer = format!("/auto_return/rules/{index}");
                    match (&rule.no_follow_up_for, &rule.not_converted_for) {
                        (Some(after), None) => {
                            if rule.converted.is_some() {
                                self.key_error(file, &format!("{pointer}/converted"), "`converted` goes with `not_converted_for`");
                            }
                            if let (Some(field), Some(object)) = (&rule.follow_up_field, object) {
                                let is_time = object.field(field).is_some_and(|f| matches!(f.storage(), Storage::Date | Storage::Datetime));
                                if !is_time {
                                    self.value_error(file, &format!("{pointer}/follow_up_field"), format!("`follow_up_field` must name a date or datetime field of `{}`", object.name));
                                }
                            }
                            rules.push(ReturnRule::NoFollowUpFor {
                                after: self.duration(file, &format!("{pointer}/no_follow_up_for"), Some(after)),
                                follow_up_field: rule.follow_up_field.clone(),
                            });
                        }
                        (None, Some(after)) => {
                            if rule.follow_up_field.is_some() {
                                self.key_error(file, &format!("{pointer}/follow_up_field"), "`follow_up_field` goes with `no_follow_up_for`");
                            }
                            let converted = match &rule.converted {
                                Some(raw_filter) => self.check_filter(file, &format!("{pointer}/converted"), raw_filter, object),
                                None => {
                                    self.value_error(file, &pointer, "`not_converted_for` needs `converted`: a filter saying when a record counts as converted");
                                    None
                                }
                            };
                            rules.push(ReturnRule::NotConvertedFor {
                                after: self.duration(file, &format!("{pointer}/not_converted_for"), Some(after)),
                                converted: converted.unwrap_or_else(Filter::always),
                            });
                        }
                        _ => self.value_error(file, &pointer, "an auto-return rule needs exactly one of `no_follow_up_for` or `not_converted_for`"),
                    }
                }
                schedule.map(|schedule| AutoReturn {
                    schedule,
                    warn_before,
                    exempt,
                    rules,
                })
            }
        };
        if !name_ok {
            return None;
        }
        object?;
        Some(Pool {
            name: raw.name,
            label: raw.label,
            object: raw.object,
            members: raw.members,
            managers: raw.managers,
            claim_limit: raw.claim_limit.unwrap_or(0),
            holding_excludes,
            daily_claim_limit: raw.daily_claim_limit.unwrap_or(0),
            reclaim_cooldown,
            hide_until_claimed: raw.hide_until_claimed,
            release_reasons: raw.release_reasons.iter().map(ChoiceKey::text).collect(),
            auto_return,
            notify_on_return: raw.notify_on_return.unwrap_or(true),
        })
    }

    // ----- processes -----------------------------------------------------------------------

    fn resolve_process(
        &mut self,
        file: &YamlFile,
        objects: &IndexMap<String, Object>,
        roles: &Roles,
        scripts: &IndexMap<String, Script>,
    ) -> Option<Process> {
        let raw: RawProcess = self.deserialize(file)?;
        let name_ok = self.check_name(file, &raw.name, false);
        let object = self.object_of(file, &raw.object, objects);
        let stage_options: Option<Vec<String>> =
            object.and_then(|object| match object.field(&raw.stage_field) {
                None => {
                    self.value_error(
                        file,
                        "/stage_field",
                        unknown_field(&raw.stage_field, &object.name),
                    );
                    None
                }
                Some(Field {
                    kind: FieldKind::Choice { options },
                    ..
                }) => Some(options.iter().map(|option| option.key.clone()).collect()),
                Some(field) => {
                    self.value_error(
                        file,
                        "/stage_field",
                        format!(
                            "the stage field `{}` must be a choice field, not {}",
                            field.name,
                            field.kind.type_name()
                        ),
                    );
                    None
                }
            });
        let mut stages: Vec<Stage> = Vec::new();
        let mut first_seen: HashMap<String, usize> = HashMap::new();
        for (index, raw_stage) in raw.stages.iter().enumerate() {
            let pointer = format!("/stages/{index}");
            let key = raw_stage.key.text();
            if let Some(first) = first_seen.get(&key) {
                let first_line = file
                    .document
                    .value_position(&format!("/stages/{first}/key"))
                    .line;
                self.value_error(
                    file,
                    &format!("{pointer}/key"),
                    format!("duplicate stage key `{key}` (first used on line {first_line})"),
                );
                continue;
            }
            first_seen.insert(key.clone(), index);
            if let Some(object) = object {
                for (require_index, name) in raw_stage.require.iter().enumerate() {
                    if object.field(name).is_none() {
                        self.value_error(
                            file,
                            &format!("{pointer}/require/{require_index}"),
                            unknown_field(name, &object.name),
                        );
                    }
                }
            }
            self.check_scripts(
                file,
                &format!("{pointer}/on_enter"),
                &raw_stage.on_enter,
                scripts,
                Some(&raw.object),
            );
            let approval = raw_stage.approval.as_ref().map(|raw_approval| {
                if let Some(when) = &raw_approval.when {
                    self.check_expression(
                        file,
                        &format!("{pointer}/approval/when"),
                        when,
                        Some(&raw.object),
                        CONDITION,
                    );
                }
                let steps = raw_approval
                    .steps
                    .iter()
                    .enumerate()
                    .map(|(step_index, step)| {
                        let approvers = match &step.approvers {
                            RawApprovers::One(one) => vec![one.clone()],
                            RawApprovers::Many(many) => many.clone(),
                        };
                        let approvers = approvers
                            .into_iter()
                            .map(|approver| match approver {
                                RawApprover::Relative(text) => Approver::Manager {
                                    levels: text
                                        .strip_prefix("manager_")
                                        .and_then(|n| n.parse().ok())
                                        .unwrap_or(1),
                                },
                                RawApprover::Role { role } => {
                                    if !roles.roles.contains_key(&role) && !self.roles_unreadable {
                                        self.value_error(
                                            file,
                                            &format!(
                                                "{pointer}/approval/steps/{step_index}/approvers"
                                            ),
                                            format!("`{role}` is not a role of this app"),
                                        );
                                    }
                                    Approver::Role(role)
                                }
                                RawApprover::User { user } => Approver::User(user),
                            })
                            .collect();
                        ApprovalStep {
                            approvers,
                            mode: step.mode.unwrap_or_default(),
                        }
                    })
                    .collect();
                Approval {
                    when: raw_approval.when.clone(),
                    steps,
                    if_no_approver: raw_approval.if_no_approver.unwrap_or_default(),
                    remind_after: self.duration(
                        file,
                        &format!("{pointer}/approval/remind_after"),
                        raw_approval.remind_after.as_ref(),
                    ),
                }
            });
            stages.push(Stage {
                key,
                label: raw_stage.label.clone(),
                probability: raw_stage.probability.unwrap_or(0),
                outcome: raw_stage.outcome,
                require: raw_stage.require.clone(),
                on_enter: raw_stage.on_enter.clone(),
                approval,
            });
        }
        if let Some(options) = &stage_options {
            let keys: Vec<&String> = stages.iter().map(|stage| &stage.key).collect();
            let missing: Vec<&str> = options
                .iter()
                .filter(|option| !keys.contains(option))
                .map(String::as_str)
                .collect();
            let extra: Vec<&str> = keys
                .iter()
                .filter(|key| !options.contains(key))
                .map(|key| key.as_str())
                .collect();
            if !missing.is_empty() || !extra.is_empty() {
                let mut message = format!(
                    "the stages must be exactly the options of `{}`:",
                    raw.stage_field
                );
                if !extra.is_empty() {
                    message.push_str(&format!(" not options: {};", extra.join(", ")));
                }
                if !missing.is_empty() {
                    message.push_str(&format!(
                        " options without a stage: {};",
                        missing.join(", ")
                    ));
                }
                message.pop();
                self.value_error(file, "/stages", message);
            }
        }
        let mut transitions = Vec::new();
        for (index, raw_transition) in raw.transitions.iter().enumerate() {
            let pointer = format!("/transitions/{index}");
            match raw_transition {
                RawTransition::Linear { .. } => {
                    let forward: Vec<&Stage> = stages
                        .iter()
                        .filter(|stage| stage.outcome != Some(Outcome::Lost))
                        .collect();
                    for pair in forward.windows(2) {
                        for (from, to) in [(pair[0], pair[1]), (pair[1], pair[0])] {
                            let transition = Transition {
                                from: Some(from.key.clone()),
                                to: to.key.clone(),
                                guard: None,
                            };
                            if !transitions.contains(&transition) {
                                transitions.push(transition);
                            }
                        }
                    }
                }
                RawTransition::Explicit { from, to, guard } => {
                    let from = from.text();
                    let to = to.text();
                    let known_stage = |key: &str| stages.iter().any(|stage| stage.key == key);
                    if from != "*" && !known_stage(&from) {
                        self.value_error(
                            file,
                            &format!("{pointer}/from"),
                            format!("`{from}` is not a stage of this process"),
                        );
                    }
                    if !known_stage(&to) {
                        self.value_error(
                            file,
                            &format!("{pointer}/to"),
                            format!("`{to}` is not a stage of this process"),
                        );
                    }
                    if let Some(guard) = guard {
                        self.check_scripts(
                            file,
                            &pointer,
                            std::slice::from_ref(guard),
                            scripts,
                            Some(&raw.object),
                        );
                    }
                    transitions.push(Transition {
                        from: (from != "*").then_some(from),
                        to,
                        guard: guard.clone(),
                    });
                }
            }
        }
        if !name_ok {
            return None;
        }
        object?;
        Some(Process {
            name: raw.name,
            label: raw.label,
            object: raw.object,
            stage_field: raw.stage_field,
            stages,
            transitions,
        })
    }

    // ----- rules ---------------------------------------------------------------------------

    fn resolve_rule(
        &mut self,
        file: &YamlFile,
        objects: &IndexMap<String, Object>,
        roles: &Roles,
        scripts: &IndexMap<String, Script>,
    ) -> Option<Rule> {
        let raw: RawRule = self.deserialize(file)?;
        let name_ok = self.check_name(file, &raw.name, false);
        let object = self.object_of(file, &raw.object, objects);
        let trigger = match (&raw.schedule, &raw.on) {
            (Some(schedule), None) => {
                self.check_schedule(file, "/schedule", schedule)
                    .map(|schedule| RuleTrigger::Schedule {
                        schedule,
                        misfire: raw.misfire.unwrap_or_default(),
                    })
            }
            (None, Some(on)) => {
                if raw.misfire.is_some() {
                    self.key_error(
                        file,
                        "/misfire",
                        "`misfire` applies to scheduled rules only",
                    );
                }
                Some(RuleTrigger::Event { on: on.clone() })
            }
            _ => {
                self.value_error(
                    file,
                    "",
                    "a rule needs exactly one of `schedule` (a timed rule) or `on` (an event rule)",
                );
                None
            }
        };
        let filter = raw
            .filter
            .as_ref()
            .and_then(|f| self.check_filter(file, "/where", f, object));
        if let Some(when) = &raw.when {
            self.check_expression(file, "/when", when, Some(&raw.object), CONDITION);
        }
        let raw_actions: Vec<(String, &RawAction)> = match (&raw.action, &raw.actions) {
            (Some(action), None) => vec![("/action".to_owned(), action)],
            (None, Some(actions)) => actions
                .iter()
                .enumerate()
                .map(|(index, action)| (format!("/actions/{index}"), action))
                .collect(),
            _ => {
                self.value_error(
                    file,
                    "",
                    "a rule needs exactly one of `action` or `actions`",
                );
                Vec::new()
            }
        };
        let mut actions = Vec::new();
        for (pointer, raw_action) in raw_actions {
            if let Some(action) =
                self.resolve_action(file, &pointer, raw_action, object, objects, roles, scripts)
            {
                actions.push(action);
            }
        }
        if !name_ok {
            return None;
        }
        object?;
        Some(Rule {
            name: raw.name,
            label: raw.label,
            enabled: raw.enabled.unwrap_or(true),
            object: raw.object,
            trigger: trigger?,
            filter,
            when: raw.when,
            actions,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn resolve_action(
        &mut self,
        file: &YamlFile,
        pointer: &str,
        raw: &RawAction,
        object: Option<&Object>,
        objects: &IndexMap<String, Object>,
        roles: &Roles,
        scripts: &IndexMap<String, Script>,
    ) -> Option<Action> {
        let kinds = [
            raw.notify.is_some(),
            raw.set.is_some(),
            raw.create.is_some(),
            raw.script.is_some(),
            raw.webhook.is_some(),
        ];
        if kinds.iter().filter(|given| **given).count() != 1 {
            self.value_error(
                file,
                pointer,
                "an action has exactly one of `notify`, `set`, `create`, `script` or `webhook`",
            );
            return None;
        }
        if raw.message.is_some() && raw.notify.is_none() {
            self.key_error(
                file,
                &format!("{pointer}/message"),
                "`message` goes with `notify`",
            );
        }
        if let Some(recipient) = &raw.notify {
            let to = match recipient {
                RawRecipient::Relative(text) if text == "manager" => Recipient::Manager,
                RawRecipient::Relative(_) => Recipient::Owner,
                RawRecipient::User { user } => Recipient::User(user.clone()),
                RawRecipient::Role { role } => {
                    if !roles.roles.contains_key(role) && !self.roles_unreadable {
                        self.value_error(
                            file,
                            &format!("{pointer}/notify/role"),
                            format!("`{role}` is not a role of this app"),
                        );
                    }
                    Recipient::Role(role.clone())
                }
            };
            let Some(message) = raw.message.clone() else {
                self.value_error(file, pointer, "`notify` needs a `message`");
                return None;
            };
            return Some(Action::Notify { to, message });
        }
        if let Some(values) = &raw.set {
            if let Some(object) = object {
                self.check_writable_fields(file, &format!("{pointer}/set"), values, object);
            }
            return Some(Action::Set {
                values: values.clone(),
            });
        }
        if let Some(create) = &raw.create {
            match objects.get(&create.object) {
                Some(target) => self.check_writable_fields(
                    file,
                    &format!("{pointer}/create/values"),
                    &create.values,
                    target,
                ),
                None if self.unreadable_objects.contains(&create.object) => {}
                None => self.value_error(
                    file,
                    &format!("{pointer}/create/object"),
                    format!("`{}` is not an object of this app", create.object),
                ),
            }
            return Some(Action::Create {
                object: create.object.clone(),
                values: create.values.clone(),
            });
        }
        if let Some(script) = &raw.script {
            self.check_scripts(
                file,
                pointer,
                std::slice::from_ref(script),
                scripts,
                object.map(|object| object.name.as_str()),
            );
            return Some(Action::Script {
                script: script.clone(),
            });
        }
        let webhook = raw.webhook.as_ref()?;
        if webhook.url.is_some() == webhook.url_env.is_some() {
            self.value_error(
                file,
                &format!("{pointer}/webhook"),
                "a webhook needs exactly one of `url` or `url_env`",
            );
        }
        Some(Action::Webhook {
            url: webhook.url.clone(),
            url_env: webhook.url_env.clone(),
            secret_env: webhook.secret_env.clone(),
        })
    }

    fn check_writable_fields(
        &mut self,
        file: &YamlFile,
        pointer: &str,
        values: &IndexMap<String, Value>,
        object: &Object,
    ) {
        for name in values.keys() {
            let field_pointer = format!("{pointer}/{}", escape_pointer(name));
            match object.field(name) {
                None if name == "owner" || name == "pool" => {}
                None => self.key_error(file, &field_pointer, unknown_field(name, &object.name)),
                Some(field) if field.is_computed() => self.key_error(
                    file,
                    &field_pointer,
                    format!(
                        "`{name}` is computed ({}) and cannot be set",
                        field.kind.type_name()
                    ),
                ),
                Some(_) => {}
            }
        }
    }
}

// ----- helpers -------------------------------------------------------------------------------

/// Removes the node at `pointer` from its parent map or list (the root stays). A list item is
/// replaced by `null` rather than removed, so the pointers of the items after it stay true.
fn remove_at(value: &mut Value, pointer: &str) {
    let Some((parent, last)) = pointer.rsplit_once('/') else {
        return;
    };
    let key = last.replace("~1", "/").replace("~0", "~");
    match value.pointer_mut(parent) {
        Some(Value::Object(map)) => {
            map.shift_remove(&key);
        }
        Some(Value::Array(items)) => {
            if let Some(item) = key.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                *item = Value::Null;
            }
        }
        _ => {}
    }
}

/// Every field a filter names, with the JSON pointer of its key, however deeply it is nested
/// in `or` and `not`. The parsed `Filter` keeps no places, so this walks the filter's source
/// tree (whose pointers the source map knows) the way `Filter::from_json` reads it; call it
/// only on a filter that parsed. A test holds it to `Filter::fields`.
fn filter_field_keys(raw: &Value, pointer: &str, out: &mut Vec<(String, String)>) {
    let Value::Object(map) = raw else {
        return;
    };
    for (key, entry) in map {
        let entry_pointer = format!("{pointer}/{}", escape_pointer(key));
        match (key.as_str(), entry) {
            ("or", Value::Array(items)) => {
                for (index, item) in items.iter().enumerate() {
                    filter_field_keys(item, &format!("{entry_pointer}/{index}"), out);
                }
            }
            ("not", _) => filter_field_keys(entry, &entry_pointer, out),
            (field, _) => out.push((field.to_owned(), entry_pointer)),
        }
    }
}

/// The pointer of the innermost list that `pointer` lies inside, if any.
fn enclosing_list(value: &Value, pointer: &str) -> Option<String> {
    let mut current = pointer;
    while let Some((parent, _)) = current.rsplit_once('/') {
        if matches!(value.pointer(parent), Some(Value::Array(_))) {
            return Some(parent.to_owned());
        }
        current = parent;
    }
    None
}

fn unknown_field(name: &str, object: &str) -> String {
    format!("`{name}` is not a field of `{object}`")
}

fn default_title(fields: &IndexMap<String, Field>) -> String {
    if fields.contains_key("name") {
        return "name".to_owned();
    }
    fields
        .values()
        .find(|field| matches!(field.kind, FieldKind::Text | FieldKind::Autonumber { .. }))
        .or_else(|| fields.values().next())
        .map(|field| field.name.clone())
        .unwrap_or_else(|| "id".to_owned())
}

fn default_roles() -> Roles {
    let admin = Role {
        name: "admin".to_owned(),
        label: None,
        admin: true,
    };
    Roles {
        roles: IndexMap::from([("admin".to_owned(), admin)]),
        permissions: IndexMap::new(),
    }
}

/// `{YYYY}`, `{YY}`, `{MM}`, `{DD}` and exactly one `{seq:N}` (1 ≤ N ≤ 12); other text is literal.
fn check_autonumber_format(format: &str) -> Result<(), String> {
    let mut sequences = 0;
    let mut rest = format;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            return Err(format!(
                "autonumber format `{format}` has a `{{` without `}}`"
            ));
        };
        let token = &rest[open + 1..open + close];
        match token {
            "YYYY" | "YY" | "MM" | "DD" => {}
            _ => match token.strip_prefix("seq:").map(str::parse::<u32>) {
                Some(Ok(width)) if (1..=12).contains(&width) => sequences += 1,
                _ => {
                    return Err(format!(
                        "autonumber format `{format}`: `{{{token}}}` is not one of {{YYYY}}, {{YY}}, {{MM}}, {{DD}}, {{seq:N}} (N from 1 to 12)"
                    ));
                }
            },
        }
        rest = &rest[open + close + 1..];
    }
    if sequences != 1 {
        return Err(format!(
            "autonumber format `{format}` needs exactly one {{seq:N}}"
        ));
    }
    Ok(())
}

fn check_default(kind: &FieldKind, default: &Value) -> Result<(), String> {
    let fits = match (kind, default) {
        (_, Value::Null) => true,
        (FieldKind::Integer, Value::Number(n)) => n.is_i64(),
        (
            FieldKind::Decimal { .. } | FieldKind::Money { .. } | FieldKind::Percent { .. },
            Value::Number(_),
        ) => true,
        (
            FieldKind::Decimal { .. } | FieldKind::Money { .. } | FieldKind::Percent { .. },
            Value::String(text),
        ) => text.parse::<rust_decimal::Decimal>().is_ok(),
        (FieldKind::Boolean, Value::Bool(_)) => true,
        (FieldKind::Choice { options }, value) => {
            let key = ChoiceKey::from_value(value);
            return match key {
                Some(key) if options.iter().any(|option| option.key == key) => Ok(()),
                _ => Err(format!(
                    "default `{}` is not one of the options",
                    value_text(default)
                )),
            };
        }
        (FieldKind::MultiChoice { options }, Value::Array(items)) => {
            for item in items {
                if !ChoiceKey::from_value(item)
                    .is_some_and(|key| options.iter().any(|option| option.key == key))
                {
                    return Err(format!(
                        "default `{}` is not one of the options",
                        value_text(item)
                    ));
                }
            }
            true
        }
        (FieldKind::Date, Value::String(text)) => {
            text.starts_with("@today")
                || chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok()
        }
        (FieldKind::Datetime, Value::String(text)) => {
            text.starts_with('@') || chrono::DateTime::parse_from_rfc3339(text).is_ok()
        }
        (
            FieldKind::Text
            | FieldKind::LongText
            | FieldKind::Email
            | FieldKind::Phone
            | FieldKind::Url,
            Value::String(_),
        ) => true,
        (FieldKind::User, Value::String(text)) => text == "@me",
        _ => false,
    };
    if fits {
        Ok(())
    } else {
        Err(format!(
            "default `{}` does not fit a field of type {}",
            value_text(default),
            kind.type_name()
        ))
    }
}

fn value_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// Turns one JSON Schema error into (pointer, point at the key?, message).
fn schema_problem(
    instance: &Value,
    pointer: &str,
    kind: &jsonschema::error::ValidationErrorKind,
    schema_node: Option<(&Value, &Value)>,
    fallback: &str,
) -> (String, bool, String) {
    use jsonschema::error::ValidationErrorKind as Kind;
    let here = || instance.pointer(pointer);
    let key_name = pointer
        .rsplit('/')
        .next()
        .unwrap_or("")
        .replace("~1", "/")
        .replace("~0", "~");
    match kind {
        Kind::AdditionalProperties { unexpected } => {
            let first = unexpected.first().cloned().unwrap_or_default();
            let allowed = schema_node
                .map(|(root, node)| allowed_keys_hint(root, node, &first))
                .unwrap_or_default();
            (
                format!("{pointer}/{}", escape_pointer(&first)),
                true,
                format!("unknown key `{}`{allowed}", unexpected.join("`, `")),
            )
        }
        Kind::Required { property } => {
            let name = property
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| property.to_string());
            (
                pointer.to_owned(),
                false,
                format!("missing required key `{name}`"),
            )
        }
        Kind::Enum { options } => {
            let choices: Vec<String> = options
                .as_array()
                .map(|items| items.iter().map(value_text).collect())
                .unwrap_or_default();
            let got = here().map(value_text).unwrap_or_default();
            let what = if key_name == "type" {
                "field type"
            } else {
                "value"
            };
            (
                pointer.to_owned(),
                false,
                format!(
                    "unknown {what} `{got}` for `{key_name}`; expected one of: {}",
                    choices.join(", ")
                ),
            )
        }
        Kind::Pattern { pattern } => {
            let got = here().map(value_text).unwrap_or_default();
            let message = if pattern == "^[a-z][a-z0-9_]{0,62}$" {
                format!(
                    "`{got}` is not a valid identifier: use 1 to 63 lowercase letters, digits and `_`, starting with a letter"
                )
            } else if pattern.contains("[smhdw]") {
                format!("`{got}` is not a duration such as `30s`, `10m`, `12h`, `3d` or `2w`")
            } else {
                format!("`{got}` does not have the expected form ({pattern})")
            };
            (pointer.to_owned(), false, message)
        }
        Kind::PropertyNames { error } => {
            let bad = error
                .instance()
                .as_str()
                .map(str::to_owned)
                .unwrap_or_default();
            (
                format!("{pointer}/{}", escape_pointer(&bad)),
                true,
                format!(
                    "`{bad}` is not a valid name here: use 1 to 63 lowercase letters, digits and `_`, starting with a letter"
                ),
            )
        }
        Kind::Type { .. } | Kind::AnyOf { .. } | Kind::OneOfNotValid { .. } => {
            let got = here().map(describe_json_type).unwrap_or("nothing");
            let mut shapes = Vec::new();
            if let Some((root, node)) = schema_node {
                expected_shapes(root, node, &mut shapes, 0);
            }
            shapes.dedup();
            let expected = if shapes.is_empty() {
                shape_hint(fallback)
            } else {
                shapes.join(" or ")
            };
            let subject = if key_name.is_empty() {
                "the file".to_owned()
            } else {
                format!("`{key_name}`")
            };
            (
                pointer.to_owned(),
                false,
                format!("{subject} must be {expected}, not {got}"),
            )
        }
        _ => (pointer.to_owned(), false, fallback.to_owned()),
    }
}

/// The schema node an error's keyword belongs to: for `/properties/a/additionalProperties`
/// the node at `/properties/a`. `$ref` segments are followed. Returns (root, node).
fn schema_node_at<'a>(root: &'a Value, schema_path: &str) -> Option<(&'a Value, &'a Value)> {
    let segments: Vec<&str> = schema_path.split('/').skip(1).collect();
    let (_keyword, parents) = segments.split_last()?;
    let mut node = root;
    for segment in parents {
        node = resolve_reference(root, node);
        let segment = segment.replace("~1", "/").replace("~0", "~");
        node = match node {
            Value::Object(map) => map.get(&segment)?,
            Value::Array(items) => items.get(segment.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some((root, resolve_reference(root, node)))
}

fn resolve_reference<'a>(root: &'a Value, node: &'a Value) -> &'a Value {
    match node
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|reference| reference.strip_prefix('#'))
    {
        Some(pointer) => root.pointer(pointer).unwrap_or(node),
        None => node,
    }
}

/// What a schema node accepts, in words: "text", "a map", "one of: a, b".
fn expected_shapes(root: &Value, node: &Value, out: &mut Vec<String>, depth: usize) {
    let node = resolve_reference(root, node);
    if depth > 4 {
        return;
    }
    if let Some(branches) = node.get("anyOf").and_then(Value::as_array) {
        for branch in branches {
            expected_shapes(root, branch, out, depth + 1);
        }
        return;
    }
    if let Some(options) = node.get("enum").and_then(Value::as_array) {
        let words: Vec<String> = options.iter().map(value_text).collect();
        out.push(format!("one of: {}", words.join(", ")));
        return;
    }
    if let Some(constant) = node.get("const") {
        out.push(format!("`{}`", value_text(constant)));
        return;
    }
    let types: Vec<&str> = match node.get("type") {
        Some(Value::String(one)) => vec![one.as_str()],
        Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    for kind in types {
        out.push(
            match kind {
                "string" => "text",
                "integer" => "a whole number",
                "number" => "a number",
                "boolean" => "true or false",
                "array" => "a list",
                "object" => "a map",
                "null" => "empty",
                other => other,
            }
            .to_owned(),
        );
    }
}

/// "; did you mean `x`?" when a known key is close to the unknown one, else the known keys.
fn allowed_keys_hint(root: &Value, node: &Value, unknown: &str) -> String {
    let Some(properties) = resolve_reference(root, node)
        .get("properties")
        .and_then(Value::as_object)
    else {
        return String::new();
    };
    let closest = properties
        .keys()
        .map(|key| (edit_distance(key, unknown), key))
        .min()
        .filter(|(distance, key)| *distance <= 2.max(key.len() / 3));
    match closest {
        Some((_, key)) => format!("; did you mean `{key}`?"),
        None => format!(
            "; expected one of: {}",
            properties.keys().cloned().collect::<Vec<_>>().join(", ")
        ),
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

fn describe_json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "empty",
        Value::Bool(_) => "true/false",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

fn shape_hint(fallback: &str) -> String {
    fallback.replace('"', "`")
}

// ----- raw file shapes (validated by the JSON Schema before they are read) ------------------

#[derive(Deserialize)]
struct RawObject {
    name: String,
    label: Option<Label>,
    #[allow(dead_code)]
    help: Option<Label>,
    title: Option<String>,
    #[serde(default)]
    search: Vec<String>,
    fields: IndexMap<String, RawField>,
    #[serde(default)]
    indexes: Vec<Vec<String>>,
    #[serde(default)]
    duplicates: Vec<RawDuplicate>,
    #[serde(default)]
    validations: Vec<RawValidation>,
    #[serde(default)]
    triggers: RawTriggers,
    #[serde(default)]
    layout: Vec<RawSection>,
    list: Option<RawList>,
    calendar: Option<RawCalendar>,
}

#[derive(Deserialize)]
struct RawField {
    #[serde(rename = "type")]
    field_type: String,
    label: Option<Label>,
    help: Option<Label>,
    required: Option<bool>,
    unique: Option<bool>,
    #[serde(default, deserialize_with = "some_value")]
    default: Option<Value>,
    min: Option<Number>,
    max: Option<Number>,
    max_length: Option<u32>,
    pattern: Option<String>,
    mask: Option<bool>,
    scale: Option<u32>,
    options: Option<Vec<RawOption>>,
    object: Option<String>,
    on_delete: Option<OnDelete>,
    format: Option<String>,
    expr: Option<String>,
    returns: Option<FormulaType>,
    renamed_from: Option<String>,
}

/// Keeps an explicit `default: null` distinguishable from no `default`.
fn some_value<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

/// A choice or stage key: text, or an integer kept as its text.
#[derive(Deserialize, Clone)]
#[serde(untagged)]
enum ChoiceKey {
    Text(String),
    Integer(i64),
}

impl ChoiceKey {
    fn text(&self) -> String {
        match self {
            ChoiceKey::Text(text) => text.clone(),
            ChoiceKey::Integer(n) => n.to_string(),
        }
    }

    fn from_value(value: &Value) -> Option<String> {
        match value {
            Value::String(text) => Some(text.clone()),
            Value::Number(n) if n.is_i64() => Some(n.to_string()),
            _ => None,
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawOption {
    Key(ChoiceKey),
    Full {
        key: ChoiceKey,
        label: Option<Label>,
    },
}

#[derive(Deserialize)]
struct RawDuplicate {
    fields: Vec<String>,
    action: Option<DuplicateAction>,
}

#[derive(Deserialize)]
struct RawValidation {
    when: String,
    message: Label,
    #[serde(default)]
    fields: Vec<String>,
}

#[derive(Deserialize, Default)]
struct RawTriggers {
    #[serde(default)]
    before_save: Vec<String>,
    #[serde(default)]
    after_save: Vec<String>,
    #[serde(default)]
    before_delete: Vec<String>,
    #[serde(default)]
    after_delete: Vec<String>,
}

#[derive(Deserialize)]
struct RawSection {
    section: Label,
    fields: Vec<String>,
}

#[derive(Deserialize, Clone)]
#[serde(untagged)]
enum RawOrder {
    Text(String),
    List(Vec<String>),
}

#[derive(Deserialize)]
struct RawList {
    columns: Option<Vec<String>>,
    order: Option<RawOrder>,
}

#[derive(Deserialize)]
struct RawCalendar {
    start: String,
    end: Option<String>,
    title: Option<String>,
    open: Option<Value>,
}

#[derive(Deserialize)]
struct RawRoles {
    roles: IndexMap<String, RawRole>,
    #[serde(default)]
    permissions: IndexMap<String, IndexMap<String, RawGrant>>,
}

#[derive(Deserialize)]
struct RawRole {
    label: Option<Label>,
    admin: Option<bool>,
}

#[derive(Deserialize)]
struct RawGrant {
    read: Option<Scope>,
    create: Option<bool>,
    edit: Option<Scope>,
    delete: Option<Scope>,
    unmask: Option<bool>,
    #[serde(default)]
    fields: IndexMap<String, FieldAccess>,
}

#[derive(Deserialize)]
struct RawPool {
    name: String,
    label: Option<Label>,
    object: String,
    #[serde(default)]
    members: Vec<String>,
    #[serde(default)]
    managers: Vec<String>,
    claim_limit: Option<u32>,
    holding_excludes: Option<Value>,
    daily_claim_limit: Option<u32>,
    reclaim_cooldown: Option<Value>,
    #[serde(default)]
    hide_until_claimed: Vec<String>,
    #[serde(default)]
    release_reasons: Vec<ChoiceKey>,
    auto_return: Option<RawAutoReturn>,
    notify_on_return: Option<bool>,
}

#[derive(Deserialize)]
struct RawAutoReturn {
    schedule: String,
    warn_before: Option<Value>,
    exempt: Option<Value>,
    rules: Vec<RawReturnRule>,
}

#[derive(Deserialize)]
struct RawReturnRule {
    no_follow_up_for: Option<Value>,
    follow_up_field: Option<String>,
    not_converted_for: Option<Value>,
    converted: Option<Value>,
}

#[derive(Deserialize)]
struct RawProcess {
    name: String,
    label: Option<Label>,
    object: String,
    stage_field: String,
    stages: Vec<RawStage>,
    #[serde(default)]
    transitions: Vec<RawTransition>,
}

#[derive(Deserialize)]
struct RawStage {
    key: ChoiceKey,
    label: Option<Label>,
    probability: Option<u32>,
    outcome: Option<Outcome>,
    #[serde(default)]
    require: Vec<String>,
    #[serde(default)]
    on_enter: Vec<String>,
    approval: Option<RawApproval>,
}

#[derive(Deserialize)]
struct RawApproval {
    when: Option<String>,
    steps: Vec<RawStep>,
    if_no_approver: Option<IfNoApprover>,
    remind_after: Option<Value>,
}

#[derive(Deserialize)]
struct RawStep {
    approvers: RawApprovers,
    mode: Option<ApprovalMode>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawApprovers {
    One(RawApprover),
    Many(Vec<RawApprover>),
}

#[derive(Deserialize, Clone)]
#[serde(untagged)]
enum RawApprover {
    Relative(String),
    Role { role: String },
    User { user: String },
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawTransition {
    Linear {
        #[allow(dead_code)]
        linear: bool,
    },
    Explicit {
        from: ChoiceKey,
        to: ChoiceKey,
        guard: Option<String>,
    },
}

#[derive(Deserialize)]
struct RawRule {
    name: String,
    label: Option<Label>,
    enabled: Option<bool>,
    object: String,
    schedule: Option<String>,
    misfire: Option<Misfire>,
    on: Option<Vec<RuleEvent>>,
    #[serde(rename = "where")]
    filter: Option<Value>,
    when: Option<String>,
    action: Option<RawAction>,
    actions: Option<Vec<RawAction>>,
}

#[derive(Deserialize)]
struct RawAction {
    notify: Option<RawRecipient>,
    message: Option<Label>,
    set: Option<IndexMap<String, Value>>,
    create: Option<RawCreate>,
    script: Option<String>,
    webhook: Option<RawWebhook>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawRecipient {
    Relative(String),
    User { user: String },
    Role { role: String },
}

#[derive(Deserialize)]
struct RawCreate {
    object: String,
    values: IndexMap<String, Value>,
}

#[derive(Deserialize)]
struct RawWebhook {
    url: Option<String>,
    url_env: Option<String>,
    secret_env: Option<String>,
}

#[allow(dead_code)]
type Unused = BTreeMap<(), ()>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_field_keys_finds_every_field_the_parser_reads() {
        let filters = [
            r#"{"status": "new"}"#,
            r#"{"or": [{"a": 1}, {"not": {"b": {"gt": 2, "lt": 5}}}], "c": null}"#,
            r#"{"not": {"or": [{"d~x/y": {"in": [1, 2]}}, {"e": {"is": "null"}}]}}"#,
            r#"{"or": [], "not": {}}"#,
        ];
        for text in filters {
            let raw: Value = serde_json::from_str(text).unwrap();
            let parsed = Filter::from_json(&raw).unwrap();
            let mut keys = Vec::new();
            filter_field_keys(&raw, "/where", &mut keys);
            let mut found: Vec<&str> = keys.iter().map(|(name, _)| name.as_str()).collect();
            let mut expected = parsed.fields();
            found.sort_unstable();
            found.dedup();
            expected.sort_unstable();
            expected.dedup();
            assert_eq!(found, expected, "{text}");
        }
        let raw: Value =
            serde_json::from_str(r#"{"or": [{"a": 1}, {"not": {"b/c": {"gt": 2}}}]}"#).unwrap();
        let mut keys = Vec::new();
        filter_field_keys(&raw, "/where", &mut keys);
        assert_eq!(
            keys,
            vec![
                ("a".to_owned(), "/where/or/0/a".to_owned()),
                ("b/c".to_owned(), "/where/or/1/not/b~1c".to_owned()),
            ]
        );
    }

    #[test]
    fn pointers_on_one_path() {
        assert!(on_one_path("/a/b", "/a/b"));
        assert!(on_one_path("/a", "/a/b/c"));
        assert!(on_one_path("/a/b/c", "/a"));
        assert!(on_one_path("", "/a"));
        assert!(!on_one_path("/a/b", "/a/bc"));
        assert!(!on_one_path("/a/b", "/a/c"));
    }

    #[test]
    fn refused_values_are_removed_and_list_items_become_null() {
        let mut value: Value =
            serde_json::from_str(r#"{"a": {"b": 1, "c": 2}, "l": [1, 2, 3], "x~y": 0}"#).unwrap();
        remove_at(&mut value, "/a/b");
        remove_at(&mut value, "/l/1");
        remove_at(&mut value, "/x~0y");
        remove_at(&mut value, "");
        assert_eq!(value, serde_json::json!({"a": {"c": 2}, "l": [1, null, 3]}));
        assert_eq!(enclosing_list(&value, "/l/1/z"), Some("/l".to_owned()));
        assert_eq!(enclosing_list(&value, "/a/c"), None);
    }
}
