//! The rule editor `/admin/studio/rules/{rule}` (docs/studio.md, "The pool, process, rule
//! and role editors"): a rule's trigger (a cron schedule with its misfire policy, or the
//! record events), its filter (`where`) and its actions, the last two as YAML (or JSON) text
//! that must parse; an error names the text area and the line. Saving runs
//! `keel_meta::forms::save_rule` and shows the review. A rule's object, label, `enabled` and
//! `when` condition are not on this form (the file editor changes them).

use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use keel_meta::forms::{FormError, RuleForm, RuleTriggerForm, rule_form, save_rule};
use keel_meta::model::Misfire;
use serde::Serialize;
use serde_json::Value;

use super::workflows::{self as editor, Errors, Values};
use super::{Applied, Change, latest, review};
use crate::AppState;
use crate::extract::Pinned;
use crate::pages::admin::{console_frame, not_found, tr};
use crate::pages::{Frame, PageError, PageForm, Viewer, render_with_status};

/// The events an event rule may be triggered by.
const EVENTS: [&str; 3] = ["create", "update", "delete"];

/// A rule as the form holds it: text as typed.
#[derive(Debug, Clone, Default, Serialize)]
struct RuleInput {
    /// `schedule` or `events`.
    trigger: String,
    cron: String,
    /// `once`, `skip`, `all`, or empty (not written: once).
    misfire: String,
    events: Vec<String>,
    /// YAML.
    filter: String,
    /// YAML: a list of actions.
    actions: String,
}

impl RuleInput {
    fn of(form: &RuleForm) -> RuleInput {
        let (trigger, cron, misfire, events) = match &form.trigger {
            RuleTriggerForm::Schedule { cron, misfire } => (
                "schedule",
                cron.clone(),
                misfire.map(misfire_text).unwrap_or_default().to_owned(),
                Vec::new(),
            ),
            RuleTriggerForm::Events(events) => {
                ("events", String::new(), String::new(), events.clone())
            }
        };
        RuleInput {
            trigger: trigger.to_owned(),
            cron,
            misfire,
            events,
            filter: form
                .filter
                .as_ref()
                .map(editor::yaml_text)
                .unwrap_or_default(),
            actions: editor::yaml_text(&Value::Array(form.actions.clone())),
        }
    }

    fn read(values: &Values) -> RuleInput {
        RuleInput {
            trigger: values.trimmed("trigger"),
            cron: values.trimmed("cron"),
            misfire: values.trimmed("misfire"),
            events: values.all("events"),
            filter: values.text("filter"),
            actions: values.text("actions"),
        }
    }

    fn form(&self) -> Result<RuleForm, FormError> {
        let error = |field: &str, message: &str| FormError {
            field: field.to_owned(),
            message: message.to_owned(),
        };
        let trigger = match self.trigger.as_str() {
            "schedule" => RuleTriggerForm::Schedule {
                cron: self.cron.clone(),
                misfire: match self.misfire.as_str() {
                    "" => None,
                    "once" => Some(Misfire::Once),
                    "skip" => Some(Misfire::Skip),
                    "all" => Some(Misfire::All),
                    _ => return Err(error("trigger/misfire", "studio.workflows.error.choice")),
                },
            },
            "events" => RuleTriggerForm::Events(self.events.clone()),
            _ => return Err(error("trigger", "studio.workflows.error.trigger")),
        };
        let filter = editor::parse_yaml("filter", &self.filter)?;
        if filter.as_ref().is_some_and(|filter| !filter.is_object()) {
            return Err(error("filter", "studio.workflows.error.filter"));
        }
        let actions = match editor::parse_yaml("actions", &self.actions)? {
            None => Vec::new(),
            Some(Value::Array(actions)) => actions,
            Some(action @ Value::Object(_)) => vec![action],
            Some(_) => {
                return Err(error("actions", "studio.workflows.error.actions"));
            }
        };
        if actions.iter().any(|action| !action.is_object()) {
            return Err(error("actions", "studio.workflows.error.actions"));
        }
        Ok(RuleForm {
            trigger,
            filter,
            actions,
        })
    }
}

fn misfire_text(misfire: Misfire) -> &'static str {
    match misfire {
        Misfire::Once => "once",
        Misfire::Skip => "skip",
        Misfire::All => "all",
    }
}

#[derive(Debug, Serialize)]
struct RulePage {
    section: &'static str,
    applied: Option<i64>,
    name: String,
    label: String,
    object_label: String,
    /// The rule's `when` condition (not on the form), shown for reference.
    when: Option<String>,
    action: String,
    base: i64,
    rule: RuleInput,
    events: [&'static str; 3],
    errors: Errors,
}

/// `GET /admin/studio/rules/{rule}`.
pub async fn page(
    Pinned(state): Pinned,
    viewer: Viewer,
    Path(rule): Path<String>,
    Query(applied): Query<Applied>,
) -> Result<Response, PageError> {
    let frame = console_frame(&state, &viewer).await?;
    let (base, files) = latest(&state, &viewer).await?;
    if !state.schema().rules.contains_key(&rule) {
        return Err(not_found());
    }
    let form = rule_form(&files, &rule).ok_or_else(not_found)?;
    let input = RuleInput::of(&form);
    let shown = Shown {
        rule: &rule,
        base,
        input,
        errors: Errors::new(),
        applied: applied.applied,
    };
    show(&state, &frame, shown, StatusCode::OK)
}

/// `POST /admin/studio/rules/{rule}`: the review, or the form again with what is wrong.
pub async fn save(
    Pinned(state): Pinned,
    Path(rule): Path<String>,
    form: PageForm,
) -> Result<Response, PageError> {
    let viewer = &form.viewer;
    let frame = console_frame(&state, viewer).await?;
    let (_, files) = latest(&state, viewer).await?;
    let schema = state.schema();
    if !schema.rules.contains_key(&rule) {
        return Err(not_found());
    }
    let base = editor::base(&form)?;
    let input = RuleInput::read(&Values::new(&form));
    let old = rule_form(&files, &rule).ok_or_else(not_found)?;
    let changes = input.form().and_then(|mut form| {
        if let (RuleTriggerForm::Events(old), RuleTriggerForm::Events(new)) =
            (&old.trigger, &mut form.trigger)
        {
            *new = editor::in_file_order(old, new);
        }
        save_rule(&files, schema, &rule, &form)
    });
    match changes {
        Ok(changes) => {
            let label = rule_label(&state, &frame, &rule);
            let change = Change {
                title: tr(
                    &state,
                    &frame.lang,
                    "studio.workflows.rule.change",
                    &[("name", label)],
                ),
                back: format!("/admin/studio/rules/{rule}"),
                base,
                changes: editor::changed_files(changes),
            };
            review(&state, viewer, change).await
        }
        Err(error) => {
            let error = editor::localized(&state, &frame.lang, error);
            let errors = editor::errors_of(&error, |field| {
                matches!(
                    field,
                    "trigger"
                        | "trigger/cron"
                        | "trigger/misfire"
                        | "trigger/events"
                        | "filter"
                        | "actions"
                )
            });
            let shown = Shown {
                rule: &rule,
                base,
                input,
                errors,
                applied: None,
            };
            show(&state, &frame, shown, StatusCode::UNPROCESSABLE_ENTITY)
        }
    }
}

fn rule_label(state: &AppState, frame: &Frame, rule: &str) -> String {
    let schema = state.schema();
    let label = schema
        .rules
        .get(rule)
        .and_then(|known| known.label.as_ref());
    frame.formatter(state).label(label, rule)
}

struct Shown<'a> {
    rule: &'a str,
    base: i64,
    input: RuleInput,
    errors: Errors,
    applied: Option<i64>,
}

fn show(
    state: &AppState,
    frame: &Frame,
    shown: Shown<'_>,
    status: StatusCode,
) -> Result<Response, PageError> {
    let schema = state.schema();
    let known = schema.rules.get(shown.rule).ok_or_else(not_found)?;
    let formatter = frame.formatter(state);
    let object_label = schema
        .object(&known.object)
        .map(|object| formatter.label(Some(&object.label), &object.name))
        .unwrap_or_else(|| known.object.clone());
    let page = RulePage {
        section: "studio",
        applied: shown.applied,
        name: known.name.clone(),
        label: formatter.label(known.label.as_ref(), &known.name),
        object_label,
        when: known.when.clone(),
        action: format!("/admin/studio/rules/{}", known.name),
        base: shown.base,
        rule: shown.input,
        events: EVENTS,
        errors: shown.errors,
    };
    render_with_status(state, frame, "admin/studio/rule.html", page, status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_rule_form_read_back_is_the_form_it_was_filled_from() {
        let form = RuleForm {
            trigger: RuleTriggerForm::Schedule {
                cron: "0 0 9 * * *".to_owned(),
                misfire: Some(Misfire::Skip),
            },
            filter: Some(json!({ "done": false, "due_at": { "lte": "@today+1d" } })),
            actions: vec![json!({
                "notify": "owner",
                "message": { "en": "Due: {{ record.subject }}", "zh": "到期" }
            })],
        };
        assert_eq!(RuleInput::of(&form).form().unwrap(), form);
        let events = RuleForm {
            trigger: RuleTriggerForm::Events(vec!["create".to_owned()]),
            filter: None,
            actions: vec![json!({ "script": "x" }), json!({ "set": { "a": 1 } })],
        };
        assert_eq!(RuleInput::of(&events).form().unwrap(), events);
    }

    #[test]
    fn text_that_is_no_filter_or_no_actions_names_its_text_area() {
        let mut input = RuleInput {
            trigger: "events".to_owned(),
            events: vec!["create".to_owned()],
            actions: "- notify: owner\n".to_owned(),
            ..RuleInput::default()
        };
        assert!(input.form().is_ok());
        input.filter = "status: [open\n".to_owned();
        let error = input.form().unwrap_err();
        assert_eq!(error.field, "filter");
        assert!(error.message.contains("line"), "{}", error.message);
        input.filter = "- a\n".to_owned();
        assert_eq!(input.form().unwrap_err().field, "filter");
        input.filter = String::new();
        input.actions = "- 3\n".to_owned();
        assert_eq!(input.form().unwrap_err().field, "actions");
        input.actions = "notify: owner\n".to_owned();
        assert_eq!(input.form().unwrap().actions.len(), 1);
    }
}
