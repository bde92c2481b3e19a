//! Static analysis of scripts and expressions for `keel check`: the mistakes a script would
//! otherwise only show when it runs, found where the names involved are written out.
//!
//! - a call to a function that is neither defined in the script nor registered on the
//!   sandbox's engine (the script API of docs/scripts.md and Rhai's standard library), or
//!   called with a number of arguments it never takes;
//! - a variable that is not declared (the sandbox compiles with strict variables, so the
//!   script would not even start);
//! - `record.<name>` and `old.<name>` (also `old?.<name>` and `record["<name>"]`, read or
//!   written) where the object has no such field, and `user.<name>` other than the fields
//!   `user` has;
//! - `find`/`find_one`/`count`/`get`/`create`/`update` with a literal object name: the object
//!   must exist, and the keys of a literal map (a filter's fields at any level of `or` and
//!   `not`, or the values of `create`/`update`) must be its fields; a variable holding the
//!   result (`let opp = get("opportunity", id)`, or `for lead in find("lead", …)`), and the
//!   call itself (`get("opportunity", id).account`), are checked like `record`.
//!
//! Whatever is dynamic (an object name in a variable, `record[name]`, a variable assigned
//! again) is left alone: a finding here is always a mistake, never a guess.
//!
//! The list of functions is asked from the engine the sandbox runs scripts with, so it cannot
//! drift from what a run has. The AST is read with Rhai's `internals` feature, with the
//! optimizer off so that nothing is folded away before it is checked.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::OnceLock;

use rhai::{
    AST, BinaryExpr, Engine, Expr, FnCallExpr, OptimizationLevel, ParseErrorType, Position, Scope,
    Stmt,
};

use crate::sandbox::{Limits, build_engine};

/// The fields of `user` in a script (docs/scripts.md, "What a script sees").
pub const USER_FIELDS: &[&str] = &["id", "username", "roles", "manager", "department"];

/// The variables a script may use.
pub const SCRIPT_VARIABLES: &[&str] = &["record", "old", "user", "event"];

/// What an expression runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpressionKind {
    /// The variables it is given.
    pub variables: &'static [&'static str],
    /// Whether it runs inside a script run, where the data functions, `log`, `now()` and
    /// `today()` work; outside one they always fail.
    pub in_a_run: bool,
}

/// A formula field: evaluated over the record being saved, outside a script run.
pub const FORMULA: ExpressionKind = ExpressionKind {
    variables: &["record"],
    in_a_run: false,
};

/// A condition (a validation's, rule's or approval's `when`): it may use what a script sees.
pub const CONDITION: ExpressionKind = ExpressionKind {
    variables: SCRIPT_VARIABLES,
    in_a_run: true,
};

/// The functions that need a script run (its host or its clock).
const RUN_FUNCTIONS: &[&str] = &[
    "find", "find_one", "get", "count", "create", "update", "notify", "log", "now", "today",
];

/// The functions of Keel's script API (docs/scripts.md), preferred when suggesting a name.
const API: &[&str] = &[
    "find", "find_one", "get", "count", "create", "update", "notify", "log", "reject", "now",
    "today", "days", "hours",
];

/// Filter keys that are not fields: groups of other filters.
const FILTER_GROUPS: &[&str] = &["or", "not"];

/// Rhai's keywords that are called like functions but are not registered functions.
const KEYWORD_FUNCTIONS: &[&str] = &[
    "print",
    "debug",
    "type_of",
    "Fn",
    "call",
    "curry",
    "is_shared",
    "is_def_var",
    "is_def_fn",
];

/// The objects of an app and the fields a record of each carries.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    /// Object name → its fields (declared and system), or `None` when the object exists but
    /// its fields are not known (its file has errors of its own).
    objects: HashMap<String, Option<BTreeSet<String>>>,
}

impl Catalog {
    pub fn new() -> Catalog {
        Catalog::default()
    }

    /// Adds an object with every field a record of it carries (declared and system fields).
    pub fn add_object<I, S>(&mut self, name: &str, fields: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.objects.insert(
            name.to_owned(),
            Some(fields.into_iter().map(Into::into).collect()),
        );
    }

    /// Adds an object whose fields are not known (its own file failed): naming it is not a
    /// mistake, and nothing is checked against its fields.
    pub fn add_unchecked_object(&mut self, name: &str) {
        self.objects.insert(name.to_owned(), None);
    }

    fn fields(&self, object: &str) -> Option<&BTreeSet<String>> {
        self.objects.get(object).and_then(Option::as_ref)
    }
}

/// One static problem, at its 1-based line and column in the source given.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Analyses a whole script run over a record of `object` (`None`: not known, so `record` and
/// `old` are not checked). A script with a syntax error has no findings: `check_script`
/// reports the syntax error.
pub fn analyze_script(source: &str, catalog: &Catalog, object: Option<&str>) -> Vec<Finding> {
    let Ok(ast) = engines().lax.compile(source) else {
        return Vec::new();
    };
    let mut findings = Vec::new();
    if let Err(error) = engines()
        .strict
        .compile_with_scope(&crate::run::compile_scope(), source)
        && let ParseErrorType::VariableUndefined(name) = &*error.0
    {
        findings.push(at(
            error.1,
            format!("`{name}` is not declared: declare it with `let` before it is used"),
        ));
    }
    findings.extend(Analysis::new(catalog, object, SCRIPT_VARIABLES).run(&ast));
    findings.sort();
    findings.dedup();
    findings
}

/// Analyses an expression of `kind` (a formula, a validation's or rule's `when`), with
/// `record` and `old` records of `object`.
pub fn analyze_expression(
    source: &str,
    catalog: &Catalog,
    object: Option<&str>,
    kind: ExpressionKind,
) -> Vec<Finding> {
    let variables = kind.variables;
    let Ok(ast) = engines().lax.compile_expression(source) else {
        return Vec::new();
    };
    let mut findings = Vec::new();
    let mut scope = Scope::new();
    for name in variables {
        scope.push_dynamic(*name, rhai::Dynamic::UNIT);
    }
    if let Err(error) = engines()
        .strict
        .compile_expression_with_scope(&scope, source)
        && let ParseErrorType::VariableUndefined(name) = &*error.0
    {
        let allowed = variables
            .iter()
            .map(|name| format!("`{name}`"))
            .collect::<Vec<_>>()
            .join(", ");
        findings.push(at(
            error.1,
            format!("`{name}` is not available here; this expression may use {allowed}"),
        ));
    }
    let mut analysis = Analysis::new(catalog, object, variables);
    analysis.outside_a_run = !kind.in_a_run;
    findings.extend(analysis.run(&ast));
    findings.sort();
    findings.dedup();
    findings
}

/// The sandbox's engine twice, with the optimizer off: once as it compiles scripts (strict
/// variables) to find undeclared names, once without, to read the AST of a script that has
/// one; and what it has registered, by name and number of parameters.
struct Engines {
    strict: Engine,
    lax: Engine,
    functions: HashMap<String, BTreeSet<usize>>,
}

fn engines() -> &'static Engines {
    static ENGINES: OnceLock<Engines> = OnceLock::new();
    ENGINES.get_or_init(|| {
        let mut strict = build_engine(&Limits::default());
        strict.set_optimization_level(OptimizationLevel::None);
        let mut lax = build_engine(&Limits::default());
        lax.set_optimization_level(OptimizationLevel::None);
        lax.set_strict_variables(false);
        let mut functions: HashMap<String, BTreeSet<usize>> = HashMap::new();
        for (name, arity) in lax.collect_fn_metadata(
            None,
            |info| Some((info.metadata.name.to_string(), info.metadata.num_params)),
            true,
        ) {
            functions.entry(name).or_default().insert(arity);
        }
        Engines {
            strict,
            lax,
            functions,
        }
    })
}

fn at(position: Position, message: String) -> Finding {
    Finding {
        line: position.line().unwrap_or(1),
        column: position.position().unwrap_or(1),
        message,
    }
}

/// What a variable is known to hold, for checking its properties.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Holds {
    /// A record of this object.
    Record(String),
    /// The user (`user`).
    User,
}

/// The walk over one AST.
struct Analysis<'a> {
    catalog: &'a Catalog,
    object: Option<&'a str>,
    variables: &'a [&'a str],
    /// Functions the script defines: name → numbers of parameters.
    defined: HashMap<String, BTreeSet<usize>>,
    /// Every name declared anywhere (variables, parameters, loop and catch variables): a call
    /// through one of them may be a function pointer.
    declared: HashSet<String>,
    /// What the variables of the body being walked hold, where that is known.
    holds: HashMap<String, Holds>,
    /// Whether this runs outside a script run (a formula), where `RUN_FUNCTIONS` fail.
    outside_a_run: bool,
    findings: Vec<Finding>,
}

impl<'a> Analysis<'a> {
    fn new(catalog: &'a Catalog, object: Option<&'a str>, variables: &'a [&'a str]) -> Self {
        Analysis {
            catalog,
            object,
            variables,
            defined: HashMap::new(),
            declared: HashSet::new(),
            holds: HashMap::new(),
            outside_a_run: false,
            findings: Vec::new(),
        }
    }

    fn run(mut self, ast: &AST) -> Vec<Finding> {
        for function in ast.iter_fn_def() {
            self.defined
                .entry(function.name.to_string())
                .or_default()
                .insert(function.params.len());
            self.declared
                .extend(function.params.iter().map(ToString::to_string));
        }
        ast.walk(&mut |path| {
            if let Some(node) = path.last() {
                match node {
                    rhai::ASTNode::Stmt(Stmt::Var(x, ..)) => {
                        self.declared.insert(x.0.name.to_string());
                    }
                    rhai::ASTNode::Stmt(Stmt::For(x, ..)) => {
                        self.declared.insert(x.0.name.to_string());
                        if let Some(counter) = &x.1 {
                            self.declared.insert(counter.name.to_string());
                        }
                    }
                    rhai::ASTNode::Stmt(Stmt::TryCatch(x, ..)) => {
                        if let Expr::Variable(variable, ..) = &x.expr {
                            self.declared.insert(variable.1.to_string());
                        }
                    }
                    _ => {}
                }
            }
            true
        });

        // The main body: `record`, `old` and `user` are the run's.
        let body = ast_statements(ast);
        self.holds = body_holds(&body, self.root_holds(), &self.defined);
        for stmt in &body {
            self.stmt(stmt);
        }

        // Each function body: it sees only its parameters, so the run's variables are not
        // checked there (a parameter named `record` may hold anything).
        for function in ast.iter_fn_def() {
            let name = function.name.to_string();
            let arity = function.params.len();
            let only = ast.clone_functions_only_filtered(|_, _, _, fn_name, fn_arity| {
                fn_name == name && fn_arity == arity
            });
            let mut body = Vec::new();
            only.walk(&mut |path| {
                if let [rhai::ASTNode::Stmt(stmt)] = path {
                    body.push((*stmt).clone());
                }
                true
            });
            let mut holds = body_holds(&body, HashMap::new(), &self.defined);
            for param in &function.params {
                holds.remove(param.as_str());
            }
            self.holds = holds;
            for stmt in &body {
                self.stmt(stmt);
            }
        }
        self.findings
    }

    /// `record`, `old` and `user` as the run gives them.
    fn root_holds(&self) -> HashMap<String, Holds> {
        let mut holds = HashMap::new();
        for variable in self.variables {
            match (*variable, self.object) {
                ("record" | "old", Some(object)) => {
                    holds.insert((*variable).to_owned(), Holds::Record(object.to_owned()));
                }
                ("user", _) => {
                    holds.insert("user".to_owned(), Holds::User);
                }
                _ => {}
            }
        }
        holds
    }

    fn report(&mut self, position: Position, message: String) {
        self.findings.push(at(position, message));
    }

    fn stmts<'s>(&mut self, statements: impl IntoIterator<Item = &'s Stmt>) {
        for stmt in statements {
            self.stmt(stmt);
        }
    }

    fn stmt(&mut self, stmt: &Stmt) {
        match stmt {
            Stmt::If(x, ..) | Stmt::While(x, ..) | Stmt::Do(x, ..) | Stmt::TryCatch(x, ..) => {
                self.expr(&x.expr);
                self.stmts(&x.body);
                self.stmts(&x.branch);
            }
            Stmt::Switch(x, ..) => {
                let (expr, cases) = &**x;
                self.expr(expr);
                for block in &cases.expressions {
                    self.expr(&block.lhs);
                    self.expr(&block.rhs);
                }
            }
            Stmt::For(x, ..) => {
                self.expr(&x.2.expr);
                self.stmts(&x.2.body);
            }
            Stmt::Var(x, ..) => self.expr(&x.1),
            Stmt::Assignment(x) => {
                self.expr(&x.1.lhs);
                self.expr(&x.1.rhs);
            }
            Stmt::FnCall(call, position) => self.call(call, *position),
            Stmt::Block(block) => self.stmts(block.iter()),
            Stmt::Expr(expr) => self.expr(expr),
            Stmt::BreakLoop(Some(expr), ..) | Stmt::Return(Some(expr), ..) => self.expr(expr),
            _ => {}
        }
    }

    fn expr(&mut self, expr: &Expr) {
        match expr {
            Expr::InterpolatedString(items, ..) | Expr::Array(items, ..) => {
                for item in items.iter() {
                    self.expr(item);
                }
            }
            Expr::Map(x, ..) => {
                for (_, value) in &x.0 {
                    self.expr(value);
                }
            }
            Expr::Stmt(block) => self.stmts(block.iter()),
            Expr::FnCall(call, position) => self.call(call, *position),
            Expr::MethodCall(call, position) => self.method(call, *position),
            Expr::Dot(x, ..) => {
                self.root_property(x);
                self.expr(&x.lhs);
                self.chain(&x.rhs);
            }
            Expr::Index(x, ..) => {
                if let (Expr::Variable(variable, ..), Expr::StringConstant(key, position)) =
                    (&x.lhs, &x.rhs)
                {
                    self.property(&variable.1, key, *position);
                }
                self.expr(&x.lhs);
                self.index(&x.rhs);
            }
            Expr::And(items, ..) | Expr::Or(items, ..) | Expr::Coalesce(items, ..) => {
                for item in items.iter() {
                    self.expr(item);
                }
            }
            _ => {}
        }
    }

    /// The right side of `a.…`: properties and method calls of whatever is on the left.
    fn chain(&mut self, expr: &Expr) {
        match expr {
            Expr::Property(..) => {}
            Expr::MethodCall(call, position) => self.method(call, *position),
            Expr::Dot(x, ..) => {
                self.chain(&x.lhs);
                self.chain(&x.rhs);
            }
            Expr::Index(x, ..) => {
                self.chain(&x.lhs);
                self.index(&x.rhs);
            }
            other => self.expr(other),
        }
    }

    /// An index, which Rhai keeps together with the rest of a chain after it
    /// (`a[i].b` is `a[i.b]` in its tree).
    fn index(&mut self, expr: &Expr) {
        match expr {
            Expr::Dot(x, ..) | Expr::Index(x, ..) => {
                self.expr(&x.lhs);
                self.chain(&x.rhs);
            }
            other => self.expr(other),
        }
    }

    /// `variable.name…`: the first property of a variable whose contents are known.
    /// `variable.name…`, or `get("object", id).name…`: the first property of a value whose
    /// contents are known.
    fn root_property(&mut self, dot: &BinaryExpr) {
        let Some((name, position)) = first_property(&dot.rhs) else {
            return;
        };
        match &dot.lhs {
            Expr::Variable(variable, ..) => self.property(&variable.1, name, position),
            call @ Expr::FnCall(..) => {
                if let Some(holds) = record_of(call, false, &self.defined) {
                    self.property_of(Some(&holds), name, position);
                }
            }
            _ => {}
        }
    }

    fn property(&mut self, variable: &str, name: &str, position: Position) {
        let holds = self.holds.get(variable).cloned();
        self.property_of(holds.as_ref(), name, position);
    }

    fn property_of(&mut self, holds: Option<&Holds>, name: &str, position: Position) {
        let message = match holds {
            Some(Holds::User) if !USER_FIELDS.contains(&name) => format!(
                "`user` has no field `{name}`{}",
                hint(name, USER_FIELDS.iter().copied())
            ),
            Some(Holds::Record(object)) => match self.catalog.fields(object) {
                Some(fields) if !fields.contains(name) => format!(
                    "`{name}` is not a field of `{object}`{}",
                    hint(name, fields.iter().map(String::as_str))
                ),
                _ => return,
            },
            _ => return,
        };
        self.report(position, message);
    }

    fn call(&mut self, call: &FnCallExpr, position: Position) {
        for arg in call.args.iter() {
            self.expr(arg);
        }
        if call.is_operator_call() || !call.namespace.is_empty() || !is_identifier(&call.name) {
            return;
        }
        let name = call.name.as_str();
        let arity = call.args.len();
        if KEYWORD_FUNCTIONS.contains(&name) || self.declared.contains(name) {
            return;
        }
        let defined = self.defined.get(name);
        let native = engines().functions.get(name);
        if defined.is_some_and(|arities| arities.contains(&arity))
            || native.is_some_and(|arities| arities.contains(&arity))
        {
            if self.outside_a_run && defined.is_none() && RUN_FUNCTIONS.contains(&name) {
                self.report(
                    position,
                    format!("`{name}()` works in scripts only, not in a formula"),
                );
            }
            self.data_call(name, call);
            return;
        }
        let arities: BTreeSet<usize> = defined
            .into_iter()
            .chain(native)
            .flatten()
            .copied()
            .collect();
        let message = if arities.is_empty() {
            format!(
                "`{name}()` is not a function of the script API or defined in the script{}",
                hint(name, self.known_functions())
            )
        } else {
            format!(
                "`{name}()` is called with {}; it takes {}",
                arguments(arity),
                takes(&arities)
            )
        };
        self.report(position, message);
    }

    /// `value.name(args)`: a function whose first parameter is the value, or a function of
    /// the script called with `this` as the value.
    fn method(&mut self, call: &FnCallExpr, position: Position) {
        for arg in call.args.iter() {
            self.expr(arg);
        }
        let name = call.name.as_str();
        let arity = call.args.len();
        if KEYWORD_FUNCTIONS.contains(&name) || !is_identifier(name) {
            return;
        }
        let defined = self.defined.get(name);
        let native = engines().functions.get(name);
        if defined.is_some_and(|arities| arities.contains(&arity) || arities.contains(&(arity + 1)))
            || native.is_some_and(|arities| arities.contains(&(arity + 1)))
        {
            return;
        }
        // A map property holding a function pointer is called the same way; it cannot be
        // told apart, so only a name that is no function at all is reported.
        if defined.is_some() || native.is_some() {
            let arities: BTreeSet<usize> = native
                .into_iter()
                .flatten()
                .filter_map(|n| n.checked_sub(1))
                .chain(defined.into_iter().flatten().copied())
                .collect();
            self.report(
                position,
                format!(
                    "the method `{name}()` is called with {}; it takes {}",
                    arguments(arity),
                    takes(&arities)
                ),
            );
            return;
        }
        self.report(
            position,
            format!(
                "`{name}()` is not a method of any value in scripts{}",
                hint(name, self.known_functions())
            ),
        );
    }

    fn known_functions(&self) -> Vec<&str> {
        let mut names: Vec<&str> = engines()
            .functions
            .keys()
            .map(String::as_str)
            .chain(self.defined.keys().map(String::as_str))
            .chain(KEYWORD_FUNCTIONS.iter().copied())
            .filter(|name| is_identifier(name))
            .collect();
        names.sort_unstable();
        names
    }

    /// `find("lead", #{…})` and the other data functions with a literal object name.
    fn data_call(&mut self, name: &str, call: &FnCallExpr) {
        let (map_index, filter) = match name {
            "find" | "find_one" | "count" => (Some(1), true),
            "create" => (Some(1), false),
            "update" => (Some(2), false),
            "get" => (None, false),
            _ => return,
        };
        if self.defined.contains_key(name) {
            return;
        }
        let Some(Expr::StringConstant(object, position)) = call.args.first() else {
            return;
        };
        if !self.catalog.objects.contains_key(object.as_str()) {
            let objects = self.catalog.objects.keys().map(String::as_str);
            let message = format!(
                "`{object}` is not an object of this app{}",
                hint(object, objects)
            );
            self.report(*position, message);
            return;
        }
        let Some(fields) = self.catalog.fields(object) else {
            return;
        };
        let Some(map) = map_index.and_then(|index| call.args.get(index)) else {
            return;
        };
        let mut keys = Vec::new();
        map_keys(map, filter, &mut keys);
        for (key, position) in keys {
            if !fields.contains(key.as_str()) {
                let message = format!(
                    "`{key}` is not a field of `{object}`{}",
                    hint(&key, fields.iter().map(String::as_str))
                );
                self.report(position, message);
            }
        }
    }
}

/// The statements of the main body of a script (not of its functions).
fn ast_statements(ast: &AST) -> Vec<Stmt> {
    let main = ast.clone_statements_only();
    let mut body = Vec::new();
    main.walk(&mut |path| {
        if let [rhai::ASTNode::Stmt(stmt)] = path {
            body.push((*stmt).clone());
        }
        true
    });
    body
}

/// What the variables of a body hold: the run's (`start`), and each variable declared with
/// the result of a data function over a literal object. A variable declared twice with
/// different contents, or assigned again, is dropped: it is no longer known.
fn body_holds(
    body: &[Stmt],
    start: HashMap<String, Holds>,
    defined: &HashMap<String, BTreeSet<usize>>,
) -> HashMap<String, Holds> {
    let mut found: HashMap<String, Option<Holds>> =
        start.into_iter().map(|(k, v)| (k, Some(v))).collect();
    for stmt in body {
        let mut path = Vec::new();
        stmt.walk(&mut path, &mut |path| {
            match path.last() {
                Some(rhai::ASTNode::Stmt(Stmt::Var(x, ..))) => {
                    seen(&x.0.name, record_of(&x.1, false, defined), &mut found);
                }
                Some(rhai::ASTNode::Stmt(Stmt::For(x, ..))) => {
                    seen(&x.0.name, record_of(&x.2.expr, true, defined), &mut found);
                    if let Some(counter) = &x.1 {
                        seen(&counter.name, None, &mut found);
                    }
                }
                Some(rhai::ASTNode::Stmt(Stmt::TryCatch(x, ..))) => {
                    if let Expr::Variable(variable, ..) = &x.expr {
                        seen(&variable.1, None, &mut found);
                    }
                }
                Some(rhai::ASTNode::Stmt(Stmt::Assignment(x))) => {
                    if let Expr::Variable(variable, ..) = &x.1.lhs {
                        found.insert(variable.1.to_string(), None);
                    }
                }
                _ => {}
            }
            true
        });
    }
    found
        .into_iter()
        .filter_map(|(name, holds)| holds.map(|holds| (name, holds)))
        .collect()
}

/// The object whose record `expr` is, when it is a data call with a literal object name:
/// `get`, `find_one`, `create` and `update` give one record; `find` (only when `iterated`,
/// as in `for x in find(…)`) gives records.
fn record_of(
    expr: &Expr,
    iterated: bool,
    defined: &HashMap<String, BTreeSet<usize>>,
) -> Option<Holds> {
    let Expr::FnCall(call, ..) = expr else {
        return None;
    };
    // A function of the script's own with the same name is not the API's.
    if defined.contains_key(call.name.as_str()) {
        return None;
    }
    let single = matches!(call.name.as_str(), "get" | "find_one" | "create" | "update");
    let many = call.name.as_str() == "find";
    if !(single && !iterated || many && iterated) {
        return None;
    }
    match call.args.first() {
        Some(Expr::StringConstant(object, ..)) => Some(Holds::Record(object.to_string())),
        _ => None,
    }
}

/// The first property named in a chain (`a` of `.a.b`, `.a[0]`, `.a.len()`).
fn first_property(expr: &Expr) -> Option<(&str, Position)> {
    match expr {
        Expr::Property(x, position) => Some((x.2.as_str(), *position)),
        Expr::Dot(x, ..) | Expr::Index(x, ..) => first_property(&x.lhs),
        _ => None,
    }
}

/// The field names a literal map names: its keys, and for a filter, the keys of the maps in
/// `or` and `not` rather than those words.
fn map_keys(expr: &Expr, filter: bool, keys: &mut Vec<(String, Position)>) {
    let Expr::Map(x, ..) = expr else {
        return;
    };
    for (key, value) in &x.0 {
        if filter && FILTER_GROUPS.contains(&key.name.as_str()) {
            match value {
                Expr::Array(items, ..) => {
                    for item in items.iter() {
                        map_keys(item, true, keys);
                    }
                }
                other => map_keys(other, true, keys),
            }
        } else {
            keys.push((key.name.to_string(), key.pos));
        }
    }
}

fn is_identifier(name: &str) -> bool {
    name.chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_alphanumeric() || c == '_')
}

fn arguments(count: usize) -> String {
    match count {
        1 => "1 argument".to_owned(),
        n => format!("{n} arguments"),
    }
}

fn takes(arities: &BTreeSet<usize>) -> String {
    let list: Vec<String> = arities.iter().map(ToString::to_string).collect();
    match list.as_slice() {
        [one] if one == "1" => "1 argument".to_owned(),
        [one] => format!("{one} arguments"),
        [init @ .., last] => format!("{} or {last} arguments", init.join(", ")),
        [] => "no arguments".to_owned(),
    }
}

/// "; did you mean `x`?" when a known name is close to the unknown one (within two edits,
/// one for names of three letters or fewer), preferring the script API's own functions.
fn hint<'n>(unknown: &str, known: impl IntoIterator<Item = &'n str>) -> String {
    let allowed = if unknown.chars().count() <= 3 { 1 } else { 2 };
    known
        .into_iter()
        .map(|name| (edit_distance(name, unknown), !API.contains(&name), name))
        .filter(|(distance, ..)| *distance <= allowed)
        .min()
        .map(|(.., name)| format!("; did you mean `{name}`?"))
        .unwrap_or_default()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

/// Records what `name` holds; a second, different declaration makes it unknown.
fn seen(name: &str, holds: Option<Holds>, found: &mut HashMap<String, Option<Holds>>) {
    match found.get(name) {
        Some(previous) if *previous != holds => {
            found.insert(name.to_owned(), None);
        }
        Some(_) => {}
        None => {
            found.insert(name.to_owned(), holds);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SYSTEM: &[&str] = &["id", "owner", "created_at", "version"];

    fn catalog() -> Catalog {
        let mut catalog = Catalog::new();
        let with_system = |fields: &[&'static str]| {
            fields
                .iter()
                .chain(SYSTEM)
                .map(|f| (*f).to_owned())
                .collect::<Vec<_>>()
        };
        catalog.add_object(
            "lead",
            with_system(&["name", "phone", "status", "tags", "amount"]),
        );
        catalog.add_object("account", with_system(&["name", "deal_status"]));
        catalog.add_object(
            "opportunity",
            with_system(&["name", "amount", "account", "stage"]),
        );
        catalog.add_unchecked_object("broken");
        catalog
    }

    fn script(source: &str) -> Vec<Finding> {
        analyze_script(source, &catalog(), Some("lead"))
    }

    fn expression(source: &str) -> Vec<Finding> {
        analyze_expression(
            source,
            &catalog(),
            Some("lead"),
            ExpressionKind {
                variables: &["record", "old"],
                in_a_run: true,
            },
        )
    }

    /// Each finding as `line:column: message`.
    fn lines(findings: &[Finding]) -> Vec<String> {
        findings
            .iter()
            .map(|f| format!("{}:{}: {}", f.line, f.column, f.message))
            .collect()
    }

    #[test]
    fn an_unknown_function_is_reported_where_it_is_called_with_the_closest_name() {
        let found = lines(&script("let x = 1;\nlet leads = fnd(\"lead\", #{});\n"));
        assert_eq!(
            found,
            [
                "2:13: `fnd()` is not a function of the script API or defined in the script; did you mean `find`?"
            ]
        );
    }

    #[test]
    fn a_known_function_called_with_the_wrong_number_of_arguments_is_reported() {
        let found = lines(&script("let leads = find(\"lead\");"));
        assert_eq!(
            found,
            ["1:13: `find()` is called with 1 argument; it takes 2 or 3 arguments"]
        );
    }

    #[test]
    fn an_unknown_method_is_reported_and_known_methods_are_not() {
        let found = lines(&script(
            "let s = \"a\";\ns.trim();\nlet n = s.len();\nlet r = user.roles;\nif r.contains(\"admin\") { s.trimm(); }\n",
        ));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("5:28: `trimm()` is not a method"),
            "{found:?}"
        );
        assert!(found[0].ends_with("did you mean `trim`?"), "{found:?}");
    }

    #[test]
    fn functions_the_script_defines_and_the_whole_api_are_known() {
        let source = "fn tidy(s) { s.trim(); s }\n\
            let v = tidy(record.name);\n\
            let a = find(\"lead\", #{ status: \"new\" });\n\
            let b = find_one(\"lead\", #{});\n\
            let c = get(\"account\", \"x\");\n\
            let d = count(\"lead\", #{});\n\
            create(\"account\", #{ name: \"n\" });\n\
            update(\"account\", \"x\", #{ deal_status: \"dealt\" });\n\
            notify(user.id, \"hi\");\n\
            log(`${now()} ${today() + days(1)} ${hours(2)}`);\n\
            if type_of(v) != \"string\" { reject(\"no\"); }\n\
            let f = |x| x + 1;\n\
            let g = f.call(1);\n\
            let m = max(1, 2);\n\
            let parts = \"a,b\".split(\",\");\n\
            parts.push(\"c\");\n\
            let u = to_upper(\"x\");\n";
        assert_eq!(lines(&script(source)), Vec::<String>::new());
    }

    #[test]
    fn a_record_field_the_object_does_not_have_is_reported_read_or_written() {
        let found = lines(&script(
            "let a = record.amout;\nrecord.nmae = \"x\";\nif old?.stauts != () {}\nlet p = old.phone;\n",
        ));
        assert_eq!(
            found,
            [
                "1:16: `amout` is not a field of `lead`; did you mean `amount`?",
                "2:8: `nmae` is not a field of `lead`; did you mean `name`?",
                "3:9: `stauts` is not a field of `lead`; did you mean `status`?",
            ]
        );
    }

    #[test]
    fn real_fields_system_fields_methods_on_them_and_dynamic_names_are_not_reported() {
        let source = "let n = record.name.trim();\n\
            let t = record.tags.contains(\"vip\");\n\
            let i = record.id + old?.owner + record.created_at;\n\
            let name = \"anything\";\n\
            let v = record[name];\n\
            record[name] = 1;\n\
            let k = record.keys();\n\
            if old?.status != record.status { record.phone = (); }\n";
        assert_eq!(lines(&script(source)), Vec::<String>::new());
    }

    #[test]
    fn a_literal_index_of_the_record_is_checked() {
        let found = lines(&script("let v = record[\"nam\"];"));
        assert_eq!(
            found,
            ["1:16: `nam` is not a field of `lead`; did you mean `name`?"]
        );
    }

    #[test]
    fn user_has_only_its_own_fields() {
        let found = lines(&script(
            "let a = user.id + user.username + user.manager + user.department;\nlet r = user.roles;\nlet e = user.email;\n",
        ));
        assert_eq!(found, ["3:14: `user` has no field `email`"]);
    }

    #[test]
    fn static_data_calls_name_real_objects_and_fields() {
        let source = "let a = get(\"oportunity\", \"x\");\n\
            let b = find(\"lead\", #{ stauts: \"new\", or: [#{ phone: \"1\" }, #{ nme: \"x\" }], not: #{ tgs: \"a\" } });\n\
            create(\"account\", #{ name: \"n\", deal: 1 });\n\
            update(\"account\", \"x\", #{ deal_statu: \"dealt\" });\n\
            let c = count(\"broken\", #{ anything: 1 });\n";
        let found = lines(&script(source));
        assert_eq!(
            found,
            [
                "1:13: `oportunity` is not an object of this app; did you mean `opportunity`?",
                "2:25: `stauts` is not a field of `lead`; did you mean `status`?",
                "2:65: `nme` is not a field of `lead`; did you mean `name`?",
                "2:86: `tgs` is not a field of `lead`; did you mean `tags`?",
                "3:33: `deal` is not a field of `account`",
                "4:27: `deal_statu` is not a field of `account`; did you mean `deal_status`?",
            ],
            "{source}"
        );
    }

    #[test]
    fn a_variable_holding_a_fetched_record_is_checked_like_record() {
        let source = "let opp = get(\"opportunity\", record.id);\n\
            if opp != () { let a = opp.account; let b = opp?.acount; }\n\
            for l in find(\"lead\", #{}) { log(l.nmae); }\n";
        let found = lines(&script(source));
        assert_eq!(
            found,
            [
                "2:50: `acount` is not a field of `opportunity`; did you mean `account`?",
                "3:36: `nmae` is not a field of `lead`; did you mean `name`?",
            ]
        );
    }

    #[test]
    fn a_property_of_a_data_call_is_checked() {
        let source = "let a = get(\"opportunity\", \"x\").acount;\n\
            let b = find_one(\"lead\", #{})?.name;\n\
            let c = get(\"opportunity\", \"x\");\n\
            let d = c.stge;\n\
            fn get(a, b) { #{} }\n";
        assert_eq!(
            lines(&script(&source.replace("fn get(a, b) { #{} }\n", ""))),
            [
                "1:33: `acount` is not a field of `opportunity`; did you mean `account`?",
                "4:11: `stge` is not a field of `opportunity`; did you mean `stage`?",
            ]
        );
        // A function of the script's own named `get` is not the API's.
        assert_eq!(lines(&script(source)), Vec::<String>::new());
    }

    #[test]
    fn a_variable_assigned_again_or_from_a_dynamic_call_is_not_checked() {
        let source = "let object = \"lead\";\n\
            let a = get(object, \"x\");\n\
            let b = a.whatever;\n\
            let c = get(\"account\", \"x\");\n\
            c = #{ other: 1 };\n\
            let d = c.other;\n";
        assert_eq!(lines(&script(source)), Vec::<String>::new());
    }

    #[test]
    fn function_bodies_are_checked_for_calls_but_their_parameters_are_not_the_record() {
        let source = "fn touch(record, id) {\n  let x = record.anything;\n  fnd(id);\n}\n";
        let found = lines(&script(source));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].starts_with("3:3: `fnd()`"), "{found:?}");
    }

    #[test]
    fn an_undeclared_variable_is_reported() {
        let found = lines(&script("let name = record.name;\nrecord.name = nmae;\n"));
        assert_eq!(
            found,
            ["2:15: `nmae` is not declared: declare it with `let` before it is used"]
        );
    }

    #[test]
    fn expressions_are_checked_with_their_own_variables() {
        assert_eq!(
            lines(&expression(
                "record.amount > 100 && old?.amount != record.amount"
            )),
            Vec::<String>::new()
        );
        assert_eq!(
            lines(&expression("record.status == \"x\" && record.compny == ()")),
            ["1:32: `compny` is not a field of `lead`"]
        );
        assert_eq!(
            lines(&expression("user.id == record.owner")),
            ["1:1: `user` is not available here; this expression may use `record`, `old`"]
        );
    }

    #[test]
    fn a_formula_may_not_call_what_needs_a_script_run() {
        let found = analyze_expression(
            "if record.name == () { today() + days(1) } else { get(\"account\", record.name) }",
            &catalog(),
            Some("lead"),
            FORMULA,
        );
        assert_eq!(
            lines(&found),
            [
                "1:24: `today()` works in scripts only, not in a formula",
                "1:51: `get()` works in scripts only, not in a formula",
            ]
        );
        let found = analyze_expression("today() + days(1)", &catalog(), Some("lead"), CONDITION);
        assert_eq!(lines(&found), Vec::<String>::new());
    }

    #[test]
    fn without_an_object_records_are_not_checked_but_calls_are() {
        let found = analyze_script("let a = record.anything; fnd();", &catalog(), None);
        assert_eq!(found.len(), 1, "{found:?}");
    }

    #[test]
    fn a_script_with_a_syntax_error_has_no_findings() {
        assert!(script("let x = ;\nfnd();").is_empty());
    }
}
