//! The pool editor `/admin/studio/pools/{pool}` (docs/studio.md, "The pool, process, rule
//! and role editors"): a pool's claim limits, reclaim cooldown, the fields hidden until a
//! claim, and auto-return (its schedule, the warning before a return, and the return rules,
//! which buttons add and remove). Saving runs `keel_meta::forms::save_pool` and shows the
//! review. A pool's members, managers, filters and release reasons are not on this form
//! (the file editor changes them).

use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use keel_meta::forms::{AutoReturnForm, FormError, PoolForm, ReturnRuleForm, pool_form, save_pool};
use serde::Serialize;

use super::workflows::{self as editor, Choice, Errors, Op, Values};
use super::{Applied, Change, latest, review};
use crate::AppState;
use crate::extract::Pinned;
use crate::pages::admin::{console_frame, not_found, tr};
use crate::pages::{Frame, PageError, PageForm, Viewer, render_with_status};

/// A pool as the form holds it: text as typed.
#[derive(Debug, Clone, Default, Serialize)]
struct PoolInput {
    claim_limit: String,
    daily_claim_limit: String,
    reclaim_cooldown: String,
    hide_until_claimed: Vec<String>,
    auto_return: Option<AutoReturnInput>,
}

#[derive(Debug, Clone, Default, Serialize)]
struct AutoReturnInput {
    schedule: String,
    warn_before: String,
    rules: Vec<RuleInput>,
}

#[derive(Debug, Clone, Serialize)]
struct RuleInput {
    /// `no_follow_up_for` or `not_converted_for`.
    kind: String,
    duration: String,
    follow_up_field: String,
    /// The filter that says a record is converted, as YAML.
    converted: String,
}

impl Default for RuleInput {
    fn default() -> RuleInput {
        RuleInput {
            kind: "no_follow_up_for".to_owned(),
            duration: String::new(),
            follow_up_field: String::new(),
            converted: String::new(),
        }
    }
}

impl PoolInput {
    fn of(form: &PoolForm) -> PoolInput {
        PoolInput {
            claim_limit: form.claim_limit.to_string(),
            daily_claim_limit: form.daily_claim_limit.to_string(),
            reclaim_cooldown: form.reclaim_cooldown.clone(),
            hide_until_claimed: form.hide_until_claimed.clone(),
            auto_return: form
                .auto_return
                .as_ref()
                .map(|auto_return| AutoReturnInput {
                    schedule: auto_return.schedule.clone(),
                    warn_before: auto_return.warn_before.clone(),
                    rules: auto_return
                        .rules
                        .iter()
                        .map(|rule| match rule {
                            ReturnRuleForm::NoFollowUpFor {
                                duration,
                                follow_up_field,
                            } => RuleInput {
                                kind: "no_follow_up_for".to_owned(),
                                duration: duration.clone(),
                                follow_up_field: follow_up_field.clone().unwrap_or_default(),
                                converted: String::new(),
                            },
                            ReturnRuleForm::NotConvertedFor {
                                duration,
                                converted,
                            } => RuleInput {
                                kind: "not_converted_for".to_owned(),
                                duration: duration.clone(),
                                follow_up_field: String::new(),
                                converted: editor::yaml_text(converted),
                            },
                        })
                        .collect(),
                }),
        }
    }

    fn read(values: &Values) -> Result<PoolInput, PageError> {
        let auto_return = if values.checked("auto_return") {
            let rules = values
                .indexes("auto_return/rules")?
                .into_iter()
                .map(|index| {
                    let name = |rest: &str| format!("auto_return/rules/{index}/{rest}");
                    RuleInput {
                        kind: values.trimmed(&name("kind")),
                        duration: values.trimmed(&name("duration")),
                        follow_up_field: values.trimmed(&name("follow_up_field")),
                        converted: values.text(&name("converted")),
                    }
                })
                .collect();
            Some(AutoReturnInput {
                schedule: values.trimmed("auto_return/schedule"),
                warn_before: values.trimmed("auto_return/warn_before"),
                rules,
            })
        } else {
            None
        };
        Ok(PoolInput {
            claim_limit: values.trimmed("claim_limit"),
            daily_claim_limit: values.trimmed("daily_claim_limit"),
            reclaim_cooldown: values.trimmed("reclaim_cooldown"),
            hide_until_claimed: values.all("hide_until_claimed"),
            auto_return,
        })
    }

    fn form(&self) -> Result<PoolForm, FormError> {
        let count = |field: &str, text: &str| -> Result<u32, FormError> {
            if text.is_empty() {
                return Ok(0);
            }
            text.parse().map_err(|_| FormError {
                field: field.to_owned(),
                message: "studio.workflows.error.count".to_owned(),
            })
        };
        let auto_return = match &self.auto_return {
            None => None,
            Some(auto_return) => {
                let rules = auto_return
                    .rules
                    .iter()
                    .enumerate()
                    .map(|(index, rule)| rule.form(&format!("auto_return/rules/{index}")))
                    .collect::<Result<Vec<_>, _>>()?;
                Some(AutoReturnForm {
                    schedule: auto_return.schedule.clone(),
                    warn_before: auto_return.warn_before.clone(),
                    rules,
                })
            }
        };
        Ok(PoolForm {
            claim_limit: count("claim_limit", &self.claim_limit)?,
            daily_claim_limit: count("daily_claim_limit", &self.daily_claim_limit)?,
            reclaim_cooldown: if self.reclaim_cooldown.is_empty() {
                "0".to_owned()
            } else {
                self.reclaim_cooldown.clone()
            },
            hide_until_claimed: self.hide_until_claimed.clone(),
            auto_return,
        })
    }
}

impl RuleInput {
    fn form(&self, field: &str) -> Result<ReturnRuleForm, FormError> {
        match self.kind.as_str() {
            "no_follow_up_for" => Ok(ReturnRuleForm::NoFollowUpFor {
                duration: self.duration.clone(),
                follow_up_field: (!self.follow_up_field.is_empty())
                    .then(|| self.follow_up_field.clone()),
            }),
            "not_converted_for" => {
                let converted = editor::parse_yaml(&format!("{field}/converted"), &self.converted)?
                    .filter(|value| !value.is_null())
                    .ok_or_else(|| FormError {
                        field: format!("{field}/converted"),
                        message: "studio.workflows.error.converted".to_owned(),
                    })?;
                Ok(ReturnRuleForm::NotConvertedFor {
                    duration: self.duration.clone(),
                    converted,
                })
            }
            _ => Err(FormError {
                field: format!("{field}/kind"),
                message: "studio.workflows.error.choice".to_owned(),
            }),
        }
    }
}

#[derive(Debug, Serialize)]
struct PoolPage {
    section: &'static str,
    applied: Option<i64>,
    name: String,
    label: String,
    object_label: String,
    action: String,
    base: i64,
    pool: PoolInput,
    fields: Vec<Choice>,
    errors: Errors,
}

/// `GET /admin/studio/pools/{pool}`.
pub async fn page(
    Pinned(state): Pinned,
    viewer: Viewer,
    Path(pool): Path<String>,
    Query(applied): Query<Applied>,
) -> Result<Response, PageError> {
    let frame = console_frame(&state, &viewer).await?;
    let (base, files) = latest(&state, &viewer).await?;
    let mut form = pool_form(&files, state.schema(), &pool).ok_or_else(not_found)?;
    if let Some(written) = written_cooldown(&files, &pool) {
        form.reclaim_cooldown = written;
    }
    let page = Shown {
        pool: &pool,
        base,
        input: PoolInput::of(&form),
        errors: Errors::new(),
        applied: applied.applied,
    };
    show(&state, &frame, page, StatusCode::OK)
}

/// `POST /admin/studio/pools/{pool}`: a button's change to the form, or the review.
pub async fn save(
    Pinned(state): Pinned,
    Path(pool): Path<String>,
    form: PageForm,
) -> Result<Response, PageError> {
    let viewer = &form.viewer;
    let frame = console_frame(&state, viewer).await?;
    let (_, files) = latest(&state, viewer).await?;
    let schema = state.schema();
    if !schema.pools.contains_key(&pool) {
        return Err(not_found());
    }
    let base = editor::base(&form)?;
    let values = Values::new(&form);
    let mut input = PoolInput::read(&values)?;
    let op = Op::of(&form)?;
    if !op.is_save() {
        apply_op(&mut input, &op)?;
        let page = Shown {
            pool: &pool,
            base,
            input,
            errors: Errors::new(),
            applied: None,
        };
        return show(&state, &frame, page, StatusCode::OK);
    }
    let old = pool_form(&files, schema, &pool).ok_or_else(not_found)?;
    let changes = input.form().and_then(|mut form| {
        form.hide_until_claimed =
            editor::in_file_order(&old.hide_until_claimed, &form.hide_until_claimed);
        save_pool(&files, schema, &pool, &form)
    });
    match changes {
        Ok(changes) => {
            let label = pool_label(&state, &frame, &pool);
            let change = Change {
                title: tr(
                    &state,
                    &frame.lang,
                    "studio.workflows.pool.change",
                    &[("name", label)],
                ),
                back: format!("/admin/studio/pools/{pool}"),
                base,
                changes: editor::changed_files(changes),
            };
            review(&state, viewer, change).await
        }
        Err(error) => {
            let error = editor::localized(&state, &frame.lang, error);
            let errors = editor::errors_of(&error, |field| shown(field, &input));
            let page = Shown {
                pool: &pool,
                base,
                input,
                errors,
                applied: None,
            };
            show(&state, &frame, page, StatusCode::UNPROCESSABLE_ENTITY)
        }
    }
}

/// The reclaim cooldown as the pool's file writes it (`7d`, where the reader's value would
/// show the same time as `1w`).
fn written_cooldown(files: &keel_meta::AppFiles, pool: &str) -> Option<String> {
    let text = files.get(&keel_meta::forms::pool_file(pool))?;
    let value = keel_meta::source::SourceDocument::parse(text).ok()?.value;
    match value.get("reclaim_cooldown")? {
        serde_json::Value::String(text) => Some(text.clone()),
        serde_json::Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

/// Whether the form shows a control named `field`.
fn shown(field: &str, input: &PoolInput) -> bool {
    let parts: Vec<&str> = field.split('/').collect();
    match parts.as_slice() {
        ["claim_limit" | "daily_claim_limit" | "reclaim_cooldown" | "hide_until_claimed"] => true,
        ["auto_return", "schedule" | "warn_before"] => input.auto_return.is_some(),
        [
            "auto_return",
            "rules",
            index,
            "kind" | "duration" | "follow_up_field" | "converted",
        ] => input.auto_return.as_ref().is_some_and(|auto_return| {
            index
                .parse::<usize>()
                .is_ok_and(|index| index < auto_return.rules.len())
        }),
        _ => false,
    }
}

/// Makes the change a button asks for: `auto_return` (turn it on with one rule),
/// `no_auto_return`, `add_rule`, `remove_rule:i`.
fn apply_op(input: &mut PoolInput, op: &Op) -> Result<(), PageError> {
    match op.name.as_str() {
        "auto_return" => {
            input.auto_return.get_or_insert_with(|| AutoReturnInput {
                schedule: "0 0 2 * * *".to_owned(),
                warn_before: String::new(),
                rules: vec![RuleInput::default()],
            });
        }
        "no_auto_return" => input.auto_return = None,
        "add_rule" => {
            let auto_return = input.auto_return.as_mut().ok_or(PageError::BadForm)?;
            if auto_return.rules.len() >= editor::MAX_ITEMS {
                return Err(PageError::BadForm);
            }
            auto_return.rules.push(RuleInput::default());
        }
        "remove_rule" => {
            let auto_return = input.auto_return.as_mut().ok_or(PageError::BadForm)?;
            let index = op
                .index(auto_return.rules.len())
                .ok_or(PageError::BadForm)?;
            auto_return.rules.remove(index);
        }
        _ => return Err(PageError::BadForm),
    }
    Ok(())
}

struct Shown<'a> {
    pool: &'a str,
    base: i64,
    input: PoolInput,
    errors: Errors,
    applied: Option<i64>,
}

fn pool_label(state: &AppState, frame: &Frame, pool: &str) -> String {
    let schema = state.schema();
    let label = schema
        .pools
        .get(pool)
        .and_then(|known| known.label.as_ref());
    frame.formatter(state).label(label, pool)
}

fn show(
    state: &AppState,
    frame: &Frame,
    shown: Shown<'_>,
    status: StatusCode,
) -> Result<Response, PageError> {
    let schema = state.schema();
    let known = schema.pools.get(shown.pool).ok_or_else(not_found)?;
    let object = schema.object(&known.object).ok_or_else(not_found)?;
    let formatter = frame.formatter(state);
    let fields = object
        .fields
        .values()
        .map(|field| Choice {
            value: field.name.clone(),
            label: formatter.field_label(field),
        })
        .collect();
    let page = PoolPage {
        section: "studio",
        applied: shown.applied,
        name: known.name.clone(),
        label: formatter.label(known.label.as_ref(), &known.name),
        object_label: formatter.label(Some(&object.label), &object.name),
        action: format!("/admin/studio/pools/{}", known.name),
        base: shown.base,
        pool: shown.input,
        fields,
        errors: shown.errors,
    };
    render_with_status(state, frame, "admin/studio/pool.html", page, status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pool_form_read_back_is_the_form_it_was_filled_from() {
        let form = PoolForm {
            claim_limit: 30,
            daily_claim_limit: 0,
            reclaim_cooldown: "7d".to_owned(),
            hide_until_claimed: vec!["phone".to_owned()],
            auto_return: Some(AutoReturnForm {
                schedule: "0 */10 * * * *".to_owned(),
                warn_before: "1d".to_owned(),
                rules: vec![
                    ReturnRuleForm::NoFollowUpFor {
                        duration: "3d".to_owned(),
                        follow_up_field: Some("last_follow_up_at".to_owned()),
                    },
                    ReturnRuleForm::NotConvertedFor {
                        duration: "30d".to_owned(),
                        converted: serde_json::json!({ "status": "converted" }),
                    },
                ],
            }),
        };
        assert_eq!(PoolInput::of(&form).form().unwrap(), form);
    }

    #[test]
    fn a_wrong_value_names_its_field() {
        let mut input = PoolInput::of(&PoolForm {
            claim_limit: 1,
            daily_claim_limit: 1,
            reclaim_cooldown: "0".to_owned(),
            hide_until_claimed: Vec::new(),
            auto_return: None,
        });
        input.claim_limit = "-3".to_owned();
        assert_eq!(input.form().unwrap_err().field, "claim_limit");
        input.claim_limit = "3".to_owned();
        apply_op(
            &mut input,
            &Op {
                name: "auto_return".to_owned(),
                args: vec![],
            },
        )
        .unwrap();
        let rule = &mut input.auto_return.as_mut().unwrap().rules[0];
        rule.kind = "not_converted_for".to_owned();
        rule.converted = "{ status: [".to_owned();
        assert_eq!(
            input.form().unwrap_err().field,
            "auto_return/rules/0/converted"
        );
    }
}
