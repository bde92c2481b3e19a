//! Writing a JSON value as YAML text, the way the file around it is written: block style
//! at a given indentation, flow style (`{ a: 1 }`, `[a, b]`) where the template says the
//! original used it, and scalars quoted only when YAML would otherwise read them as something
//! else.

use saphyr::{LoadableYamlNode, Yaml};
use serde_json::Value;

use super::tree::{Kind, Node};

/// How the file indents: a nested block mapping's step, and how far a block sequence's
/// dashes sit right of their key (0 for `key:\n- a`, 2 for `key:\n  - a`).
#[derive(Debug, Clone, Copy)]
pub(super) struct Indentation {
    pub mapping_step: usize,
    pub sequence_offset: usize,
}

impl Indentation {
    /// Read from the first nested mapping and the first sequence under a key in the file.
    pub fn of(root: &Node, text: &str) -> Indentation {
        let mut indentation = Indentation {
            mapping_step: 0,
            sequence_offset: usize::MAX,
        };
        indentation.learn(root, text);
        if indentation.mapping_step == 0 {
            indentation.mapping_step = 2;
        }
        if indentation.sequence_offset == usize::MAX {
            indentation.sequence_offset = 2;
        }
        indentation
    }

    fn learn(&mut self, node: &Node, text: &str) {
        match &node.kind {
            Kind::Mapping {
                flow: false,
                entries,
            } => {
                for entry in entries {
                    let key_column = super::tree::column_of(text, entry.key_start);
                    let value_column = super::tree::column_of(text, entry.value.start);
                    match &entry.value.kind {
                        Kind::Mapping { flow: false, .. }
                            if self.mapping_step == 0 && value_column > key_column =>
                        {
                            self.mapping_step = value_column - key_column;
                        }
                        Kind::Sequence { flow: false, .. }
                            if self.sequence_offset == usize::MAX && value_column >= key_column =>
                        {
                            self.sequence_offset = value_column - key_column;
                        }
                        _ => {}
                    }
                    self.learn(&entry.value, text);
                }
            }
            Kind::Sequence { flow: false, items } => {
                for item in items {
                    self.learn(&item.value, text);
                }
            }
            _ => {}
        }
    }
}

/// Which parts of a value to write in flow style: taken from the node a value replaces, or
/// from its siblings when it is new.
#[derive(Debug, Clone, Default)]
pub(super) struct Shape {
    pub flow: bool,
    pub keys: Vec<(String, Shape)>,
    pub item: Option<Box<Shape>>,
}

impl Shape {
    pub fn of(node: &Node) -> Shape {
        match &node.kind {
            Kind::Scalar(_) => Shape::default(),
            Kind::Mapping { flow, entries } => Shape {
                flow: *flow,
                keys: entries
                    .iter()
                    .map(|entry| (entry.key.clone(), Shape::of(&entry.value)))
                    .collect(),
                item: None,
            },
            Kind::Sequence { flow, items } => Shape {
                flow: *flow,
                keys: Vec::new(),
                item: Shape::of_siblings(items.iter().map(|item| &item.value)).map(Box::new),
            },
        }
    }

    /// The shape most sibling collections share: flow if most of them are, with the keys of
    /// those that agree merged (the first sibling naming a key wins).
    pub fn of_siblings<'n>(siblings: impl Iterator<Item = &'n Node>) -> Option<Shape> {
        let shapes: Vec<Shape> = siblings
            .filter(|node| !matches!(node.kind, Kind::Scalar(_)))
            .map(Shape::of)
            .collect();
        if shapes.is_empty() {
            return None;
        }
        let flows = shapes.iter().filter(|shape| shape.flow).count();
        let flow = flows * 2 > shapes.len();
        let mut merged = Shape {
            flow,
            ..Shape::default()
        };
        for shape in shapes.into_iter().filter(|shape| shape.flow == flow) {
            for (key, child) in shape.keys {
                if !merged.keys.iter().any(|(known, _)| *known == key) {
                    merged.keys.push((key, child));
                }
            }
            if merged.item.is_none() {
                merged.item = shape.item;
            }
        }
        Some(merged)
    }

    fn key(&self, key: &str) -> Shape {
        self.keys
            .iter()
            .find(|(known, _)| known == key)
            .map(|(_, shape)| shape.clone())
            .unwrap_or_default()
    }

    fn item(&self) -> Shape {
        self.item.as_deref().cloned().unwrap_or_default()
    }
}

/// How a value is written after its key or dash.
pub(super) enum Written {
    /// On the same line: a scalar, an empty collection or a flow collection.
    Inline(String),
    /// Lines below, at the given indentation (already indented).
    Block(Vec<String>),
    /// A literal block scalar: its header (`|-`) and its lines (already indented).
    Literal(String, Vec<String>),
}

pub(super) struct Renderer {
    pub indentation: Indentation,
}

impl Renderer {
    /// How `value` is written as the value of a block entry or item, its lines (if any)
    /// indented by `indent`.
    pub fn value(&self, value: &Value, shape: &Shape, indent: usize) -> Written {
        match value {
            Value::Object(map) if !map.is_empty() && !shape.flow => {
                Written::Block(self.mapping_lines(map, shape, indent))
            }
            Value::Array(items) if !items.is_empty() && !shape.flow => {
                Written::Block(self.sequence_lines(items, shape, indent))
            }
            Value::String(text) => match literal(text, indent) {
                Some((header, lines)) => Written::Literal(header, lines),
                None => Written::Inline(inline(value, false)),
            },
            _ => Written::Inline(inline(value, false)),
        }
    }

    /// The indentation of the lines of a block value under a key at `key_column`.
    pub fn child_indent(&self, value: &Value, key_column: usize) -> usize {
        match value {
            Value::Array(_) => key_column + self.indentation.sequence_offset,
            _ => key_column + self.indentation.mapping_step,
        }
    }

    /// The lines of one block mapping entry `key: value`, the key at `indent`.
    pub fn entry_lines(
        &self,
        key: &str,
        value: &Value,
        shape: &Shape,
        indent: usize,
    ) -> Vec<String> {
        let pad = " ".repeat(indent);
        let key = scalar_text(key, false);
        match self.value(value, shape, self.child_indent(value, indent)) {
            Written::Inline(text) => vec![format!("{pad}{key}: {text}")],
            Written::Block(lines) => {
                let mut all = vec![format!("{pad}{key}:")];
                all.extend(lines);
                all
            }
            Written::Literal(header, lines) => {
                let mut all = vec![format!("{pad}{key}: {header}")];
                all.extend(lines);
                all
            }
        }
    }

    /// The lines of one block sequence item `- value`, the dash at `indent`.
    pub fn item_lines(&self, value: &Value, shape: &Shape, indent: usize) -> Vec<String> {
        let pad = " ".repeat(indent);
        match self.value(value, shape, indent + 2) {
            Written::Inline(text) => vec![format!("{pad}- {text}")],
            Written::Block(mut lines) => {
                if let Some(first) = lines.first_mut() {
                    *first = format!("{pad}- {}", first.trim_start_matches(' '));
                }
                lines
            }
            Written::Literal(header, lines) => {
                let mut all = vec![format!("{pad}- {header}")];
                all.extend(lines);
                all
            }
        }
    }

    pub fn mapping_lines(
        &self,
        map: &serde_json::Map<String, Value>,
        shape: &Shape,
        indent: usize,
    ) -> Vec<String> {
        map.iter()
            .flat_map(|(key, value)| self.entry_lines(key, value, &shape.key(key), indent))
            .collect()
    }

    pub fn sequence_lines(&self, items: &[Value], shape: &Shape, indent: usize) -> Vec<String> {
        let item_shape = shape.item();
        items
            .iter()
            .flat_map(|item| self.item_lines(item, &item_shape, indent))
            .collect()
    }

    /// A whole file holding `value`.
    pub fn document(&self, value: &Value) -> String {
        let shape = Shape::default();
        let lines = match value {
            Value::Object(map) if !map.is_empty() => self.mapping_lines(map, &shape, 0),
            Value::Array(items) if !items.is_empty() => self.sequence_lines(items, &shape, 0),
            _ => vec![inline(value, false)],
        };
        let mut text = lines.join("\n");
        text.push('\n');
        text
    }
}

/// `value` in flow style on one line (`in_flow`: inside a flow collection, where `,[]{}`
/// need quoting too).
pub(super) fn inline(value: &Value, in_flow: bool) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(text) => scalar_text(text, in_flow),
        Value::Array(items) if items.is_empty() => "[]".to_owned(),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(|item| inline(item, true)).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Object(map) if map.is_empty() => "{}".to_owned(),
        Value::Object(map) => {
            let entries: Vec<String> = map
                .iter()
                .map(|(key, value)| format!("{}: {}", scalar_text(key, true), inline(value, true)))
                .collect();
            format!("{{ {} }}", entries.join(", "))
        }
    }
}

/// A string as a YAML scalar: plain when YAML reads it back as the same string (and other
/// YAML readers would too), else double-quoted (single-quoted if it holds `"` or `\`).
pub(super) fn scalar_text(text: &str, in_flow: bool) -> String {
    if can_be_plain(text, in_flow) && reads_back(text, text, in_flow) {
        return text.to_owned();
    }
    let printable = !text.chars().any(char::is_control);
    if printable && (text.contains('"') || text.contains('\\')) {
        let quoted = format!("'{}'", text.replace('\'', "''"));
        if reads_back(&quoted, text, in_flow) {
            return quoted;
        }
    }
    double_quoted(text)
}

/// A string in the quotes `quote` (`'` or `"`); double quotes when single ones cannot hold it.
pub(super) fn quoted(text: &str, quote: char) -> String {
    if quote == '\'' && !text.chars().any(char::is_control) {
        format!("'{}'", text.replace('\'', "''"))
    } else {
        double_quoted(text)
    }
}

fn double_quoted(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for c in text.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\n' => quoted.push_str("\\n"),
            '\t' => quoted.push_str("\\t"),
            '\r' => quoted.push_str("\\r"),
            c if c.is_control() || c == '\u{feff}' => {
                quoted.push_str(&format!("\\u{:04x}", u32::from(c)));
            }
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

/// The rules that keep a plain scalar a string for YAML 1.2 and 1.1 readers alike.
fn can_be_plain(text: &str, in_flow: bool) -> bool {
    const WORDS: [&str; 11] = [
        "true", "false", "yes", "no", "y", "n", "on", "off", "null", "~", "=",
    ];
    let Some(first) = text.chars().next() else {
        return false;
    };
    if text.trim() != text
        || text.chars().any(|c| c.is_control() || c == '\u{feff}')
        || text.contains(':')
        || text.contains(" #")
        || WORDS.iter().any(|word| text.eq_ignore_ascii_case(word))
        || "?,[]{}#&*!|>'\"%@`".contains(first)
        || (first == '-' && (text == "-" || text.starts_with("- ") || text.starts_with("---")))
        || (in_flow && text.contains([',', '[', ']', '{', '}']))
    {
        return false;
    }
    // YAML 1.1 numbers YAML 1.2 reads as text (`1_000`, `0b101`, `+.5`, `0x_1F`).
    let unsigned = text.trim_start_matches(['+', '-']);
    let numeric = if let Some(hex) = unsigned.strip_prefix("0x") {
        hex.chars().all(|c| c.is_ascii_hexdigit() || c == '_')
    } else if let Some(binary) = unsigned.strip_prefix("0b") {
        binary.chars().all(|c| "01_".contains(c))
    } else {
        unsigned.starts_with(|c: char| c.is_ascii_digit() || c == '.')
            && unsigned
                .chars()
                .all(|c| c.is_ascii_digit() || "._eE+-".contains(c))
    };
    !numeric
}

/// Whether `written` (a scalar as it would appear in the file) reads back as `text`.
fn reads_back(written: &str, text: &str, in_flow: bool) -> bool {
    let document = if in_flow {
        format!("[{written}]")
    } else {
        format!("k: {written}\n")
    };
    let Ok(documents) = Yaml::load_from_str(&document) else {
        return false;
    };
    let value = documents.first().and_then(|root| {
        if in_flow {
            root.as_sequence().and_then(|items| items.first()).cloned()
        } else {
            root.as_mapping()
                .and_then(|map| map.values().next())
                .cloned()
        }
    });
    value.and_then(|value| value.as_str().map(|read| read == text)) == Some(true)
}

/// A multi-line string as a literal block scalar under `indent`: its header and lines, when
/// one can hold it exactly (not when a line starts with a space where the indentation would
/// swallow it, or holds only spaces, or it has other control characters).
fn literal(text: &str, indent: usize) -> Option<(String, Vec<String>)> {
    if !text.contains('\n') || text.chars().any(|c| c.is_control() && c != '\n') {
        return None;
    }
    let body = text.trim_end_matches('\n');
    let trailing = text.len() - body.len();
    let header = match trailing {
        0 => "|-",
        1 => "|",
        _ => "|+",
    };
    if body.is_empty() || body.starts_with(' ') || body.starts_with('\n') {
        return None;
    }
    let pad = " ".repeat(indent);
    let mut lines = Vec::new();
    for line in body.split('\n') {
        if line.is_empty() {
            lines.push(String::new());
        } else if line.trim().is_empty() || line.ends_with(' ') {
            return None;
        } else {
            lines.push(format!("{pad}{line}"));
        }
    }
    for _ in 1..trailing {
        lines.push(String::new());
    }
    Some((header.to_owned(), lines))
}
