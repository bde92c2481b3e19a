//! The resolved metadata model: what an app directory means once it has been loaded,
//! schema-checked and cross-checked.
//!
//! Everything here is plain data, immutable after loading. Every name in it has passed the
//! identifier check, so other crates may use names as SQL identifiers. This module does not
//! parse files (see `load`) and knows nothing of SQL or HTTP.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::duration::Duration;
use crate::filter::Filter;
use crate::label::Label;
use crate::schedule::CronSchedule;

/// A whole app: the result of loading an app directory.
#[derive(Debug, Clone, Serialize)]
pub struct Schema {
    pub app: App,
    /// Objects in a stable order (file name order).
    pub objects: IndexMap<String, Object>,
    pub roles: Roles,
    pub pools: IndexMap<String, Pool>,
    pub processes: IndexMap<String, Process>,
    pub rules: IndexMap<String, Rule>,
    pub scripts: IndexMap<String, Script>,
    /// SHA-256 over every file that was loaded, in path order: identifies this metadata version.
    pub fingerprint: String,
    /// The text of every file that was loaded, by path (`metadata/objects/lead.yaml`): what a
    /// recorded metadata version keeps (docs/studio.md).
    #[serde(skip)]
    pub files: std::collections::BTreeMap<String, String>,
}

impl Schema {
    pub fn object(&self, name: &str) -> Option<&Object> {
        self.objects.get(name)
    }
}

/// `metadata/app.yaml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct App {
    pub name: Label,
    #[serde(default = "default_language")]
    pub language: String,
    #[serde(default = "default_timezone")]
    pub timezone: String,
    #[serde(default = "default_currency")]
    pub currency: String,
    #[serde(default)]
    pub limits: ScriptLimits,
    #[serde(default)]
    pub smtp: Option<Smtp>,
    #[serde(default)]
    pub channels: Vec<Channel>,
    /// How the pages' navigation groups the objects (docs/app-format.md); objects no group
    /// names follow in a last group. Empty: every object in one group, in file order.
    #[serde(default)]
    pub navigation: Vec<NavigationGroup>,
}

/// One group of the pages' navigation: a label and the objects under it, in order.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NavigationGroup {
    pub label: Label,
    pub objects: Vec<String>,
}

fn default_language() -> String {
    "zh".to_owned()
}
fn default_timezone() -> String {
    "Asia/Shanghai".to_owned()
}
fn default_currency() -> String {
    "CNY".to_owned()
}

/// Sandbox limits for one script run (docs/app-format.md, `metadata/app.yaml`); each may be set in `app.yaml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScriptLimits {
    pub script_operations: u64,
    pub script_call_depth: u32,
    pub script_string_bytes: u32,
    pub script_array_items: u32,
    pub script_reads: u32,
    pub script_writes: u32,
    pub script_wall_time: Duration,
}

impl Default for ScriptLimits {
    fn default() -> Self {
        ScriptLimits {
            script_operations: 1_000_000,
            script_call_depth: 32,
            script_string_bytes: 64 * 1024,
            script_array_items: 10_000,
            script_reads: 100,
            script_writes: 150,
            script_wall_time: Duration::from_secs(1),
        }
    }
}

/// `smtp:` in `app.yaml`: the server email notifications go through (docs/deliveries.md).
/// The port and the TLS mode are resolved when the file is read: see [`SmtpTls`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "RawSmtp")]
pub struct Smtp {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: Option<String>,
    /// The environment variable holding the password; the file never holds it.
    pub password_env: Option<String>,
    /// The sender, `address` or `Name <address>`.
    pub from: String,
}

/// How the connection to the SMTP server is protected.
///
/// Without `tls:` the mode follows the port: 465 is implicit TLS, any other port STARTTLS.
/// Without `port:` it follows the mode: 465 for `tls`, 25 for `none`, 587 for `starttls`.
/// `none` sends in clear text and is meant for a relay on the same host or a test sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpTls {
    None,
    Starttls,
    Tls,
}

/// `smtp:` as written, before the port and the TLS mode are resolved.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSmtp {
    host: String,
    #[serde(default)]
    port: Option<u16>,
    #[serde(default)]
    tls: Option<SmtpTls>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password_env: Option<String>,
    from: String,
}

impl From<RawSmtp> for Smtp {
    fn from(raw: RawSmtp) -> Smtp {
        let tls = match (raw.tls, raw.port) {
            (Some(tls), _) => tls,
            (None, Some(465)) => SmtpTls::Tls,
            (None, _) => SmtpTls::Starttls,
        };
        let port = raw.port.unwrap_or(match tls {
            SmtpTls::Tls => 465,
            SmtpTls::None => 25,
            SmtpTls::Starttls => 587,
        });
        Smtp {
            host: raw.host,
            port,
            tls,
            username: raw.username,
            password_env: raw.password_env,
            from: raw.from,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    Wecom,
    Dingtalk,
    Feishu,
    Slack,
}

impl ChannelKind {
    /// Whether the service signs messages with a secret (钉钉's and 飞书's signing robots);
    /// 企业微信 group bots and Slack incoming webhooks are authorised by their URL alone.
    pub fn signs(self) -> bool {
        matches!(self, ChannelKind::Dingtalk | ChannelKind::Feishu)
    }
}

/// One chat group bot in `channels:` of `app.yaml` (docs/deliveries.md).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Channel {
    pub name: String,
    pub kind: ChannelKind,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub url_env: Option<String>,
    /// The environment variable holding the signing secret (钉钉 and 飞书 only).
    #[serde(default)]
    pub secret_env: Option<String>,
}

/// One business object (`metadata/objects/<name>.yaml`): one table.
#[derive(Debug, Clone, Serialize)]
pub struct Object {
    pub name: String,
    pub label: Label,
    pub title: String,
    pub search: Vec<String>,
    /// The declared fields, in file order. System fields are not in here: see
    /// [`Object::columns`].
    pub fields: IndexMap<String, Field>,
    pub indexes: Vec<Vec<String>>,
    pub duplicates: Vec<DuplicateKey>,
    pub validations: Vec<Validation>,
    pub triggers: Triggers,
    pub layout: Vec<LayoutSection>,
    pub list: ListView,
    pub calendar: Option<CalendarView>,
    /// Set when a pool uses this object: it then has the pool system fields.
    pub pooled: bool,
}

// The system fields (`id`, `owner`, …) are listed in `crate::system`.

/// A column of an object's table, system or declared: what storage needs to know.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Column {
    pub name: String,
    pub storage: Storage,
    /// Only system columns are NOT NULL in the database; `required` is enforced on save, so
    /// that adding a required field never fails on existing rows.
    pub not_null: bool,
    pub primary_key: bool,
    /// A single-column unique constraint.
    pub unique: bool,
    pub references: Option<ForeignKey>,
    /// The name this column had before (a rename keeps the column and its data).
    pub renamed_from: Option<String>,
    /// True for engine-maintained columns.
    pub system: bool,
}

/// How a value is stored. Each dialect maps these to its own column types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Storage {
    Text,
    Integer,
    /// Exact decimal with `scale` digits after the point.
    Decimal {
        scale: u32,
    },
    Boolean,
    Date,
    Datetime,
    /// A JSON array of strings (`multi_choice`).
    Json,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ForeignKey {
    /// The target object (table); the key is always its `id`.
    pub object: String,
    pub on_delete: OnDelete,
}

impl Object {
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.get(name)
    }

    /// Every column of this object's table: system columns first, then declared fields in
    /// file order.
    pub fn columns(&self) -> Vec<Column> {
        let system = |name: &str, storage: Storage, not_null: bool| Column {
            name: name.to_owned(),
            storage,
            not_null,
            primary_key: name == "id",
            unique: false,
            references: None,
            renamed_from: None,
            system: true,
        };
        let mut columns: Vec<Column> = self
            .system_fields()
            .map(|field| system(field.name, field.storage, field.not_null))
            .collect();
        for field in self.fields.values() {
            columns.push(Column {
                name: field.name.clone(),
                storage: field.storage(),
                not_null: false,
                primary_key: false,
                unique: field.unique,
                references: match &field.kind {
                    FieldKind::Lookup { object, on_delete } => Some(ForeignKey {
                        object: object.clone(),
                        on_delete: *on_delete,
                    }),
                    _ => None,
                },
                renamed_from: field.renamed_from.clone(),
                system: false,
            });
        }
        columns
    }

    /// Indexes the table should have, each a list of column names: the declared `indexes`,
    /// plus one on `owner` (permission scopes filter by it) and one per lookup (joins and
    /// `on_delete` checks), plus `pool` on pooled objects. Declared indexes end with `id`.
    /// Every one ends with `deleted_at`: each read skips the recycle bin, so a count or an
    /// aggregate (a list page's count, a related list's) is answered from the index alone
    /// instead of looking up every matching row in the table.
    pub fn all_indexes(&self) -> Vec<Vec<String>> {
        let mut indexes: Vec<Vec<String>> = vec![vec!["owner".to_owned()]];
        if self.pooled {
            indexes.push(vec!["pool".to_owned(), "owner".to_owned()]);
        }
        for field in self.fields.values() {
            if matches!(field.kind, FieldKind::Lookup { .. }) && !field.unique {
                indexes.push(vec![field.name.clone()]);
            }
        }
        for index in &self.indexes {
            // Every list ends with `id` as its tiebreak, so a declared index serves an
            // ordered page without a sort step.
            let mut index = index.clone();
            if !index.iter().any(|column| column == "id") {
                index.push("id".to_owned());
            }
            // An automatic index the declared one starts with is redundant.
            indexes.retain(|existing| !index.starts_with(existing));
            indexes.push(index);
        }
        for index in &mut indexes {
            index.push("deleted_at".to_owned());
        }
        indexes
    }
}

/// One declared field.
#[derive(Debug, Clone, Serialize)]
pub struct Field {
    pub name: String,
    pub kind: FieldKind,
    pub label: Option<Label>,
    pub help: Option<Label>,
    pub required: bool,
    pub unique: bool,
    pub default: Option<serde_json::Value>,
    pub min: Option<serde_json::Number>,
    pub max: Option<serde_json::Number>,
    pub max_length: Option<u32>,
    pub pattern: Option<String>,
    pub mask: bool,
    pub renamed_from: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FieldKind {
    Text,
    LongText,
    Integer,
    Decimal { scale: u32 },
    Money { scale: u32 },
    Percent { scale: u32 },
    Boolean,
    Date,
    Datetime,
    Choice { options: Vec<ChoiceOption> },
    MultiChoice { options: Vec<ChoiceOption> },
    Email,
    Phone,
    Url,
    Lookup { object: String, on_delete: OnDelete },
    User,
    Autonumber { format: String },
    Formula { expr: String, returns: FormulaType },
}

impl FieldKind {
    /// The name used in YAML (`type:`).
    pub fn type_name(&self) -> &'static str {
        match self {
            FieldKind::Text => "text",
            FieldKind::LongText => "long_text",
            FieldKind::Integer => "integer",
            FieldKind::Decimal { .. } => "decimal",
            FieldKind::Money { .. } => "money",
            FieldKind::Percent { .. } => "percent",
            FieldKind::Boolean => "boolean",
            FieldKind::Date => "date",
            FieldKind::Datetime => "datetime",
            FieldKind::Choice { .. } => "choice",
            FieldKind::MultiChoice { .. } => "multi_choice",
            FieldKind::Email => "email",
            FieldKind::Phone => "phone",
            FieldKind::Url => "url",
            FieldKind::Lookup { .. } => "lookup",
            FieldKind::User => "user",
            FieldKind::Autonumber { .. } => "autonumber",
            FieldKind::Formula { .. } => "formula",
        }
    }

    /// Options of a `choice` or `multi_choice` field.
    pub fn options(&self) -> Option<&[ChoiceOption]> {
        match self {
            FieldKind::Choice { options } | FieldKind::MultiChoice { options } => Some(options),
            _ => None,
        }
    }
}

impl Field {
    pub fn storage(&self) -> Storage {
        match &self.kind {
            FieldKind::Text
            | FieldKind::LongText
            | FieldKind::Choice { .. }
            | FieldKind::Email
            | FieldKind::Phone
            | FieldKind::Url
            | FieldKind::Lookup { .. }
            | FieldKind::User
            | FieldKind::Autonumber { .. } => Storage::Text,
            FieldKind::Integer => Storage::Integer,
            FieldKind::Decimal { scale }
            | FieldKind::Money { scale }
            | FieldKind::Percent { scale } => Storage::Decimal { scale: *scale },
            FieldKind::Boolean => Storage::Boolean,
            FieldKind::Date => Storage::Date,
            FieldKind::Datetime => Storage::Datetime,
            FieldKind::MultiChoice { .. } => Storage::Json,
            FieldKind::Formula { returns, .. } => returns.storage(),
        }
    }

    /// Fields whose value the engine computes; never written by clients.
    pub fn is_computed(&self) -> bool {
        matches!(
            self.kind,
            FieldKind::Autonumber { .. } | FieldKind::Formula { .. }
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChoiceOption {
    pub key: String,
    pub label: Option<Label>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnDelete {
    #[default]
    Restrict,
    SetNull,
    Cascade,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FormulaType {
    #[default]
    Text,
    Integer,
    Decimal,
    Money,
    Percent,
    Boolean,
    Date,
    Datetime,
}

impl FormulaType {
    pub fn storage(self) -> Storage {
        match self {
            FormulaType::Text => Storage::Text,
            FormulaType::Integer => Storage::Integer,
            FormulaType::Decimal | FormulaType::Money | FormulaType::Percent => {
                Storage::Decimal { scale: 2 }
            }
            FormulaType::Boolean => Storage::Boolean,
            FormulaType::Date => Storage::Date,
            FormulaType::Datetime => Storage::Datetime,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DuplicateAction {
    Block,
    Warn,
}

#[derive(Debug, Clone, Serialize)]
pub struct DuplicateKey {
    pub fields: Vec<String>,
    pub action: DuplicateAction,
}

#[derive(Debug, Clone, Serialize)]
pub struct Validation {
    /// A Rhai boolean expression; when it holds, the save is rejected.
    pub when: String,
    pub message: Label,
    pub fields: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Triggers {
    pub before_save: Vec<String>,
    pub after_save: Vec<String>,
    pub before_delete: Vec<String>,
    /// Run after a delete has committed, from the outbox (like `after_save`).
    pub after_delete: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LayoutSection {
    pub section: Label,
    pub fields: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ListView {
    pub columns: Vec<String>,
    pub order: Vec<OrderTerm>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrderTerm {
    pub field: String,
    pub descending: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct CalendarView {
    pub start: String,
    pub end: Option<String>,
    pub title: String,
    /// Which entries are still open (a task not done): the home page lists only these as
    /// due. Every entry counts as open when absent.
    pub open: Option<Filter>,
}

/// `metadata/roles.yaml`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Roles {
    pub roles: IndexMap<String, Role>,
    /// role → object → grant. A missing entry grants nothing.
    pub permissions: IndexMap<String, IndexMap<String, Grant>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Role {
    pub name: String,
    pub label: Option<Label>,
    pub admin: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    #[default]
    None,
    Own,
    Subordinates,
    Department,
    All,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldAccess {
    Edit,
    Read,
    Hidden,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Grant {
    pub read: Scope,
    pub create: bool,
    pub edit: Scope,
    pub delete: Scope,
    pub unmask: bool,
    pub fields: IndexMap<String, FieldAccess>,
}

/// A lead pool (公海), `metadata/pools/<name>.yaml`.
#[derive(Debug, Clone, Serialize)]
pub struct Pool {
    pub name: String,
    pub label: Option<Label>,
    pub object: String,
    pub members: Vec<String>,
    pub managers: Vec<String>,
    pub claim_limit: u32,
    pub holding_excludes: Option<Filter>,
    pub daily_claim_limit: u32,
    pub reclaim_cooldown: Duration,
    pub hide_until_claimed: Vec<String>,
    pub release_reasons: Vec<String>,
    pub auto_return: Option<AutoReturn>,
    pub notify_on_return: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct AutoReturn {
    pub schedule: CronSchedule,
    pub warn_before: Duration,
    pub exempt: Option<Filter>,
    pub rules: Vec<ReturnRule>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ReturnRule {
    NoFollowUpFor {
        after: Duration,
        follow_up_field: Option<String>,
    },
    NotConvertedFor {
        after: Duration,
        converted: Filter,
    },
}

/// A sales process, `workflows/processes/<name>.yaml`.
#[derive(Debug, Clone, Serialize)]
pub struct Process {
    pub name: String,
    pub label: Option<Label>,
    pub object: String,
    pub stage_field: String,
    pub stages: Vec<Stage>,
    pub transitions: Vec<Transition>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Stage {
    pub key: String,
    pub label: Option<Label>,
    pub probability: u32,
    pub outcome: Option<Outcome>,
    pub require: Vec<String>,
    pub on_enter: Vec<String>,
    pub approval: Option<Approval>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Won,
    Lost,
}

#[derive(Debug, Clone, Serialize)]
pub struct Approval {
    pub when: Option<String>,
    pub steps: Vec<ApprovalStep>,
    pub if_no_approver: IfNoApprover,
    pub remind_after: Duration,
}

#[derive(Debug, Clone, Serialize)]
pub struct ApprovalStep {
    pub approvers: Vec<Approver>,
    pub mode: ApprovalMode,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Approver {
    /// The record owner's manager, `levels` up the chain (1 = `manager`).
    Manager {
        levels: u32,
    },
    Role(String),
    User(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalMode {
    #[default]
    Any,
    All,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IfNoApprover {
    #[default]
    Admin,
    Approve,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Transition {
    /// `None` means any stage (`"*"`).
    pub from: Option<String>,
    pub to: String,
    pub guard: Option<String>,
}

/// A rule, `workflows/rules/<name>.yaml`.
#[derive(Debug, Clone, Serialize)]
pub struct Rule {
    pub name: String,
    pub label: Option<Label>,
    pub enabled: bool,
    pub object: String,
    pub trigger: RuleTrigger,
    pub filter: Option<Filter>,
    pub when: Option<String>,
    pub actions: Vec<Action>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RuleTrigger {
    Schedule {
        schedule: CronSchedule,
        misfire: Misfire,
    },
    Event {
        on: Vec<RuleEvent>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Misfire {
    #[default]
    Once,
    Skip,
    All,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleEvent {
    Create,
    Update,
    Delete,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Action {
    Notify {
        to: Recipient,
        message: Label,
    },
    Set {
        values: IndexMap<String, serde_json::Value>,
    },
    Create {
        object: String,
        values: IndexMap<String, serde_json::Value>,
    },
    Script {
        script: String,
    },
    Webhook {
        url: Option<String>,
        url_env: Option<String>,
        secret_env: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Recipient {
    Owner,
    Manager,
    User(String),
    Role(String),
}

/// A Rhai script from `scripts/<name>.rhai`, syntax-checked at load.
#[derive(Debug, Clone, Serialize)]
pub struct Script {
    pub name: String,
    /// Path relative to the app directory, for error messages.
    pub path: String,
    pub source: String,
}
