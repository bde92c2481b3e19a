//! The studio's pool, process, rule and role editors (`processes`, `pools`, `rules`,
//! `roles`): their routes, and what they share: the version a form was made against, the form's errors by field, the indexes of a form's repeated groups
//! (`stages/3/key`), and the submit buttons that change a form without saving it
//! (`op=up:3`).
//!
//! Every one of these editors is a plain HTML form: a button such as "move up" or "add a
//! stage" posts the whole form with `op` naming what to do, and the page comes back with the
//! change made and nothing saved, so the editors work without JavaScript. The `save` op (the
//! form's default button, also what pressing Enter sends) runs the form operation and shows
//! the review.

use std::collections::{BTreeMap, BTreeSet};

use axum::Router;
use axum::routing::get;
use keel_meta::forms::FormError;
use serde::Serialize;

use super::{pools, processes, roles, rules};
use crate::AppState;
use crate::pages::{PageError, PageForm};

/// The editors' routes; [`super::routes`] merges them.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/admin/studio/processes/{process}",
            get(processes::page).post(processes::save),
        )
        .route(
            "/admin/studio/pools/{pool}",
            get(pools::page).post(pools::save),
        )
        .route(
            "/admin/studio/rules/{rule}",
            get(rules::page).post(rules::save),
        )
        .route(
            "/admin/studio/roles/{role}",
            get(roles::page).post(roles::save),
        )
}

/// The most items of one repeated group a form may send (stages, steps, return rules): far
/// more than any app has, and a bound on the work one post can cause.
pub const MAX_ITEMS: usize = 200;

/// The version the form was filled from (its hidden `base`): the review's apply is made
/// against it, so a change someone else applied in between is a conflict, not overwritten.
pub fn base(form: &PageForm) -> Result<i64, PageError> {
    form.get("base")
        .and_then(|base| base.trim().parse::<i64>().ok())
        .ok_or(PageError::BadForm)
}

/// A form's values by name: the first value of each, and every value of a multi-select.
pub struct Values<'a> {
    form: &'a PageForm,
}

impl<'a> Values<'a> {
    pub fn new(form: &'a PageForm) -> Values<'a> {
        Values { form }
    }

    /// The text of `name`, empty when the form lacks it.
    pub fn text(&self, name: &str) -> String {
        self.form.get(name).unwrap_or_default().to_owned()
    }

    /// The trimmed text of `name`.
    pub fn trimmed(&self, name: &str) -> String {
        self.form.get(name).unwrap_or_default().trim().to_owned()
    }

    /// Whether the checkbox `name` is ticked.
    pub fn checked(&self, name: &str) -> bool {
        self.form.get(name).is_some_and(|value| !value.is_empty())
    }

    /// Every non-empty value of `name` (a multi-select, checkboxes of one name), each once.
    pub fn all(&self, name: &str) -> Vec<String> {
        let mut values: Vec<String> = Vec::new();
        for value in self.form.all(name) {
            let value = value.trim();
            if !value.is_empty() && !values.iter().any(|known| known == value) {
                values.push(value.to_owned());
            }
        }
        values
    }

    /// The indexes `i` of the names `{prefix}/{i}/…` and `{prefix}/{i}` in the form, in
    /// order: the items of a repeated group. More than [`MAX_ITEMS`] is a bad form.
    pub fn indexes(&self, prefix: &str) -> Result<Vec<usize>, PageError> {
        let start = format!("{prefix}/");
        let mut indexes = BTreeSet::new();
        for (name, _) in &self.form.fields {
            let Some(rest) = name.strip_prefix(&start) else {
                continue;
            };
            let number = rest.split('/').next().unwrap_or_default();
            if let Ok(index) = number.parse::<usize>() {
                indexes.insert(index);
                if indexes.len() > MAX_ITEMS {
                    return Err(PageError::BadForm);
                }
            }
        }
        Ok(indexes.into_iter().collect())
    }
}

/// What a button of the form asks for: `op=up:3` is `Op { name: "up", args: [3] }`; no `op`
/// (or `save`) saves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    pub name: String,
    pub args: Vec<usize>,
}

impl Op {
    pub fn of(form: &PageForm) -> Result<Op, PageError> {
        let text = form.get("op").unwrap_or("save");
        let mut parts = text.split(':');
        let name = parts.next().unwrap_or_default().to_owned();
        let args = parts
            .map(|part| part.parse::<usize>().map_err(|_| PageError::BadForm))
            .collect::<Result<Vec<_>, _>>()?;
        if name.is_empty() || args.len() > 2 {
            return Err(PageError::BadForm);
        }
        Ok(Op { name, args })
    }

    pub fn is_save(&self) -> bool {
        self.name == "save"
    }

    /// The first argument, when it is an index below `len`.
    pub fn index(&self, len: usize) -> Option<usize> {
        self.args.first().copied().filter(|index| *index < len)
    }
}

/// A form operation's changed files as the review takes them (none is deleted).
pub fn changed_files(changes: keel_meta::forms::Changes) -> keel_runtime::metadata::Changes {
    changes
        .into_iter()
        .map(|(path, text)| (path, Some(text)))
        .collect()
}

/// A filter or the actions of a form as YAML text for a textarea (nothing for none).
pub fn yaml_text(value: &serde_json::Value) -> String {
    if value.is_null() {
        return String::new();
    }
    serde_yaml::to_string(value).unwrap_or_default()
}

/// The YAML (or JSON) text of the textarea `field`: `None` when it is empty, an error at
/// `field` with the line and column when it does not parse.
pub fn parse_yaml(field: &str, text: &str) -> Result<Option<serde_json::Value>, FormError> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    serde_yaml::from_str::<serde_json::Value>(text)
        .map(Some)
        .map_err(|error| FormError {
            field: field.to_owned(),
            // The parser's message names the line and column.
            message: error.to_string(),
        })
}

/// The values a multi-select or a group of checkboxes sent (in the order of its options), in
/// the order the file lists them: the values the file has keep its order, new ones follow in
/// the form's. A list the form did not change is written as it was.
pub fn in_file_order(file: &[String], form: &[String]) -> Vec<String> {
    file.iter()
        .filter(|value| form.contains(value))
        .chain(form.iter().filter(|value| !file.contains(value)))
        .cloned()
        .collect()
}

/// Moves item `index` one place up (`up`) or down; out of range does nothing.
pub fn move_item<T>(items: &mut [T], index: usize, up: bool) {
    if up && index > 0 && index < items.len() {
        items.swap(index - 1, index);
    } else if !up && index + 1 < items.len() {
        items.swap(index, index + 1);
    }
}

/// A form's errors: form field → message. `_form` holds one that no field of the form shows.
pub type Errors = BTreeMap<String, String>;

/// The names of a form's controls that take several values: an error about one of their
/// values (`stages/3/require/0`) is shown at the control (`stages/3/require`).
const MULTI_VALUED: &[&str] = &["require", "events", "hide_until_claimed", "approvers"];

/// `error` as the form's errors: at the control it names, or above the form when the form
/// shows no such control (`shown` says which it shows).
pub fn errors_of(error: &FormError, shown: impl Fn(&str) -> bool) -> Errors {
    let mut field = error.field.clone();
    if let Some((head, last)) = field.rsplit_once('/')
        && last.parse::<usize>().is_ok()
        && MULTI_VALUED
            .iter()
            .any(|name| head == *name || head.ends_with(&format!("/{name}")))
    {
        field = head.to_owned();
    }
    let key = if shown(&field) {
        field
    } else {
        "_form".to_owned()
    };
    let message = if key == "_form" {
        error.to_string()
    } else {
        error.message.clone()
    };
    Errors::from([(key, message)])
}

/// `error` with its message in `lang` when it is one of the editors' own (a catalog key:
/// `studio.workflows.error.*`); a form operation's message (naming a field or a value) is
/// shown as it is.
pub fn localized(state: &AppState, lang: &str, error: FormError) -> FormError {
    if error.message.starts_with("studio.workflows.error.") {
        let message = crate::pages::admin::tr(state, lang, &error.message, &[]);
        FormError { message, ..error }
    } else {
        error
    }
}

/// An option of a select: its value and its label.
#[derive(Debug, Clone, Serialize)]
pub struct Choice {
    pub value: String,
    pub label: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_about_one_value_of_a_multi_select_is_shown_at_the_select() {
        let error = FormError {
            field: "stages/3/require/0".to_owned(),
            message: "no field `x`".to_owned(),
        };
        let errors = errors_of(&error, |name| name == "stages/3/require");
        assert_eq!(errors["stages/3/require"], "no field `x`");
        let errors = errors_of(&error, |_| false);
        assert_eq!(errors["_form"], "stages/3/require/0: no field `x`");
        let error = FormError {
            field: "stages/3".to_owned(),
            message: "m".to_owned(),
        };
        assert_eq!(
            errors_of(&error, |name| name == "stages/3")
                .keys()
                .collect::<Vec<_>>(),
            vec!["stages/3"]
        );
    }

    #[test]
    fn a_multi_select_keeps_the_order_the_file_lists_its_values_in() {
        let strings = |values: &[&str]| -> Vec<String> {
            values.iter().map(|value| (*value).to_owned()).collect()
        };
        let file = strings(&["fee", "course_class", "phone"]);
        assert_eq!(
            in_file_order(&file, &strings(&["course_class", "fee", "phone"])),
            file
        );
        assert_eq!(
            in_file_order(&file, &strings(&["address", "course_class", "phone"])),
            strings(&["course_class", "phone", "address"])
        );
        assert!(in_file_order(&file, &[]).is_empty());
    }

    #[test]
    fn an_item_moves_one_place_and_never_out_of_the_list() {
        let mut items = vec![1, 2, 3];
        move_item(&mut items, 0, true);
        assert_eq!(items, [1, 2, 3]);
        move_item(&mut items, 2, false);
        assert_eq!(items, [1, 2, 3]);
        move_item(&mut items, 1, true);
        assert_eq!(items, [2, 1, 3]);
        move_item(&mut items, 1, false);
        assert_eq!(items, [2, 3, 1]);
        move_item(&mut items, 7, true);
        assert_eq!(items, [2, 3, 1]);
    }
}
