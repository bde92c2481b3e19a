//! The span tree an edit works on: every node of a YAML file with the byte range it occupies,
//! how it is written (block or flow, plain or block scalar, empty), and for each mapping entry
//! and sequence item where its key, colon and dash are.
//!
//! saphyr gives each node a start and an end, but not always the ones an editor needs: a block
//! collection ends where the next token starts (after trailing comments and blank lines), a
//! flow collection ends at its closing bracket (exclusive), a block scalar (`|`, `>`) starts at
//! its first line of text and an empty value sits on its key's colon. So the tree takes the
//! exact spans of keys and of plain and quoted scalars from saphyr, and derives the rest: a
//! block collection ends where its last child ends, a flow collection after its bracket, a block
//! scalar at its last line of text (read by indentation), an empty value right after its
//! colon or dash. It does not keep values: the caller reads those from `source`.

use saphyr::{LoadableYamlNode, MarkedYaml, Scalar, YamlData};

/// One node: `start..end` are byte offsets into the text.
#[derive(Debug, Clone)]
pub(super) struct Node {
    pub start: usize,
    pub end: usize,
    pub kind: Kind,
}

#[derive(Debug, Clone)]
pub(super) enum Kind {
    Scalar(ScalarStyle),
    Sequence { flow: bool, items: Vec<Item> },
    Mapping { flow: bool, entries: Vec<Entry> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ScalarStyle {
    /// Plain or quoted, on one or more lines: `start..end` is exactly its text.
    Inline,
    /// `|` or `>`: `start` is the indicator, `end` the end of its last line of text.
    Block,
    /// Nothing written (`key:`): `start == end`, right after the colon or dash.
    Empty,
}

#[derive(Debug, Clone)]
pub(super) struct Entry {
    pub key: String,
    pub key_start: usize,
    /// The byte offset of the `:` after the key.
    pub colon: usize,
    pub value: Node,
}

#[derive(Debug, Clone)]
pub(super) struct Item {
    /// The byte offset of the `-` of a block sequence item; `None` in a flow sequence.
    pub dash: Option<usize>,
    pub value: Node,
}

impl Node {
    pub fn is_flow(&self) -> bool {
        matches!(
            self.kind,
            Kind::Sequence { flow: true, .. } | Kind::Mapping { flow: true, .. }
        )
    }
}

impl Entry {
    /// Where the entry ends: its value's end, or its colon for an empty value.
    pub fn end(&self) -> usize {
        self.value.end.max(self.colon + 1)
    }
}

impl Item {
    /// Where the item starts: its dash, or its value in a flow sequence.
    pub fn start(&self) -> usize {
        self.dash.unwrap_or(self.value.start)
    }

    pub fn end(&self) -> usize {
        self.value.end.max(self.dash.map_or(0, |dash| dash + 1))
    }
}

/// Parses `text` into its span tree. An error is a message: the text is not YAML, or it is
/// written in a way the editor does not handle (tags, aliases, complex keys).
pub(super) fn parse(text: &str) -> Result<Node, String> {
    let documents = MarkedYaml::load_from_str(text).map_err(|error| error.to_string())?;
    let offsets: Vec<usize> = text
        .char_indices()
        .map(|(offset, _)| offset)
        .chain(std::iter::once(text.len()))
        .collect();
    let builder = Builder { text, offsets };
    match documents.first() {
        Some(root) => builder.node(root, Context::Root),
        None => Ok(Node {
            start: 0,
            end: 0,
            kind: Kind::Scalar(ScalarStyle::Empty),
        }),
    }
}

#[derive(Clone, Copy)]
enum Context {
    Root,
    /// Inside a flow collection.
    Flow,
    /// The value of a block entry or item: the byte after its colon or dash, and the column
    /// of its key or dash (a block scalar's text is indented deeper than it).
    Block {
        attach: usize,
        column: usize,
    },
}

struct Builder<'t> {
    text: &'t str,
    /// Byte offset of each character, and the text's length at the end (saphyr counts in
    /// characters).
    offsets: Vec<usize>,
}

impl Builder<'_> {
    fn byte(&self, marker: saphyr::Marker) -> usize {
        self.offsets
            .get(marker.index())
            .copied()
            .unwrap_or(self.text.len())
    }

    fn node(&self, yaml: &MarkedYaml<'_>, context: Context) -> Result<Node, String> {
        let start = self.byte(yaml.span.start);
        let end = self.byte(yaml.span.end);
        match &yaml.data {
            YamlData::Value(_) | YamlData::Representation(..) => {
                self.scalar(yaml, start, end, context)
            }
            YamlData::Sequence(items) => {
                if self.opens_flow(context, start, '[') {
                    let items = items
                        .iter()
                        .map(|item| {
                            Ok(Item {
                                dash: None,
                                value: self.node(item, Context::Flow)?,
                            })
                        })
                        .collect::<Result<Vec<_>, String>>()?;
                    let end = self.closing_bracket(end, ']')?;
                    Ok(Node {
                        start,
                        end,
                        kind: Kind::Sequence { flow: true, items },
                    })
                } else {
                    let mut built = Vec::with_capacity(items.len());
                    // Each dash is the first token after what precedes it (the key's colon,
                    // the parent item's dash, the previous item), past blanks and comments.
                    let mut from = match context {
                        Context::Block { attach, .. } => attach,
                        Context::Root | Context::Flow => 0,
                    };
                    for item in items {
                        let dash = self.dash_after(from)?;
                        let column = column_of(self.text, dash);
                        let value = self.node(
                            item,
                            Context::Block {
                                attach: dash + 1,
                                column,
                            },
                        )?;
                        let item = Item {
                            dash: Some(dash),
                            value,
                        };
                        from = item.end();
                        built.push(item);
                    }
                    let start = built.first().map_or(start, Item::start);
                    let end = built.last().map_or(start, Item::end);
                    Ok(Node {
                        start,
                        end,
                        kind: Kind::Sequence {
                            flow: false,
                            items: built,
                        },
                    })
                }
            }
            YamlData::Mapping(entries) => {
                // Inside a flow sequence, `[a: 1]` is a mapping without braces.
                let braced = self.opens_flow(context, start, '{');
                let flow = braced || matches!(context, Context::Flow);
                let mut built = Vec::with_capacity(entries.len());
                for (key, value) in entries {
                    let key_text = match &key.data {
                        YamlData::Value(Scalar::String(text)) => text.to_string(),
                        YamlData::Value(Scalar::Integer(n)) => n.to_string(),
                        YamlData::Value(Scalar::Boolean(b)) => b.to_string(),
                        YamlData::Value(Scalar::Null) => "null".to_owned(),
                        _ => return Err("a map key must be plain text".to_owned()),
                    };
                    let key_start = self.byte(key.span.start);
                    let key_end = self.byte(key.span.end);
                    let colon = self.colon_after(key_end)?;
                    let context = if flow {
                        Context::Flow
                    } else {
                        Context::Block {
                            attach: colon + 1,
                            column: column_of(self.text, key_start),
                        }
                    };
                    built.push(Entry {
                        key: key_text,
                        key_start,
                        colon,
                        value: self.node(value, context)?,
                    });
                }
                if braced {
                    let end = self.closing_bracket(end, '}')?;
                    Ok(Node {
                        start,
                        end,
                        kind: Kind::Mapping {
                            flow: true,
                            entries: built,
                        },
                    })
                } else {
                    let start = built.first().map_or(start, |entry| entry.key_start);
                    let end = built.last().map_or(start, Entry::end);
                    Ok(Node {
                        start,
                        end,
                        kind: Kind::Mapping {
                            flow,
                            entries: built,
                        },
                    })
                }
            }
            YamlData::Tagged(..) => Err("YAML tags (!tag) are not supported here".to_owned()),
            YamlData::Alias(_) => Err("YAML aliases (*name) are not supported".to_owned()),
            YamlData::BadValue => Err("a value cannot be read".to_owned()),
        }
    }

    fn scalar(
        &self,
        yaml: &MarkedYaml<'_>,
        start: usize,
        end: usize,
        context: Context,
    ) -> Result<Node, String> {
        // saphyr ends a quoted scalar at the next token, after the blanks and the comment
        // that follow it: find its closing quote instead.
        let end = match self.text[start..].chars().next() {
            Some(quote @ ('"' | '\'')) => quoted_end(self.text, start, quote).unwrap_or(end),
            _ => end,
        };
        let Context::Block { attach, column } = context else {
            return Ok(Node {
                start,
                end,
                kind: Kind::Scalar(ScalarStyle::Inline),
            });
        };
        let after = attach + leading_spaces(&self.text[attach..]);
        if self.text[after..].starts_with(['|', '>']) {
            return Ok(Node {
                start: after,
                end: self.block_scalar_end(after, column),
                kind: Kind::Scalar(ScalarStyle::Block),
            });
        }
        let empty = matches!(yaml.data, YamlData::Value(Scalar::Null)) && start == end;
        if empty || start < attach {
            return Ok(Node {
                start: attach,
                end: attach,
                kind: Kind::Scalar(ScalarStyle::Empty),
            });
        }
        Ok(Node {
            start,
            end,
            kind: Kind::Scalar(ScalarStyle::Inline),
        })
    }

    /// The end of a block scalar's last line: the lines after the indicator's line that are
    /// blank or indented at least as deep as its text (the indentation indicator's, as in
    /// `|2`, else its first line's, which is deeper than `column`, its key's or dash's). The
    /// blank lines after its text are part of it when it keeps them (`|+`).
    fn block_scalar_end(&self, indicator: usize, column: usize) -> usize {
        let header: String = self.text[indicator + 1..]
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '+' || *c == '-')
            .collect();
        let keep = header.contains('+');
        let mut content_indent = header
            .chars()
            .find_map(|c| c.to_digit(10))
            .map(|digit| column + digit as usize);
        let mut end = line_end(self.text, indicator);
        let mut line_start = next_line_start(self.text, indicator);
        while line_start < self.text.len() {
            let line_stop = line_end(self.text, line_start);
            let line = &self.text[line_start..line_stop];
            if line.trim().is_empty() {
                if keep {
                    end = line_stop;
                }
            } else {
                let indent = leading_spaces(line);
                let required = content_indent.unwrap_or(column + 1);
                if indent < required {
                    break;
                }
                content_indent.get_or_insert(indent);
                end = line_stop;
            }
            line_start = next_line_start(self.text, line_start);
        }
        end
    }

    /// The closing bracket of a flow collection: saphyr's end is at it, or before blanks and
    /// comments that precede it.
    fn closing_bracket(&self, from: usize, bracket: char) -> Result<usize, String> {
        let mut position = from;
        while let Some(c) = self.text[position..].chars().next() {
            if c == bracket {
                return Ok(position + 1);
            } else if c.is_whitespace() || c == ',' {
                position += c.len_utf8();
            } else if c == '#' {
                position = line_end(self.text, position);
            } else {
                break;
            }
        }
        Err(format!("no closing `{bracket}` found"))
    }

    fn colon_after(&self, key_end: usize) -> Result<usize, String> {
        let spaces = leading_spaces(&self.text[key_end..]);
        let colon = key_end + spaces;
        if self.text[colon..].starts_with(':') {
            Ok(colon)
        } else {
            Err("a map key without a `:` after it is not supported".to_owned())
        }
    }

    /// Whether the collection starting at `start` is written in flow style, opening with
    /// `bracket`. saphyr's start of a block sequence can be its first item's value (`[` of
    /// `- []`), so outside flow collections the first token after the key or dash decides.
    fn opens_flow(&self, context: Context, start: usize, bracket: char) -> bool {
        let first = match context {
            Context::Flow => start,
            Context::Block { attach, .. } => self.first_token(attach),
            Context::Root => self.first_token(0),
        };
        self.text[first..].starts_with(bracket)
    }

    /// The dash of a block sequence item: the first token from `from` on.
    fn dash_after(&self, from: usize) -> Result<usize, String> {
        let position = self.first_token(from);
        let after = self.text[position..].chars().nth(1);
        if self.text[position..].starts_with('-') && after.is_none_or(char::is_whitespace) {
            Ok(position)
        } else {
            Err("a sequence item whose dash cannot be found".to_owned())
        }
    }

    /// The first token from `from` on, past blanks, comments and a document start (`---`).
    fn first_token(&self, from: usize) -> usize {
        let mut position = from;
        loop {
            let rest = &self.text[position..];
            let blank = rest.len() - rest.trim_start().len();
            position += blank;
            let rest = &self.text[position..];
            if rest.starts_with('#') {
                position = line_end(self.text, position);
            } else if rest.starts_with("---") && first_on_line(self.text, position) {
                position += 3;
            } else if blank == 0 {
                break;
            }
        }
        position
    }
}

/// The byte offset after the closing quote of the quoted scalar opening at `start`.
fn quoted_end(text: &str, start: usize, quote: char) -> Option<usize> {
    let mut characters = text[start + 1..].char_indices().peekable();
    while let Some((offset, c)) = characters.next() {
        if quote == '"' && c == '\\' {
            characters.next();
        } else if c == quote {
            if quote == '\'' && characters.peek().is_some_and(|(_, next)| *next == '\'') {
                characters.next();
            } else {
                return Some(start + 1 + offset + 1);
            }
        }
    }
    None
}

/// The byte offset where the line holding `position` starts.
pub(super) fn line_start(text: &str, position: usize) -> usize {
    text[..position]
        .rfind('\n')
        .map_or(0, |newline| newline + 1)
}

/// The byte offset of the end of the line holding `position`: its `\n` (or the `\r` of its
/// `\r\n`), or the text's end.
pub(super) fn line_end(text: &str, position: usize) -> usize {
    match text[position..].find('\n') {
        Some(newline) if text[..position + newline].ends_with('\r') => position + newline - 1,
        Some(newline) => position + newline,
        None => text.len(),
    }
}

/// The byte offset where the line after the one holding `position` starts (the text's end
/// on the last line).
pub(super) fn next_line_start(text: &str, position: usize) -> usize {
    text[position..]
        .find('\n')
        .map_or(text.len(), |newline| position + newline + 1)
}

/// The column (in characters, from 0) of `position` on its line.
pub(super) fn column_of(text: &str, position: usize) -> usize {
    text[line_start(text, position)..position].chars().count()
}

/// Whether only spaces precede `position` on its line.
pub(super) fn first_on_line(text: &str, position: usize) -> bool {
    text[line_start(text, position)..position]
        .chars()
        .all(|c| c == ' ')
}

pub(super) fn leading_spaces(text: &str) -> usize {
    text.len() - text.trim_start_matches(' ').len()
}
