//! Finds the bracket a syntax error is really about.
//!
//! When a `{`, `(` or `[` is never closed, Rhai notices only where it expected the closing
//! token — often the end of the file, far from the mistake. This module scans the source the
//! way Rhai's tokenizer sees brackets (skipping strings, characters and comments, and entering
//! the code inside `${…}` of a back-tick string) and names the opening bracket that is still
//! open at the place of the error, so `keel check` can point at the construct.

/// An opening bracket and where it is (1-based line and column, in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opener {
    pub symbol: char,
    pub line: usize,
    pub column: usize,
    /// The indentation (leading spaces and tabs) of the line it is on.
    indent: usize,
}

/// What [`open_at`] found.
#[derive(Debug, Default)]
struct Scan {
    /// Brackets still open where the scan stopped, outermost first.
    open: Vec<Opener>,
    /// The first `{` closed by a `}` that starts a line indented less or more than the line of
    /// the `{`, while an outer `{` sits at the `}`'s indentation: the `}` most likely belongs
    /// to the outer one, so this `{` is the one left open.
    misindented: Option<Opener>,
    /// Whether only blanks follow the place the scan stopped at.
    at_end: bool,
}

/// The opening bracket of kind `symbol` (`{`, `(` or `[`; any when `None`) that an error at `line:column` is
/// about: the innermost one still open there. At the end of the source, a `{` whose closing
/// `}` is indented like an outer block is preferred, since the `}` most likely closes that
/// outer block instead.
pub fn unclosed(source: &str, symbol: Option<char>, line: usize, column: usize) -> Option<Opener> {
    let scan = scan(source, line, column);
    let innermost = scan
        .open
        .iter()
        .rev()
        .find(|opener| symbol.is_none_or(|symbol| opener.symbol == symbol))
        .copied();
    match scan.misindented {
        Some(opener)
            if symbol != Some('(')
                && symbol != Some('[')
                && scan.at_end
                && innermost.is_some_and(|o| o.symbol == '{') =>
        {
            Some(opener)
        }
        _ => innermost,
    }
}

/// Scans `source` up to (not including) `line:column`.
fn scan(source: &str, stop_line: usize, stop_column: usize) -> Scan {
    let chars: Vec<char> = source.chars().collect();
    let mut result = Scan::default();
    // Each entry is an open bracket, or a `${` interpolation (symbol '$') inside a back-tick
    // string, to whose string the matching `}` returns.
    let mut stack: Vec<Opener> = Vec::new();
    let mut line = 1;
    let mut column = 1;
    let mut line_start = 0;
    let mut index = 0;
    let mut in_backtick = false;

    // Moves past `count` characters, keeping the line and column.
    let advance = |index: &mut usize,
                   line: &mut usize,
                   column: &mut usize,
                   line_start: &mut usize,
                   count: usize| {
        for _ in 0..count {
            if *index >= chars.len() {
                return;
            }
            if chars[*index] == '\n' {
                *line += 1;
                *column = 1;
                *line_start = *index + 1;
            } else {
                *column += 1;
            }
            *index += 1;
        }
    };
    let indent_of = |start: usize| {
        chars[start..]
            .iter()
            .take_while(|c| **c == ' ' || **c == '\t')
            .count()
    };

    while index < chars.len() && (line, column) < (stop_line, stop_column) {
        let c = chars[index];
        let next = chars.get(index + 1).copied();
        if in_backtick {
            match (c, next) {
                ('\\', Some(_)) => advance(&mut index, &mut line, &mut column, &mut line_start, 2),
                ('`', _) => {
                    in_backtick = false;
                    advance(&mut index, &mut line, &mut column, &mut line_start, 1);
                }
                ('$', Some('{')) => {
                    stack.push(Opener {
                        symbol: '$',
                        line,
                        column,
                        indent: indent_of(line_start),
                    });
                    in_backtick = false;
                    advance(&mut index, &mut line, &mut column, &mut line_start, 2);
                }
                _ => advance(&mut index, &mut line, &mut column, &mut line_start, 1),
            }
            continue;
        }
        match (c, next) {
            ('/', Some('/')) => {
                while index < chars.len() && chars[index] != '\n' {
                    advance(&mut index, &mut line, &mut column, &mut line_start, 1);
                }
            }
            ('/', Some('*')) => {
                // Block comments nest in Rhai.
                let mut depth = 0usize;
                while index < chars.len() {
                    match (chars[index], chars.get(index + 1).copied()) {
                        ('/', Some('*')) => {
                            depth += 1;
                            advance(&mut index, &mut line, &mut column, &mut line_start, 2);
                        }
                        ('*', Some('/')) => {
                            depth -= 1;
                            advance(&mut index, &mut line, &mut column, &mut line_start, 2);
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => advance(&mut index, &mut line, &mut column, &mut line_start, 1),
                    }
                }
            }
            ('"' | '\'', _) => {
                advance(&mut index, &mut line, &mut column, &mut line_start, 1);
                while index < chars.len() && chars[index] != c && chars[index] != '\n' {
                    let step = if chars[index] == '\\' { 2 } else { 1 };
                    advance(&mut index, &mut line, &mut column, &mut line_start, step);
                }
                advance(&mut index, &mut line, &mut column, &mut line_start, 1);
            }
            ('`', _) => {
                in_backtick = true;
                advance(&mut index, &mut line, &mut column, &mut line_start, 1);
            }
            ('{' | '(' | '[', _) => {
                stack.push(Opener {
                    symbol: c,
                    line,
                    column,
                    indent: indent_of(line_start),
                });
                advance(&mut index, &mut line, &mut column, &mut line_start, 1);
            }
            ('}' | ')' | ']', _) => {
                let wanted = match c {
                    '}' => ['{', '$'],
                    ')' => ['(', '('],
                    _ => ['[', '['],
                };
                if let Some(top) = stack.last().copied()
                    && wanted.contains(&top.symbol)
                {
                    stack.pop();
                    if top.symbol == '$' {
                        in_backtick = true;
                    } else if top.symbol == '{' && result.misindented.is_none() {
                        let starts_line = chars[line_start..index]
                            .iter()
                            .all(|c| *c == ' ' || *c == '\t');
                        let indent = index - line_start;
                        if starts_line
                            && indent != top.indent
                            && stack
                                .iter()
                                .any(|outer| outer.symbol == '{' && outer.indent == indent)
                        {
                            result.misindented = Some(top);
                        }
                    }
                }
                advance(&mut index, &mut line, &mut column, &mut line_start, 1);
            }
            _ => advance(&mut index, &mut line, &mut column, &mut line_start, 1),
        }
    }
    stack.retain(|opener| opener.symbol != '$');
    result.open = stack;
    result.at_end = chars[index.min(chars.len())..]
        .iter()
        .all(|c| c.is_whitespace());
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(opener: Option<Opener>) -> Option<(char, usize, usize)> {
        opener.map(|o| (o.symbol, o.line, o.column))
    }

    #[test]
    fn the_innermost_open_bracket_of_the_kind_is_named() {
        let source = "if x {\n  foo(1;\n}\n";
        assert_eq!(at(unclosed(source, Some('('), 2, 8)), Some(('(', 2, 6)));
        assert_eq!(at(unclosed(source, Some('{'), 2, 8)), Some(('{', 1, 6)));
    }

    #[test]
    fn a_block_closed_by_an_outer_blocks_brace_is_the_one_named() {
        let source = "fn a() {\n  if x {\n    y();\n}\nfn b() {\n}\n";
        assert_eq!(at(unclosed(source, Some('{'), 7, 1)), Some(('{', 2, 8)));
    }

    #[test]
    fn strings_and_comments_hide_brackets() {
        let source =
            "let a = \"{\"; // {\n/* { /* { */ } */ let b = '(';\nlet c = `x${ [1] }{`;\nif a {\n";
        assert_eq!(at(unclosed(source, Some('{'), 5, 1)), Some(('{', 4, 6)));
        assert_eq!(unclosed(source, Some('('), 5, 1), None);
    }
}
