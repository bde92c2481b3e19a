//! The sales-process part of a record page (docs/ui.md, "Sales processes"): the stage path
//! across the top (done ✓ / current / upcoming, won and lost in their colours) whose steps
//! are the transition buttons, one form posting `to` (and an optional comment) to the
//! record's transition route.

use keel_meta::{Object, Outcome, Process};
use serde::Serialize;
use serde_json::Value as Json;

use super::Formatter;

/// What a record page shows of the process that owns its object.
#[derive(Debug, Serialize)]
pub struct RecordProcess {
    /// The process's label.
    pub label: String,
    /// The route the transition form posts to.
    pub action: String,
    pub path: Vec<PathStep>,
    /// Whether the path offers any move (the form is left out otherwise).
    pub movable: bool,
}

/// One stage on the path.
#[derive(Debug, Serialize)]
pub struct PathStep {
    pub key: String,
    pub label: String,
    /// `done`, `current` or `upcoming`.
    pub state: &'static str,
    /// `won`, `lost` or empty.
    pub outcome: &'static str,
    /// Whether the step is a button that moves the record there.
    pub target: bool,
}

/// The process part of `record`'s page, when a process owns `object`. `may_edit`: whether
/// the viewer may edit the record at all (without it, the path is only shown).
pub fn record_part(
    process: &Process,
    object: &Object,
    record: &Json,
    formatter: &Formatter,
    may_edit: bool,
) -> RecordProcess {
    let id = record.get("id").and_then(Json::as_str).unwrap_or("");
    let current = record
        .get(&process.stage_field)
        .and_then(Json::as_str)
        .unwrap_or("");
    let at = process.stages.iter().position(|stage| stage.key == current);
    let won = at
        .and_then(|index| process.stages.get(index))
        .is_some_and(|stage| stage.outcome == Some(Outcome::Won));
    let path: Vec<PathStep> = process
        .stages
        .iter()
        .enumerate()
        .map(|(index, stage)| {
            let state = match at {
                Some(at) if index == at => "current",
                // Every open stage lies behind a won deal; a lost one keeps its place.
                Some(_) if won && stage.outcome.is_none() => "done",
                Some(at) if index < at && stage.outcome.is_none() => "done",
                _ => "upcoming",
            };
            PathStep {
                key: stage.key.clone(),
                label: formatter.label(stage.label.as_ref(), &stage.key),
                state,
                outcome: match stage.outcome {
                    Some(Outcome::Won) => "won",
                    Some(Outcome::Lost) => "lost",
                    None => "",
                },
                target: may_edit && state != "current",
            }
        })
        .collect();
    RecordProcess {
        label: formatter.label(process.label.as_ref(), &process.name),
        action: format!("/app/{}/{id}/transition", object.name),
        movable: path.iter().any(|step| step.target),
        path,
    }
}
