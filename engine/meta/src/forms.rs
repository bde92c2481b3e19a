//! The edits behind the studio's forms: each form operation takes an app's files (path →
//! text) and what the form says, and returns the files it changes with their new text, each
//! changed only where the form's values differ (through [`crate::edit::rewrite`], so comments,
//! order and formatting elsewhere survive).
//!
//! The operations: add or edit a field of an object ([`save_field`]), an object's list
//! columns, search fields and duplicate keys ([`save_list_settings`]), a pool's limits,
//! cooldown, hidden fields and auto-return rules ([`save_pool`]), a process's stages
//! ([`save_stages`], which also keeps the stage field's options equal to the stage keys), a
//! rule's trigger, filter and actions ([`save_rule`]), and one cell of a role's permission
//! matrix ([`set_grant`]) or one field's access in it ([`set_field_access`]).
//!
//! They check what the form alone can get wrong (a name that is no identifier, a field the
//! object lacks, a bad duration or cron schedule), each error naming the form field; whether
//! the new files make a valid app is for the loader to say (the studio sends them to the
//! validate API). Nothing here reads or writes the disk.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::duration::Duration;
use crate::edit::{self, EditError};
use crate::model::{ApprovalMode, DuplicateAction, FieldAccess, Misfire, Scope};
use crate::schedule::CronSchedule;
use crate::source::SourceDocument;
use crate::{Schema, ident};

/// An app's files: the path relative to the app directory (`metadata/objects/lead.yaml`)
/// → the file's text.
pub type Files = BTreeMap<String, String>;

/// The files an operation changed → their new text. Files it left alone are not in it.
pub type Changes = BTreeMap<String, String>;

/// Why a form could not be saved: the form field at fault (`name`, `options/2/key`, …) or
/// the file that could not be edited.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FormError {
    pub field: String,
    pub message: String,
}

impl FormError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> FormError {
        FormError {
            field: field.into(),
            message: message.into(),
        }
    }

    fn edit(file: &str, error: EditError) -> FormError {
        FormError::new(file, format!("{}: {}", error.path, error.message))
    }
}

/// A label as a form edits it: an English and a Chinese text, either may be empty. Other
/// languages already in the file are kept.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LabelForm {
    pub en: String,
    pub zh: String,
}

/// One option of a choice field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChoiceOptionForm {
    pub key: String,
    #[serde(default)]
    pub label: LabelForm,
}

/// A field of an object, as the field form edits it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldForm {
    pub name: String,
    #[serde(rename = "type")]
    pub field_type: String,
    #[serde(default)]
    pub label: LabelForm,
    #[serde(default)]
    pub help: LabelForm,
    /// For `choice` and `multi_choice`; ignored (and removed) for other types.
    #[serde(default)]
    pub options: Vec<ChoiceOptionForm>,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub unique: bool,
    #[serde(default)]
    pub mask: bool,
    #[serde(default)]
    pub default: Option<Value>,
    /// The layout section (its index in `layout`) that shows the field; `None` shows it in
    /// none.
    #[serde(default)]
    pub section: Option<usize>,
    /// Whether the list shows the field as a column (added at the end).
    #[serde(default)]
    pub list_column: bool,
}

/// An object's list settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ListSettingsForm {
    pub columns: Vec<String>,
    pub search: Vec<String>,
    pub duplicates: Vec<DuplicateKeyForm>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DuplicateKeyForm {
    pub fields: Vec<String>,
    pub action: DuplicateAction,
}

/// A pool's settings (docs/pools.md); members, managers, filters and release reasons are
/// not part of this form and stay as they are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolForm {
    /// 0 = no limit.
    pub claim_limit: u32,
    pub daily_claim_limit: u32,
    /// A duration (`7d`), `0` for none.
    pub reclaim_cooldown: String,
    #[serde(default)]
    pub hide_until_claimed: Vec<String>,
    /// `None` turns auto-return off (removes it).
    #[serde(default)]
    pub auto_return: Option<AutoReturnForm>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AutoReturnForm {
    pub schedule: String,
    /// A duration; empty leaves the warning out.
    #[serde(default)]
    pub warn_before: String,
    pub rules: Vec<ReturnRuleForm>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReturnRuleForm {
    /// Return when nobody followed up for this long.
    NoFollowUpFor {
        duration: String,
        #[serde(default)]
        follow_up_field: Option<String>,
    },
    /// Return when the record is not converted this long after its claim.
    NotConvertedFor { duration: String, converted: Value },
}

/// One stage of a process, as the stages form edits it. A stage's other settings
/// (`outcome`, `on_enter`, an approval's `if_no_approver`, …) stay as they are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageForm {
    pub key: String,
    #[serde(default)]
    pub label: LabelForm,
    pub probability: u8,
    #[serde(default)]
    pub require: Vec<String>,
    /// `None` removes the stage's approval.
    #[serde(default)]
    pub approval: Option<ApprovalForm>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalForm {
    /// A Rhai condition; empty: every entry into the stage needs the approval.
    #[serde(default)]
    pub when: String,
    pub steps: Vec<ApprovalStepForm>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalStepForm {
    pub approvers: Vec<ApproverForm>,
    #[serde(default)]
    pub mode: Option<ApprovalMode>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApproverForm {
    /// The owner's manager, this many levels up (1 = `manager`).
    Manager(u8),
    Role(String),
    User(String),
}

/// A rule's trigger, filter and actions (docs/rules.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleForm {
    pub trigger: RuleTriggerForm,
    /// The filter (`where`), in the filter language's JSON form; `None` removes it.
    #[serde(default)]
    pub filter: Option<Value>,
    /// The actions in the file's own form (`{ notify: owner, message: … }`, `{ set: … }`).
    pub actions: Vec<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleTriggerForm {
    Schedule {
        cron: String,
        #[serde(default)]
        misfire: Option<Misfire>,
    },
    /// `create`, `update`, `delete`.
    Events(Vec<String>),
}

/// One column of the permission matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantAction {
    Read,
    Create,
    Edit,
    Delete,
    Unmask,
}

/// One cell of the permission matrix: a scope for `read`, `edit` and `delete`, yes or no
/// for `create` and `unmask`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum GrantValue {
    Scope(Scope),
    Allowed(bool),
}

/// The file of an object, a pool, a process, a rule, and the roles.
pub fn object_file(object: &str) -> String {
    format!("metadata/objects/{object}.yaml")
}
pub fn pool_file(pool: &str) -> String {
    format!("metadata/pools/{pool}.yaml")
}
pub fn process_file(process: &str) -> String {
    format!("workflows/processes/{process}.yaml")
}
pub fn rule_file(rule: &str) -> String {
    format!("workflows/rules/{rule}.yaml")
}
pub const ROLES_FILE: &str = "metadata/roles.yaml";

/// Adds the field `form.name` to `object`, or edits it: its type, label, help, options,
/// `required`, `unique`, `mask` and `default` (its other settings stay), and where it shows.
pub fn save_field(
    files: &Files,
    schema: &Schema,
    object: &str,
    form: &FieldForm,
) -> Result<Changes, FormError> {
    let known = schema
        .object(object)
        .ok_or_else(|| FormError::new("object", format!("no object `{object}`")))?;
    ident::check_identifier(&form.name).map_err(|message| FormError::new("name", message))?;
    if crate::is_system_field(&form.name) {
        return Err(FormError::new(
            "name",
            format!("`{}` is a system field", form.name),
        ));
    }
    ident::check_identifier(&form.field_type).map_err(|message| FormError::new("type", message))?;
    let is_choice = matches!(form.field_type.as_str(), "choice" | "multi_choice");
    if is_choice {
        if form.options.is_empty() {
            return Err(FormError::new("options", "a choice field needs options"));
        }
        for (index, option) in form.options.iter().enumerate() {
            if option.key.trim().is_empty() || option.key.trim() != option.key {
                return Err(FormError::new(
                    format!("options/{index}/key"),
                    "a key is text without leading or trailing spaces",
                ));
            }
            if form.options[..index]
                .iter()
                .any(|other| other.key == option.key)
            {
                return Err(FormError::new(
                    format!("options/{index}/key"),
                    format!("the key `{}` is used twice", option.key),
                ));
            }
        }
    }
    let mut document = Document::open(files, &object_file(&known.name))?;
    let root = document.root_mut()?;
    let fields = root
        .entry("fields")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .ok_or_else(|| FormError::new("object", "the object's `fields` is not a mapping"))?;
    let field = fields
        .entry(form.name.clone())
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .ok_or_else(|| FormError::new("name", "the field is not a mapping"))?;
    put(field, "type", Some(json!(form.field_type)));
    put_flag(field, "required", form.required);
    put_flag(field, "unique", form.unique);
    put_flag(field, "mask", form.mask);
    put(
        field,
        "default",
        form.default.clone().filter(|value| !value.is_null()),
    );
    let label = label_value(field.get("label"), &form.label);
    put(field, "label", label);
    let help = label_value(field.get("help"), &form.help);
    put(field, "help", help);
    let options = is_choice.then(|| options_value(field.get("options"), &form.options));
    put(field, "options", options);

    if let Some(section) = form.section {
        let layout = root
            .get_mut("layout")
            .and_then(Value::as_array_mut)
            .filter(|layout| section < layout.len())
            .ok_or_else(|| FormError::new("section", "no such layout section"))?;
        for (index, entry) in layout.iter_mut().enumerate() {
            let Some(names) = entry.get_mut("fields").and_then(Value::as_array_mut) else {
                continue;
            };
            let holds = names.iter().any(|name| name == &json!(form.name));
            if index == section && !holds {
                names.push(json!(form.name));
            } else if index != section && holds {
                names.retain(|name| name != &json!(form.name));
            }
        }
    } else if let Some(layout) = root.get_mut("layout").and_then(Value::as_array_mut) {
        for entry in layout {
            if let Some(names) = entry.get_mut("fields").and_then(Value::as_array_mut) {
                names.retain(|name| name != &json!(form.name));
            }
        }
    }
    let columns = root
        .get("list")
        .and_then(|list| list.get("columns"))
        .and_then(Value::as_array);
    let shown = columns.is_some_and(|columns| columns.contains(&json!(form.name)));
    if form.list_column != shown {
        let list = root
            .entry("list")
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .ok_or_else(|| FormError::new("list_column", "the object's `list` is not a mapping"))?;
        let columns = list
            .entry("columns")
            .or_insert_with(|| json!([]))
            .as_array_mut()
            .ok_or_else(|| FormError::new("list_column", "`list.columns` is not a sequence"))?;
        if form.list_column {
            columns.push(json!(form.name));
        } else {
            columns.retain(|name| name != &json!(form.name));
        }
    }
    document.save()
}

/// Sets an object's list columns, search fields and duplicate keys (查重).
pub fn save_list_settings(
    files: &Files,
    schema: &Schema,
    object: &str,
    form: &ListSettingsForm,
) -> Result<Changes, FormError> {
    let known = schema
        .object(object)
        .ok_or_else(|| FormError::new("object", format!("no object `{object}`")))?;
    let has_field = |name: &str| known.fields.contains_key(name) || crate::is_system_field(name);
    check_names("columns", &form.columns, has_field)?;
    check_names("search", &form.search, |name| {
        known.fields.contains_key(name)
    })?;
    for (index, key) in form.duplicates.iter().enumerate() {
        if key.fields.is_empty() {
            return Err(FormError::new(
                format!("duplicates/{index}/fields"),
                "a duplicate key needs fields",
            ));
        }
        check_names(&format!("duplicates/{index}/fields"), &key.fields, |name| {
            known.fields.contains_key(name)
        })?;
    }
    let mut document = Document::open(files, &object_file(&known.name))?;
    let root = document.root_mut()?;
    if form.columns.is_empty() {
        if let Some(list) = root.get_mut("list").and_then(Value::as_object_mut) {
            list.shift_remove("columns");
        }
    } else {
        let list = root
            .entry("list")
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .ok_or_else(|| FormError::new("columns", "the object's `list` is not a mapping"))?;
        list.insert("columns".to_owned(), json!(form.columns));
    }
    if root.get("list").is_some_and(|list| list == &json!({})) {
        root.shift_remove("list");
    }
    put_names(root, "search", &form.search);
    let old_keys = root.get("duplicates").and_then(Value::as_array).cloned();
    let keys: Vec<Value> = form
        .duplicates
        .iter()
        .map(|key| {
            // A key already there keeps its other settings.
            let mut item = old_keys
                .iter()
                .flatten()
                .find(|old| old.get("fields") == Some(&json!(key.fields)))
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            item.insert("fields".to_owned(), json!(key.fields));
            // A key written without `action` blocks (the loader's default), and stays so
            // written while it blocks.
            if item.contains_key("action") || key.action != DuplicateAction::Block {
                item.insert("action".to_owned(), to_json(&key.action));
            }
            Value::Object(item)
        })
        .collect();
    put(
        root,
        "duplicates",
        (!keys.is_empty()).then_some(Value::Array(keys)),
    );
    document.save()
}

/// Sets a pool's limits, cooldown, hidden fields and auto-return schedule and rules.
pub fn save_pool(
    files: &Files,
    schema: &Schema,
    pool: &str,
    form: &PoolForm,
) -> Result<Changes, FormError> {
    let known = schema
        .pools
        .get(pool)
        .ok_or_else(|| FormError::new("pool", format!("no pool `{pool}`")))?;
    let object = schema
        .object(&known.object)
        .ok_or_else(|| FormError::new("pool", "the pool's object is missing"))?;
    check_duration("reclaim_cooldown", &form.reclaim_cooldown)?;
    check_names("hide_until_claimed", &form.hide_until_claimed, |name| {
        object.fields.contains_key(name)
    })?;
    let mut document = Document::open(files, &pool_file(&known.name))?;
    let root = document.root_mut()?;
    // A value the pool already has (also by default) is left as written.
    if form.claim_limit != known.claim_limit {
        root.insert("claim_limit".to_owned(), json!(form.claim_limit));
    }
    if form.daily_claim_limit != known.daily_claim_limit {
        root.insert(
            "daily_claim_limit".to_owned(),
            json!(form.daily_claim_limit),
        );
    }
    put_duration(root, "reclaim_cooldown", &form.reclaim_cooldown);
    put_names(root, "hide_until_claimed", &form.hide_until_claimed);
    match &form.auto_return {
        None => {
            root.shift_remove("auto_return");
        }
        Some(auto_return) => {
            CronSchedule::parse(&auto_return.schedule)
                .map_err(|message| FormError::new("auto_return/schedule", message))?;
            if !auto_return.warn_before.is_empty() {
                check_duration("auto_return/warn_before", &auto_return.warn_before)?;
            }
            let section = root
                .entry("auto_return")
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .ok_or_else(|| FormError::new("auto_return", "`auto_return` is not a mapping"))?;
            section.insert("schedule".to_owned(), json!(auto_return.schedule));
            if auto_return.warn_before.is_empty() {
                section.shift_remove("warn_before");
            } else {
                put_duration(section, "warn_before", &auto_return.warn_before);
            }
            let old_rules = section.get("rules").and_then(Value::as_array).cloned();
            let mut rules = Vec::new();
            for (index, rule) in auto_return.rules.iter().enumerate() {
                let field = format!("auto_return/rules/{index}");
                let old = old_rules
                    .as_ref()
                    .and_then(|old| old.get(index))
                    .and_then(Value::as_object);
                let mut item = Map::new();
                match rule {
                    ReturnRuleForm::NoFollowUpFor {
                        duration,
                        follow_up_field,
                    } => {
                        check_duration(&format!("{field}/duration"), duration)?;
                        if let Some(name) = follow_up_field
                            && !object.fields.contains_key(name)
                        {
                            return Err(FormError::new(
                                format!("{field}/follow_up_field"),
                                format!("no field `{name}` in `{}`", object.name),
                            ));
                        }
                        if let Some(old) = old.filter(|old| old.contains_key("no_follow_up_for")) {
                            item = old.clone();
                        }
                        put_duration(&mut item, "no_follow_up_for", duration);
                        put(
                            &mut item,
                            "follow_up_field",
                            follow_up_field.as_ref().map(|name| json!(name)),
                        );
                    }
                    ReturnRuleForm::NotConvertedFor {
                        duration,
                        converted,
                    } => {
                        check_duration(&format!("{field}/duration"), duration)?;
                        if let Some(old) = old.filter(|old| old.contains_key("not_converted_for")) {
                            item = old.clone();
                        }
                        put_duration(&mut item, "not_converted_for", duration);
                        item.insert("converted".to_owned(), converted.clone());
                    }
                }
                rules.push(Value::Object(item));
            }
            section.insert("rules".to_owned(), Value::Array(rules));
        }
    }
    document.save()
}

/// Sets a process's stages: their order, keys, labels, probabilities, required fields and
/// approval steps. A new stage's key is added to the stage field's options and a removed
/// one's taken out (the two must stay equal), as are transitions naming a removed stage.
pub fn save_stages(
    files: &Files,
    schema: &Schema,
    process: &str,
    stages: &[StageForm],
) -> Result<Changes, FormError> {
    let known = schema
        .processes
        .get(process)
        .ok_or_else(|| FormError::new("process", format!("no process `{process}`")))?;
    let object = schema
        .object(&known.object)
        .ok_or_else(|| FormError::new("process", "the process's object is missing"))?;
    if stages.is_empty() {
        return Err(FormError::new("stages", "a process needs stages"));
    }
    for (index, stage) in stages.iter().enumerate() {
        let field = format!("stages/{index}");
        if stage.key.trim().is_empty() || stage.key.trim() != stage.key {
            return Err(FormError::new(
                format!("{field}/key"),
                "a key is text without leading or trailing spaces",
            ));
        }
        if stages[..index].iter().any(|other| other.key == stage.key) {
            return Err(FormError::new(
                format!("{field}/key"),
                format!("the key `{}` is used twice", stage.key),
            ));
        }
        if stage.probability > 100 {
            return Err(FormError::new(
                format!("{field}/probability"),
                "a probability is 0 to 100",
            ));
        }
        check_names(&format!("{field}/require"), &stage.require, |name| {
            object.fields.contains_key(name)
        })?;
        if let Some(approval) = &stage.approval {
            if approval.steps.is_empty() {
                return Err(FormError::new(
                    format!("{field}/approval/steps"),
                    "an approval needs steps",
                ));
            }
            for (step_index, step) in approval.steps.iter().enumerate() {
                if step.approvers.is_empty() {
                    return Err(FormError::new(
                        format!("{field}/approval/steps/{step_index}/approvers"),
                        "a step needs approvers",
                    ));
                }
                if step.approvers.contains(&ApproverForm::Manager(0))
                    || step
                        .approvers
                        .iter()
                        .any(|a| matches!(a, ApproverForm::Manager(n) if *n > 9))
                {
                    return Err(FormError::new(
                        format!("{field}/approval/steps/{step_index}/approvers"),
                        "a manager is 1 to 9 levels up",
                    ));
                }
            }
        }
    }
    let mut document = Document::open(files, &process_file(&known.name))?;
    let root = document.root_mut()?;
    let old_stages: Vec<Value> = root
        .get("stages")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let old_key = |stage: &Value| stage.get("key").map(key_text);
    let mut new_stages = Vec::new();
    for stage in stages {
        let old = old_stages
            .iter()
            .find(|old| old_key(old).as_deref() == Some(stage.key.as_str()));
        let mut item = old.and_then(Value::as_object).cloned().unwrap_or_default();
        if old.is_none() {
            item.insert("key".to_owned(), json!(stage.key));
        }
        let label = label_value(item.get("label"), &stage.label);
        put(&mut item, "label", label);
        if item.get("probability").is_some() || stage.probability != 0 {
            item.insert("probability".to_owned(), json!(stage.probability));
        }
        put_names(&mut item, "require", &stage.require);
        let approval = stage
            .approval
            .as_ref()
            .map(|form| approval_value(item.get("approval"), form));
        put(&mut item, "approval", approval);
        new_stages.push(Value::Object(item));
    }
    let removed: Vec<String> = old_stages
        .iter()
        .filter_map(old_key)
        .filter(|key| !stages.iter().any(|stage| stage.key == *key))
        .collect();
    let added: Vec<&StageForm> = stages
        .iter()
        .filter(|stage| {
            !old_stages
                .iter()
                .any(|old| old_key(old).as_deref() == Some(stage.key.as_str()))
        })
        .collect();
    root.insert("stages".to_owned(), Value::Array(new_stages));
    if let Some(transitions) = root.get_mut("transitions").and_then(Value::as_array_mut) {
        transitions.retain(|transition| {
            ["from", "to"].iter().all(|end| {
                transition
                    .get(end)
                    .map(key_text)
                    .is_none_or(|key| !removed.contains(&key))
            })
        });
    }
    let mut changes = document.save()?;
    if !removed.is_empty() || !added.is_empty() {
        let mut object_document = Document::open(files, &object_file(&object.name))?;
        let root = object_document.root_mut()?;
        let options = root
            .get_mut("fields")
            .and_then(|fields| fields.get_mut(&known.stage_field))
            .and_then(|field| field.get_mut("options"))
            .and_then(Value::as_array_mut)
            .ok_or_else(|| FormError::new("stages", "the stage field has no options"))?;
        options.retain(|option| {
            let key = option.get("key").unwrap_or(option);
            !removed.contains(&key_text(key))
        });
        for stage in added {
            let label = label_value(None, &stage.label);
            options.push(match label {
                Some(label) => json!({ "key": stage.key, "label": label }),
                None => json!(stage.key),
            });
        }
        changes.extend(object_document.save()?);
    }
    Ok(changes)
}

/// Sets a rule's trigger (a cron schedule with its misfire policy, or the events), its
/// filter and its actions (one is written as `action`, several as `actions`, unless the
/// file already uses the other form).
pub fn save_rule(
    files: &Files,
    schema: &Schema,
    rule: &str,
    form: &RuleForm,
) -> Result<Changes, FormError> {
    let known = schema
        .rules
        .get(rule)
        .ok_or_else(|| FormError::new("rule", format!("no rule `{rule}`")))?;
    if form.actions.is_empty() {
        return Err(FormError::new("actions", "a rule needs an action"));
    }
    let mut document = Document::open(files, &rule_file(&known.name))?;
    let root = document.root_mut()?;
    match &form.trigger {
        RuleTriggerForm::Schedule { cron, misfire } => {
            CronSchedule::parse(cron).map_err(|message| FormError::new("trigger/cron", message))?;
            replace_key(root, "on", "schedule", json!(cron));
            let misfire = misfire.map(|misfire| to_json(&misfire));
            match misfire {
                Some(misfire) => put_after(root, "misfire", misfire, &["schedule"]),
                None => {
                    root.shift_remove("misfire");
                }
            }
        }
        RuleTriggerForm::Events(events) => {
            for (index, event) in events.iter().enumerate() {
                if !matches!(event.as_str(), "create" | "update" | "delete") {
                    return Err(FormError::new(
                        format!("trigger/events/{index}"),
                        "an event is create, update or delete",
                    ));
                }
            }
            if events.is_empty() {
                return Err(FormError::new(
                    "trigger/events",
                    "an event rule needs events",
                ));
            }
            root.shift_remove("misfire");
            replace_key(root, "schedule", "on", json!(events));
        }
    }
    match form.filter.clone().filter(|filter| !filter.is_null()) {
        Some(filter) => put_after(
            root,
            "where",
            filter,
            &["object", "schedule", "misfire", "on"],
        ),
        None => {
            root.shift_remove("where");
        }
    }
    let several = form.actions.len() > 1 || root.contains_key("actions");
    if several {
        replace_key(root, "action", "actions", json!(form.actions));
    } else {
        replace_key(root, "actions", "action", form.actions[0].clone());
    }
    document.save()
}

/// Sets one cell of the permission matrix: what `role` may do with `object` for `action`.
pub fn set_grant(
    files: &Files,
    schema: &Schema,
    role: &str,
    object: &str,
    action: GrantAction,
    value: GrantValue,
) -> Result<Changes, FormError> {
    if !schema.roles.roles.contains_key(role) {
        return Err(FormError::new("role", format!("no role `{role}`")));
    }
    if schema.object(object).is_none() {
        return Err(FormError::new("object", format!("no object `{object}`")));
    }
    let valid = matches!(
        (action, value),
        (
            GrantAction::Read | GrantAction::Edit | GrantAction::Delete,
            GrantValue::Scope(_)
        ) | (
            GrantAction::Create | GrantAction::Unmask,
            GrantValue::Allowed(_)
        )
    );
    if !valid {
        return Err(FormError::new(
            "value",
            "read, edit and delete take a scope; create and unmask take true or false",
        ));
    }
    let mut document = Document::open(files, ROLES_FILE)?;
    let root = document.root_mut()?;
    let grant = root
        .entry("permissions")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .ok_or_else(|| FormError::new("role", "`permissions` is not a mapping"))?
        .entry(role.to_owned())
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .ok_or_else(|| FormError::new("role", "the role's permissions are not a mapping"))?
        .entry(object.to_owned())
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .ok_or_else(|| FormError::new("object", "the grant is not a mapping"))?;
    grant.insert(key_text(&to_json(&action)), to_json(&value));
    document.save()
}

/// Sets what `role` may do with one field of `object` (`edit`, `read` or `hidden`), or
/// removes the field's entry (`None`: the object's access applies).
pub fn set_field_access(
    files: &Files,
    schema: &Schema,
    role: &str,
    object: &str,
    field: &str,
    access: Option<FieldAccess>,
) -> Result<Changes, FormError> {
    if !schema.roles.roles.contains_key(role) {
        return Err(FormError::new("role", format!("no role `{role}`")));
    }
    let known = schema
        .object(object)
        .ok_or_else(|| FormError::new("object", format!("no object `{object}`")))?;
    if !known.fields.contains_key(field) {
        return Err(FormError::new(
            "field",
            format!("no field `{field}` in `{object}`"),
        ));
    }
    let mut document = Document::open(files, ROLES_FILE)?;
    let root = document.root_mut()?;
    let grant = root
        .get_mut("permissions")
        .and_then(|permissions| permissions.get_mut(role))
        .and_then(|grants| grants.get_mut(object))
        .and_then(Value::as_object_mut);
    match (grant, access) {
        (Some(grant), None) => {
            if let Some(fields) = grant.get_mut("fields").and_then(Value::as_object_mut) {
                fields.shift_remove(field);
                if fields.is_empty() {
                    grant.shift_remove("fields");
                }
            }
        }
        (None, None) => {}
        (grant, Some(access)) => {
            let grant = match grant {
                Some(grant) => grant,
                None => root
                    .entry("permissions")
                    .or_insert_with(|| json!({}))
                    .as_object_mut()
                    .ok_or_else(|| FormError::new("role", "`permissions` is not a mapping"))?
                    .entry(role.to_owned())
                    .or_insert_with(|| json!({}))
                    .as_object_mut()
                    .ok_or_else(|| {
                        FormError::new("role", "the role's permissions are not a mapping")
                    })?
                    .entry(object.to_owned())
                    .or_insert_with(|| json!({}))
                    .as_object_mut()
                    .ok_or_else(|| FormError::new("object", "the grant is not a mapping"))?,
            };
            grant
                .entry("fields")
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .ok_or_else(|| FormError::new("field", "the grant's `fields` is not a mapping"))?
                .insert(field.to_owned(), to_json(&access));
        }
    }
    document.save()
}

/// The field form showing a field as its file has it (what the studio's edit form starts
/// from); saving it unchanged changes nothing.
pub fn field_form(files: &Files, object: &str, field: &str) -> Option<FieldForm> {
    let value = file_value(files, &object_file(object))?;
    let written = value.get("fields")?.get(field)?;
    let options = written
        .get("options")
        .and_then(Value::as_array)
        .map(|options| {
            options
                .iter()
                .map(|option| ChoiceOptionForm {
                    key: key_text(option.get("key").unwrap_or(option)),
                    label: label_form(option.get("label")),
                })
                .collect()
        })
        .unwrap_or_default();
    let section = value
        .get("layout")
        .and_then(Value::as_array)
        .and_then(|layout| {
            layout.iter().position(|section| {
                section
                    .get("fields")
                    .and_then(Value::as_array)
                    .is_some_and(|names| names.contains(&json!(field)))
            })
        });
    let list_column = value
        .get("list")
        .and_then(|list| list.get("columns"))
        .and_then(Value::as_array)
        .is_some_and(|columns| columns.contains(&json!(field)));
    Some(FieldForm {
        name: field.to_owned(),
        field_type: written.get("type")?.as_str()?.to_owned(),
        label: label_form(written.get("label")),
        help: label_form(written.get("help")),
        options,
        required: written.get("required") == Some(&json!(true)),
        unique: written.get("unique") == Some(&json!(true)),
        mask: written.get("mask") == Some(&json!(true)),
        default: written.get("default").cloned(),
        section,
        list_column,
    })
}

/// The list settings form showing an object's columns, search fields and duplicate keys.
pub fn list_settings_form(files: &Files, object: &str) -> Option<ListSettingsForm> {
    let value = file_value(files, &object_file(object))?;
    let names = |value: Option<&Value>| -> Vec<String> {
        value
            .and_then(Value::as_array)
            .map(|names| names.iter().map(key_text).collect())
            .unwrap_or_default()
    };
    let duplicates = value
        .get("duplicates")
        .and_then(Value::as_array)
        .map(|keys| {
            keys.iter()
                .filter_map(|key| {
                    Some(DuplicateKeyForm {
                        fields: names(key.get("fields")),
                        action: match key.get("action") {
                            Some(action) => serde_json::from_value(action.clone()).ok()?,
                            None => DuplicateAction::Block,
                        },
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    Some(ListSettingsForm {
        columns: names(value.get("list").and_then(|list| list.get("columns"))),
        search: names(value.get("search")),
        duplicates,
    })
}

/// The pool form showing a pool's settings.
pub fn pool_form(files: &Files, schema: &Schema, pool: &str) -> Option<PoolForm> {
    let known = schema.pools.get(pool)?;
    let value = file_value(files, &pool_file(pool))?;
    let duration_text = |value: Option<&Value>| match value {
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    };
    let auto_return = value.get("auto_return").map(|section| AutoReturnForm {
        schedule: section
            .get("schedule")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        warn_before: duration_text(section.get("warn_before")),
        rules: section
            .get("rules")
            .and_then(Value::as_array)
            .map(|rules| {
                rules
                    .iter()
                    .filter_map(|rule| {
                        if let Some(duration) = rule.get("no_follow_up_for") {
                            Some(ReturnRuleForm::NoFollowUpFor {
                                duration: duration_text(Some(duration)),
                                follow_up_field: rule
                                    .get("follow_up_field")
                                    .and_then(Value::as_str)
                                    .map(str::to_owned),
                            })
                        } else {
                            Some(ReturnRuleForm::NotConvertedFor {
                                duration: duration_text(rule.get("not_converted_for")),
                                converted: rule.get("converted")?.clone(),
                            })
                        }
                    })
                    .collect()
            })
            .unwrap_or_default(),
    });
    Some(PoolForm {
        claim_limit: known.claim_limit,
        daily_claim_limit: known.daily_claim_limit,
        reclaim_cooldown: known.reclaim_cooldown.to_string(),
        hide_until_claimed: known.hide_until_claimed.clone(),
        auto_return,
    })
}

/// The stages form showing a process's stages.
pub fn stage_forms(files: &Files, process: &str) -> Option<Vec<StageForm>> {
    let value = file_value(files, &process_file(process))?;
    let stages = value.get("stages")?.as_array()?;
    Some(
        stages
            .iter()
            .map(|stage| StageForm {
                key: stage.get("key").map(key_text).unwrap_or_default(),
                label: label_form(stage.get("label")),
                probability: stage
                    .get("probability")
                    .and_then(Value::as_u64)
                    .and_then(|n| u8::try_from(n).ok())
                    .unwrap_or(0),
                require: stage
                    .get("require")
                    .and_then(Value::as_array)
                    .map(|names| names.iter().map(key_text).collect())
                    .unwrap_or_default(),
                approval: stage.get("approval").map(|approval| ApprovalForm {
                    when: approval
                        .get("when")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    steps: approval
                        .get("steps")
                        .and_then(Value::as_array)
                        .map(|steps| {
                            steps
                                .iter()
                                .map(|step| ApprovalStepForm {
                                    approvers: step
                                        .get("approvers")
                                        .map(read_approvers)
                                        .unwrap_or_default(),
                                    mode: step
                                        .get("mode")
                                        .and_then(|mode| serde_json::from_value(mode.clone()).ok()),
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                }),
            })
            .collect(),
    )
}

/// The rule form showing a rule's trigger, filter and actions.
pub fn rule_form(files: &Files, rule: &str) -> Option<RuleForm> {
    let value = file_value(files, &rule_file(rule))?;
    let trigger = match (value.get("schedule"), value.get("on")) {
        (Some(schedule), _) => RuleTriggerForm::Schedule {
            cron: schedule.as_str()?.to_owned(),
            misfire: value
                .get("misfire")
                .and_then(|misfire| serde_json::from_value(misfire.clone()).ok()),
        },
        (None, Some(on)) => RuleTriggerForm::Events(
            on.as_array()?
                .iter()
                .filter_map(|event| event.as_str().map(str::to_owned))
                .collect(),
        ),
        (None, None) => return None,
    };
    let actions = match (value.get("action"), value.get("actions")) {
        (Some(action), _) => vec![action.clone()],
        (None, Some(actions)) => actions.as_array()?.clone(),
        (None, None) => Vec::new(),
    };
    Some(RuleForm {
        trigger,
        filter: value.get("where").cloned(),
        actions,
    })
}

fn file_value(files: &Files, path: &str) -> Option<Value> {
    SourceDocument::parse(files.get(path)?)
        .ok()
        .map(|document| document.value)
}

/// A label's English and Chinese texts (a plain string is both).
fn label_form(label: Option<&Value>) -> LabelForm {
    match label {
        Some(Value::String(text)) => LabelForm {
            en: text.clone(),
            zh: text.clone(),
        },
        Some(Value::Object(map)) => LabelForm {
            en: map
                .get("en")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            zh: map
                .get("zh")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        },
        _ => LabelForm::default(),
    }
}

/// A file being changed: its text and the value the operation edits.
struct Document {
    path: String,
    text: String,
    value: Value,
}

impl Document {
    fn open(files: &Files, path: &str) -> Result<Document, FormError> {
        let text = files
            .get(path)
            .ok_or_else(|| FormError::new(path, "no such file"))?;
        let value = SourceDocument::parse(text)
            .map_err(|error| {
                FormError::new(
                    path,
                    format!(
                        "{}:{}: {}",
                        error.position.line, error.position.column, error.message
                    ),
                )
            })?
            .value;
        Ok(Document {
            path: path.to_owned(),
            text: text.clone(),
            value,
        })
    }

    fn root_mut(&mut self) -> Result<&mut Map<String, Value>, FormError> {
        let path = &self.path;
        self.value
            .as_object_mut()
            .ok_or_else(|| FormError::new(path.clone(), "the file is not a mapping"))
    }

    /// The file's new text, if it changed.
    fn save(self) -> Result<Changes, FormError> {
        let text = edit::rewrite(&self.text, &self.value)
            .map_err(|error| FormError::edit(&self.path, error))?;
        let mut changes = Changes::new();
        if text != self.text {
            changes.insert(self.path, text);
        }
        Ok(changes)
    }
}

/// Sets `key` to `value`, or removes it for `None` (a key already there keeps its place).
fn put(map: &mut Map<String, Value>, key: &str, value: Option<Value>) {
    match value {
        Some(value) => {
            map.insert(key.to_owned(), value);
        }
        None => {
            map.shift_remove(key);
        }
    }
}

/// Sets `new_key` to `value` in the place of `old_key` (removed), or in its own place, or at
/// the end.
fn replace_key(map: &mut Map<String, Value>, old_key: &str, new_key: &str, value: Value) {
    match map.keys().position(|key| key == old_key) {
        Some(position) if !map.contains_key(new_key) => {
            map.shift_remove(old_key);
            map.shift_insert(position, new_key.to_owned(), value);
        }
        _ => {
            map.shift_remove(old_key);
            map.insert(new_key.to_owned(), value);
        }
    }
}

/// Sets `key` to `value`: in its place, or after the last of `anchors` there, or at the end.
fn put_after(map: &mut Map<String, Value>, key: &str, value: Value, anchors: &[&str]) {
    if map.contains_key(key) {
        map.insert(key.to_owned(), value);
        return;
    }
    let position = map
        .keys()
        .enumerate()
        .filter(|(_, known)| anchors.contains(&known.as_str()))
        .map(|(position, _)| position + 1)
        .max()
        .unwrap_or(map.len());
    map.shift_insert(position, key.to_owned(), value);
}

/// The label a form's texts make, keeping what the file has where it means the same: a
/// plain string the texts repeat, and other languages of a translated label.
fn label_value(old: Option<&Value>, form: &LabelForm) -> Option<Value> {
    let given: Vec<(&str, &str)> = [("en", form.en.as_str()), ("zh", form.zh.as_str())]
        .into_iter()
        .filter(|(_, text)| !text.is_empty())
        .collect();
    match old {
        Some(Value::String(plain)) if given.iter().all(|(_, text)| text == plain) => {
            if given.is_empty() {
                None
            } else {
                Some(Value::String(plain.clone()))
            }
        }
        Some(Value::Object(old)) => {
            let mut map = old.clone();
            for (language, text) in [("en", &form.en), ("zh", &form.zh)] {
                put(&mut map, language, (!text.is_empty()).then(|| json!(text)));
            }
            (!map.is_empty()).then_some(Value::Object(map))
        }
        _ => {
            let map: Map<String, Value> = given
                .into_iter()
                .map(|(language, text)| (language.to_owned(), json!(text)))
                .collect();
            (!map.is_empty()).then_some(Value::Object(map))
        }
    }
}

/// A choice field's options: a key alone when it has no label, else `{ key, label }`; an
/// option already there keeps its other settings.
fn options_value(old: Option<&Value>, options: &[ChoiceOptionForm]) -> Value {
    let old: Vec<Value> = old.and_then(Value::as_array).cloned().unwrap_or_default();
    let items = options.iter().map(|option| {
        let previous = old.iter().find(|item| {
            let key = item.get("key").unwrap_or(item);
            key_text(key) == option.key
        });
        let previous_label = previous.and_then(|item| item.get("label"));
        let label = label_value(previous_label, &option.label);
        match (previous, label) {
            (Some(Value::Object(item)), label) => {
                let mut item = item.clone();
                put(&mut item, "label", label);
                Value::Object(item)
            }
            (Some(item), None) => item.clone(),
            (None, None) => json!(option.key),
            (_, Some(label)) => json!({ "key": option.key, "label": label }),
        }
    });
    Value::Array(items.collect())
}

/// An approval as the form says, keeping the file's other settings and its way of writing
/// the approvers where they are the same.
fn approval_value(old: Option<&Value>, form: &ApprovalForm) -> Value {
    let mut approval = old.and_then(Value::as_object).cloned().unwrap_or_default();
    put(
        &mut approval,
        "when",
        (!form.when.is_empty()).then(|| json!(form.when)),
    );
    let old_steps: Vec<Value> = approval
        .get("steps")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let steps = form.steps.iter().enumerate().map(|(index, step)| {
        let mut item = old_steps
            .get(index)
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let same = item
            .get("approvers")
            .map(read_approvers)
            .is_some_and(|old| old == step.approvers);
        if !same {
            let written: Vec<Value> = step.approvers.iter().map(approver_value).collect();
            let approvers = match written.as_slice() {
                [single] => single.clone(),
                _ => Value::Array(written),
            };
            item.insert("approvers".to_owned(), approvers);
        }
        put(&mut item, "mode", step.mode.map(|mode| to_json(&mode)));
        Value::Object(item)
    });
    approval.insert("steps".to_owned(), Value::Array(steps.collect()));
    Value::Object(approval)
}

fn approver_value(approver: &ApproverForm) -> Value {
    match approver {
        ApproverForm::Manager(1) => json!("manager"),
        ApproverForm::Manager(levels) => json!(format!("manager_{levels}")),
        ApproverForm::Role(role) => json!({ "role": role }),
        ApproverForm::User(user) => json!({ "user": user }),
    }
}

fn read_approvers(value: &Value) -> Vec<ApproverForm> {
    let one = |value: &Value| match value {
        Value::String(text) if text == "manager" => Some(ApproverForm::Manager(1)),
        Value::String(text) => text
            .strip_prefix("manager_")
            .and_then(|levels| levels.parse().ok())
            .map(ApproverForm::Manager),
        Value::Object(map) => match (map.get("role"), map.get("user")) {
            (Some(Value::String(role)), None) => Some(ApproverForm::Role(role.clone())),
            (None, Some(Value::String(user))) => Some(ApproverForm::User(user.clone())),
            _ => None,
        },
        _ => None,
    };
    match value {
        Value::Array(items) => items.iter().filter_map(one).collect(),
        other => one(other).into_iter().collect(),
    }
}

/// A choice or stage key as text (an integer key is kept as its text).
fn key_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn to_json<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// Sets a duration: left as written when it is the same length of time (`1w` for `7d`),
/// else `0` as the number and others as text (`7d`).
fn put_duration(map: &mut Map<String, Value>, key: &str, text: &str) {
    let old = map.get(key).map(|old| match old {
        Value::String(old) => Duration::parse(old),
        other => Duration::parse(&other.to_string()),
    });
    if let Some(Ok(old)) = old
        && Duration::parse(text) == Ok(old)
    {
        return;
    }
    let value = if text.trim() == "0" {
        json!(0)
    } else {
        json!(text.trim())
    };
    map.insert(key.to_owned(), value);
}

/// Sets a list of names; an empty one is removed (an explicit `[]` stays).
fn put_names(map: &mut Map<String, Value>, key: &str, names: &[String]) {
    if !names.is_empty() {
        map.insert(key.to_owned(), json!(names));
    } else if map.get(key) != Some(&json!([])) {
        map.shift_remove(key);
    }
}

/// Sets a yes-or-no setting: `true` written, `false` removed (an explicit `false` stays).
fn put_flag(map: &mut Map<String, Value>, key: &str, on: bool) {
    if on {
        map.insert(key.to_owned(), json!(true));
    } else if map.get(key) != Some(&json!(false)) {
        map.shift_remove(key);
    }
}

fn check_duration(field: &str, text: &str) -> Result<(), FormError> {
    Duration::parse(text)
        .map(drop)
        .map_err(|message| FormError::new(field, message))
}

fn check_names(
    field: &str,
    names: &[String],
    exists: impl Fn(&str) -> bool,
) -> Result<(), FormError> {
    for (index, name) in names.iter().enumerate() {
        if !exists(name) {
            return Err(FormError::new(
                format!("{field}/{index}"),
                format!("no field `{name}`"),
            ));
        }
        if names[..index].contains(name) {
            return Err(FormError::new(
                format!("{field}/{index}"),
                format!("`{name}` is named twice"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
