//! YAML text → a JSON value plus a map from JSON pointer to source position.
//!
//! One parse, one tree: the file is parsed once with `saphyr`'s span-keeping loader, turned
//! into a `serde_json::Value` (what the JSON Schema validator and serde read), and every node
//! and every mapping key leaves its line and column behind under its JSON pointer. Any later
//! error that knows a pointer can then name `file:line:col`.

use std::collections::HashMap;

use saphyr::{LoadableYamlNode, MarkedYaml, Scalar, YamlData};
use serde_json::{Map, Number, Value};

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl Position {
    pub const START: Position = Position { line: 1, column: 1 };
}

/// A parsed YAML document with positions.
#[derive(Debug, Clone)]
pub struct SourceDocument {
    pub value: Value,
    value_positions: HashMap<String, Position>,
    key_positions: HashMap<String, Position>,
    /// The source lines, to place a position inside a text value (see `position_in_text`).
    lines: Vec<String>,
}

/// A YAML syntax error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    pub position: Position,
    pub message: String,
}

impl SourceDocument {
    pub fn parse(text: &str) -> Result<SourceDocument, YamlError> {
        let documents = MarkedYaml::load_from_str(text).map_err(|error| YamlError {
            position: Position {
                line: error.marker().line().max(1),
                column: error.marker().col() + 1,
            },
            message: format!("YAML syntax error: {}", error.info()),
        })?;
        let mut document = SourceDocument {
            value: Value::Null,
            value_positions: HashMap::new(),
            key_positions: HashMap::new(),
            lines: text.lines().map(str::to_owned).collect(),
        };
        let mut documents = documents.into_iter();
        if let Some(first) = documents.next() {
            document.value = document.convert(&first, String::new())?;
        }
        if let Some(second) = documents.next() {
            return Err(YamlError {
                position: position_of(&second),
                message: "a file holds one YAML document; remove the second `---`".to_owned(),
            });
        }
        Ok(document)
    }

    /// Where the value at `pointer` starts; the nearest ancestor that has a position when the
    /// pointer names something absent (e.g. a missing required key).
    pub fn value_position(&self, pointer: &str) -> Position {
        let mut pointer = pointer;
        loop {
            if let Some(position) = self.value_positions.get(pointer) {
                return *position;
            }
            match pointer.rfind('/') {
                Some(cut) => pointer = &pointer[..cut],
                None => return Position::START,
            }
        }
    }

    /// Where the key of the map entry at `pointer` starts (falls back to its value).
    pub fn key_position(&self, pointer: &str) -> Position {
        self.key_positions
            .get(pointer)
            .copied()
            .unwrap_or_else(|| self.value_position(pointer))
    }

    /// Where `line:column` (1-based) of the text value at `pointer` is in the file, e.g. for
    /// an error inside an expression. Exact for a one-line value (plain or quoted) and for a
    /// literal block (`|`); for text YAML folds (`>`, multi-line plain or quoted) it is the
    /// same line of the value, or the value's start.
    pub fn position_in_text(&self, pointer: &str, line: usize, column: usize) -> Position {
        let start = self.value_position(pointer);
        let line_text = |number: usize| {
            self.lines
                .get(number.wrapping_sub(1))
                .map(String::as_str)
                .unwrap_or("")
        };
        let first: Vec<char> = line_text(start.line).chars().collect();
        let at = first.get(start.column.wrapping_sub(1)).copied();
        let before_is_blank = first
            .iter()
            .take(start.column.saturating_sub(1))
            .all(|c| c.is_whitespace());
        let opens_block = |number: usize| {
            let text = line_text(number).trim_end();
            let text = text
                .split(" #")
                .next()
                .unwrap_or(text)
                .trim_end()
                .trim_end_matches(|c: char| c.is_ascii_digit() || c == '-' || c == '+');
            text.ends_with('|') || text.ends_with('>')
        };
        match at {
            // A block indicator: the text starts on the next line, at its indentation.
            Some('|' | '>') => {
                let indent = line_text(start.line + 1)
                    .chars()
                    .take_while(|c| *c == ' ')
                    .count();
                Position {
                    line: start.line + line,
                    column: indent + column,
                }
            }
            // A block whose position is its first line of text.
            _ if before_is_blank && start.line > 1 && opens_block(start.line - 1) => Position {
                line: start.line + line - 1,
                column: start.column + column - 1,
            },
            Some('\'' | '"') if line == 1 => Position {
                line: start.line,
                column: start.column + column,
            },
            _ if line == 1 => Position {
                line: start.line,
                column: start.column + column - 1,
            },
            _ => start,
        }
    }

    fn convert(&mut self, node: &MarkedYaml<'_>, pointer: String) -> Result<Value, YamlError> {
        let position = position_of(node);
        let value = match &node.data {
            YamlData::Value(scalar) => scalar_to_json(scalar),
            YamlData::Representation(text, _, _) => Value::String(text.to_string()),
            YamlData::Sequence(items) => {
                let mut array = Vec::with_capacity(items.len());
                for (index, item) in items.iter().enumerate() {
                    array.push(self.convert(item, format!("{pointer}/{index}"))?);
                }
                Value::Array(array)
            }
            YamlData::Mapping(entries) => {
                let mut map = Map::with_capacity(entries.len());
                for (key, item) in entries {
                    let key_text = match &key.data {
                        YamlData::Value(Scalar::String(text)) => text.to_string(),
                        YamlData::Value(Scalar::Integer(n)) => n.to_string(),
                        YamlData::Value(Scalar::Boolean(b)) => b.to_string(),
                        YamlData::Value(Scalar::Null) => "null".to_owned(),
                        _ => {
                            return Err(YamlError {
                                position: position_of(key),
                                message: "a map key must be plain text".to_owned(),
                            });
                        }
                    };
                    let item_pointer = format!("{pointer}/{}", escape_pointer(&key_text));
                    self.key_positions
                        .insert(item_pointer.clone(), position_of(key));
                    let item_value = self.convert(item, item_pointer)?;
                    map.insert(key_text, item_value);
                }
                Value::Object(map)
            }
            YamlData::Tagged(_, inner) => return self.convert(inner, pointer),
            YamlData::Alias(_) => {
                return Err(YamlError {
                    position,
                    message: "YAML aliases (*name) are not supported; repeat the value".to_owned(),
                });
            }
            YamlData::BadValue => {
                return Err(YamlError {
                    position,
                    message: "this value cannot be read (check its tag or quoting)".to_owned(),
                });
            }
        };
        self.value_positions.insert(pointer, position);
        Ok(value)
    }
}

fn position_of(node: &MarkedYaml<'_>) -> Position {
    Position {
        line: node.span.start.line().max(1),
        column: node.span.start.col() + 1,
    }
}

fn scalar_to_json(scalar: &Scalar<'_>) -> Value {
    match scalar {
        Scalar::Null => Value::Null,
        Scalar::Boolean(b) => Value::Bool(*b),
        Scalar::Integer(n) => Value::Number((*n).into()),
        Scalar::FloatingPoint(f) => Number::from_f64(f.into_inner())
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(f.into_inner().to_string())),
        Scalar::String(text) => Value::String(text.to_string()),
    }
}

/// Escapes a map key for use in a JSON pointer (RFC 6901).
pub fn escape_pointer(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "name: lead\nfields:\n  name: { type: text }\n  score:\n    type: integer\n    max: 100\nlist: [a, b]\n";

    #[test]
    fn values_and_keys_keep_their_positions() {
        let document = SourceDocument::parse(TEXT).unwrap();
        assert_eq!(document.value["fields"]["score"]["max"], 100);
        assert_eq!(
            document.value_position("/fields/score/max"),
            Position {
                line: 6,
                column: 10
            }
        );
        assert_eq!(
            document.key_position("/fields/score/max"),
            Position { line: 6, column: 5 }
        );
        assert_eq!(
            document.key_position("/fields/name"),
            Position { line: 3, column: 3 }
        );
        assert_eq!(
            document.value_position("/list/1"),
            Position {
                line: 7,
                column: 11
            }
        );
    }

    #[test]
    fn absent_pointers_fall_back_to_the_nearest_ancestor() {
        let document = SourceDocument::parse(TEXT).unwrap();
        assert_eq!(
            document.value_position("/fields/score/missing"),
            document.value_position("/fields/score")
        );
    }

    #[test]
    fn syntax_errors_carry_their_line() {
        let error = SourceDocument::parse("name: lead\nfields:\n  a: [1, 2\n").unwrap_err();
        assert!(error.position.line >= 3, "{error:?}");
        let error = SourceDocument::parse("a: 1\na: 2\n").unwrap_err();
        assert_eq!(error.position.line, 2);
    }

    #[test]
    fn positions_inside_text_values_map_to_the_file() {
        let text = "a: 'x(1'\nb: x(1\nc: |\n  one\n    x(1\nd:\n  - e: |-\n      x(1\n";
        let document = SourceDocument::parse(text).unwrap();
        assert_eq!(
            document.position_in_text("/a", 1, 2),
            Position { line: 1, column: 6 }
        );
        assert_eq!(
            document.position_in_text("/b", 1, 2),
            Position { line: 2, column: 5 }
        );
        assert_eq!(
            document.position_in_text("/c", 2, 4),
            Position { line: 5, column: 6 }
        );
        assert_eq!(
            document.position_in_text("/d/0/e", 1, 2),
            Position { line: 8, column: 8 }
        );
    }

    #[test]
    fn empty_text_is_null() {
        assert_eq!(SourceDocument::parse("").unwrap().value, Value::Null);
    }
}
