//! Span-preserving edits of YAML files: what the studio's forms use to change an app's
//! metadata without rewriting the files around the change.
//!
//! An [`Edit`] names a node by a JSON pointer (`/fields/phone/label/zh`, `/stages/2`) and
//! sets it, inserts or removes a mapping key, or inserts, removes or moves a sequence item.
//! [`apply`] changes only the bytes of the edited node (for a removal, its lines): comments,
//! blank lines, key order, quoting and the style of everything else stay as they were. A new
//! value is written in block style at the indentation the file uses, in flow style where the
//! value it replaces was (or, for a new entry or item, where most of its siblings are), and
//! its strings are quoted only when YAML would otherwise read them as another type.
//!
//! Every edit is checked: the new text is parsed again and must hold exactly the old value
//! with the edit applied (as [`apply_to_value`] computes it), else the edit fails rather than
//! produce a file that means something else. [`rewrite`] turns a whole new value of a file
//! into the fewest edits ([`diff`]) and applies them; the form operations (`crate::forms`)
//! work that way.
//!
//! What it does not do: check the result against Keel's schemas (the loader does that), or
//! edit files that use YAML tags, aliases or complex keys (an error says so).

mod diff;
mod render;
mod tree;

use serde_json::Value;

use crate::source::SourceDocument;
pub use diff::diff;
use render::{Indentation, Renderer, Shape, Written};
use tree::{
    Entry, Item, Kind, Node, ScalarStyle, first_on_line, line_end, line_start, next_line_start,
};

/// One change to a YAML file. Paths are JSON pointers (RFC 6901): `""` is the whole file,
/// `/a/b` the key `b` of the mapping at `/a`, `/a/0` the first item of the sequence at `/a`.
#[derive(Debug, Clone, PartialEq)]
pub enum Edit {
    /// Sets the node at `path` to `value` (a scalar or a whole subtree). A missing last key
    /// of an existing mapping is inserted at its end.
    Set { path: String, value: Value },
    /// Inserts `key: value` into the mapping at `path`, after the key `after` or at the end.
    Insert {
        path: String,
        key: String,
        value: Value,
        after: Option<String>,
    },
    /// Removes the mapping entry or sequence item at `path`.
    Remove { path: String },
    /// Inserts `value` into the sequence at `path` so that it becomes item `index`
    /// (`index` = the length appends).
    InsertItem {
        path: String,
        index: usize,
        value: Value,
    },
    /// Appends `value` to the sequence at `path`.
    Append { path: String, value: Value },
    /// Moves item `from` of the sequence at `path` so that it becomes item `to`, its text
    /// (with its comments) moving with it.
    MoveItem {
        path: String,
        from: usize,
        to: usize,
    },
}

impl Edit {
    pub fn path(&self) -> &str {
        match self {
            Edit::Set { path, .. }
            | Edit::Insert { path, .. }
            | Edit::Remove { path }
            | Edit::InsertItem { path, .. }
            | Edit::Append { path, .. }
            | Edit::MoveItem { path, .. } => path,
        }
    }
}

/// Why an edit could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct EditError {
    /// The JSON pointer of the edit.
    pub path: String,
    pub message: String,
}

impl EditError {
    fn new(path: &str, message: impl Into<String>) -> EditError {
        EditError {
            path: path.to_owned(),
            message: message.into(),
        }
    }
}

/// Applies `edits` in order to the YAML `text`.
pub fn apply(text: &str, edits: &[Edit]) -> Result<String, EditError> {
    let value = read_value(text, edits.first().map_or("", Edit::path))?;
    apply_from(text, value, edits)
}

/// The whole new value of a file, written into its text with the fewest edits.
pub fn rewrite(text: &str, new_value: &Value) -> Result<String, EditError> {
    let old_value = read_value(text, "")?;
    let edits = diff(&old_value, new_value);
    apply_from(text, old_value, &edits)
}

/// Applies `edits` to `text`, whose value is `value`.
fn apply_from(text: &str, mut value: Value, edits: &[Edit]) -> Result<String, EditError> {
    let mut text = text.to_owned();
    for edit in edits {
        (text, value) = apply_one(&text, value, edit)?;
    }
    Ok(text)
}

/// A new file holding `value`, in block style with two-space indentation.
pub fn render_document(value: &Value) -> String {
    Renderer {
        indentation: Indentation {
            mapping_step: 2,
            sequence_offset: 2,
        },
    }
    .document(value)
}

/// What `edit` does to a value: the meaning [`apply`] keeps in the text.
pub fn apply_to_value(value: &mut Value, edit: &Edit) -> Result<(), EditError> {
    let path = edit.path();
    let fail = |message: &str| EditError::new(path, message);
    match edit {
        Edit::Set { path, value: new } => {
            if path.is_empty() {
                *value = new.clone();
                return Ok(());
            }
            let (parent, last) = split_pointer(path).ok_or_else(|| fail("not a JSON pointer"))?;
            let target = value.pointer_mut(parent);
            match target {
                Some(Value::Null) => {
                    let mut map = serde_json::Map::new();
                    map.insert(last, new.clone());
                    if let Some(target) = value.pointer_mut(parent) {
                        *target = Value::Object(map);
                    }
                    Ok(())
                }
                Some(Value::Object(map)) => {
                    map.insert(last, new.clone());
                    Ok(())
                }
                Some(Value::Array(items)) => {
                    let slot = index_of(&last)
                        .and_then(|index| items.get_mut(index))
                        .ok_or_else(|| fail("no such item"))?;
                    *slot = new.clone();
                    Ok(())
                }
                _ => Err(fail("no mapping or sequence holds this path")),
            }
        }
        Edit::Insert {
            key,
            value: new,
            after,
            ..
        } => {
            let target = value
                .pointer_mut(path)
                .ok_or_else(|| fail("no such node"))?;
            if target.is_null() {
                *target = Value::Object(serde_json::Map::new());
            }
            let Value::Object(map) = target else {
                return Err(fail("not a mapping"));
            };
            if map.contains_key(key) {
                return Err(fail(&format!("the key `{key}` is already there")));
            }
            let position = match after {
                Some(after) => {
                    map.keys()
                        .position(|known| known == after)
                        .ok_or_else(|| fail(&format!("no key `{after}` to insert after")))?
                        + 1
                }
                None => map.len(),
            };
            map.shift_insert(position, key.clone(), new.clone());
            Ok(())
        }
        Edit::Remove { .. } => {
            let (parent, last) = split_pointer(path).ok_or_else(|| fail("not a JSON pointer"))?;
            match value.pointer_mut(parent) {
                Some(Value::Object(map)) => map
                    .shift_remove(&last)
                    .map(drop)
                    .ok_or_else(|| fail("no such key")),
                Some(Value::Array(items)) => match index_of(&last) {
                    Some(index) if index < items.len() => {
                        items.remove(index);
                        Ok(())
                    }
                    _ => Err(fail("no such item")),
                },
                _ => Err(fail("no mapping or sequence holds this path")),
            }
        }
        Edit::InsertItem {
            index, value: new, ..
        } => {
            let items = sequence_mut(value, path)?;
            if *index > items.len() {
                return Err(fail("the index is past the end of the sequence"));
            }
            items.insert(*index, new.clone());
            Ok(())
        }
        Edit::Append { value: new, .. } => {
            sequence_mut(value, path)?.push(new.clone());
            Ok(())
        }
        Edit::MoveItem { from, to, .. } => {
            let items = sequence_mut(value, path)?;
            if *from >= items.len() || *to >= items.len() {
                return Err(fail("no such item"));
            }
            let item = items.remove(*from);
            items.insert(*to, item);
            Ok(())
        }
    }
}

fn sequence_mut<'v>(value: &'v mut Value, path: &str) -> Result<&'v mut Vec<Value>, EditError> {
    let target = value
        .pointer_mut(path)
        .ok_or_else(|| EditError::new(path, "no such node"))?;
    if target.is_null() {
        *target = Value::Array(Vec::new());
    }
    target
        .as_array_mut()
        .ok_or_else(|| EditError::new(path, "not a sequence"))
}

/// Applies one edit to `text` (whose value is `value`) and checks that the new text means
/// the old value with the edit applied; returns the new text and its value.
fn apply_one(text: &str, value: Value, edit: &Edit) -> Result<(String, Value), EditError> {
    let path = edit.path();
    let mut expected = value;
    apply_to_value(&mut expected, edit)?;
    let root = tree::parse(text).map_err(|message| EditError::new(path, message))?;
    let editor = Editor {
        text,
        renderer: Renderer {
            indentation: Indentation::of(&root, text),
        },
        root: &root,
    };
    let new_text = editor.edit(edit)?;
    let actual = read_value(&new_text, path)?;
    if actual != expected {
        return Err(EditError::new(
            path,
            "the edit could not be written without changing the file's meaning elsewhere",
        ));
    }
    Ok((new_text, actual))
}

fn read_value(text: &str, path: &str) -> Result<Value, EditError> {
    SourceDocument::parse(text)
        .map(|document| document.value)
        .map_err(|error| {
            EditError::new(
                path,
                format!(
                    "{}:{}: {}",
                    error.position.line, error.position.column, error.message
                ),
            )
        })
}

/// `/a/b~1c` → (`/a`, `b/c`).
fn split_pointer(path: &str) -> Option<(&str, String)> {
    let cut = path.rfind('/')?;
    let last = path[cut + 1..].replace("~1", "/").replace("~0", "~");
    Some((&path[..cut], last))
}

fn segments(path: &str) -> Result<Vec<String>, EditError> {
    if path.is_empty() {
        return Ok(Vec::new());
    }
    if !path.starts_with('/') {
        return Err(EditError::new(
            path,
            "a path is a JSON pointer starting with `/`",
        ));
    }
    Ok(path[1..]
        .split('/')
        .map(|segment| segment.replace("~1", "/").replace("~0", "~"))
        .collect())
}

fn index_of(segment: &str) -> Option<usize> {
    if segment.len() > 1 && segment.starts_with('0') {
        return None;
    }
    segment.parse().ok()
}

/// A node's place: the entry or item that holds it in its parent.
enum Slot<'n> {
    Root,
    Entry {
        parent: &'n Node,
        index: usize,
        entry: &'n Entry,
    },
    Item {
        parent: &'n Node,
        index: usize,
        item: &'n Item,
    },
}

struct Editor<'a> {
    text: &'a str,
    renderer: Renderer,
    root: &'a Node,
}

/// What an insertion puts in: a value to render, or text moved from elsewhere in the file.
enum Payload<'v> {
    Value(&'v Value),
    /// Lines (of a block sequence item) or the text (of a flow item), as they were.
    Moved(String),
}

impl Editor<'_> {
    fn edit(&self, edit: &Edit) -> Result<String, EditError> {
        match edit {
            Edit::Set { path, value } => self.set(path, value),
            Edit::Insert {
                path,
                key,
                value,
                after,
            } => self.insert(path, key, value, after.as_deref()),
            Edit::Remove { path } => self.remove(path),
            Edit::InsertItem { path, index, value } => {
                self.insert_item(path, *index, Payload::Value(value))
            }
            Edit::Append { path, value } => {
                let length = match &self.node(path)?.kind {
                    Kind::Sequence { items, .. } => items.len(),
                    _ => 0,
                };
                self.insert_item(path, length, Payload::Value(value))
            }
            Edit::MoveItem { path, from, to } => self.move_item(path, *from, *to),
        }
    }

    fn node(&self, path: &str) -> Result<&Node, EditError> {
        let mut node = self.root;
        for segment in segments(path)? {
            node = child(node, &segment)
                .map(|(_, slot)| match slot {
                    Slot::Entry { entry, .. } => &entry.value,
                    Slot::Item { item, .. } => &item.value,
                    Slot::Root => node,
                })
                .ok_or_else(|| EditError::new(path, "no such node"))?;
        }
        Ok(node)
    }

    /// The node at `path` and its slot; `Err(parent)` when the last key is missing from an
    /// existing mapping (or an empty value, which an insertion makes a mapping).
    fn slot(&self, path: &str) -> Result<Result<(&Node, Slot<'_>), &Node>, EditError> {
        let segments = segments(path)?;
        let Some((last, parents)) = segments.split_last() else {
            return Ok(Ok((self.root, Slot::Root)));
        };
        let mut node = self.root;
        for segment in parents {
            node = match child(node, segment) {
                Some((child, _)) => child,
                None => return Err(EditError::new(path, "no such node")),
            };
        }
        match child(node, last) {
            Some(found) => Ok(Ok(found)),
            None if matches!(
                node.kind,
                Kind::Mapping { .. } | Kind::Scalar(ScalarStyle::Empty)
            ) =>
            {
                Ok(Err(node))
            }
            None => Err(EditError::new(path, "no such node")),
        }
    }

    /// The shape of a new value under `parent_path` (at `key` of a mapping, or as an item):
    /// that of the same key in the parent's siblings (a new field's `options` are written like
    /// other fields' options), else that of its own siblings when they are all collections
    /// of its kind (a new field like the other fields), else block style.
    fn new_shape(&self, parent_path: &str, key: Option<&str>, value: &Value) -> Shape {
        if let (Some(key), Some((grandparent_path, _))) = (key, split_pointer(parent_path))
            && let Ok(grandparent) = self.node(grandparent_path)
        {
            let cousins: Vec<&Node> = child_nodes(grandparent)
                .into_iter()
                .filter_map(|uncle| child(uncle, key).map(|(cousin, _)| cousin))
                .filter(|cousin| same_kind(cousin, value))
                .collect();
            if let Some(shape) = Shape::of_siblings(cousins.into_iter()) {
                return shape;
            }
        }
        if let Ok(parent) = self.node(parent_path) {
            let siblings = child_nodes(parent);
            if !siblings.is_empty() && siblings.iter().all(|sibling| same_kind(sibling, value)) {
                return Shape::of_siblings(siblings.into_iter()).unwrap_or_default();
            }
        }
        Shape::default()
    }

    fn set(&self, path: &str, value: &Value) -> Result<String, EditError> {
        let (node, slot) = match self.slot(path)? {
            Ok(found) => found,
            Err(_) => {
                let (parent, key) = split_pointer(path)
                    .ok_or_else(|| EditError::new(path, "not a JSON pointer"))?;
                return self.insert(parent, &key, value, None);
            }
        };
        let shape = match (&slot, &node.kind) {
            (_, Kind::Mapping { .. } | Kind::Sequence { .. }) | (Slot::Root, _) => Shape::of(node),
            (Slot::Entry { entry, .. }, Kind::Scalar(_)) => {
                let parent = split_pointer(path).map_or("", |(parent, _)| parent);
                self.new_shape(parent, Some(&entry.key), value)
            }
            (Slot::Item { .. }, Kind::Scalar(_)) => {
                let parent = split_pointer(path).map_or("", |(parent, _)| parent);
                self.new_shape(parent, None, value)
            }
        };
        self.replace(node, &slot, value, &shape)
    }

    /// Writes `value` in place of `node`.
    fn replace(
        &self,
        node: &Node,
        slot: &Slot<'_>,
        value: &Value,
        shape: &Shape,
    ) -> Result<String, EditError> {
        let text = self.text;
        let (attach, column, on_dash_line) = match slot {
            Slot::Root if matches!(node.kind, Kind::Scalar(ScalarStyle::Empty)) => {
                // A file of comments only: the value goes after them.
                let separator = if text.is_empty() || text.ends_with('\n') {
                    ""
                } else {
                    "\n"
                };
                let document = self.renderer.document(value);
                return Ok(splice(
                    text,
                    text.len(),
                    text.len(),
                    &format!("{separator}{document}"),
                ));
            }
            Slot::Root => {
                let mut new_text = self.renderer.document(value);
                if text[node.end..].trim().is_empty() {
                    return Ok(new_text);
                }
                // Keep what follows the root (a trailing comment).
                new_text.pop();
                return Ok(splice(text, node.start, node.end, &new_text));
            }
            Slot::Entry { parent, .. } | Slot::Item { parent, .. } if parent.is_flow() => {
                let written =
                    same_quotes(text, node, value).unwrap_or_else(|| render::inline(value, true));
                return Ok(splice(text, node.start, node.end, &written));
            }
            Slot::Entry { entry, .. } => (
                entry.colon + 1,
                tree::column_of(text, entry.key_start),
                false,
            ),
            Slot::Item { item, .. } => {
                let dash = item.dash.unwrap_or(node.start);
                (dash + 1, tree::column_of(text, dash), true)
            }
        };
        let same_kind = matches!(
            (&node.kind, value),
            (Kind::Mapping { flow: false, .. }, Value::Object(_))
                | (Kind::Sequence { flow: false, .. }, Value::Array(_))
        );
        let indent = if on_dash_line {
            column + 2
        } else if same_kind {
            tree::column_of(text, node.start)
        } else {
            self.renderer.child_indent(value, column)
        };
        let written = match same_quotes(text, node, value) {
            Some(quoted) => Written::Inline(quoted),
            None => self.renderer.value(value, shape, indent),
        };
        let inline_old = matches!(node.kind, Kind::Scalar(ScalarStyle::Inline)) || node.is_flow();
        match written {
            Written::Inline(written) if inline_old => {
                Ok(splice(text, node.start, node.end, &written))
            }
            Written::Inline(written) => Ok(splice(text, attach, node.end, &format!(" {written}"))),
            Written::Block(lines)
                if same_kind && first_on_line(text, node.start) != on_dash_line =>
            {
                let joined = lines.join("\n");
                Ok(splice(
                    text,
                    node.start,
                    node.end,
                    joined.trim_start_matches(' '),
                ))
            }
            Written::Block(mut lines) => {
                // A comment after the old value stays on the first line.
                let (end, comment) = trailing_comment(text, node.end);
                let written = if on_dash_line {
                    if let Some(first) = lines.first_mut() {
                        *first = format!(" {}{comment}", first.trim_start_matches(' '));
                    }
                    lines.join("\n")
                } else {
                    format!("{comment}\n{}", lines.join("\n"))
                };
                Ok(splice(text, attach, end, &written))
            }
            Written::Literal(header, lines) => {
                let (end, comment) = trailing_comment(text, node.end);
                let written = format!(" {header}{comment}\n{}", lines.join("\n"));
                Ok(splice(text, attach, end, &written))
            }
        }
    }

    fn insert(
        &self,
        path: &str,
        key: &str,
        value: &Value,
        after: Option<&str>,
    ) -> Result<String, EditError> {
        let text = self.text;
        let node = self.node(path)?;
        let Kind::Mapping { flow, entries } = &node.kind else {
            if matches!(node.kind, Kind::Scalar(ScalarStyle::Empty)) || is_null(text, node) {
                let mut map = serde_json::Map::new();
                map.insert(key.to_owned(), value.clone());
                return self.set(path, &Value::Object(map));
            }
            return Err(EditError::new(path, "not a mapping"));
        };
        let anchor = match after {
            Some(after) => entries
                .iter()
                .find(|entry| entry.key == after)
                .ok_or_else(|| EditError::new(path, format!("no key `{after}` to insert after")))?,
            None => match entries.last() {
                Some(last) => last,
                None => {
                    let mut map = serde_json::Map::new();
                    map.insert(key.to_owned(), value.clone());
                    return self.set(path, &Value::Object(map));
                }
            },
        };
        let shape = self.new_shape(path, Some(key), value);
        if *flow && !text[node.start..].starts_with('{') {
            // A mapping without braces in a flow sequence (`[a: 1]`) gets them.
            let mut map = serde_json::Map::new();
            for entry in entries {
                let (start, end) = (entry.value.start, entry.value.end);
                let old = read_value(&format!("k: {}", &text[start..end]), path)?;
                map.insert(entry.key.clone(), old["k"].clone());
            }
            map.insert(key.to_owned(), value.clone());
            return self.set(path, &Value::Object(map));
        }
        if *flow {
            let written = format!(
                ", {}: {}",
                render::scalar_text(key, true),
                render::inline(value, true)
            );
            return Ok(splice(text, anchor.end(), anchor.end(), &written));
        }
        let column = tree::column_of(text, anchor.key_start);
        let lines = self.renderer.entry_lines(key, value, &shape, column);
        let position = line_end(text, anchor.end());
        Ok(splice(
            text,
            position,
            position,
            &format!("\n{}", lines.join("\n")),
        ))
    }

    fn remove(&self, path: &str) -> Result<String, EditError> {
        let text = self.text;
        let (_, slot) = self
            .slot(path)?
            .map_err(|_| EditError::new(path, "no such node"))?;
        let (parent, index, start, end, count) = match &slot {
            Slot::Root => return Err(EditError::new(path, "the whole file cannot be removed")),
            Slot::Entry {
                parent,
                index,
                entry,
            } => (
                *parent,
                *index,
                entry.key_start,
                entry.end(),
                children(parent),
            ),
            Slot::Item {
                parent,
                index,
                item,
            } => (*parent, *index, item.start(), item.end(), children(parent)),
        };
        let parent_path = split_pointer(path).map_or("", |(parent, _)| parent);
        if count == 1 {
            let empty = match parent.kind {
                Kind::Mapping { .. } => Value::Object(serde_json::Map::new()),
                _ => Value::Array(Vec::new()),
            };
            return self.set(parent_path, &empty);
        }
        let sibling_start = |index: usize| child_start(parent, index);
        let sibling_end = |index: usize| child_end(parent, index);
        if parent.is_flow() {
            if index > 0 {
                let previous_end = sibling_end(index - 1).unwrap_or(start);
                return Ok(splice(text, previous_end, end, ""));
            }
            let next = sibling_start(index + 1).unwrap_or(end);
            return Ok(splice(text, start, next, ""));
        }
        if first_on_line(text, start) {
            let from = line_start(text, start);
            let to = line_end(text, end);
            let next = next_line_start(text, to);
            return Ok(if next > to {
                splice(text, from, next, "")
            } else {
                // The last line, without a line break: the one before it goes instead.
                let previous_end = from.checked_sub(1).map_or(0, |last| line_end(text, last));
                splice(text, previous_end, to, "")
            });
        }
        // The first entry of a mapping on its item's dash line: the next entry moves up.
        match sibling_start(index + 1) {
            Some(next) => Ok(splice(text, start, next, "")),
            None => Err(EditError::new(path, "this entry's layout is not supported")),
        }
    }

    fn insert_item(
        &self,
        path: &str,
        index: usize,
        payload: Payload<'_>,
    ) -> Result<String, EditError> {
        let text = self.text;
        let node = self.node(path)?;
        let items = match &node.kind {
            Kind::Sequence { items, .. } if !items.is_empty() => items,
            Kind::Sequence { .. } | Kind::Scalar(ScalarStyle::Empty) => {
                return match payload {
                    Payload::Value(value) if index == 0 => {
                        self.set(path, &Value::Array(vec![value.clone()]))
                    }
                    _ => Err(EditError::new(
                        path,
                        "the index is past the end of the sequence",
                    )),
                };
            }
            Kind::Scalar(_) if is_null(text, node) && index == 0 => {
                return match payload {
                    Payload::Value(value) => self.set(path, &Value::Array(vec![value.clone()])),
                    Payload::Moved(_) => Err(EditError::new(path, "not a sequence")),
                };
            }
            _ => return Err(EditError::new(path, "not a sequence")),
        };
        if index > items.len() {
            return Err(EditError::new(
                path,
                "the index is past the end of the sequence",
            ));
        }
        let shape = match &payload {
            Payload::Value(value) => self.new_shape(path, None, value),
            Payload::Moved(_) => Shape::default(),
        };
        if node.is_flow() {
            let written = match payload {
                Payload::Value(value) => render::inline(value, true),
                Payload::Moved(moved) => moved,
            };
            return Ok(match items.get(index) {
                Some(item) => splice(
                    text,
                    item.value.start,
                    item.value.start,
                    &format!("{written}, "),
                ),
                None => {
                    let end = items.last().map_or(node.start + 1, Item::end);
                    splice(text, end, end, &format!(", {written}"))
                }
            });
        }
        let dash = items[0].start();
        let lines = match payload {
            Payload::Value(value) => self
                .renderer
                .item_lines(value, &shape, tree::column_of(text, dash))
                .join("\n"),
            Payload::Moved(moved) => moved,
        };
        match items.get(index) {
            Some(item) if first_on_line(text, item.start()) => {
                let position = line_start(text, item.start());
                Ok(splice(text, position, position, &format!("{lines}\n")))
            }
            Some(item) => {
                // The first item on its parent's dash line (`- - a`): the new item takes its
                // place there and it moves to the next line.
                let pad = " ".repeat(tree::column_of(text, item.start()));
                let written = format!("{}\n{pad}", lines.trim_start_matches(' '));
                Ok(splice(text, item.start(), item.start(), &written))
            }
            None => {
                let position = items
                    .last()
                    .map_or(node.end, |last| line_end(text, last.end()));
                Ok(splice(text, position, position, &format!("\n{lines}")))
            }
        }
    }

    fn move_item(&self, path: &str, from: usize, to: usize) -> Result<String, EditError> {
        let text = self.text;
        let node = self.node(path)?;
        let Kind::Sequence { items, .. } = &node.kind else {
            return Err(EditError::new(path, "not a sequence"));
        };
        let (Some(item), true) = (items.get(from), to < items.len()) else {
            return Err(EditError::new(path, "no such item"));
        };
        if from == to {
            return Ok(text.to_owned());
        }
        let moved = if node.is_flow() {
            text[item.value.start..item.value.end].to_owned()
        } else {
            // The item's lines, the first one indented even on its parent's dash line.
            let pad = " ".repeat(tree::column_of(text, item.start()));
            format!("{pad}{}", &text[item.start()..line_end(text, item.end())])
        };
        let removed = self.remove(&format!("{path}/{from}"))?;
        let root = tree::parse(&removed).map_err(|message| EditError::new(path, message))?;
        let editor = Editor {
            text: &removed,
            renderer: Renderer {
                indentation: self.renderer.indentation,
            },
            root: &root,
        };
        editor.insert_item(path, to, Payload::Moved(moved))
    }
}

fn child<'n>(node: &'n Node, segment: &str) -> Option<(&'n Node, Slot<'n>)> {
    match &node.kind {
        Kind::Mapping { entries, .. } => entries
            .iter()
            .enumerate()
            .find(|(_, entry)| entry.key == segment)
            .map(|(index, entry)| {
                (
                    &entry.value,
                    Slot::Entry {
                        parent: node,
                        index,
                        entry,
                    },
                )
            }),
        Kind::Sequence { items, .. } => {
            let index = index_of(segment)?;
            items.get(index).map(|item| {
                (
                    &item.value,
                    Slot::Item {
                        parent: node,
                        index,
                        item,
                    },
                )
            })
        }
        Kind::Scalar(_) => None,
    }
}

fn child_nodes(node: &Node) -> Vec<&Node> {
    match &node.kind {
        Kind::Mapping { entries, .. } => entries.iter().map(|entry| &entry.value).collect(),
        Kind::Sequence { items, .. } => items.iter().map(|item| &item.value).collect(),
        Kind::Scalar(_) => Vec::new(),
    }
}

fn same_kind(node: &Node, value: &Value) -> bool {
    matches!(
        (&node.kind, value),
        (Kind::Mapping { .. }, Value::Object(_)) | (Kind::Sequence { .. }, Value::Array(_))
    )
}

fn children(node: &Node) -> usize {
    match &node.kind {
        Kind::Mapping { entries, .. } => entries.len(),
        Kind::Sequence { items, .. } => items.len(),
        Kind::Scalar(_) => 0,
    }
}

fn child_start(node: &Node, index: usize) -> Option<usize> {
    match &node.kind {
        Kind::Mapping { entries, .. } => entries.get(index).map(|entry| entry.key_start),
        Kind::Sequence { items, .. } => items.get(index).map(Item::start),
        Kind::Scalar(_) => None,
    }
}

fn child_end(node: &Node, index: usize) -> Option<usize> {
    match &node.kind {
        Kind::Mapping { entries, .. } => entries.get(index).map(Entry::end),
        Kind::Sequence { items, .. } => items.get(index).map(Item::end),
        Kind::Scalar(_) => None,
    }
}

/// A string replacing a quoted string, in the same quotes.
fn same_quotes(text: &str, node: &Node, value: &Value) -> Option<String> {
    let Value::String(new) = value else {
        return None;
    };
    if !matches!(node.kind, Kind::Scalar(ScalarStyle::Inline)) {
        return None;
    }
    match text[node.start..].chars().next() {
        Some(quote @ ('"' | '\'')) => Some(render::quoted(new, quote)),
        _ => None,
    }
}

/// Whether a scalar node is written as null (`~`, `null`).
fn is_null(text: &str, node: &Node) -> bool {
    matches!(node.kind, Kind::Scalar(_))
        && matches!(
            &text[node.start..node.end],
            "" | "~" | "null" | "Null" | "NULL"
        )
}

/// A comment after `end` on its line: the line's end and the comment with the spaces
/// before it; else `end` and nothing.
fn trailing_comment(text: &str, end: usize) -> (usize, String) {
    let stop = line_end(text, end);
    let rest = &text[end..stop];
    if rest.trim_start().starts_with('#') {
        (stop, rest.trim_end().to_owned())
    } else {
        (end, String::new())
    }
}

/// `text` with `start..end` replaced by `with`, whose line breaks become `\r\n` in a file
/// that uses them.
fn splice(text: &str, start: usize, end: usize, with: &str) -> String {
    let mut new_text = String::with_capacity(text.len() + with.len());
    new_text.push_str(&text[..start]);
    if text.contains("\r\n") {
        new_text.push_str(&with.replace("\r\n", "\n").replace('\n', "\r\n"));
    } else {
        new_text.push_str(with);
    }
    new_text.push_str(&text[end..]);
    new_text
}

#[cfg(test)]
mod tests;
