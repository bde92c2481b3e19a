//! The permission matrix, black-box: an org of departments, managers and users with
//! overlapping roles, records owned across all of them, and every (user, object, record)
//! checked over real HTTP against expectations computed here, in plain Rust, from the
//! fixture alone (never by asking the engine).
//!
//! The fixture (all data, below): departments sales → north → north_a, sales → south, and
//! support; a director over two managers over reps, three levels deep on the south side; a
//! user with no manager and no department, a department-scoped user without a department,
//! users with two roles and one with none; roles with every scope, `unmask`, `read` and
//! `hidden` fields, and an `edit` scope wider than `read`. Fifty leads (two without an
//! owner) and ten accounts are owned across every user.
//!
//! - `permission_matrix_reads`: list (walking cursors), get, history, count, export, query,
//!   `q` search, filters and orders on hidden and masked fields, `_refs`, duplicate checks,
//!   and a scan of every answer for raw masked values and unreadable secrets.
//! - `permission_matrix_writes`: create, edit, delete and restore exactly where granted
//!   (404 outside read, 403 outside the action), read-only and hidden fields, lookups to
//!   invisible records, duplicate warnings; the same scan.
//! - `permission_org_changes_apply_on_the_next_request`: manager, department and role
//!   changes, each checked on the affected users' very next request.
//! - `permission_explain_access_agrees_with_the_matrix`: `GET /admin/access` for every
//!   user and record.
//! - `permission_access_changes_are_audited`: `GET /admin/access-changes`.
//!
//! Each test collects every failed check (with user, object, record and check named) and
//! fails once at the end with a summary grouped by check, so one run shows the whole
//! picture.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::StreamExt as _;
use keel_runtime::accounts::NewUser;
use reqwest::Method;
use serde_json::{Map, Value, json};

use crate::support::AppDir;

const PASSWORD: &str = "permission-matrix-password";
/// Requests in flight per user, and users in flight at once.
const PER_USER: usize = 4;
const USERS_AT_ONCE: usize = 3;
/// A small page, so every list walks several cursors.
const PAGE: usize = 7;
/// A guard against a cursor that never ends.
const MAX_PAGES: usize = 40;

const APP: &str = "name: { en: Permission matrix }\nlanguage: en\ntimezone: Asia/Shanghai\n";

const LEAD_YAML: &str = "\
name: lead
label: { en: Lead }
title: name
search: [name, company, phone]
fields:
  name: { type: text, required: true, max_length: 100 }
  company: { type: text }
  phone: { type: phone, mask: true }
  secret: { type: text }
  score: { type: integer, min: 0, max: 1000, default: 0 }
  note: { type: text }
  # set_null, not the default restrict: the write matrix deletes accounts that leads
  # refer to and expects exactly the permission answer (engine/runtime/tests/access_rules.rs
  # covers restrict).
  account: { type: lookup, object: account, on_delete: set_null }
duplicates:
  - { fields: [phone], action: warn }
list: { columns: [name, company, phone, score], order: -created_at }
";

const ACCOUNT_YAML: &str = "\
name: account
label: { en: Account }
title: name
search: [name]
fields:
  name: { type: text, required: true, max_length: 100 }
  region: { type: text }
list: { columns: [name, region], order: -created_at }
";

// ---------------------------------------------------------------------------------------
// The fixture: roles, org and records, as data
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Scope {
    None,
    Own,
    Subordinates,
    Department,
    All,
}

impl Scope {
    fn name(self) -> &'static str {
        match self {
            Scope::None => "none",
            Scope::Own => "own",
            Scope::Subordinates => "subordinates",
            Scope::Department => "department",
            Scope::All => "all",
        }
    }

    fn parse(text: &str) -> Option<Scope> {
        [
            Scope::None,
            Scope::Own,
            Scope::Subordinates,
            Scope::Department,
            Scope::All,
        ]
        .into_iter()
        .find(|scope| scope.name() == text)
    }
}

/// Field access, ordered so that the union over roles is the maximum.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Access {
    Hidden,
    Read,
    Edit,
}

impl Access {
    fn name(self) -> &'static str {
        match self {
            Access::Hidden => "hidden",
            Access::Read => "read",
            Access::Edit => "edit",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    Read,
    Edit,
    Delete,
}

impl Action {
    fn name(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Edit => "edit",
            Action::Delete => "delete",
        }
    }
}

/// One role's permissions on one object, as written to roles.yaml.
struct Grant {
    role: &'static str,
    object: &'static str,
    read: Scope,
    create: bool,
    edit: Scope,
    delete: Scope,
    unmask: bool,
    fields: &'static [(&'static str, Access)],
}

const ROLES: &[&str] = &[
    "admin",
    "rep",
    "manager",
    "dept_viewer",
    "auditor",
    "editor",
];

const GRANTS: &[Grant] = &[
    Grant {
        role: "rep",
        object: "lead",
        read: Scope::Own,
        create: true,
        edit: Scope::Own,
        delete: Scope::None,
        unmask: false,
        fields: &[],
    },
    Grant {
        role: "rep",
        object: "account",
        read: Scope::Department,
        create: false,
        edit: Scope::Own,
        delete: Scope::None,
        unmask: false,
        fields: &[],
    },
    Grant {
        role: "manager",
        object: "lead",
        read: Scope::Subordinates,
        create: false,
        edit: Scope::Subordinates,
        delete: Scope::Own,
        unmask: true,
        fields: &[],
    },
    Grant {
        role: "manager",
        object: "account",
        read: Scope::Subordinates,
        create: true,
        edit: Scope::None,
        delete: Scope::None,
        unmask: false,
        fields: &[],
    },
    Grant {
        role: "dept_viewer",
        object: "lead",
        read: Scope::Department,
        create: false,
        edit: Scope::None,
        delete: Scope::None,
        unmask: false,
        fields: &[("secret", Access::Hidden)],
    },
    Grant {
        role: "dept_viewer",
        object: "account",
        read: Scope::Department,
        create: false,
        edit: Scope::None,
        delete: Scope::None,
        unmask: false,
        fields: &[],
    },
    Grant {
        role: "auditor",
        object: "lead",
        read: Scope::All,
        create: false,
        edit: Scope::None,
        delete: Scope::None,
        unmask: false,
        fields: &[("score", Access::Read), ("secret", Access::Hidden)],
    },
    Grant {
        role: "auditor",
        object: "account",
        read: Scope::All,
        create: false,
        edit: Scope::None,
        delete: Scope::None,
        unmask: false,
        fields: &[("region", Access::Hidden)],
    },
    // May edit (and delete) department records, but `score` only read and `secret` hidden.
    Grant {
        role: "editor",
        object: "lead",
        read: Scope::Department,
        create: true,
        edit: Scope::Department,
        delete: Scope::Department,
        unmask: false,
        fields: &[("score", Access::Read), ("secret", Access::Hidden)],
    },
    // No `read` at all: reading its own accounts comes only from `edit: own`.
    Grant {
        role: "editor",
        object: "account",
        read: Scope::None,
        create: false,
        edit: Scope::Own,
        delete: Scope::None,
        unmask: false,
        fields: &[],
    },
];

fn roles_yaml() -> String {
    let mut yaml = String::from("roles:\n  admin: { admin: true }\n");
    for role in ROLES.iter().filter(|role| **role != "admin") {
        writeln!(yaml, "  {role}: {{ label: {{ en: {role} }} }}").unwrap();
    }
    yaml.push_str("permissions:\n");
    for role in ROLES {
        let grants: Vec<&Grant> = GRANTS.iter().filter(|g| g.role == *role).collect();
        if grants.is_empty() {
            continue;
        }
        writeln!(yaml, "  {role}:").unwrap();
        for grant in grants {
            let fields = if grant.fields.is_empty() {
                String::new()
            } else {
                let list: Vec<String> = grant
                    .fields
                    .iter()
                    .map(|(field, access)| format!("{field}: {}", access.name()))
                    .collect();
                format!(", fields: {{ {} }}", list.join(", "))
            };
            writeln!(
                yaml,
                "    {}: {{ read: {}, create: {}, edit: {}, delete: {}, unmask: {}{fields} }}",
                grant.object,
                grant.read.name(),
                grant.create,
                grant.edit.name(),
                grant.delete.name(),
                grant.unmask,
            )
            .unwrap();
        }
    }
    yaml
}

/// Departments, parents first: sales → north → north_a, sales → south; support alone.
const DEPARTMENTS: &[(&str, Option<&str>)] = &[
    ("sales", None),
    ("north", Some("sales")),
    ("north_a", Some("north")),
    ("south", Some("sales")),
    ("support", None),
];

struct UserSpec {
    username: &'static str,
    roles: &'static [&'static str],
    department: Option<&'static str>,
    manager: Option<&'static str>,
}

/// Managers before their reports. director → mgr_north → rep_n1, rep_n2;
/// director → mgr_south → rep_s1 → rep_s2 (three levels below the director).
const USERS: &[UserSpec] = &[
    UserSpec {
        username: "director",
        roles: &["manager"],
        department: Some("sales"),
        manager: None,
    },
    UserSpec {
        username: "mgr_north",
        roles: &["manager"],
        department: Some("north"),
        manager: Some("director"),
    },
    UserSpec {
        username: "mgr_south",
        roles: &["manager", "dept_viewer"],
        department: Some("south"),
        manager: Some("director"),
    },
    UserSpec {
        username: "rep_n1",
        roles: &["rep"],
        department: Some("north_a"),
        manager: Some("mgr_north"),
    },
    UserSpec {
        username: "rep_n2",
        roles: &["rep", "dept_viewer"],
        department: Some("north"),
        manager: Some("mgr_north"),
    },
    UserSpec {
        username: "rep_s1",
        roles: &["rep"],
        department: Some("south"),
        manager: Some("mgr_south"),
    },
    // Created without a manager; the manager is set with a PATCH.
    UserSpec {
        username: "rep_s2",
        roles: &["rep"],
        department: Some("south"),
        manager: Some("rep_s1"),
    },
    UserSpec {
        username: "viewer",
        roles: &["dept_viewer"],
        department: Some("north"),
        manager: Some("director"),
    },
    UserSpec {
        username: "ed",
        roles: &["editor"],
        department: Some("south"),
        manager: Some("mgr_south"),
    },
    UserSpec {
        username: "auditor",
        roles: &["auditor"],
        department: Some("support"),
        manager: None,
    },
    // No manager, no department.
    UserSpec {
        username: "loner",
        roles: &["rep"],
        department: None,
        manager: None,
    },
    // A department scope without a department: only their own records.
    UserSpec {
        username: "drifter",
        roles: &["dept_viewer"],
        department: None,
        manager: None,
    },
    // No roles at all.
    UserSpec {
        username: "guest",
        roles: &[],
        department: Some("support"),
        manager: None,
    },
];

const OBJECTS: &[&str] = &["lead", "account"];
const LEADS: usize = 50;
/// Leads from this index on have no owner.
const OWNED_LEADS: usize = 48;
const ACCOUNTS: usize = 10;
const COMPANIES: [&str; 4] = ["Acme", "Globex", "Initech", "Umbrella"];

fn fields_of(object: &str) -> &'static [&'static str] {
    match object {
        "lead" => &[
            "name", "company", "phone", "secret", "score", "note", "account",
        ],
        _ => &["name", "region"],
    }
}

fn search_fields(object: &str) -> &'static [&'static str] {
    match object {
        "lead" => &["name", "company", "phone"],
        _ => &["name"],
    }
}

fn is_masked(object: &str, field: &str) -> bool {
    object == "lead" && field == "phone"
}

fn display_name(username: &str) -> String {
    format!("Person {username}")
}

/// Record owners, in turn: the admin and every user.
fn owners() -> Vec<&'static str> {
    std::iter::once("admin")
        .chain(USERS.iter().map(|user| user.username))
        .collect()
}

fn lead_owner(i: usize) -> Option<&'static str> {
    let owners = owners();
    (i < OWNED_LEADS).then(|| owners[i % owners.len()])
}

fn account_owner(k: usize) -> &'static str {
    let owners = owners();
    owners[(k * 3) % owners.len()]
}

fn lead_phone(i: usize) -> Option<String> {
    (i % 10 != 9).then(|| format!("1380000{i:04}"))
}

fn lead_secret(i: usize) -> String {
    format!("SECRETMARK{i:02}Q")
}

/// The declared values of lead `i` (the account lookup by index into the accounts).
fn lead_values(i: usize, account_ids: &[String]) -> Map<String, Value> {
    let mut values = Map::new();
    values.insert("name".into(), json!(format!("Lead {i:02}")));
    values.insert("company".into(), json!(COMPANIES[i % COMPANIES.len()]));
    values.insert("phone".into(), json!(lead_phone(i)));
    values.insert("secret".into(), json!(lead_secret(i)));
    values.insert("score".into(), json!((i * 37) % 101));
    values.insert("note".into(), Value::Null);
    values.insert(
        "account".into(),
        if i.is_multiple_of(2) {
            json!(account_ids[(i / 2) % account_ids.len()])
        } else {
            Value::Null
        },
    );
    values
}

fn account_values(k: usize) -> Map<String, Value> {
    let mut values = Map::new();
    values.insert("name".into(), json!(format!("Account {k}")));
    values.insert("region".into(), json!(["east", "west"][k % 2]));
    values
}

#[derive(Clone, Debug)]
struct Person {
    username: String,
    id: String,
    roles: Vec<String>,
    /// The manager's username.
    manager: Option<String>,
    /// The department's name.
    department: Option<String>,
    token: String,
}

#[derive(Clone, Debug)]
struct Rec {
    object: &'static str,
    id: String,
    /// The owner's username.
    owner: Option<String>,
    values: Map<String, Value>,
}

impl Rec {
    fn text(&self, field: &str) -> Option<&str> {
        self.values.get(field).and_then(Value::as_str)
    }

    fn name(&self) -> &str {
        self.text("name").unwrap_or("?")
    }
}

/// The org and the records, and the intended semantics over them.
struct Fixture {
    people: BTreeMap<String, Person>,
    /// Department → parent.
    departments: BTreeMap<String, Option<String>>,
    leads: Vec<Rec>,
    accounts: Vec<Rec>,
    by_id: HashMap<String, (&'static str, usize)>,
}

impl Fixture {
    fn person(&self, username: &str) -> &Person {
        self.people
            .get(username)
            .unwrap_or_else(|| panic!("no user {username} in the fixture"))
    }

    fn records(&self, object: &str) -> &[Rec] {
        match object {
            "lead" => &self.leads,
            _ => &self.accounts,
        }
    }

    fn find(&self, id: &str) -> Option<&Rec> {
        self.by_id
            .get(id)
            .map(|(object, index)| &self.records(object)[*index])
    }

    /// A record as failures name it: its (unique) name and its owner.
    fn label(&self, record: &Rec) -> String {
        format!(
            "{} [owner {}]",
            record.name(),
            record.owner.as_deref().unwrap_or("nobody")
        )
    }

    fn label_id(&self, id: &str) -> String {
        self.find(id)
            .map_or_else(|| format!("unknown id {id}"), |record| self.label(record))
    }

    fn is_admin(&self, user: &str) -> bool {
        self.person(user).roles.iter().any(|role| role == "admin")
    }

    /// The grants of the user's roles on `object`.
    fn grants(&self, user: &str, object: &str) -> std::vec::IntoIter<&'static Grant> {
        let roles = &self.person(user).roles;
        GRANTS
            .iter()
            .filter(|grant| grant.object == object && roles.iter().any(|r| r == grant.role))
            .collect::<Vec<_>>()
            .into_iter()
    }

    fn has_access(&self, user: &str, object: &str) -> bool {
        self.is_admin(user)
            || self.grants(user, object).any(|grant| {
                grant.read != Scope::None
                    || grant.edit != Scope::None
                    || grant.delete != Scope::None
                    || grant.create
            })
    }

    /// The user and everyone transitively below them in the manager chain.
    fn subordinates(&self, user: &str) -> BTreeSet<String> {
        let mut below = BTreeSet::from([user.to_owned()]);
        for _ in 0..self.people.len() {
            let more: Vec<String> = self
                .people
                .values()
                .filter(|person| {
                    person
                        .manager
                        .as_ref()
                        .is_some_and(|manager| below.contains(manager))
                })
                .map(|person| person.username.clone())
                .collect();
            let before = below.len();
            below.extend(more);
            if below.len() == before {
                break;
            }
        }
        below
    }

    /// The department and all its descendants.
    fn department_tree(&self, department: &str) -> BTreeSet<String> {
        let mut tree = BTreeSet::from([department.to_owned()]);
        for _ in 0..self.departments.len() {
            let more: Vec<String> = self
                .departments
                .iter()
                .filter(|(_, parent)| parent.as_ref().is_some_and(|p| tree.contains(p)))
                .map(|(name, _)| name.clone())
                .collect();
            let before = tree.len();
            tree.extend(more);
            if tree.len() == before {
                break;
            }
        }
        tree
    }

    fn covers(&self, scope: Scope, user: &str, owner: Option<&str>) -> bool {
        let Some(owner) = owner else {
            return scope == Scope::All;
        };
        match scope {
            Scope::None => false,
            Scope::All => true,
            Scope::Own => owner == user,
            Scope::Subordinates => self.subordinates(user).contains(owner),
            Scope::Department => match &self.person(user).department {
                None => owner == user,
                Some(department) => {
                    let tree = self.department_tree(department);
                    self.people
                        .get(owner)
                        .and_then(|person| person.department.as_ref())
                        .is_some_and(|owner_department| tree.contains(owner_department))
                }
            },
        }
    }

    /// Whether `user` may `action` the record; reading is implied by editing or deleting.
    fn allowed(&self, user: &str, action: Action, record: &Rec) -> bool {
        if self.is_admin(user) {
            return true;
        }
        let owner = record.owner.as_deref();
        self.grants(user, record.object).any(|grant| {
            let scopes: &[Scope] = match action {
                Action::Read => &[grant.read, grant.edit, grant.delete],
                Action::Edit => &[grant.edit],
                Action::Delete => &[grant.delete],
            };
            scopes.iter().any(|scope| self.covers(*scope, user, owner))
        })
    }

    fn visible(&self, user: &str, record: &Rec) -> bool {
        self.allowed(user, Action::Read, record)
    }

    fn can_create(&self, user: &str, object: &str) -> bool {
        self.is_admin(user) || self.grants(user, object).any(|grant| grant.create)
    }

    fn create_roles(&self, user: &str, object: &str) -> BTreeSet<String> {
        self.grants(user, object)
            .filter(|grant| grant.create)
            .map(|grant| grant.role.to_owned())
            .collect()
    }

    fn expected_field_access(&self, user: &str, object: &str, field: &str) -> Access {
        if self.is_admin(user) {
            return Access::Edit;
        }
        self.grants(user, object)
            .filter(|grant| {
                grant.read != Scope::None
                    || grant.edit != Scope::None
                    || grant.delete != Scope::None
                    || grant.create
            })
            .map(|grant| {
                grant
                    .fields
                    .iter()
                    .find(|(name, _)| *name == field)
                    .map(|(_, access)| *access)
                    .unwrap_or(if grant.edit != Scope::None || grant.create {
                        Access::Edit
                    } else {
                        Access::Read
                    })
            })
            .max()
            .unwrap_or(Access::Hidden)
    }

    fn can_unmask(&self, user: &str, object: &str) -> bool {
        self.is_admin(user) || self.grants(user, object).any(|grant| grant.unmask)
    }

    /// Whether `user` sees the raw value of `field` on `record` (assuming they see it at all).
    fn sees_raw(&self, user: &str, field: &str, record: &Rec) -> bool {
        !is_masked(record.object, field)
            || record.owner.as_deref() == Some(user)
            || self.can_unmask(user, record.object)
    }

    fn expected_visible(&self, user: &str, object: &str) -> BTreeSet<String> {
        self.records(object)
            .iter()
            .filter(|record| self.visible(user, record))
            .map(|record| record.id.clone())
            .collect()
    }

    /// Records a `q` search for `term` must find: visible, and the term in a search field
    /// the user may read — in a masked one only where they see the raw value.
    fn expected_search(&self, user: &str, object: &str, term: &str) -> BTreeSet<String> {
        let term = term.to_lowercase();
        self.records(object)
            .iter()
            .filter(|record| self.visible(user, record))
            .filter(|record| {
                search_fields(object).iter().any(|field| {
                    self.expected_field_access(user, object, field) != Access::Hidden
                        && self.sees_raw(user, field, record)
                        && record
                            .text(field)
                            .is_some_and(|text| text.to_lowercase().contains(&term))
                })
            })
            .map(|record| record.id.clone())
            .collect()
    }

    /// Records a filter on a masked field may match: visible, raw value seen, and `matches`.
    fn expected_masked_match(
        &self,
        user: &str,
        object: &str,
        field: &str,
        matches: impl Fn(&str) -> bool,
    ) -> BTreeSet<String> {
        self.records(object)
            .iter()
            .filter(|record| {
                self.visible(user, record)
                    && self.sees_raw(user, field, record)
                    && record.text(field).is_some_and(&matches)
            })
            .map(|record| record.id.clone())
            .collect()
    }

    /// Checks one record as the API returned it to `user`.
    fn check_output(
        &self,
        report: &Report,
        context: &str,
        user: &str,
        record: &Rec,
        got: &Value,
        with_refs: bool,
    ) {
        let object = record.object;
        let who = || {
            format!(
                "{context}: user={user} object={object} record={}",
                self.label(record)
            )
        };
        let owner_id = record
            .owner
            .as_deref()
            .map(|owner| self.person(owner).id.clone());
        report.check(
            "output: owner",
            got.get("owner") == Some(&json!(owner_id)),
            || {
                format!(
                    "{}: owner {:?}, expected {owner_id:?}",
                    who(),
                    got.get("owner")
                )
            },
        );
        for field in fields_of(object) {
            let access = self.expected_field_access(user, object, field);
            let value = got.get(*field);
            if access == Access::Hidden {
                report.check("output: hidden field absent", value.is_none(), || {
                    format!("{}: hidden field `{field}` is present: {value:?}", who())
                });
                continue;
            }
            let Some(value) = value else {
                report.check("output: readable field present", false, || {
                    format!("{}: field `{field}` ({}) is missing", who(), access.name())
                });
                continue;
            };
            let raw = record.values.get(*field).unwrap_or(&Value::Null);
            match raw.as_str() {
                Some(raw) if is_masked(object, field) && !self.sees_raw(user, field, record) => {
                    let masked = value
                        .as_str()
                        .is_some_and(|text| !text.contains(raw) && text.contains('*'));
                    report.check("output: masked field shows a masked form", masked, || {
                        format!(
                            "{}: `{field}` is {value}, raw {raw:?} must not be shown",
                            who()
                        )
                    });
                }
                _ if *field == "note" => {}
                _ => report.check("output: field value", value == raw, || {
                    format!("{}: `{field}` is {value}, expected {raw}", who())
                }),
            }
        }
        if with_refs
            && object == "lead"
            && self.expected_field_access(user, object, "account") != Access::Hidden
            && let Some(target) = record.text("account").and_then(|id| self.find(id))
        {
            let expected = self.visible(user, target);
            let present = got
                .get("_refs")
                .and_then(|refs| refs.get("account"))
                .is_some();
            report.check(
                "output: _refs title only for a readable lookup target",
                present == expected,
                || {
                    format!(
                        "{}: _refs.account present={present}, target {} readable={expected}",
                        who(),
                        self.label(target)
                    )
                },
            );
        }
    }

    /// Compares the ids a call returned with the expected set.
    #[allow(clippy::too_many_arguments)]
    fn compare_ids(
        &self,
        report: &Report,
        check: &str,
        user: &str,
        object: &str,
        detail: &str,
        expected: &BTreeSet<String>,
        got: &[String],
    ) {
        let set: BTreeSet<String> = got.iter().cloned().collect();
        report.check(
            &format!("{check}: no record twice"),
            set.len() == got.len(),
            || format!("{check}: user={user} object={object} {detail}: a record came twice"),
        );
        let missing: Vec<&String> = expected.difference(&set).collect();
        let extra: Vec<&String> = set.difference(expected).collect();
        let some = |ids: &[&String]| {
            let mut text: Vec<String> = ids.iter().take(6).map(|id| self.label_id(id)).collect();
            if ids.len() > 6 {
                text.push(format!("… {} more", ids.len() - 6));
            }
            text.join(", ")
        };
        report.check(check, missing.is_empty() && extra.is_empty(), || {
            format!(
                "{check}: user={user} object={object} {detail}: {} expected, {} got; missing {}: [{}]; unexpected {}: [{}]",
                expected.len(),
                set.len(),
                missing.len(),
                some(&missing),
                extra.len(),
                some(&extra),
            )
        });
    }
}

// ---------------------------------------------------------------------------------------
// HTTP, the record of every exchange, and the failure report
// ---------------------------------------------------------------------------------------

struct Exchange {
    user: String,
    request: String,
    body: String,
}

struct Reply {
    status: u16,
    text: String,
    json: Value,
}

impl Reply {
    fn brief(&self) -> String {
        let text: String = self.text.chars().take(400).collect();
        format!("{} {text}", self.status)
    }

    fn data(&self) -> &[Value] {
        self.json["data"].as_array().map_or(&[], Vec::as_slice)
    }

    fn ids(&self) -> Vec<String> {
        ids_of(self.data())
    }

    fn error_fields(&self) -> Vec<String> {
        self.json["errors"]
            .as_array()
            .map(|errors| {
                errors
                    .iter()
                    .filter_map(|error| error["field"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn ids_of(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .map(|record| record["id"].as_str().unwrap_or("<no id>").to_owned())
        .collect()
}

struct Api {
    base: String,
    client: reqwest::Client,
    log: Mutex<Vec<Exchange>>,
}

impl Api {
    async fn login(&self, username: &str) -> (String, String) {
        let response = self
            .client
            .post(format!("{}/auth/login", self.base))
            .json(&json!({ "username": username, "password": PASSWORD }))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status.as_u16(), 200, "login as {username}: {body}");
        (
            body["token"].as_str().unwrap().to_owned(),
            body["user"]["id"].as_str().unwrap().to_owned(),
        )
    }

    async fn call(&self, who: &Person, method: Method, path: &str, body: Option<&Value>) -> Reply {
        let mut request = self
            .client
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(&who.token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|error| panic!("{} {method} {path}: {error}", who.username));
        let status = response.status().as_u16();
        let text = response
            .text()
            .await
            .unwrap_or_else(|error| panic!("{} {method} {path}: {error}", who.username));
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        self.log.lock().unwrap().push(Exchange {
            user: who.username.clone(),
            request: format!(
                "{method} {path} {}",
                body.map(Value::to_string).unwrap_or_default()
            ),
            body: text.clone(),
        });
        Reply { status, text, json }
    }

    async fn get(&self, who: &Person, path: &str) -> Reply {
        self.call(who, Method::GET, path, None).await
    }

    /// Every record of a list, walking `next` (bounded); the failing reply otherwise.
    async fn walk(&self, who: &Person, object: &str, query: &str) -> Result<Vec<Value>, Reply> {
        let mut records = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut path = format!("/records/{object}?limit={PAGE}{query}");
            if let Some(cursor) = &after {
                write!(path, "&after={}", encode(cursor)).unwrap();
            }
            let reply = self.get(who, &path).await;
            if reply.status != 200 {
                return Err(reply);
            }
            records.extend(reply.data().iter().cloned());
            match reply.json["next"].as_str() {
                Some(next) => after = Some(next.to_owned()),
                None => return Ok(records),
            }
        }
        panic!(
            "{}: the list of {object} did not end after {MAX_PAGES} pages",
            who.username
        );
    }

    /// The records of an NDJSON export, or the failing reply.
    async fn export(&self, who: &Person, object: &str, query: &str) -> Result<Vec<Value>, Reply> {
        let reply = self
            .get(
                who,
                &format!("/records/{object}/export?format=ndjson{query}"),
            )
            .await;
        if reply.status != 200 {
            return Err(reply);
        }
        Ok(reply
            .text
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| serde_json::from_str(line).unwrap_or(Value::Null))
            .collect())
    }

    fn take_log(&self) -> Vec<Exchange> {
        std::mem::take(&mut *self.log.lock().unwrap())
    }
}

/// Percent-encodes a query value.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|byte| {
            if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
                (byte as char).to_string()
            } else {
                format!("%{byte:02X}")
            }
        })
        .collect()
}

/// Every check of one test; failures are collected and reported together.
#[derive(Default)]
struct Report {
    passed: AtomicUsize,
    failures: Mutex<Vec<(String, String)>>,
}

impl Report {
    fn check(&self, check: &str, ok: bool, detail: impl FnOnce() -> String) {
        if ok {
            self.passed.fetch_add(1, Ordering::Relaxed);
        } else {
            self.failures
                .lock()
                .unwrap()
                .push((check.to_owned(), detail()));
        }
    }

    fn status(
        &self,
        check: &str,
        reply: &Reply,
        allowed: &[u16],
        detail: impl FnOnce() -> String,
    ) -> bool {
        let ok = allowed.contains(&reply.status);
        self.check(check, ok, || {
            format!(
                "{}: expected status {allowed:?}, got {}",
                detail(),
                reply.brief()
            )
        });
        ok
    }

    fn finish(&self, test: &str) {
        let failures = self.failures.lock().unwrap();
        let passed = self.passed.load(Ordering::Relaxed);
        if failures.is_empty() {
            eprintln!("{test}: all {passed} checks passed");
            return;
        }
        let mut by_check: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (check, detail) in failures.iter() {
            by_check.entry(check).or_default().push(detail);
        }
        let mut text = format!(
            "{test}: {} of {} checks failed, in {} kinds:\n",
            failures.len(),
            failures.len() + passed,
            by_check.len()
        );
        for (check, details) in &by_check {
            writeln!(text, "- [{check}] failed {} times, e.g.:", details.len()).unwrap();
            for detail in details.iter().take(4) {
                writeln!(text, "    {detail}").unwrap();
            }
        }
        panic!("{text}");
    }
}

// ---------------------------------------------------------------------------------------
// Setup: the app, the org through the admin API, the records
// ---------------------------------------------------------------------------------------

struct World {
    api: Api,
    fx: Fixture,
    _app: AppDir,
}

impl World {
    fn admin(&self) -> &Person {
        self.fx.person("admin")
    }
}

async fn setup(db_url: &str) -> World {
    let roles = roles_yaml();
    let app = AppDir::new(&[
        ("metadata/app.yaml", APP),
        ("metadata/roles.yaml", &roles),
        ("metadata/objects/lead.yaml", LEAD_YAML),
        ("metadata/objects/account.yaml", ACCOUNT_YAML),
    ]);
    let schema = Arc::new(
        keel_meta::load_app(app.path())
            .unwrap_or_else(|errors| panic!("fixture app:\n{errors}\n{roles}")),
    );
    let db = keel_store::Db::connect(db_url).await.unwrap();
    keel_store::migrate::apply(&db, &schema, false)
        .await
        .unwrap();
    keel_runtime::accounts::add_user(
        &db,
        &schema,
        NewUser {
            username: "admin".to_owned(),
            display_name: Some(display_name("admin")),
            password: PASSWORD.to_owned(),
            roles: vec!["admin".to_owned()],
            manager: None,
            department: None,
            language: None,
            email: None,
        },
    )
    .await
    .unwrap();
    let state = keel_web::AppState::new(schema, db);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(keel_web::serve_until(
        listener,
        state,
        std::future::pending(),
    ));
    let api = Api {
        base: format!("http://{address}/api/v1"),
        client: reqwest::Client::new(),
        log: Mutex::new(Vec::new()),
    };

    let (token, id) = api.login("admin").await;
    let admin = Person {
        username: "admin".to_owned(),
        id,
        roles: vec!["admin".to_owned()],
        manager: None,
        department: None,
        token,
    };
    for (name, parent) in DEPARTMENTS {
        let body = json!({ "name": name, "label": format!("Department {name}"), "parent": parent });
        let reply = api
            .call(&admin, Method::POST, "/admin/departments", Some(&body))
            .await;
        assert_eq!(
            reply.status, 201,
            "create department {name}: {}",
            reply.text
        );
    }
    let mut people = BTreeMap::new();
    for spec in USERS {
        let deferred = spec.username == "rep_s2";
        let body = json!({
            "username": spec.username,
            "password": PASSWORD,
            "display_name": display_name(spec.username),
            "roles": spec.roles,
            "manager": if deferred { None } else { spec.manager },
            "department": spec.department,
        });
        let reply = api
            .call(&admin, Method::POST, "/admin/users", Some(&body))
            .await;
        assert_eq!(
            reply.status, 201,
            "create user {}: {}",
            spec.username, reply.text
        );
        people.insert(
            spec.username.to_owned(),
            Person {
                username: spec.username.to_owned(),
                id: reply.json["id"].as_str().unwrap().to_owned(),
                roles: spec.roles.iter().map(|role| (*role).to_owned()).collect(),
                manager: spec.manager.map(str::to_owned),
                department: spec.department.map(str::to_owned),
                token: String::new(),
            },
        );
    }
    let reply = api
        .call(
            &admin,
            Method::PATCH,
            "/admin/users/rep_s2",
            Some(&json!({ "manager": "rep_s1" })),
        )
        .await;
    assert_eq!(reply.status, 200, "PATCH rep_s2's manager: {}", reply.text);
    assert_eq!(reply.json["manager"], "rep_s1", "{}", reply.text);

    let usernames: Vec<String> = people.keys().cloned().collect();
    let tokens = futures::future::join_all(usernames.iter().map(|user| api.login(user))).await;
    for (user, (token, _)) in usernames.iter().zip(tokens) {
        people.get_mut(user).unwrap().token = token;
    }
    people.insert("admin".to_owned(), admin);

    let owner_id = |owner: Option<&str>| owner.map(|owner| people[owner].id.clone());
    let admin = &people["admin"];
    let items: Vec<Value> = (0..ACCOUNTS)
        .map(|k| {
            let mut item = account_values(k);
            item.insert("owner".into(), json!(owner_id(Some(account_owner(k)))));
            Value::Object(item)
        })
        .collect();
    let reply = api
        .call(
            admin,
            Method::POST,
            "/records/account/bulk",
            Some(&json!(items)),
        )
        .await;
    assert_eq!(reply.status, 200, "create accounts: {}", reply.brief());
    let account_ids = reply.ids();
    assert_eq!(account_ids.len(), ACCOUNTS);
    let items: Vec<Value> = (0..LEADS)
        .map(|i| {
            let mut item = lead_values(i, &account_ids);
            item.retain(|_, value| !value.is_null());
            item.insert("owner".into(), json!(owner_id(lead_owner(i))));
            Value::Object(item)
        })
        .collect();
    let reply = api
        .call(
            admin,
            Method::POST,
            "/records/lead/bulk",
            Some(&json!(items)),
        )
        .await;
    assert_eq!(reply.status, 200, "create leads: {}", reply.brief());
    let lead_ids = reply.ids();
    assert_eq!(lead_ids.len(), LEADS);
    for (i, record) in reply.data().iter().enumerate() {
        assert_eq!(
            record["owner"],
            json!(owner_id(lead_owner(i))),
            "lead {i} got its owner"
        );
    }

    let accounts: Vec<Rec> = account_ids
        .iter()
        .enumerate()
        .map(|(k, id)| Rec {
            object: "account",
            id: id.clone(),
            owner: Some(account_owner(k).to_owned()),
            values: account_values(k),
        })
        .collect();
    let leads: Vec<Rec> = lead_ids
        .iter()
        .enumerate()
        .map(|(i, id)| Rec {
            object: "lead",
            id: id.clone(),
            owner: lead_owner(i).map(str::to_owned),
            values: lead_values(i, &account_ids),
        })
        .collect();
    let mut by_id = HashMap::new();
    for (index, record) in leads.iter().enumerate() {
        by_id.insert(record.id.clone(), ("lead", index));
    }
    for (index, record) in accounts.iter().enumerate() {
        by_id.insert(record.id.clone(), ("account", index));
    }
    let departments = DEPARTMENTS
        .iter()
        .map(|(name, parent)| ((*name).to_owned(), parent.map(str::to_owned)))
        .collect();
    api.take_log();
    World {
        api,
        fx: Fixture {
            people,
            departments,
            leads,
            accounts,
            by_id,
        },
        _app: app,
    }
}

/// The users, admin included, in name order.
fn everyone(fx: &Fixture) -> Vec<Person> {
    fx.people.values().cloned().collect()
}

/// A sample of leads for the per-record probes: spread over owners, plus the user's own.
fn lead_sample<'a>(fx: &'a Fixture, user: &str) -> Vec<&'a Rec> {
    let mut sample: Vec<&Rec> = [0, 5, 13, 22, 31, 40, 47, 48]
        .iter()
        .map(|i| &fx.leads[*i])
        .collect();
    if let Some(own) = fx
        .leads
        .iter()
        .find(|lead| lead.owner.as_deref() == Some(user) && lead.text("phone").is_some())
        && !sample.iter().any(|lead| lead.id == own.id)
    {
        sample.push(own);
    }
    sample
}

// ---------------------------------------------------------------------------------------
// The mask scan
// ---------------------------------------------------------------------------------------

/// No body a user received holds the raw phone of a lead they may not see unmasked, nor a
/// `secret` they may not read (hidden for them, or on a record they cannot see). A value the
/// user sent in that very request does not count.
fn mask_scan(fx: &Fixture, report: &Report, log: &[Exchange]) {
    for exchange in log {
        if fx.is_admin(&exchange.user) {
            continue;
        }
        let user = exchange.user.as_str();
        for lead in &fx.leads {
            let visible = fx.visible(user, lead);
            if let Some(phone) = lead.text("phone")
                && !(visible && fx.sees_raw(user, "phone", lead))
                && !exchange.request.contains(phone)
            {
                report.check(
                    "mask scan: raw masked value",
                    !exchange.body.contains(phone),
                    || {
                        format!(
                            "user={user} object=lead record={}: raw phone {phone} in the answer to {}",
                            fx.label(lead),
                            exchange.request
                        )
                    },
                );
            }
            if let Some(secret) = lead.text("secret")
                && (!visible || fx.expected_field_access(user, "lead", "secret") == Access::Hidden)
                && !exchange.request.contains(secret)
            {
                report.check("mask scan: unreadable secret", !exchange.body.contains(secret), || {
                    format!(
                        "user={user} object=lead record={}: secret {secret} in the answer to {}",
                        fx.label(lead),
                        exchange.request
                    )
                });
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Reads: lists, gets, counts, search, exports, history, filters, duplicates
// ---------------------------------------------------------------------------------------

async fn read_checks(world: &World, report: &Report, person: &Person) {
    let (api, fx) = (&world.api, &world.fx);
    let user = person.username.as_str();
    for &object in OBJECTS {
        let expected = fx.expected_visible(user, object);
        let access = fx.has_access(user, object);
        // The statuses a read may answer (only checked when it is not a 200): without any
        // access to the object, a 403 is as good as an empty answer.
        let refused: &[u16] = if access { &[200] } else { &[200, 403] };
        let who = |check: &str| format!("{check}: user={user} object={object}");

        // List, walking the cursors.
        match api.walk(person, object, "").await {
            Ok(records) => {
                for record in &records {
                    if let Some(rec) = record["id"].as_str().and_then(|id| fx.find(id)) {
                        fx.check_output(report, "list", user, rec, record, true);
                    }
                }
                fx.compare_ids(
                    report,
                    "list",
                    user,
                    object,
                    "(cursor walk)",
                    &expected,
                    &ids_of(&records),
                );
            }
            Err(reply) => {
                report.status("list status", &reply, refused, || who("list"));
            }
        }

        // Every record by id, and its history.
        futures::stream::iter(fx.records(object))
            .for_each_concurrent(PER_USER, |rec| async move {
                let visible = fx.visible(user, rec);
                let label = fx.label(rec);
                let reply = api.get(person, &format!("/records/{object}/{}", rec.id)).await;
                let wanted: &[u16] = if visible { &[200] } else if access { &[404] } else { &[404, 403] };
                if report.status("get status", &reply, wanted, || {
                    format!("get: user={user} object={object} record={label} visible={visible}")
                }) && visible
                {
                    fx.check_output(report, "get", user, rec, &reply.json, true);
                }
                let reply = api
                    .get(person, &format!("/records/{object}/{}/history", rec.id))
                    .await;
                if report.status("history status", &reply, wanted, || {
                    format!("history: user={user} object={object} record={label} visible={visible}")
                }) && visible
                {
                    report.check("history: not empty", !reply.data().is_empty(), || {
                        format!("history: user={user} object={object} record={label}: no entries")
                    });
                    for entry in reply.data() {
                        let field = entry["field"].as_str().unwrap_or("");
                        if fields_of(object).contains(&field) {
                            report.check(
                                "history: no hidden field",
                                fx.expected_field_access(user, object, field) != Access::Hidden,
                                || format!("history: user={user} object={object} record={label}: entry for hidden `{field}`: {entry}"),
                            );
                        }
                        if let Some(raw) = rec.text(field)
                            && is_masked(object, field)
                            && !fx.sees_raw(user, field, rec)
                        {
                            report.check(
                                "history: masked field masked",
                                !entry.to_string().contains(raw),
                                || format!("history: user={user} object={object} record={label}: raw `{field}` in {entry}"),
                            );
                        }
                    }
                }
            })
            .await;

        // Count.
        let reply = api
            .get(person, &format!("/aggregate/{object}?count=true"))
            .await;
        if reply.status == 200 {
            let count = reply
                .data()
                .first()
                .map_or(Some(0), |row| row["count"].as_u64());
            report.check(
                "aggregate count",
                count == Some(expected.len() as u64),
                || {
                    format!(
                        "{}: count {count:?}, expected {} ({})",
                        who("aggregate count"),
                        expected.len(),
                        reply.brief()
                    )
                },
            );
        } else {
            report.status("aggregate status", &reply, refused, || {
                who("aggregate count")
            });
        }

        // Export.
        match api.export(person, object, "").await {
            Ok(records) => {
                for record in &records {
                    if let Some(rec) = record["id"].as_str().and_then(|id| fx.find(id)) {
                        fx.check_output(report, "export", user, rec, record, false);
                    }
                }
                fx.compare_ids(
                    report,
                    "export",
                    user,
                    object,
                    "(ndjson)",
                    &expected,
                    &ids_of(&records),
                );
            }
            Err(reply) => {
                report.status("export status", &reply, refused, || who("export"));
            }
        }

        // POST query, no filter, one page.
        let reply = api
            .call(
                person,
                Method::POST,
                &format!("/records/{object}/query"),
                Some(&json!({ "limit": 500 })),
            )
            .await;
        if reply.status == 200 {
            fx.compare_ids(
                report,
                "query",
                user,
                object,
                "(POST query, no filter)",
                &expected,
                &reply.ids(),
            );
        } else {
            report.status("query status", &reply, refused, || who("query"));
        }

        // Hidden fields: not in any filter, order, grouping or field list (422).
        let hidden: Vec<&str> = fields_of(object)
            .iter()
            .copied()
            .filter(|field| fx.expected_field_access(user, object, field) == Access::Hidden)
            .collect();
        let mut probes: Vec<(String, Method, String, Option<Value>)> = Vec::new();
        for field in &hidden {
            for (label, path) in [
                ("list filter", format!("/records/{object}?{field}=eq.x")),
                ("list order", format!("/records/{object}?order={field}")),
                (
                    "list order desc",
                    format!("/records/{object}?order=-{field}"),
                ),
                ("list fields", format!("/records/{object}?fields={field}")),
                (
                    "list is-null filter",
                    format!("/records/{object}?{field}=is.null"),
                ),
                (
                    "export filter",
                    format!("/records/{object}/export?format=ndjson&{field}=eq.x"),
                ),
                (
                    "export order",
                    format!("/records/{object}/export?format=ndjson&order={field}"),
                ),
                (
                    "aggregate filter",
                    format!("/aggregate/{object}?count=true&{field}=eq.x"),
                ),
                (
                    "aggregate group_by",
                    format!("/aggregate/{object}?group_by={field}"),
                ),
                ("aggregate min", format!("/aggregate/{object}?min={field}")),
            ] {
                probes.push((
                    format!("{label} on hidden `{field}`"),
                    Method::GET,
                    path,
                    None,
                ));
            }
            probes.push((
                format!("query where on hidden `{field}`"),
                Method::POST,
                format!("/records/{object}/query"),
                Some(json!({ "where": { *field: "x" } })),
            ));
            probes.push((
                format!("query nested where on hidden `{field}`"),
                Method::POST,
                format!("/records/{object}/query"),
                Some(json!({ "where": { "or": [{ "name": "x" }, { "not": { *field: { "like": "*" } } }] } })),
            ));
            probes.push((
                format!("query order on hidden `{field}`"),
                Method::POST,
                format!("/records/{object}/query"),
                Some(json!({ "order": [format!("-{field}")] })),
            ));
        }
        let hidden_status: &[u16] = if access { &[422] } else { &[422, 403] };
        futures::stream::iter(probes)
            .for_each_concurrent(PER_USER, |(label, method, path, body)| async move {
                let reply = api.call(person, method, &path, body.as_ref()).await;
                report.status(
                    "hidden field in a request → 422",
                    &reply,
                    hidden_status,
                    || format!("{label}: user={user} object={object} ({path})"),
                );
            })
            .await;

        if object != "lead" {
            continue;
        }

        // Readable secret: a filter finds exactly the visible record with it.
        if fx.expected_field_access(user, object, "secret") != Access::Hidden {
            for rec in lead_sample(fx, user) {
                let secret = rec.text("secret").unwrap_or_default();
                let want: BTreeSet<String> = if fx.visible(user, rec) {
                    BTreeSet::from([rec.id.clone()])
                } else {
                    BTreeSet::new()
                };
                let reply = api
                    .get(
                        person,
                        &format!("/records/lead?secret=eq.{}", encode(secret)),
                    )
                    .await;
                if report.status("filter on readable field status", &reply, &[200], || {
                    format!(
                        "secret filter: user={user} object=lead record={}",
                        fx.label(rec)
                    )
                }) {
                    fx.compare_ids(
                        report,
                        "filter on readable field",
                        user,
                        object,
                        &format!("secret=eq.{secret}"),
                        &want,
                        &reply.ids(),
                    );
                }
            }
        }

        // q search: across owners, and on the masked field.
        for term in ["globex", "1380000001", "13800000022", "13800000005"] {
            let want = fx.expected_search(user, object, term);
            match api
                .walk(person, object, &format!("&q={}", encode(term)))
                .await
            {
                Ok(records) => {
                    let check = if term.starts_with("138") {
                        "q search on a masked field"
                    } else {
                        "q search"
                    };
                    fx.compare_ids(
                        report,
                        check,
                        user,
                        object,
                        &format!("q={term}"),
                        &want,
                        &ids_of(&records),
                    );
                }
                Err(reply) => {
                    report.status("q search status", &reply, refused, || {
                        who(&format!("q={term}"))
                    });
                }
            }
        }

        if fx.expected_field_access(user, object, "phone") == Access::Hidden {
            continue;
        }

        // Masked field: a filter matches only records whose raw value the user sees.
        for rec in lead_sample(fx, user) {
            let Some(phone) = rec.text("phone") else {
                continue;
            };
            let want = fx.expected_masked_match(user, object, "phone", |value| value == phone);
            let detail = format!("phone=eq.{phone} (record {})", fx.label(rec));
            let reply = api
                .get(person, &format!("/records/lead?phone=eq.{phone}"))
                .await;
            if report.status("masked filter status", &reply, &[200], || {
                format!("list {detail}: user={user}")
            }) {
                fx.compare_ids(
                    report,
                    "masked filter is no oracle (list)",
                    user,
                    object,
                    &detail,
                    &want,
                    &reply.ids(),
                );
            }
            let reply = api
                .call(
                    person,
                    Method::POST,
                    "/records/lead/query",
                    Some(&json!({ "where": { "phone": phone } })),
                )
                .await;
            if report.status("masked filter status", &reply, &[200], || {
                format!("query {detail}: user={user}")
            }) {
                fx.compare_ids(
                    report,
                    "masked filter is no oracle (query)",
                    user,
                    object,
                    &detail,
                    &want,
                    &reply.ids(),
                );
            }
            let reply = api
                .get(
                    person,
                    &format!("/aggregate/lead?count=true&phone=eq.{phone}"),
                )
                .await;
            if report.status("masked filter status", &reply, &[200], || {
                format!("aggregate {detail}: user={user}")
            }) {
                let count = reply
                    .data()
                    .first()
                    .map_or(Some(0), |row| row["count"].as_u64());
                report.check("masked filter is no oracle (aggregate)", count == Some(want.len() as u64), || {
                    format!("aggregate: user={user} object=lead {detail}: count {count:?}, expected {}", want.len())
                });
            }
            match api
                .export(person, object, &format!("&phone=eq.{phone}"))
                .await
            {
                Ok(records) => fx.compare_ids(
                    report,
                    "masked filter is no oracle (export)",
                    user,
                    object,
                    &detail,
                    &want,
                    &ids_of(&records),
                ),
                Err(reply) => {
                    report.status("masked filter status", &reply, &[200], || {
                        format!("export {detail}: user={user}")
                    });
                }
            }
        }
        let prefix = "1380000001";
        let want =
            fx.expected_masked_match(user, object, "phone", |value| value.starts_with(prefix));
        match api
            .walk(
                person,
                object,
                &format!("&phone=like.{}", encode(&format!("{prefix}*"))),
            )
            .await
        {
            Ok(records) => fx.compare_ids(
                report,
                "masked filter is no oracle (like)",
                user,
                object,
                &format!("phone=like.{prefix}*"),
                &want,
                &ids_of(&records),
            ),
            Err(reply) => {
                report.status("masked filter status", &reply, &[200], || {
                    format!("like: user={user}")
                });
            }
        }

        // Ordering by a masked field: only with unmask.
        let unmask = fx.can_unmask(user, object);
        let order_status: &[u16] = if unmask { &[200] } else { &[422] };
        for (label, reply) in [
            (
                "list",
                api.get(person, "/records/lead?order=phone&limit=500").await,
            ),
            (
                "list desc",
                api.get(person, "/records/lead?order=-phone&limit=500")
                    .await,
            ),
            (
                "export",
                api.get(person, "/records/lead/export?format=ndjson&order=phone")
                    .await,
            ),
            (
                "query",
                api.call(
                    person,
                    Method::POST,
                    "/records/lead/query",
                    Some(&json!({ "order": "phone", "limit": 500 })),
                )
                .await,
            ),
        ] {
            report.status("order by masked field", &reply, order_status, || {
                format!("{label} order=phone: user={user} object=lead unmask={unmask}")
            });
        }

        // Duplicate checks: all records, revealing only id, masked title, owner name, pool.
        for rec in lead_sample(fx, user) {
            let Some(phone) = rec.text("phone") else {
                continue;
            };
            let label = fx.label(rec);
            let reply = api
                .get(person, &format!("/records/lead/duplicates?phone={phone}"))
                .await;
            if !report.status(
                "duplicates status",
                &reply,
                if access { &[200] } else { &[403] },
                || format!("duplicates: user={user} object=lead record={label}"),
            ) || !access
            {
                continue;
            }
            let found = reply
                .data()
                .iter()
                .find(|entry| entry["id"] == json!(rec.id));
            report.check(
                "duplicates: finds records of every owner",
                found.is_some(),
                || {
                    format!(
                        "duplicates: user={user} object=lead record={label}: not found in {}",
                        reply.brief()
                    )
                },
            );
            for entry in reply.data() {
                let keys: Vec<&str> = entry
                    .as_object()
                    .map(|map| map.keys().map(String::as_str).collect())
                    .unwrap_or_default();
                report.check(
                    "duplicates: reveal only id, title, owner_name, pool, fields",
                    keys.iter()
                        .all(|key| ["id", "title", "owner_name", "pool", "fields"].contains(key)),
                    || format!("duplicates: user={user} object=lead record={label}: entry {entry}"),
                );
            }
            if let Some(entry) = found {
                let title = entry["title"].as_str().unwrap_or("");
                report.check(
                    "duplicates: masked title",
                    title != rec.name() && title.contains('*'),
                    || {
                        format!(
                            "duplicates: user={user} object=lead record={label}: title {title:?}"
                        )
                    },
                );
                let owner_name = rec.owner.as_deref().map(display_name);
                report.check("duplicates: owner name", entry["owner_name"] == json!(owner_name), || {
                    format!("duplicates: user={user} object=lead record={label}: owner_name {}, expected {owner_name:?}", entry["owner_name"])
                });
            }
        }
    }
}

keel_testkit::db_test!(permission_matrix_reads, |db| async move {
    let world = setup(&db.url).await;
    let report = Report::default();
    let people = everyone(&world.fx);
    futures::stream::iter(&people)
        .for_each_concurrent(USERS_AT_ONCE, |person| read_checks(&world, &report, person))
        .await;
    mask_scan(&world.fx, &report, &world.api.take_log());
    report.finish("permission_matrix_reads");
});

// ---------------------------------------------------------------------------------------
// Writes: create, edit, delete, restore, read-only and hidden fields, lookups
// ---------------------------------------------------------------------------------------

/// Create checks for one user: allowed or 403; hidden (422), read-only (403) and invisible
/// lookup (422) fields named.
async fn create_checks(world: &World, report: &Report, person: &Person, index: usize) {
    let (api, fx) = (&world.api, &world.fx);
    let user = person.username.as_str();
    let can_create = fx.can_create(user, "lead");
    let body = json!({ "name": format!("Created by {user}"), "company": "Newco", "phone": format!("1390000{index:04}") });
    let reply = api
        .call(person, Method::POST, "/records/lead", Some(&body))
        .await;
    let detail = || format!("create: user={user} object=lead can_create={can_create}");
    if report.status(
        "create lead",
        &reply,
        if can_create { &[201] } else { &[403] },
        detail,
    ) && can_create
    {
        report.check(
            "create: owner is the creator",
            reply.json["owner"] == json!(person.id),
            || {
                format!(
                    "create: user={user} object=lead: owner {}",
                    reply.json["owner"]
                )
            },
        );
        report.check(
            "create: the owner sees the raw masked value",
            reply.json["phone"] == body["phone"],
            || {
                format!(
                    "create: user={user} object=lead: phone {}",
                    reply.json["phone"]
                )
            },
        );
        let id = reply.json["id"].as_str().unwrap_or("none");
        let reply = api.get(person, &format!("/records/lead/{id}")).await;
        report.status(
            "create: the creator reads the new record",
            &reply,
            &[200],
            || format!("get own new lead: user={user}"),
        );
    }
    let reply = api
        .call(
            person,
            Method::POST,
            "/records/account",
            Some(&json!({ "name": format!("Account by {user}") })),
        )
        .await;
    let can_create_account = fx.can_create(user, "account");
    report.status(
        "create account",
        &reply,
        if can_create_account { &[201] } else { &[403] },
        || format!("create: user={user} object=account can_create={can_create_account}"),
    );
    if !can_create {
        return;
    }
    // A duplicate of a record the user cannot see: saved, with a warning that reveals only
    // id, masked title, owner name and pool.
    if let Some(other) = fx
        .leads
        .iter()
        .find(|lead| !fx.visible(user, lead) && lead.text("phone").is_some())
    {
        let label = fx.label(other);
        let body = json!({ "name": format!("Duplicate by {user}"), "phone": other.text("phone") });
        let reply = api
            .call(person, Method::POST, "/records/lead", Some(&body))
            .await;
        if report.status("create a duplicate (warn)", &reply, &[201], || {
            format!("create duplicate: user={user} object=lead of record={label}")
        }) {
            let matches: Vec<&Value> = reply.json["_warnings"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|warning| warning["matches"].as_array().into_iter().flatten())
                .collect();
            report.check(
                "create a duplicate: the warning names the match",
                matches.iter().any(|entry| entry["id"] == json!(other.id)),
                || {
                    format!(
                        "create duplicate: user={user} object=lead of record={label}: {}",
                        reply.brief()
                    )
                },
            );
            for entry in matches {
                let keys_ok = entry.as_object().is_some_and(|map| {
                    map.keys().all(|key| {
                        ["id", "title", "owner_name", "pool", "fields"].contains(&key.as_str())
                    })
                });
                let title = entry["title"].as_str().unwrap_or("");
                report.check(
                    "create a duplicate: the warning reveals only id, masked title, owner, pool",
                    keys_ok && title != other.name() && title.contains('*'),
                    || {
                        format!(
                            "create duplicate: user={user} object=lead of record={label}: {entry}"
                        )
                    },
                );
            }
        }
    }
    for field in fields_of("lead") {
        let value = if *field == "score" {
            json!(5)
        } else {
            json!("x")
        };
        let body = json!({ "name": format!("Field probe by {user}"), *field: value });
        match fx.expected_field_access(user, "lead", field) {
            Access::Hidden => {
                let reply = api
                    .call(person, Method::POST, "/records/lead", Some(&body))
                    .await;
                if report.status("create with a hidden field → 422", &reply, &[422], || {
                    format!("create: user={user} object=lead field={field}")
                }) {
                    report.check(
                        "create with a hidden field names it",
                        reply.error_fields().iter().any(|f| f == field),
                        || {
                            format!(
                                "create: user={user} object=lead field={field}: {}",
                                reply.brief()
                            )
                        },
                    );
                }
            }
            Access::Read => {
                let reply = api
                    .call(person, Method::POST, "/records/lead", Some(&body))
                    .await;
                if report.status(
                    "create with a read-only field → 403",
                    &reply,
                    &[403],
                    || format!("create: user={user} object=lead field={field}"),
                ) {
                    report.check(
                        "create with a read-only field names it",
                        reply.error_fields().iter().any(|f| f == field),
                        || {
                            format!(
                                "create: user={user} object=lead field={field}: {}",
                                reply.brief()
                            )
                        },
                    );
                }
            }
            Access::Edit => {}
        }
    }
    if fx.expected_field_access(user, "lead", "account") != Access::Edit {
        return;
    }
    if let Some(account) = fx
        .accounts
        .iter()
        .find(|account| !fx.visible(user, account))
    {
        let body = json!({ "name": format!("Lookup probe by {user}"), "account": account.id });
        let reply = api
            .call(person, Method::POST, "/records/lead", Some(&body))
            .await;
        let label = fx.label(account);
        if report.status(
            "create with an invisible lookup → 422",
            &reply,
            &[422],
            || format!("create: user={user} object=lead account={label}"),
        ) {
            report.check(
                "invisible lookup names the field",
                reply.error_fields().iter().any(|f| f == "account"),
                || {
                    format!(
                        "create: user={user} object=lead account={label}: {}",
                        reply.brief()
                    )
                },
            );
        }
    }
    // A readable account, preferably one the user does not own.
    let readable = fx
        .accounts
        .iter()
        .filter(|account| fx.visible(user, account))
        .max_by_key(|account| account.owner.as_deref() != Some(user));
    if let Some(account) = readable {
        let body = json!({ "name": format!("Lookup ok by {user}"), "account": account.id });
        let reply = api
            .call(person, Method::POST, "/records/lead", Some(&body))
            .await;
        report.status("create with a readable lookup", &reply, &[201], || {
            format!(
                "create: user={user} object=lead account={}",
                fx.label(account)
            )
        });
    }
}

/// PATCH checks for one user on every record: 404 outside read, 403 outside edit, else 200.
async fn edit_checks(world: &World, report: &Report, person: &Person) {
    let (api, fx) = (&world.api, &world.fx);
    let user = person.username.as_str();
    let records: Vec<&Rec> = fx.leads.iter().chain(&fx.accounts).collect();
    futures::stream::iter(records)
        .for_each_concurrent(PER_USER, |rec| async move {
            let object = rec.object;
            let (field, value) = if object == "lead" {
                ("note", json!(format!("note by {user}")))
            } else {
                ("region", json!(format!("region by {user}")))
            };
            let visible = fx.visible(user, rec);
            let editable = fx.allowed(user, Action::Edit, rec);
            let field_edit = fx.expected_field_access(user, object, field) == Access::Edit;
            let wanted: &[u16] = if !visible {
                if fx.has_access(user, object) { &[404] } else { &[404, 403] }
            } else if !editable || !field_edit {
                &[403]
            } else {
                &[200]
            };
            let reply = api
                .call(person, Method::PATCH, &format!("/records/{object}/{}", rec.id), Some(&json!({ field: value })))
                .await;
            let label = fx.label(rec);
            if report.status("edit", &reply, wanted, || {
                format!("patch {field}: user={user} object={object} record={label} visible={visible} editable={editable}")
            }) && reply.status == 200
            {
                report.check("edit: saved value returned", reply.json[field] == value, || {
                    format!("patch: user={user} object={object} record={label}: {}", reply.brief())
                });
                if object == "lead" {
                    fx.check_output(report, "patch answer", user, rec, &reply.json, true);
                }
            }
        })
        .await;

    // Field rules on a record the user may edit.
    let Some(rec) = fx
        .leads
        .iter()
        .find(|lead| fx.allowed(user, Action::Edit, lead) && lead.owner.as_deref() != Some(user))
        .or_else(|| {
            fx.leads
                .iter()
                .find(|lead| fx.allowed(user, Action::Edit, lead))
        })
    else {
        return;
    };
    let label = fx.label(rec);
    let path = format!("/records/lead/{}", rec.id);
    for field in fields_of("lead") {
        let value = if *field == "score" {
            json!(7)
        } else {
            json!("probe")
        };
        let (check, wanted) = match fx.expected_field_access(user, "lead", field) {
            Access::Hidden => ("patch a hidden field → 422", 422),
            Access::Read => ("patch a read-only field → 403", 403),
            Access::Edit => continue,
        };
        let reply = api
            .call(
                person,
                Method::PATCH,
                &path,
                Some(&json!({ *field: value })),
            )
            .await;
        if report.status(check, &reply, &[wanted], || {
            format!("patch {field}: user={user} object=lead record={label}")
        }) {
            report.check(
                &format!("{check} names the field"),
                reply.error_fields().iter().any(|f| f == field),
                || {
                    format!(
                        "patch {field}: user={user} object=lead record={label}: {}",
                        reply.brief()
                    )
                },
            );
        }
    }
    if fx.expected_field_access(user, "lead", "account") == Access::Edit
        && let Some(account) = fx
            .accounts
            .iter()
            .find(|account| !fx.visible(user, account))
    {
        let reply = api
            .call(
                person,
                Method::PATCH,
                &path,
                Some(&json!({ "account": account.id })),
            )
            .await;
        let target = fx.label(account);
        if report.status("patch an invisible lookup → 422", &reply, &[422], || {
            format!("patch account: user={user} object=lead record={label} account={target}")
        }) {
            report.check("invisible lookup names the field", reply.error_fields().iter().any(|f| f == "account"), || {
                format!("patch account: user={user} object=lead record={label} account={target}: {}", reply.brief())
            });
        }
    }
}

/// Each record in turn: every user tries to delete it (and restores what they deleted).
async fn delete_checks(world: &World, report: &Report, rec: &Rec) {
    let (api, fx) = (&world.api, &world.fx);
    let object = rec.object;
    let label = fx.label(rec);
    let path = format!("/records/{object}/{}", rec.id);
    for person in fx.people.values() {
        let user = person.username.as_str();
        let visible = fx.visible(user, rec);
        let deletable = fx.allowed(user, Action::Delete, rec);
        let wanted: &[u16] = if !visible {
            if fx.has_access(user, object) {
                &[404]
            } else {
                &[404, 403]
            }
        } else if !deletable {
            &[403]
        } else {
            &[204]
        };
        let reply = api.call(person, Method::DELETE, &path, None).await;
        report.status("delete", &reply, wanted, || {
            format!("delete: user={user} object={object} record={label} visible={visible} deletable={deletable}")
        });
        if reply.status != 204 {
            continue;
        }
        let gone = api.get(person, &path).await;
        report.status("delete: gone from reads", &gone, &[404], || {
            format!("get after delete: user={user} object={object} record={label}")
        });
        let restored = api
            .call(person, Method::POST, &format!("{path}/restore"), None)
            .await;
        let ok = report.status("restore own delete", &restored, &[200], || {
            format!("restore: user={user} object={object} record={label} deletable={deletable}")
        });
        if !ok {
            let admin = api
                .call(
                    world.admin(),
                    Method::POST,
                    &format!("{path}/restore"),
                    None,
                )
                .await;
            assert_eq!(
                admin.status,
                200,
                "the admin restores {label}: {}",
                admin.brief()
            );
        }
    }
}

/// A record in the recycle bin: who may restore it (404 outside read, 403 outside delete).
async fn restore_checks(world: &World, report: &Report, rec: &Rec) {
    let (api, fx) = (&world.api, &world.fx);
    let object = rec.object;
    let label = fx.label(rec);
    let path = format!("/records/{object}/{}", rec.id);
    let admin = world.admin();
    let deleted = api.call(admin, Method::DELETE, &path, None).await;
    assert_eq!(
        deleted.status,
        204,
        "the admin deletes {label}: {}",
        deleted.brief()
    );
    for person in fx
        .people
        .values()
        .filter(|person| person.username != "admin")
    {
        let user = person.username.as_str();
        let visible = fx.visible(user, rec);
        let deletable = fx.allowed(user, Action::Delete, rec);
        let wanted: &[u16] = if !visible {
            if fx.has_access(user, object) {
                &[404]
            } else {
                &[404, 403]
            }
        } else if !deletable {
            &[403]
        } else {
            &[200]
        };
        let reply = api
            .call(person, Method::POST, &format!("{path}/restore"), None)
            .await;
        report.status("restore", &reply, wanted, || {
            format!("restore: user={user} object={object} record={label} visible={visible} deletable={deletable}")
        });
        let history = api.get(person, &format!("{path}/history")).await;
        let history_wanted: &[u16] = if visible {
            &[200]
        } else if fx.has_access(user, object) {
            &[404]
        } else {
            &[404, 403]
        };
        report.status("history of a deleted record", &history, history_wanted, || {
            format!("history (deleted): user={user} object={object} record={label} visible={visible}")
        });
        if reply.status == 200 {
            let again = api.call(admin, Method::DELETE, &path, None).await;
            assert_eq!(
                again.status,
                204,
                "the admin deletes {label} again: {}",
                again.brief()
            );
        }
    }
    let restored = api
        .call(admin, Method::POST, &format!("{path}/restore"), None)
        .await;
    assert_eq!(
        restored.status,
        200,
        "the admin restores {label}: {}",
        restored.brief()
    );
}

keel_testkit::db_test!(permission_matrix_writes, |db| async move {
    let world = setup(&db.url).await;
    let report = Report::default();
    let people = everyone(&world.fx);
    futures::stream::iter(people.iter().enumerate())
        .for_each_concurrent(USERS_AT_ONCE, |(index, person)| {
            create_checks(&world, &report, person, index)
        })
        .await;
    futures::stream::iter(&people)
        .for_each_concurrent(2, |person| edit_checks(&world, &report, person))
        .await;
    let records: Vec<&Rec> = world.fx.leads.iter().chain(&world.fx.accounts).collect();
    futures::stream::iter(records)
        .for_each_concurrent(PER_USER, |rec| delete_checks(&world, &report, rec))
        .await;
    let sample: Vec<&Rec> = [0, 9, 14, 23, 36, 48]
        .iter()
        .map(|i| &world.fx.leads[*i])
        .chain([&world.fx.accounts[3], &world.fx.accounts[6]])
        .collect();
    futures::stream::iter(sample)
        .for_each_concurrent(PER_USER, |rec| restore_checks(&world, &report, rec))
        .await;
    mask_scan(&world.fx, &report, &world.api.take_log());
    report.finish("permission_matrix_writes");
});

// ---------------------------------------------------------------------------------------
// Org changes apply on the very next request
// ---------------------------------------------------------------------------------------

/// The user's very next request after an org change: one page with every record, then a
/// count; both must match the recomputed expectation.
async fn sees_now(world: &World, report: &Report, step: &str, user: &str) {
    let (api, fx) = (&world.api, &world.fx);
    let person = fx.person(user);
    for object in OBJECTS {
        let expected = fx.expected_visible(user, object);
        let reply = api
            .get(person, &format!("/records/{object}?limit=500"))
            .await;
        if report.status("org change: list status", &reply, &[200], || {
            format!("after {step}: user={user} object={object}")
        }) {
            fx.compare_ids(
                report,
                "org change: next list sees the new set",
                user,
                object,
                &format!("after {step}"),
                &expected,
                &reply.ids(),
            );
        }
        let reply = api
            .get(person, &format!("/aggregate/{object}?count=true"))
            .await;
        let count = reply
            .data()
            .first()
            .map_or(Some(0), |row| row["count"].as_u64());
        report.check(
            "org change: next count",
            reply.status == 200 && count == Some(expected.len() as u64),
            || {
                format!(
                    "after {step}: user={user} object={object}: count {count:?}, expected {} ({})",
                    expected.len(),
                    reply.brief()
                )
            },
        );
    }
}

async fn patch_user(world: &World, report: &Report, username: &str, body: Value) {
    let reply = world
        .api
        .call(
            world.admin(),
            Method::PATCH,
            &format!("/admin/users/{username}"),
            Some(&body),
        )
        .await;
    report.status("org change: PATCH user", &reply, &[200], || {
        format!("PATCH {username} {body}")
    });
}

keel_testkit::db_test!(
    permission_org_changes_apply_on_the_next_request,
    |db| async move {
        let mut world = setup(&db.url).await;
        let report = Report::default();
        let watchers = [
            "director",
            "mgr_north",
            "mgr_south",
            "rep_s1",
            "rep_n2",
            "viewer",
            "loner",
            "auditor",
            "guest",
            "ed",
        ];
        for user in watchers {
            sees_now(&world, &report, "setup", user).await;
        }

        // rep_s1 (with rep_s2 below) moves from mgr_south to mgr_north.
        patch_user(&world, &report, "rep_s1", json!({ "manager": "mgr_north" })).await;
        world.fx.people.get_mut("rep_s1").unwrap().manager = Some("mgr_north".to_owned());
        for user in ["mgr_north", "mgr_south", "director", "rep_s1"] {
            sees_now(&world, &report, "rep_s1's manager → mgr_north", user).await;
        }

        // rep_n1 loses their manager.
        patch_user(&world, &report, "rep_n1", json!({ "manager": null })).await;
        world.fx.people.get_mut("rep_n1").unwrap().manager = None;
        for user in ["mgr_north", "director"] {
            sees_now(&world, &report, "rep_n1's manager → none", user).await;
        }

        // viewer moves from north to south.
        patch_user(&world, &report, "viewer", json!({ "department": "south" })).await;
        world.fx.people.get_mut("viewer").unwrap().department = Some("south".to_owned());
        for user in ["viewer", "rep_n2", "mgr_south", "ed"] {
            sees_now(&world, &report, "viewer's department → south", user).await;
        }

        // A new department under north; loner (no department until now) joins it.
        let reply = world
            .api
            .call(
                world.admin(),
                Method::POST,
                "/admin/departments",
                Some(&json!({ "name": "north_b", "parent": "north" })),
            )
            .await;
        report.status("org change: new department", &reply, &[201], || {
            "POST north_b".to_owned()
        });
        world
            .fx
            .departments
            .insert("north_b".to_owned(), Some("north".to_owned()));
        patch_user(&world, &report, "loner", json!({ "department": "north_b" })).await;
        world.fx.people.get_mut("loner").unwrap().department = Some("north_b".to_owned());
        for user in ["loner", "rep_n2", "viewer"] {
            sees_now(&world, &report, "loner's department → north_b", user).await;
        }

        // Roles change: the auditor becomes a rep, the guest a department viewer.
        patch_user(&world, &report, "auditor", json!({ "roles": ["rep"] })).await;
        world.fx.people.get_mut("auditor").unwrap().roles = vec!["rep".to_owned()];
        sees_now(&world, &report, "auditor's roles → [rep]", "auditor").await;
        patch_user(
            &world,
            &report,
            "guest",
            json!({ "roles": ["dept_viewer"] }),
        )
        .await;
        world.fx.people.get_mut("guest").unwrap().roles = vec!["dept_viewer".to_owned()];
        sees_now(&world, &report, "guest's roles → [dept_viewer]", "guest").await;

        // Department cleared: rep_n2 keeps only own (rep) ∪ own (dept_viewer without department).
        patch_user(&world, &report, "rep_n2", json!({ "department": null })).await;
        world.fx.people.get_mut("rep_n2").unwrap().department = None;
        for user in ["rep_n2", "mgr_north"] {
            sees_now(&world, &report, "rep_n2's department → none", user).await;
        }
        report.finish("permission_org_changes_apply_on_the_next_request");
    }
);

// ---------------------------------------------------------------------------------------
// Explain access
// ---------------------------------------------------------------------------------------

fn string_set(value: &Value) -> Option<BTreeSet<String>> {
    value.as_array().map(|items| {
        items
            .iter()
            .filter_map(|item| item.as_str().map(str::to_owned))
            .collect()
    })
}

/// Checks one explain answer against the matrix; `record` is `None` for an object-level ask.
fn check_explain(
    fx: &Fixture,
    report: &Report,
    user: &str,
    object: &str,
    record: Option<&Rec>,
    reply: &Reply,
) {
    let label = record.map_or_else(|| "(none)".to_owned(), |rec| fx.label(rec));
    let who = || format!("explain: user={user} object={object} record={label}");
    if !report.status("explain status", reply, &[200], who) {
        return;
    }
    let body = &reply.json;
    let person = fx.person(user);
    report.check(
        "explain: user, object, id",
        body["user"] == json!(user)
            && body["object"] == json!(object)
            && body["id"] == json!(record.map(|rec| rec.id.clone())),
        || {
            format!(
                "{}: header {} {} {}",
                who(),
                body["user"],
                body["object"],
                body["id"]
            )
        },
    );
    report.check(
        "explain: admin",
        body["admin"] == json!(fx.is_admin(user)),
        || format!("{}: admin {}", who(), body["admin"]),
    );
    let roles: BTreeSet<String> = person.roles.iter().cloned().collect();
    report.check(
        "explain: roles",
        string_set(&body["roles"]).as_ref() == Some(&roles),
        || format!("{}: roles {}, expected {roles:?}", who(), body["roles"]),
    );
    if let Some(rec) = record {
        for action in [Action::Read, Action::Edit, Action::Delete] {
            let entry = &body["actions"][action.name()];
            let expected = fx.allowed(user, action, rec);
            report.check(
                &format!("explain: {} allowed", action.name()),
                entry["allowed"] == json!(expected),
                || {
                    format!(
                        "{}: {}.allowed {}, expected {expected}; {entry}",
                        who(),
                        action.name(),
                        entry["allowed"]
                    )
                },
            );
            report.check(
                "explain: scope is a scope name",
                entry["scope"].as_str().and_then(Scope::parse).is_some(),
                || format!("{}: {}.scope {}", who(), action.name(), entry["scope"]),
            );
            let Some(grants) = entry["grants"].as_array() else {
                report.check("explain: grants listed", false, || {
                    format!("{}: {}.grants {}", who(), action.name(), entry["grants"])
                });
                continue;
            };
            for grant in grants {
                let role_ok = grant["role"]
                    .as_str()
                    .is_some_and(|role| roles.contains(role));
                let matches_ok = match grant["scope"].as_str().and_then(Scope::parse) {
                    Some(scope) => {
                        grant["matches"] == json!(fx.covers(scope, user, rec.owner.as_deref()))
                    }
                    None => false,
                };
                report.check(
                    "explain: grant role, scope and matches",
                    role_ok && matches_ok,
                    || format!("{}: {} grant {grant}", who(), action.name()),
                );
            }
            let any_match = grants.iter().any(|grant| grant["matches"] == json!(true));
            report.check(
                "explain: allowed is the union of the grants",
                entry["allowed"] == json!(fx.is_admin(user) || any_match),
                || format!("{}: {} {entry}", who(), action.name()),
            );
            if !fx.is_admin(user) {
                let listed: BTreeSet<String> = grants
                    .iter()
                    .filter_map(|grant| grant["role"].as_str().map(str::to_owned))
                    .collect();
                let granting: BTreeSet<String> = fx
                    .grants(user, object)
                    .map(|grant| grant.role.to_owned())
                    .collect();
                report.check(
                    "explain: one grant per role with a grant on the object",
                    listed == granting && grants.len() == granting.len(),
                    || {
                        format!(
                            "{}: {} grants {}, expected roles {granting:?}",
                            who(),
                            action.name(),
                            entry["grants"]
                        )
                    },
                );
            }
        }
    }
    let create = &body["actions"]["create"];
    report.check(
        "explain: create allowed",
        create["allowed"] == json!(fx.can_create(user, object)),
        || format!("{}: create {create}", who()),
    );
    if !fx.is_admin(user) {
        let expected = fx.create_roles(user, object);
        report.check(
            "explain: create roles",
            string_set(&create["roles"]).as_ref() == Some(&expected),
            || {
                format!(
                    "{}: create.roles {}, expected {expected:?}",
                    who(),
                    create["roles"]
                )
            },
        );
    }
    for field in fields_of(object) {
        let entry = &body["fields"][*field];
        let access = fx.expected_field_access(user, object, field);
        report.check(
            "explain: field access",
            entry["access"] == json!(access.name()),
            || {
                format!(
                    "{}: field {field} {entry}, expected access {}",
                    who(),
                    access.name()
                )
            },
        );
        if let Some(rec) = record
            && access != Access::Hidden
            && fx.visible(user, rec)
        {
            let masked = is_masked(object, field) && !fx.sees_raw(user, field, rec);
            report.check(
                "explain: field masked",
                entry["masked"] == json!(masked),
                || format!("{}: field {field} {entry}, expected masked={masked}", who()),
            );
        }
    }
}

keel_testkit::db_test!(
    permission_explain_access_agrees_with_the_matrix,
    |db| async move {
        let world = setup(&db.url).await;
        let (api, fx) = (&world.api, &world.fx);
        let report = Report::default();
        let admin = world.admin();
        for user in ["rep_n1", "director", "auditor"] {
            let reply = api
                .get(
                    fx.person(user),
                    &format!(
                        "/admin/access?user=rep_s1&object=lead&id={}",
                        fx.leads[0].id
                    ),
                )
                .await;
            report.status("explain: admins only", &reply, &[403], || {
                format!("explain asked by {user}")
            });
        }
        let mut asks: Vec<(String, &'static str, Option<&Rec>)> = Vec::new();
        for user in fx.people.keys() {
            for object in OBJECTS {
                asks.push((user.clone(), object, None));
                for rec in fx.records(object) {
                    asks.push((user.clone(), object, Some(rec)));
                }
            }
        }
        futures::stream::iter(asks)
            .for_each_concurrent(8, |(user, object, rec)| {
                let report = &report;
                async move {
                    let mut path = format!("/admin/access?user={user}&object={object}");
                    if let Some(rec) = rec {
                        write!(path, "&id={}", rec.id).unwrap();
                    }
                    let reply = api.get(admin, &path).await;
                    check_explain(fx, report, &user, object, rec, &reply);
                }
            })
            .await;
        report.finish("permission_explain_access_agrees_with_the_matrix");
    }
);

// ---------------------------------------------------------------------------------------
// The access-change audit
// ---------------------------------------------------------------------------------------

fn mentions(value: &Value, candidates: &[&str]) -> bool {
    let text = value.to_string();
    candidates.iter().any(|candidate| text.contains(candidate))
}

keel_testkit::db_test!(permission_access_changes_are_audited, |db| async move {
    let world = setup(&db.url).await;
    let (api, fx) = (&world.api, &world.fx);
    let report = Report::default();
    let admin = world.admin();
    for user in ["rep_n1", "director"] {
        let reply = api.get(fx.person(user), "/admin/access-changes").await;
        report.status("access changes: admins only", &reply, &[403], || {
            format!("GET /admin/access-changes as {user}")
        });
    }

    patch_user(&world, &report, "rep_s1", json!({ "manager": "mgr_north" })).await;
    patch_user(&world, &report, "viewer", json!({ "department": "south" })).await;
    let reply = api
        .call(
            admin,
            Method::POST,
            "/admin/departments",
            Some(&json!({ "name": "north_b", "parent": "north" })),
        )
        .await;
    report.status("access changes: new department", &reply, &[201], || {
        "POST north_b".to_owned()
    });
    patch_user(&world, &report, "auditor", json!({ "roles": ["rep"] })).await;

    let reply = api.get(admin, "/admin/access-changes").await;
    if report.status("access changes: status", &reply, &[200], || {
        "GET /admin/access-changes as admin".to_owned()
    }) {
        let data = reply.data();
        let id = |user: &str| fx.person(user).id.clone();
        let (rep_s1, mgr_south, mgr_north) = (id("rep_s1"), id("mgr_south"), id("mgr_north"));
        let (viewer, auditor) = (id("viewer"), id("auditor"));
        let find = |name: &str, matches: &dyn Fn(&Value) -> bool| -> Option<usize> {
            let position = data.iter().position(matches);
            report.check("access changes: entry recorded", position.is_some(), || {
                format!("access changes: no entry for {name} in {}", reply.brief())
            });
            if let Some(entry) = position.map(|index| &data[index]) {
                report.check(
                    "access changes: by the admin, with a time",
                    entry["by"] == json!("admin") && entry["at"].is_string(),
                    || format!("access changes: {name}: {entry}"),
                );
            }
            position
        };
        let subject_is = |entry: &Value, names: &[&str]| {
            entry["subject"]
                .as_str()
                .is_some_and(|s| names.contains(&s))
        };
        let manager = find("rep_s1's manager", &|entry| {
            entry["subject_type"] == "user"
                && subject_is(entry, &["rep_s1", rep_s1.as_str()])
                && entry["field"] == "manager"
                && mentions(&entry["old"], &["mgr_south", mgr_south.as_str()])
                && mentions(&entry["new"], &["mgr_north", mgr_north.as_str()])
        });
        let department = find("viewer's department", &|entry| {
            entry["subject_type"] == "user"
                && subject_is(entry, &["viewer", viewer.as_str()])
                && entry["field"] == "department"
                && mentions(&entry["old"], &["north"])
                && mentions(&entry["new"], &["south"])
        });
        let new_department = find("department north_b", &|entry| {
            entry["subject_type"] == "department"
                && entry["subject"]
                    .as_str()
                    .is_some_and(|s| s == "north_b" || s.contains("north_b"))
        });
        let roles = find("auditor's roles", &|entry| {
            (entry["subject_type"] == "user" || entry["subject_type"] == "roles")
                && subject_is(entry, &["auditor", auditor.as_str()])
                && entry["field"] == "roles"
                && mentions(&entry["old"], &["auditor"])
                && mentions(&entry["new"], &["rep"])
        });
        if let (Some(manager), Some(department), Some(new_department), Some(roles)) =
            (manager, department, new_department, roles)
        {
            report.check("access changes: newest first", roles < new_department && new_department < department && department < manager, || {
                format!("access changes: positions roles={roles} department north_b={new_department} viewer={department} rep_s1={manager}")
            });
        }
        for entry in data {
            let keys_ok = ["at", "by", "subject_type", "subject", "field", "old", "new"]
                .iter()
                .all(|key| entry.get(*key).is_some());
            report.check("access changes: entry shape", keys_ok, || {
                format!("access changes: entry {entry}")
            });
        }
    }
    report.finish("permission_access_changes_are_audited");
});
