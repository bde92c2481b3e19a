//! The process editor `/admin/studio/processes/{process}` (docs/studio.md, "The pool,
//! process, rule and role editors"): a process's stages in order, each with its key, label
//! (English and Chinese), probability, required fields and approval (`when` and the steps,
//! each with its approvers and mode). Buttons move a stage up or down, add one after any
//! stage, remove one, and add or remove an approval or a step; each posts the form and shows
//! it again with the change (see [`super::workflows`]). Saving runs `keel_meta::forms::save_stages`
//! and shows the review.

use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use keel_meta::forms::{
    ApprovalForm, ApprovalStepForm, ApproverForm, FormError, LabelForm, StageForm, save_stages,
    stage_forms,
};
use keel_meta::model::ApprovalMode;
use serde::Serialize;

use super::workflows::{self as editor, Choice, Errors, Op, Values};
use super::{Applied, Change, latest, review};
use crate::AppState;
use crate::extract::Pinned;
use crate::pages::admin::{console_frame, not_found, tr};
use crate::pages::{Frame, PageError, PageForm, Viewer, render_with_status};

/// The manager levels every approver select offers (a file may name more).
const MANAGER_LEVELS: u8 = 3;

/// A stage as the form holds it: text as typed, so a wrong value is shown again as it was.
#[derive(Debug, Clone, Default, Serialize)]
struct StageInput {
    key: String,
    label_en: String,
    label_zh: String,
    probability: String,
    require: Vec<String>,
    approval: Option<ApprovalInput>,
}

#[derive(Debug, Clone, Default, Serialize)]
struct ApprovalInput {
    when: String,
    steps: Vec<StepInput>,
}

#[derive(Debug, Clone, Default, Serialize)]
struct StepInput {
    /// `manager`, `manager_2`, `role:<role>`.
    approvers: Vec<String>,
    /// Usernames, separated by commas.
    users: String,
    /// `any`, `all`, or empty (not written: any).
    mode: String,
}

impl StageInput {
    fn of(stage: &StageForm) -> StageInput {
        StageInput {
            key: stage.key.clone(),
            label_en: stage.label.en.clone(),
            label_zh: stage.label.zh.clone(),
            probability: stage.probability.to_string(),
            require: stage.require.clone(),
            approval: stage.approval.as_ref().map(|approval| ApprovalInput {
                when: approval.when.clone(),
                steps: approval.steps.iter().map(StepInput::of).collect(),
            }),
        }
    }

    /// The stage of the form's names `stages/{index}/…`.
    fn read(values: &Values, index: usize) -> Result<StageInput, PageError> {
        let name = |rest: &str| format!("stages/{index}/{rest}");
        let approval = if values.checked(&name("approval")) {
            let steps = values
                .indexes(&name("approval/steps"))?
                .into_iter()
                .map(|step| {
                    let step_name = |rest: &str| name(&format!("approval/steps/{step}/{rest}"));
                    StepInput {
                        approvers: values.all(&step_name("approvers")),
                        users: values.trimmed(&step_name("users")),
                        mode: values.trimmed(&step_name("mode")),
                    }
                })
                .collect();
            Some(ApprovalInput {
                when: values.trimmed(&name("approval/when")),
                steps,
            })
        } else {
            None
        };
        Ok(StageInput {
            key: values.trimmed(&name("key")),
            label_en: values.trimmed(&name("label/en")),
            label_zh: values.trimmed(&name("label/zh")),
            probability: values.trimmed(&name("probability")),
            require: values.all(&name("require")),
            approval,
        })
    }

    /// The stage for `save_stages`; `old` is the stage of the same key as the file has it,
    /// whose approvers keep their order when the form names the same ones.
    fn form(&self, index: usize, old: Option<&StageForm>) -> Result<StageForm, FormError> {
        let field = |rest: &str| format!("stages/{index}/{rest}");
        let probability = if self.probability.is_empty() {
            0
        } else {
            self.probability
                .parse::<u8>()
                .ok()
                .filter(|probability| *probability <= 100)
                .ok_or_else(|| FormError {
                    field: field("probability"),
                    message: "studio.workflows.error.probability".to_owned(),
                })?
        };
        let approval = match &self.approval {
            None => None,
            Some(approval) => {
                let old_steps = old
                    .and_then(|old| old.approval.as_ref())
                    .map(|old| old.steps.as_slice())
                    .unwrap_or_default();
                let steps = approval
                    .steps
                    .iter()
                    .enumerate()
                    .map(|(step, input)| {
                        input.form(
                            &field(&format!("approval/steps/{step}")),
                            old_steps.get(step),
                        )
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Some(ApprovalForm {
                    when: approval.when.clone(),
                    steps,
                })
            }
        };
        Ok(StageForm {
            key: self.key.clone(),
            label: LabelForm {
                en: self.label_en.clone(),
                zh: self.label_zh.clone(),
            },
            probability,
            require: editor::in_file_order(
                old.map(|old| old.require.as_slice()).unwrap_or_default(),
                &self.require,
            ),
            approval,
        })
    }
}

impl StepInput {
    fn of(step: &ApprovalStepForm) -> StepInput {
        let mut approvers = Vec::new();
        let mut users = Vec::new();
        for approver in &step.approvers {
            match approver {
                ApproverForm::Manager(1) => approvers.push("manager".to_owned()),
                ApproverForm::Manager(levels) => approvers.push(format!("manager_{levels}")),
                ApproverForm::Role(role) => approvers.push(format!("role:{role}")),
                ApproverForm::User(user) => users.push(user.clone()),
            }
        }
        StepInput {
            approvers,
            users: users.join(", "),
            mode: match step.mode {
                Some(ApprovalMode::Any) => "any".to_owned(),
                Some(ApprovalMode::All) => "all".to_owned(),
                None => String::new(),
            },
        }
    }

    fn form(
        &self,
        field: &str,
        old: Option<&ApprovalStepForm>,
    ) -> Result<ApprovalStepForm, FormError> {
        let error = |rest: &str, message: String| FormError {
            field: format!("{field}/{rest}"),
            message,
        };
        let mut approvers = Vec::new();
        for value in &self.approvers {
            let approver =
                if value == "manager" {
                    ApproverForm::Manager(1)
                } else if let Some(levels) = value.strip_prefix("manager_") {
                    ApproverForm::Manager(levels.parse().map_err(|_| {
                        error("approvers", "studio.workflows.error.choice".to_owned())
                    })?)
                } else if let Some(role) = value.strip_prefix("role:") {
                    ApproverForm::Role(role.to_owned())
                } else {
                    return Err(error(
                        "approvers",
                        "studio.workflows.error.choice".to_owned(),
                    ));
                };
            approvers.push(approver);
        }
        for user in self
            .users
            .split([',', '，', ' '])
            .map(str::trim)
            .filter(|user| !user.is_empty())
        {
            if keel_meta::ident::check_identifier(user).is_err() {
                return Err(error("users", "studio.workflows.error.username".to_owned()));
            }
            approvers.push(ApproverForm::User(user.to_owned()));
        }
        // The same approvers as the file's keep the file's order.
        if let Some(old) = old
            && old.approvers.len() == approvers.len()
            && old
                .approvers
                .iter()
                .all(|approver| approvers.contains(approver))
        {
            approvers = old.approvers.clone();
        }
        let mode = match self.mode.as_str() {
            "" => None,
            "any" => Some(ApprovalMode::Any),
            "all" => Some(ApprovalMode::All),
            _ => return Err(error("mode", "studio.workflows.error.choice".to_owned())),
        };
        Ok(ApprovalStepForm { approvers, mode })
    }
}

#[derive(Debug, Serialize)]
struct ProcessPage {
    section: &'static str,
    applied: Option<i64>,
    name: String,
    label: String,
    object: String,
    object_label: String,
    action: String,
    base: i64,
    stages: Vec<StageView>,
    fields: Vec<Choice>,
    approvers: Vec<Choice>,
    errors: Errors,
}

#[derive(Debug, Serialize)]
struct StageView {
    #[serde(flatten)]
    input: StageInput,
    /// Whether the key may be typed: a stage the files do not have yet. A stage's key names
    /// the records in it, so an existing stage keeps its key.
    new: bool,
}

/// `GET /admin/studio/processes/{process}`.
pub async fn page(
    Pinned(state): Pinned,
    viewer: Viewer,
    Path(process): Path<String>,
    Query(applied): Query<Applied>,
) -> Result<Response, PageError> {
    let frame = console_frame(&state, &viewer).await?;
    let (base, files) = latest(&state, &viewer).await?;
    let stages = stage_forms(&files, &process).ok_or_else(not_found)?;
    let inputs = stages.iter().map(StageInput::of).collect();
    let page = Form {
        process: &process,
        base,
        stages: inputs,
        old: &stages,
        errors: Errors::new(),
        applied: applied.applied,
    };
    show(&state, &frame, page, StatusCode::OK)
}

/// `POST /admin/studio/processes/{process}`: a button's change to the form, or the review.
pub async fn save(
    Pinned(state): Pinned,
    Path(process): Path<String>,
    form: PageForm,
) -> Result<Response, PageError> {
    let viewer = &form.viewer;
    let frame = console_frame(&state, viewer).await?;
    let (_, files) = latest(&state, viewer).await?;
    let old = stage_forms(&files, &process).ok_or_else(not_found)?;
    let base = editor::base(&form)?;
    let values = Values::new(&form);
    let mut stages = values
        .indexes("stages")?
        .into_iter()
        .map(|index| StageInput::read(&values, index))
        .collect::<Result<Vec<_>, _>>()?;
    let op = Op::of(&form)?;
    let mut page = Form {
        process: &process,
        base,
        stages: Vec::new(),
        old: &old,
        errors: Errors::new(),
        applied: None,
    };
    if !op.is_save() {
        apply_op(&mut stages, &op)?;
        page.stages = stages;
        return show(&state, &frame, page, StatusCode::OK);
    }
    let forms = stages
        .iter()
        .enumerate()
        .map(|(index, stage)| {
            let previous = old.iter().find(|old| old.key == stage.key);
            stage.form(index, previous)
        })
        .collect::<Result<Vec<_>, _>>();
    let schema = state.schema();
    let changes = forms.and_then(|forms| save_stages(&files, schema, &process, &forms));
    match changes {
        Ok(changes) => {
            let label = process_label(&state, &frame, &process);
            let change = Change {
                title: tr(
                    &state,
                    &frame.lang,
                    "studio.workflows.process.change",
                    &[("name", label)],
                ),
                back: format!("/admin/studio/processes/{process}"),
                base,
                changes: editor::changed_files(changes),
            };
            review(&state, viewer, change).await
        }
        Err(error) => {
            let error = editor::localized(&state, &frame.lang, error);
            page.errors = editor::errors_of(&error, |field| shown(field, &stages));
            page.stages = stages;
            show(&state, &frame, page, StatusCode::UNPROCESSABLE_ENTITY)
        }
    }
}

/// Whether the form shows a control named `field` for `stages`.
fn shown(field: &str, stages: &[StageInput]) -> bool {
    let parts: Vec<&str> = field.split('/').collect();
    let stage = |index: &str| {
        index
            .parse::<usize>()
            .ok()
            .and_then(|index| stages.get(index))
    };
    match parts.as_slice() {
        ["stages", index, "key" | "probability" | "require"] => stage(index).is_some(),
        ["stages", index, "label", "en" | "zh"] => stage(index).is_some(),
        ["stages", index, "approval", "when" | "steps"] => {
            stage(index).is_some_and(|stage| stage.approval.is_some())
        }
        [
            "stages",
            index,
            "approval",
            "steps",
            step,
            "approvers" | "users" | "mode",
        ] => stage(index)
            .and_then(|stage| stage.approval.as_ref())
            .is_some_and(|approval| {
                step.parse::<usize>()
                    .is_ok_and(|step| step < approval.steps.len())
            }),
        _ => false,
    }
}

/// Makes the change a button asks for: `up:i`, `down:i`, `add:i` (a new stage at `i`),
/// `remove:i`, `approval:i` (add an approval), `no-approval:i`, `step:i` (add a step),
/// `remove-step:i:j`.
fn apply_op(stages: &mut Vec<StageInput>, op: &Op) -> Result<(), PageError> {
    let len = stages.len();
    match op.name.as_str() {
        "up" | "down" => {
            let index = op.index(len).ok_or(PageError::BadForm)?;
            editor::move_item(stages, index, op.name == "up");
        }
        "add" => {
            let index = op
                .args
                .first()
                .copied()
                .filter(|index| *index <= len)
                .ok_or(PageError::BadForm)?;
            if len >= editor::MAX_ITEMS {
                return Err(PageError::BadForm);
            }
            stages.insert(index, StageInput::default());
        }
        "remove" => {
            let index = op.index(len).ok_or(PageError::BadForm)?;
            stages.remove(index);
        }
        "approval" => {
            let index = op.index(len).ok_or(PageError::BadForm)?;
            stages[index].approval.get_or_insert_with(|| ApprovalInput {
                when: String::new(),
                steps: vec![StepInput::default()],
            });
        }
        "no-approval" => {
            let index = op.index(len).ok_or(PageError::BadForm)?;
            stages[index].approval = None;
        }
        "step" => {
            let index = op.index(len).ok_or(PageError::BadForm)?;
            let approval = stages[index].approval.as_mut().ok_or(PageError::BadForm)?;
            if approval.steps.len() >= editor::MAX_ITEMS {
                return Err(PageError::BadForm);
            }
            approval.steps.push(StepInput::default());
        }
        "remove-step" => {
            let index = op.index(len).ok_or(PageError::BadForm)?;
            let approval = stages[index].approval.as_mut().ok_or(PageError::BadForm)?;
            let step = op
                .args
                .get(1)
                .copied()
                .filter(|step| *step < approval.steps.len())
                .ok_or(PageError::BadForm)?;
            approval.steps.remove(step);
        }
        _ => return Err(PageError::BadForm),
    }
    Ok(())
}

/// What the page shows: the process, the version, the stages as the form holds them.
struct Form<'a> {
    process: &'a str,
    base: i64,
    stages: Vec<StageInput>,
    /// The stages as the files have them (which keys exist).
    old: &'a [StageForm],
    errors: Errors,
    applied: Option<i64>,
}

fn process_label(state: &AppState, frame: &Frame, process: &str) -> String {
    let schema = state.schema();
    let formatter = frame.formatter(state);
    let label = schema
        .processes
        .get(process)
        .and_then(|known| known.label.as_ref());
    formatter.label(label, process)
}

fn show(
    state: &AppState,
    frame: &Frame,
    form: Form<'_>,
    status: StatusCode,
) -> Result<Response, PageError> {
    let schema = state.schema();
    let known = schema.processes.get(form.process).ok_or_else(not_found)?;
    let object = schema.object(&known.object).ok_or_else(not_found)?;
    let formatter = frame.formatter(state);
    let fields = object
        .fields
        .values()
        .filter(|field| field.name != known.stage_field)
        .map(|field| Choice {
            value: field.name.clone(),
            label: formatter.field_label(field),
        })
        .collect();
    let lang = &frame.lang;
    let mut approvers: Vec<Choice> = (1..=MANAGER_LEVELS)
        .map(|levels| manager_choice(state, lang, levels))
        .collect();
    // A level the files (or the form) name beyond the usual ones is offered too.
    for stage in &form.stages {
        for step in stage.approval.iter().flat_map(|approval| &approval.steps) {
            for value in &step.approvers {
                if !approvers.iter().any(|choice| &choice.value == value) {
                    let levels = value
                        .strip_prefix("manager_")
                        .and_then(|levels| levels.parse::<u8>().ok());
                    approvers.push(match levels {
                        Some(levels) => manager_choice(state, lang, levels),
                        None => Choice {
                            value: value.clone(),
                            label: value.clone(),
                        },
                    });
                }
            }
        }
    }
    for role in schema.roles.roles.values() {
        let value = format!("role:{}", role.name);
        if !approvers.iter().any(|choice| choice.value == value) {
            approvers.push(Choice {
                label: tr(
                    state,
                    lang,
                    "studio.workflows.process.approver_role",
                    &[("role", formatter.label(role.label.as_ref(), &role.name))],
                ),
                value,
            });
        }
    }
    let stages = form
        .stages
        .into_iter()
        .map(|input| StageView {
            new: !form.old.iter().any(|old| old.key == input.key) || input.key.is_empty(),
            input,
        })
        .collect();
    let page = ProcessPage {
        section: "studio",
        applied: form.applied,
        name: known.name.clone(),
        label: formatter.label(known.label.as_ref(), &known.name),
        object: object.name.clone(),
        object_label: formatter.label(Some(&object.label), &object.name),
        action: format!("/admin/studio/processes/{}", known.name),
        base: form.base,
        stages,
        fields,
        approvers,
        errors: form.errors,
    };
    render_with_status(state, frame, "admin/studio/process.html", page, status)
}

fn manager_choice(state: &AppState, lang: &str, levels: u8) -> Choice {
    Choice {
        value: if levels == 1 {
            "manager".to_owned()
        } else {
            format!("manager_{levels}")
        },
        label: if levels == 1 {
            tr(
                state,
                lang,
                "studio.workflows.process.approver_manager",
                &[],
            )
        } else {
            tr(
                state,
                lang,
                "studio.workflows.process.approver_manager_levels",
                &[("levels", levels.to_string())],
            )
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(key: &str) -> StageInput {
        StageInput {
            key: key.to_owned(),
            ..StageInput::default()
        }
    }

    fn keys(stages: &[StageInput]) -> Vec<&str> {
        stages.iter().map(|stage| stage.key.as_str()).collect()
    }

    fn op(name: &str, args: &[usize]) -> Op {
        Op {
            name: name.to_owned(),
            args: args.to_vec(),
        }
    }

    #[test]
    fn the_buttons_move_add_and_remove_stages_and_steps() {
        let mut stages = vec![stage("a"), stage("b"), stage("c")];
        apply_op(&mut stages, &op("down", &[0])).unwrap();
        assert_eq!(keys(&stages), ["b", "a", "c"]);
        apply_op(&mut stages, &op("add", &[3])).unwrap();
        assert_eq!(keys(&stages), ["b", "a", "c", ""]);
        apply_op(&mut stages, &op("remove", &[0])).unwrap();
        assert_eq!(keys(&stages), ["a", "c", ""]);
        apply_op(&mut stages, &op("approval", &[1])).unwrap();
        apply_op(&mut stages, &op("step", &[1])).unwrap();
        assert_eq!(stages[1].approval.as_ref().unwrap().steps.len(), 2);
        apply_op(&mut stages, &op("remove-step", &[1, 0])).unwrap();
        assert_eq!(stages[1].approval.as_ref().unwrap().steps.len(), 1);
        apply_op(&mut stages, &op("no-approval", &[1])).unwrap();
        assert!(stages[1].approval.is_none());
        for bad in [
            op("remove", &[3]),
            op("add", &[4]),
            op("step", &[0]),
            op("remove-step", &[0, 0]),
            op("explode", &[0]),
            op("up", &[]),
        ] {
            assert!(apply_op(&mut stages, &bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn approvers_keep_the_files_order_when_the_form_names_the_same_ones() {
        let old = ApprovalStepForm {
            approvers: vec![
                ApproverForm::User("wang".to_owned()),
                ApproverForm::Role("sales_director".to_owned()),
                ApproverForm::Manager(1),
            ],
            mode: None,
        };
        let input = StepInput::of(&old);
        assert_eq!(input.approvers, ["role:sales_director", "manager"]);
        assert_eq!(input.users, "wang");
        let back = input.form("s", Some(&old)).unwrap();
        assert_eq!(back, old);
        let bad = StepInput {
            approvers: vec!["boss".to_owned()],
            ..StepInput::default()
        };
        assert_eq!(bad.form("s", None).unwrap_err().field, "s/approvers");
    }
}
