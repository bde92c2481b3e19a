//! The OpenAPI 3.1 description of the HTTP API (`GET /api/v1/openapi.json`), generated from
//! the metadata: one schema per object for the record as returned, for a create and for a
//! patch, and the record paths of every object with their filters, errors and security.
//!
//! The output is deterministic (objects in metadata order, fields in file order), so it can
//! be snapshotted, and [`document_for_user`] lets the permission layer leave out the fields a
//! user may not see or write. This module only describes the API: it does not route, check
//! input or know what a user may do; the handlers and the runtime do that.
//!
//! The document is meant to be *true*, so that a fuzzer driven by it (schemathesis, in CI)
//! finds no request the document allows that the server refuses, nor the reverse: every
//! status an operation can answer is listed, query parameters carry the patterns the server
//! parses (filters `op.value` per field type, sort and field lists as enums), and request
//! bodies say `additionalProperties: false` where the server refuses unknown keys. The
//! patterns are written in the regular-expression syntax that ECMA-262, Python and Rust
//! share.

mod workflow;

use std::collections::BTreeSet;

use keel_meta::{Field, FieldKind, FormulaType, Label, Object, Schema, Storage};
use keel_runtime::records::{DEFAULT_PAGE_SIZE, MAX_BULK_ITEMS, MAX_FILTER_INTEGER, MAX_PAGE_SIZE};
use serde_json::{Map, Value, json};

/// The session cookie that `POST /auth/login` sets, as an alternative to the bearer token.
const SESSION_COOKIE: &str = "keel_session";
/// A money value as sent in JSON: an exact decimal in a string.
const MONEY_PATTERN: &str = r"^-?[0-9]+(\.[0-9]+)?$";
/// The characters `str::trim` removes (Unicode `White_Space`), for a regex character class.
/// Python's `\s` and ECMA-262's `\s` each differ a little from it, so it is spelled out.
const WHITESPACE: &str =
    r"\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";
/// [`WHITESPACE`] without the ASCII space, for query-string patterns: clients that encode
/// a space as `+` (HTML forms, Python's `requests`) send a plus, which the server reads as a
/// plus (docs/api.md, "Query strings").
const QUERY_WHITESPACE: &str =
    r"\t\n\x0b\x0c\r\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";
/// The most values an `in` list of a filter takes.
const MAX_IN_VALUES: usize = 500;
/// The most characters of a `like` pattern and of `q`.
const MAX_PATTERN_CHARS: usize = 1_000;
/// The bound of a JSON integer field (2^53 - 1; see `keel_runtime::coerce`).
const MAX_JSON_INTEGER: i64 = keel_runtime::coerce::MAX_JSON_INTEGER;

/// The problem+json answers, each a reusable response: (status, component name, meaning).
const PROBLEM_RESPONSES: &[(u16, &str, &str)] = &[
    (
        400,
        "BadRequest",
        "The body is not JSON, or the path or query string cannot be decoded.",
    ),
    (401, "Unauthorized", "Not logged in, or bad credentials."),
    (
        403,
        "Forbidden",
        "The object or action is not allowed, or a field is read-only for this user.",
    ),
    (
        404,
        "NotFound",
        "No such object or record, or a record this user may not see (its existence is not revealed).",
    ),
    (
        409,
        "Conflict",
        "A unique value or a blocking duplicate key matches an existing record, or the record is still referenced.",
    ),
    (
        412,
        "PreconditionFailed",
        "`If-Match` names an older version: the record changed since it was read.",
    ),
    (413, "ContentTooLarge", "The request body is too large."),
    (
        414,
        "UriTooLong",
        "The URI (with its query string) is longer than the server reads.",
    ),
    (
        415,
        "UnsupportedMediaType",
        "A JSON body was sent without `Content-Type: application/json`.",
    ),
    (
        422,
        "UnprocessableContent",
        "Invalid input: unknown field, wrong type, a key given twice, a NUL character, a bad filter or parameter, or a rule or script rejected it. Every bad field is listed in `errors`.",
    ),
    (
        429,
        "TooManyRequests",
        "Too many attempts (sign-ins, or duplicate checks that match records this user cannot read); try again after `Retry-After` seconds.",
    ),
];

/// How filters read in a query string, for the operations that take them.
const FILTER_OPERATORS: &str = "Each field of the object is also an optional query parameter \
holding a filter `op.value`; all given filters must hold, and a field may appear twice \
(`score=gte.10&score=lt.50`). Operators: `eq`, `ne`, `gt`, `gte`, \
`lt`, `lte`, `in` (a list: `in.(a,b)`), `like` (matches the whole value, `*` is the wildcard), \
`is` (`is.null`, `is.not_null`). Date and datetime values may be relative, in the app \
timezone: `@now`, `@now-3d`, `@now+2h` (instants), `@today` (today's midnight), `@today+1d`. \
Examples: `status=eq.new`, `score=gte.50`, `grade=in.(p1,p3)`, `phone=is.null`, \
`name=like.张*`, `due_at=lte.@today+1d`.";

/// Component schemas shared by every object; object schemas never take these names.
const SHARED_SCHEMAS: &[&str] = &[
    "Problem",
    "FieldError",
    "Ref",
    "DuplicateMatch",
    "HistoryEntry",
    "Warning",
    "LoginRequest",
    "LoginResponse",
    "User",
    "Health",
];

/// What one user may do with each object's fields, as the document describes it.
pub struct UserAccess<'a> {
    /// Whether the user may read `(object, field)`: unreadable fields are left out of the
    /// records, inputs, filters and `_refs` alike. System fields are always shown.
    pub visible: &'a dyn Fn(&str, &str) -> bool,
    /// Whether the user may write `(object, field)`: other fields are left out of the create
    /// and patch bodies.
    pub writable: &'a dyn Fn(&str, &str) -> bool,
    /// Whether the user sees `(object, field)` masked: it cannot be sorted, grouped or
    /// measured by.
    pub masked: &'a dyn Fn(&str, &str) -> bool,
    /// Whether the user may set `owner` on records of the object.
    pub may_set_owner: &'a dyn Fn(&str) -> bool,
    /// Whether the user may set `pool` on records of the object.
    pub may_set_pool: &'a dyn Fn(&str) -> bool,
    /// Whether the user may see the pool (a member, a manager or an admin): only those
    /// pools' operations are listed.
    pub sees_pool: &'a dyn Fn(&str) -> bool,
}

/// The OpenAPI document for `schema`, as an admin sees it: every field visible and writable.
pub fn document(schema: &Schema) -> Value {
    document_for_fields(schema, &|_object, _field| true)
}

/// The OpenAPI document for `schema`, leaving out each declared field for which
/// `visible(object, field)` is false; every visible field writable, none masked.
pub fn document_for_fields(schema: &Schema, visible: &dyn Fn(&str, &str) -> bool) -> Value {
    document_for_user(
        schema,
        &UserAccess {
            visible,
            writable: visible,
            masked: &|_object, _field| false,
            may_set_owner: &|_object| true,
            may_set_pool: &|_object| true,
            sees_pool: &|_pool| true,
        },
    )
}

/// The OpenAPI document for `schema` as `access` lets one user see and write it.
pub fn document_for_user(schema: &Schema, access: &UserAccess<'_>) -> Value {
    let views = object_views(schema, access);

    let mut paths = Map::new();
    general_paths(schema, &mut paths);
    studio_paths(&mut paths);
    for view in &views {
        object_paths(view, &mut paths);
    }
    workflow::pool_paths(schema, &views, access, &mut paths);
    workflow::process_paths(schema, &views, &mut paths);
    workflow::report_paths(schema, &mut paths);
    workflow::rule_paths(schema, &mut paths);

    let mut schemas = Map::new();
    shared_schemas(&mut schemas);
    workflow::shared_schemas(&mut schemas);
    for view in &views {
        object_schemas(view, &mut schemas);
    }

    let mut parameters = shared_parameters();
    for view in &views {
        for field in view.filterable_fields() {
            parameters.insert(
                view.filter_parameter_name(&field.name),
                filter_parameter(&field),
            );
        }
        parameters.insert(view.order_parameter_name(), order_parameter(view));
    }

    let mut responses = Map::new();
    for (status, name, meaning) in PROBLEM_RESPONSES {
        responses.insert(
            (*name).to_owned(),
            json!({
                "description": format!("{status}: {meaning}"),
                "content": { "application/problem+json": { "schema": schema_ref("Problem") } },
            }),
        );
    }

    let mut tags = vec![
        json!({ "name": "Auth", "description": "Logging in and out." }),
        json!({ "name": "Metadata", "description": "The app's objects and this API's description." }),
        json!({ "name": "Operations", "description": "Health checks." }),
        json!({ "name": "Notifications", "description": "The user's in-app notifications." }),
        json!({ "name": "Studio", "description": "Live metadata: validate, apply and the recorded versions (admins only)." }),
        json!({ "name": "Pools", "description": "Lead pools: claim, release, assign, move (docs/pools.md)." }),
        json!({ "name": "Processes", "description": "Approvals of sales-process transitions (docs/processes.md)." }),
        json!({ "name": "Reports", "description": "The funnel, the briefing and the calendar (docs/reports.md)." }),
        json!({ "name": "Rules", "description": "Scheduled rules, pool sweeps and their runs (admins only; docs/scheduler.md)." }),
    ];
    for view in &views {
        tags.push(json!({ "name": view.object.name, "description": english(&view.object.label) }));
    }

    let app_name = english(&schema.app.name);
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": app_name,
            "version": schema.fingerprint.get(..12).unwrap_or(&schema.fingerprint),
            "description": format!(
                "The HTTP API of {app_name}, generated from its metadata. A record is a flat JSON \
                 object of its system fields and the fields the user may see; a `lookup` or \
                 `user` value is the target's id, and `_refs` names each target. `null` clears \
                 a field. Errors are `application/problem+json`. The version is the metadata \
                 fingerprint."
            ),
        },
        "servers": [{ "url": "/api/v1" }],
        "security": [{ "bearer": [] }, { "cookie": [] }],
        "tags": tags,
        "paths": paths,
        "components": {
            "schemas": schemas,
            "parameters": parameters,
            "headers": {
                "ETag": {
                    "description": "The record's version in quotes, e.g. `\"3\"`; send it back in `If-Match` to update safely.",
                    "schema": { "type": "string" },
                },
            },
            "responses": responses,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The `token` from `POST /auth/login`.",
                },
                "cookie": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": SESSION_COOKIE,
                    "description": "The session cookie that `POST /auth/login` sets.",
                },
            },
        },
    })
}

/// One object as the document shows it: its visible fields and its component names.
struct ObjectView<'a> {
    schema: &'a Schema,
    object: &'a Object,
    fields: Vec<&'a Field>,
    /// The visible fields the user may write (computed fields excluded).
    writable: Vec<&'a Field>,
    /// The visible fields the user sees masked.
    masked: Vec<String>,
    may_set_owner: bool,
    may_set_pool: bool,
    /// The component name of the record schema; the other names derive from it.
    base: String,
}

impl ObjectView<'_> {
    fn name(&self) -> &str {
        &self.object.name
    }

    fn label(&self) -> String {
        english(&self.object.label)
    }

    fn input_name(&self) -> String {
        format!("{}Input", self.base)
    }

    fn patch_name(&self) -> String {
        format!("{}Patch", self.base)
    }

    fn bulk_update_name(&self) -> String {
        format!("{}BulkUpdate", self.base)
    }

    fn page_name(&self) -> String {
        format!("Page{}", self.base)
    }

    fn field_name_schema(&self) -> String {
        format!("{}Field", self.base)
    }

    fn numeric_field_name_schema(&self) -> String {
        format!("{}NumericField", self.base)
    }

    fn filter_parameter_name(&self, field: &str) -> String {
        format!("{}.{field}", self.base)
    }

    fn order_parameter_name(&self) -> String {
        format!("{}.order", self.base)
    }

    fn filter_name(&self) -> String {
        format!("{}Filter", self.base)
    }

    fn query_name(&self) -> String {
        format!("{}Query", self.base)
    }

    fn sortable_field_name_schema(&self) -> String {
        format!("{}SortableField", self.base)
    }

    fn operation_id(&self, action: &str) -> String {
        format!("{}_{action}", self.object.name)
    }

    /// Names of the pools that hold records of this object.
    fn pools(&self) -> Vec<&str> {
        self.schema
            .pools
            .values()
            .filter(|pool| pool.object == self.object.name)
            .map(|pool| pool.name.as_str())
            .collect()
    }

    /// The system fields a returned record carries: name, storage, not null, meaning.
    fn system_fields(&self) -> Vec<(String, Storage, bool, &'static str)> {
        self.object
            .returned_system_fields()
            .map(|field| {
                let name = field.name.to_owned();
                (name, field.storage, field.not_null, field.description)
            })
            .collect()
    }

    /// Every field a filter may name, system fields first, as a type and a label.
    fn filterable_fields(&self) -> Vec<FilterableField> {
        let mut fields: Vec<FilterableField> = self
            .system_fields()
            .into_iter()
            .map(|(name, storage, _, _)| FilterableField {
                type_name: storage_type_name(storage),
                label: name.replace('_', " "),
                example: storage_example(storage),
                storage,
                name,
            })
            .collect();
        fields.extend(self.fields.iter().map(|field| {
            FilterableField {
                name: field.name.clone(),
                type_name: field.kind.type_name(),
                label: field
                    .label
                    .as_ref()
                    .map_or_else(|| field.name.clone(), english),
                example: field_example(field),
                storage: field.storage(),
            }
        }));
        fields
    }

    /// Fields a list may be sorted and grouped by: not lists (multi-choice), not masked for
    /// this user.
    fn sortable_field_names(&self) -> Vec<String> {
        self.filterable_fields()
            .into_iter()
            .filter(|field| field.storage != Storage::Json && !self.masked.contains(&field.name))
            .map(|field| field.name)
            .collect()
    }

    /// Every field name a record may carry, for `fields=` and `group_by=`.
    fn all_field_names(&self) -> Vec<String> {
        self.filterable_fields()
            .into_iter()
            .map(|field| field.name)
            .collect()
    }

    /// Fields whose values can be summed and averaged (not masked for this user).
    fn numeric_field_names(&self) -> Vec<String> {
        self.filterable_fields()
            .into_iter()
            .filter(|field| matches!(field.storage, Storage::Integer | Storage::Decimal { .. }))
            .filter(|field| !self.masked.contains(&field.name))
            .map(|field| field.name)
            .collect()
    }

    /// Fields that `GET .../duplicates` matches on: those of the duplicate keys, then the
    /// unique fields, each once, in field order.
    fn duplicate_check_fields(&self) -> Vec<&Field> {
        self.fields
            .iter()
            .copied()
            .filter(|field| {
                field.unique
                    || self
                        .object
                        .duplicates
                        .iter()
                        .any(|key| key.fields.contains(&field.name))
            })
            .collect()
    }
}

/// A field as a filter parameter describes it.
struct FilterableField {
    name: String,
    type_name: &'static str,
    label: String,
    example: String,
    storage: Storage,
}

/// Which schema of a field is wanted: as returned, in a create, or in a patch.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Read,
    Create,
    Update,
}

/// The visible fields and collision-free component names of every object, in metadata order.
fn object_views<'a>(schema: &'a Schema, access: &UserAccess<'_>) -> Vec<ObjectView<'a>> {
    let mut taken: BTreeSet<String> = SHARED_SCHEMAS
        .iter()
        .chain(workflow::SCHEMAS)
        .map(|name| (*name).to_owned())
        .collect();
    let mut views = Vec::with_capacity(schema.objects.len());
    for object in schema.objects.values() {
        let pascal = pascal_case(&object.name);
        let derived = |base: &str| {
            [
                base.to_owned(),
                format!("{base}Input"),
                format!("{base}Patch"),
                format!("{base}BulkUpdate"),
                format!("Page{base}"),
                format!("{base}Field"),
                format!("{base}NumericField"),
                format!("{base}SortableField"),
                format!("{base}Filter"),
                format!("{base}Query"),
            ]
        };
        // An object called `problem`, or `page_lead` beside `lead`, would otherwise take a
        // name already in use; such an object's schemas get a `Record` suffix instead.
        let mut base = pascal.clone();
        let mut attempt = 1;
        while derived(&base).iter().any(|name| taken.contains(name)) {
            base = if attempt == 1 {
                format!("{pascal}Record")
            } else {
                format!("{pascal}Record{attempt}")
            };
            attempt += 1;
        }
        taken.extend(derived(&base));
        let fields: Vec<&Field> = object
            .fields
            .values()
            .filter(|field| (access.visible)(&object.name, &field.name))
            .collect();
        views.push(ObjectView {
            schema,
            object,
            writable: fields
                .iter()
                .copied()
                .filter(|field| {
                    !field.is_computed() && (access.writable)(&object.name, &field.name)
                })
                .collect(),
            masked: fields
                .iter()
                .filter(|field| (access.masked)(&object.name, &field.name))
                .map(|field| field.name.clone())
                .collect(),
            fields,
            may_set_owner: (access.may_set_owner)(&object.name),
            may_set_pool: (access.may_set_pool)(&object.name),
            base,
        });
    }
    views
}

fn general_paths(schema: &Schema, paths: &mut Map<String, Value>) {
    let object_names: Vec<&str> = schema.objects.keys().map(String::as_str).collect();
    paths.insert(
        "/auth/login".to_owned(),
        json!({
            "post": {
                "tags": ["Auth"],
                "summary": "Log in",
                "description": "Checks the username and password; answers a bearer token and sets the session cookie.",
                "operationId": "auth_login",
                "security": [],
                "requestBody": {
                    "required": true,
                    "content": { "application/json": { "schema": schema_ref("LoginRequest") } },
                },
                "responses": with_problems(
                    json!({
                        "200": {
                            "description": "Logged in.",
                            "headers": {
                                "Set-Cookie": {
                                    "description": format!("The session cookie `{SESSION_COOKIE}`."),
                                    "schema": { "type": "string" },
                                },
                            },
                            "content": { "application/json": { "schema": schema_ref("LoginResponse") } },
                        },
                    }),
                    &[400, 401, 413, 415, 422, 429],
                ),
            },
        }),
    );
    paths.insert(
        "/auth/logout".to_owned(),
        json!({
            "post": {
                "tags": ["Auth"],
                "summary": "Log out",
                "description": "Ends the session of this token or cookie.",
                "operationId": "auth_logout",
                "responses": with_problems(
                    json!({ "204": { "description": "Logged out." } }),
                    &[401],
                ),
            },
        }),
    );
    paths.insert(
        "/auth/me".to_owned(),
        json!({
            "get": {
                "tags": ["Auth"],
                "summary": "The current user",
                "description": "The user of this session.",
                "operationId": "auth_me",
                "responses": with_problems(
                    json!({
                        "200": {
                            "description": "The user.",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "properties": { "user": schema_ref("User") },
                                        "required": ["user"],
                                    },
                                },
                            },
                        },
                    }),
                    &[401],
                ),
            },
        }),
    );
    let notification = json!({
        "type": "object",
        "properties": {
            "id": { "type": "string" },
            "message": { "type": "string" },
            "object": { "type": ["string", "null"] },
            "record_id": { "type": ["string", "null"] },
            "read": { "type": "boolean" },
            "created_at": { "type": "string", "format": "date-time" },
        },
        "required": ["id", "message", "object", "record_id", "read", "created_at"],
        "additionalProperties": false,
    });
    paths.insert(
        "/notifications".to_owned(),
        json!({
            "get": {
                "tags": ["Notifications"],
                "summary": "My notifications",
                "description": "The user's notifications, newest first (docs/rules.md, \"Notifications\"). The live stream, `GET /notifications/stream` (server-sent events), is described there rather than here.",
                "operationId": "notifications_list",
                "parameters": [
                    { "name": "unread", "in": "query", "description": "Only unread ones.", "schema": { "type": "string", "enum": ["true", "false"] } },
                    { "name": "before", "in": "query", "description": "The `next` of the previous page: notifications older than this id.", "schema": { "type": "string", "pattern": "^[^\\x00]*$" } },
                    { "name": "limit", "in": "query", "description": "At most this many (default 50).", "schema": { "type": "integer", "minimum": 1, "maximum": keel_runtime::notifications::MAX_PAGE } },
                ],
                "responses": with_problems(
                    json!({
                        "200": {
                            "description": "A page of notifications.",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "properties": {
                                            "data": { "type": "array", "items": notification },
                                            "next": { "type": ["string", "null"] },
                                        },
                                        "required": ["data", "next"],
                                        "additionalProperties": false,
                                    },
                                },
                            },
                        },
                    }),
                    &[401, 422],
                ),
            },
        }),
    );
    paths.insert(
        "/notifications/read".to_owned(),
        json!({
            "post": {
                "tags": ["Notifications"],
                "summary": "Mark all read",
                "description": "Marks every unread notification of the user read.",
                "operationId": "notifications_read_all",
                "responses": with_problems(
                    json!({
                        "200": {
                            "description": "How many were unread.",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "properties": { "marked": { "type": "integer", "minimum": 0 } },
                                        "required": ["marked"],
                                        "additionalProperties": false,
                                    },
                                },
                            },
                        },
                    }),
                    &[401],
                ),
            },
        }),
    );
    paths.insert(
        "/notifications/{id}/read".to_owned(),
        json!({
            "post": {
                "tags": ["Notifications"],
                "summary": "Mark one read",
                "description": "Marks one of the user's notifications read; another user's is not found.",
                "operationId": "notifications_read",
                "parameters": [
                    { "name": "id", "in": "path", "required": true, "schema": { "type": "string" } },
                ],
                "responses": with_problems(
                    json!({ "204": { "description": "Read." } }),
                    &[401, 404],
                ),
            },
        }),
    );
    paths.insert(
        "/meta/objects".to_owned(),
        json!({
            "get": {
                "tags": ["Metadata"],
                "summary": "List objects",
                "description": "The objects and their fields, as this user may see them.",
                "operationId": "meta_objects",
                "responses": with_problems(
                    json!({
                        "200": {
                            "description": "The objects' metadata.",
                            "content": { "application/json": { "schema": { "type": "object" } } },
                        },
                    }),
                    &[401],
                ),
            },
        }),
    );
    paths.insert(
        "/meta/objects/{object}".to_owned(),
        json!({
            "get": {
                "tags": ["Metadata"],
                "summary": "Get one object",
                "description": "One object and its fields, as this user may see them.",
                "operationId": "meta_object",
                "parameters": [{
                    "name": "object",
                    "in": "path",
                    "required": true,
                    "description": "The object's name.",
                    "schema": { "type": "string", "enum": object_names },
                }],
                "responses": with_problems(
                    json!({
                        "200": {
                            "description": "The object's metadata.",
                            "content": { "application/json": { "schema": { "type": "object" } } },
                        },
                    }),
                    &[401, 403, 404],
                ),
            },
        }),
    );
    paths.insert(
        "/openapi.json".to_owned(),
        json!({
            "get": {
                "tags": ["Metadata"],
                "summary": "This API description",
                "description": "OpenAPI 3.1, generated from the metadata, for the signed-in user: fields they may not read are left out.",
                "operationId": "openapi",
                "responses": with_problems(
                    json!({
                        "200": {
                            "description": "The OpenAPI document.",
                            "content": { "application/json": { "schema": { "type": "object" } } },
                        },
                    }),
                    &[401],
                ),
            },
        }),
    );
    paths.insert(
        "/healthz".to_owned(),
        json!({
            "get": {
                "tags": ["Operations"],
                "summary": "Health check",
                "description": "200 when the database answers, 503 otherwise.",
                "operationId": "healthz",
                "security": [],
                "responses": {
                    "200": {
                        "description": "Healthy.",
                        "content": { "application/json": { "schema": schema_ref("Health") } },
                    },
                    "503": {
                        "description": "The database does not answer.",
                        "content": { "application/json": { "schema": schema_ref("Health") } },
                    },
                },
            },
        }),
    );
}

/// The live-metadata routes of the studio (docs/studio.md), admins only.
fn studio_paths(paths: &mut Map<String, Value>) {
    let files = json!({
        "type": "object",
        "description": "Path in the app directory (`metadata/objects/lead.yaml`) → the file's new text, or `null` to delete it.",
        "additionalProperties": { "type": ["string", "null"] },
    });
    let plan = json!({
        "type": "object",
        "properties": {
            "steps": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "description": { "type": "string" },
                        "safe": { "type": "boolean" },
                    },
                    "required": ["description", "safe"],
                },
            },
        },
        "required": ["steps"],
    });
    let version = json!({
        "type": "object",
        "properties": {
            "version": { "type": "integer" },
            "applied_at": { "type": "string", "format": "date-time" },
            "applied_by": { "type": ["string", "null"] },
            "source": { "type": ["string", "null"], "description": "`cli` or `studio`." },
            "summary": { "type": "string" },
        },
        "required": ["version", "applied_at", "applied_by", "source", "summary"],
    });
    paths.insert(
        "/admin/metadata/validate".to_owned(),
        json!({
            "post": {
                "tags": ["Studio"],
                "summary": "Check a metadata change",
                "description": "The app as it would be with `files` replaced in the latest version: every problem with its file, line and column, and the migration plan. Changes nothing. Admins only.",
                "operationId": "metadata_validate",
                "requestBody": {
                    "required": true,
                    "content": { "application/json": { "schema": {
                        "type": "object",
                        "properties": { "files": files.clone() },
                        "required": ["files"],
                        "additionalProperties": false,
                    } } },
                },
                "responses": with_problems(
                    json!({
                        "200": {
                            "description": "The problems (none when the app would load) and the plan.",
                            "content": { "application/json": { "schema": {
                                "type": "object",
                                "properties": {
                                    "diagnostics": {
                                        "type": "array",
                                        "items": {
                                            "type": "object",
                                            "properties": {
                                                "file": { "type": "string" },
                                                "line": { "type": "integer" },
                                                "col": { "type": "integer" },
                                                "message": { "type": "string" },
                                            },
                                            "required": ["file", "line", "col", "message"],
                                        },
                                    },
                                    "plan": plan.clone(),
                                },
                                "required": ["diagnostics", "plan"],
                            } } },
                        },
                    }),
                    &[401, 403, 413, 415, 422],
                ),
            },
        }),
    );
    paths.insert(
        "/admin/metadata/apply".to_owned(),
        json!({
            "post": {
                "tags": ["Studio"],
                "summary": "Apply a metadata change",
                "description": "Checks, plans, migrates under the migration lock, writes the files into the app directory, records the version and serves it (every process within 2 s). 409 `stale_base` when `base` is not the latest version; 409 `destructive_change` with the plan unless `allow_destructive`; 422 `invalid_metadata` with the diagnostics. Admins only.",
                "operationId": "metadata_apply",
                "requestBody": {
                    "required": true,
                    "content": { "application/json": { "schema": {
                        "type": "object",
                        "properties": {
                            "files": files,
                            "base": { "type": "integer", "description": "The version the change was made against." },
                            "allow_destructive": { "type": "boolean", "default": false },
                        },
                        "required": ["files", "base"],
                        "additionalProperties": false,
                    } } },
                },
                "responses": with_problems(
                    json!({
                        "200": {
                            "description": "Applied: the version now served.",
                            "content": { "application/json": { "schema": {
                                "type": "object",
                                "properties": { "version": { "type": "integer" } },
                                "required": ["version"],
                            } } },
                        },
                    }),
                    &[401, 403, 409, 413, 415, 422],
                ),
            },
        }),
    );
    paths.insert(
        "/admin/metadata/versions".to_owned(),
        json!({
            "get": {
                "tags": ["Studio"],
                "summary": "The recorded metadata versions",
                "description": "Newest first; `next` is the `before` of the following page. Admins only.",
                "operationId": "metadata_versions",
                "parameters": [
                    {
                        "name": "before", "in": "query", "required": false,
                        "description": "Only versions older than this one.",
                        "schema": { "type": "integer" },
                    },
                    {
                        "name": "limit", "in": "query", "required": false,
                        "schema": { "type": "integer", "minimum": 1, "maximum": 200, "default": 50 },
                    },
                ],
                "responses": with_problems(
                    json!({
                        "200": {
                            "description": "One page of versions.",
                            "content": { "application/json": { "schema": {
                                "type": "object",
                                "properties": {
                                    "data": { "type": "array", "items": version.clone() },
                                    "next": { "type": ["integer", "null"] },
                                },
                                "required": ["data", "next"],
                            } } },
                        },
                    }),
                    &[401, 403, 422],
                ),
            },
        }),
    );
    let mut detail = version;
    if let Some(properties) = detail.get_mut("properties").and_then(Value::as_object_mut) {
        properties.insert(
            "files".to_owned(),
            json!({ "type": "object", "additionalProperties": { "type": "string" } }),
        );
        properties.insert(
            "previous".to_owned(),
            json!({ "type": ["integer", "null"] }),
        );
        properties.insert(
            "diff".to_owned(),
            json!({ "type": "string", "description": "A unified diff against the previous version." }),
        );
    }
    paths.insert(
        "/admin/metadata/versions/{n}".to_owned(),
        json!({
            "get": {
                "tags": ["Studio"],
                "summary": "One metadata version",
                "description": "Its files and a unified diff against the version before it. Admins only.",
                "operationId": "metadata_version",
                "parameters": [{
                    "name": "n", "in": "path", "required": true,
                    "description": "The version number.",
                    "schema": { "type": "integer" },
                }],
                "responses": with_problems(
                    json!({
                        "200": {
                            "description": "The version.",
                            "content": { "application/json": { "schema": detail } },
                        },
                    }),
                    &[401, 403, 404],
                ),
            },
        }),
    );
}

fn object_paths(view: &ObjectView<'_>, paths: &mut Map<String, Value>) {
    let name = view.name();
    let label = view.label();
    let tags = json!([name]);
    let record = schema_ref(&view.base);
    let record_answer = |description: &str| {
        json!({
            "description": description,
            "headers": { "ETag": { "$ref": "#/components/headers/ETag" } },
            "content": { "application/json": { "schema": record } },
        })
    };
    let mut created = record_answer("Created: the record.");
    if let Some(Value::Object(headers)) = created.get_mut("headers") {
        headers.insert(
            "Location".to_owned(),
            json!({
                "description": format!("The new record's URL, `/api/v1/records/{name}/{{id}}`."),
                "schema": { "type": "string" },
            }),
        );
    }
    if let Value::Object(answer) = &mut created {
        // Links let a client (and a stateful fuzzer) go from a create to the new record's
        // other operations.
        let mut links = Map::new();
        for (link, action, description) in [
            ("GetRecord", "get", "Read the new record."),
            ("UpdateRecord", "update", "Change the new record."),
            ("DeleteRecord", "delete", "Delete the new record."),
            ("RecordHistory", "history", "The new record's history."),
            (
                "RestoreRecord",
                "restore",
                "Restore the record once deleted.",
            ),
        ] {
            links.insert(
                link.to_owned(),
                json!({
                    "operationId": view.operation_id(action),
                    "parameters": { "id": "$response.body#/id" },
                    "description": description,
                }),
            );
        }
        answer.insert("links".to_owned(), Value::Object(links));
    }
    let id_parameter = json!({ "$ref": "#/components/parameters/id" });
    let order = parameter_ref(&view.order_parameter_name());

    let list_parameters = list_parameters(view, Vec::new(), &[]);
    paths.insert(
        format!("/records/{name}"),
        json!({
            "get": {
                "tags": tags,
                "summary": format!("List {label} records"),
                "description": format!(
                    "One page of the records this user may see, in the object's list order unless \
                     `order` is given; `next` is the cursor for the following page. {FILTER_OPERATORS}"
                ),
                "operationId": view.operation_id("list"),
                "parameters": list_parameters,
                "responses": with_problems(
                    json!({
                        "200": {
                            "description": "One page of records.",
                            "content": { "application/json": { "schema": schema_ref(&view.page_name()) } },
                        },
                    }),
                    &[401, 403, 422],
                ),
            },
            "post": {
                "tags": tags,
                "summary": format!("Create a {label} record"),
                "description": "Creates a record and answers it whole. A `warn` duplicate key that matches saves the record with a warning.",
                "operationId": view.operation_id("create"),
                "requestBody": {
                    "required": true,
                    "content": { "application/json": { "schema": schema_ref(&view.input_name()) } },
                },
                "responses": with_problems(
                    json!({ "201": created }),
                    &[401, 403, 409, 413, 415, 422],
                ),
            },
        }),
    );

    paths.insert(
        format!("/records/{name}/query"),
        json!({
            "post": {
                "tags": tags,
                "summary": format!("Query {label} records"),
                "description": "The same as the list, with the filter as JSON.",
                "operationId": view.operation_id("query"),
                "requestBody": {
                    "required": true,
                    "content": { "application/json": { "schema": schema_ref(&view.query_name()) } },
                },
                "responses": with_problems(
                    json!({
                        "200": {
                            "description": "One page of records.",
                            "content": { "application/json": { "schema": schema_ref(&view.page_name()) } },
                        },
                    }),
                    &[401, 403, 413, 415, 422],
                ),
            },
        }),
    );

    paths.insert(
        format!("/records/{name}/bulk"),
        json!({
            "post": {
                "tags": tags,
                "summary": format!("Create or update {label} records in bulk"),
                "description": format!(
                    "Up to {MAX_BULK_ITEMS} items, all or nothing: an item with an `id` updates \
                     that record, one without creates a record. A bad field is named \
                     `<index>.<field>` in the problem's `errors`."
                ),
                "operationId": view.operation_id("bulk"),
                "requestBody": {
                    "required": true,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "array",
                                "maxItems": MAX_BULK_ITEMS,
                                "items": {
                                    "anyOf": [
                                        schema_ref(&view.input_name()),
                                        schema_ref(&view.bulk_update_name()),
                                    ],
                                },
                            },
                        },
                    },
                },
                "responses": with_problems(
                    json!({
                        "200": {
                            "description": "The saved records, in the order of the items.",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "properties": { "data": { "type": "array", "items": record } },
                                        "required": ["data"],
                                    },
                                },
                            },
                        },
                    }),
                    &[401, 403, 404, 409, 413, 415, 422],
                ),
            },
        }),
    );

    let duplicate_parameters: Vec<Value> = view
        .duplicate_check_fields()
        .into_iter()
        .map(|field| {
            json!({
                "name": field.name,
                "in": "query",
                "required": false,
                "description": format!(
                    "A value of {} to look for; it matches after normalising (trim, case, phone digits).",
                    field.label.as_ref().map_or_else(|| field.name.clone(), english)
                ),
                "schema": probe_schema(field),
            })
        })
        .collect();
    let mut duplicates = json!({
        "tags": tags,
        "summary": format!("Find duplicate {label} records"),
        "description": "Matches the given values by the object's duplicate keys and unique fields, across all records (including ones this user cannot see and ones in pools), revealing only each match's id, masked title, owner's name and pool.",
        "operationId": view.operation_id("duplicates"),
        "parameters": duplicate_parameters,
        "responses": with_problems(
            json!({
                "200": {
                    "description": "The matching records.",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "data": { "type": "array", "items": schema_ref("DuplicateMatch") },
                                },
                                "required": ["data"],
                            },
                        },
                    },
                },
            }),
            &[401, 403, 422, 429],
        ),
    });
    if duplicate_parameters.is_empty()
        && let Value::Object(operation) = &mut duplicates
    {
        operation.shift_remove("parameters");
    }
    paths.insert(
        format!("/records/{name}/duplicates"),
        json!({ "get": duplicates }),
    );

    let mut export_parameters = vec![
        json!({
            "name": "format",
            "in": "query",
            "required": false,
            "description": "`csv` (the default) or `ndjson` (one JSON record per line).",
            "schema": { "type": "string", "enum": ["csv", "ndjson"], "default": "csv" },
        }),
        order,
        fields_parameter(view),
    ];
    export_parameters.extend(filter_parameter_refs(view, &["format", "order", "fields"]));
    paths.insert(
        format!("/records/{name}/export"),
        json!({
            "get": {
                "tags": tags,
                "summary": format!("Export {label} records"),
                "description": format!(
                    "Every matching record this user may see, streamed, with no page cap. CSV has \
                     a header row (system fields, then fields) and one row per record, empty for \
                     null. {FILTER_OPERATORS}"
                ),
                "operationId": view.operation_id("export"),
                "parameters": export_parameters,
                "responses": with_problems(
                    json!({
                        "200": {
                            "description": "The records.",
                            "content": {
                                "text/csv": { "schema": { "type": "string" } },
                                "application/x-ndjson": {
                                    "schema": { "type": "string", "description": "One JSON record per line." },
                                },
                            },
                        },
                    }),
                    &[401, 403, 422],
                ),
            },
        }),
    );

    paths.insert(
        format!("/records/{name}/{{id}}"),
        json!({
            "parameters": [id_parameter],
            "get": {
                "tags": tags,
                "summary": format!("Get a {label} record"),
                "operationId": view.operation_id("get"),
                "responses": with_problems(json!({ "200": record_answer("The record.") }), &[401, 403, 404]),
            },
            "patch": {
                "tags": tags,
                "summary": format!("Update a {label} record"),
                "description": "Changes the given fields and answers the whole record; `null` clears a field. With `If-Match`, a record that changed since is refused with 412.",
                "operationId": view.operation_id("update"),
                "parameters": [parameter_ref("ifMatch")],
                "requestBody": {
                    "required": true,
                    "content": { "application/json": { "schema": schema_ref(&view.patch_name()) } },
                },
                "responses": with_problems(
                    json!({ "200": record_answer("The updated record.") }),
                    &[401, 403, 404, 409, 412, 413, 415, 422],
                ),
            },
            "delete": {
                "tags": tags,
                "summary": format!("Delete a {label} record"),
                "description": "Moves the record to the recycle bin; `POST .../restore` brings it back.",
                "operationId": view.operation_id("delete"),
                "responses": with_problems(
                    json!({ "204": { "description": "Deleted." } }),
                    &[401, 403, 404, 409],
                ),
            },
        }),
    );

    paths.insert(
        format!("/records/{name}/{{id}}/restore"),
        json!({
            "parameters": [id_parameter],
            "post": {
                "tags": tags,
                "summary": format!("Restore a deleted {label} record"),
                "description": "Brings a record back from the recycle bin.",
                "operationId": view.operation_id("restore"),
                "responses": with_problems(
                    json!({ "200": record_answer("The restored record.") }),
                    &[401, 403, 404, 409],
                ),
            },
        }),
    );

    paths.insert(
        format!("/records/{name}/{{id}}/history"),
        json!({
            "parameters": [id_parameter],
            "get": {
                "tags": tags,
                "summary": format!("History of a {label} record"),
                "description": "Every field change: who, when, the old and the new value.",
                "operationId": view.operation_id("history"),
                "responses": with_problems(
                    json!({
                        "200": {
                            "description": "The field changes, oldest first.",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "properties": {
                                            "data": { "type": "array", "items": schema_ref("HistoryEntry") },
                                        },
                                        "required": ["data"],
                                    },
                                },
                            },
                        },
                    }),
                    &[401, 403, 404],
                ),
            },
        }),
    );

    let mut aggregate_parameters = vec![
        list_parameter(
            "group_by",
            "Fields to group by (not multi-choice fields, nor fields masked for this user).",
            schema_ref(&view.sortable_field_name_schema()),
        ),
        json!({
            "name": "count",
            "in": "query",
            "required": false,
            "description": "Count the records of each group (`true`, `1` or empty: yes; `false` or `0`: no). Counted anyway when no other figure is asked for.",
            "schema": { "type": "string", "enum": ["true", "false", "1", "0", ""] },
        }),
    ];
    if !view.numeric_field_names().is_empty() {
        for (function, meaning) in [("sum", "Sum"), ("avg", "Average")] {
            aggregate_parameters.push(list_parameter(
                function,
                &format!("{meaning} of these number fields per group, as `{function}_<field>`."),
                schema_ref(&view.numeric_field_name_schema()),
            ));
        }
    }
    for (function, meaning) in [("min", "Smallest value"), ("max", "Largest value")] {
        aggregate_parameters.push(list_parameter(
            function,
            &format!("{meaning} of these fields per group, as `{function}_<field>`."),
            schema_ref(&view.sortable_field_name_schema()),
        ));
    }
    aggregate_parameters.extend(filter_parameter_refs(
        view,
        &["group_by", "count", "sum", "avg", "min", "max"],
    ));
    paths.insert(
        format!("/aggregate/{name}"),
        json!({
            "get": {
                "tags": tags,
                "summary": format!("Grouped figures of {label} records"),
                "description": format!(
                    "Groups the matching records this user may see. {FILTER_OPERATORS}"
                ),
                "operationId": view.operation_id("aggregate"),
                "parameters": aggregate_parameters,
                "responses": with_problems(
                    json!({
                        "200": {
                            "description": "One row per group: the group fields, `count`, and `sum_<field>`, `avg_<field>`, `min_<field>`, `max_<field>` as asked.",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "properties": {
                                            "data": {
                                                "type": "array",
                                                "items": {
                                                    "type": "object",
                                                    "properties": { "count": { "type": "integer" } },
                                                },
                                            },
                                        },
                                        "required": ["data"],
                                    },
                                },
                            },
                        },
                    }),
                    &[401, 403, 422],
                ),
            },
        }),
    );
}

/// `<Object>`, `<Object>Input`, `<Object>Patch`, `<Object>BulkUpdate`, `Page<Object>`, and
/// the field names `<Object>Field` and `<Object>NumericField`.
fn object_schemas(view: &ObjectView<'_>, schemas: &mut Map<String, Value>) {
    let label = view.label();

    let mut properties = Map::new();
    for (name, storage, not_null, meaning) in view.system_fields() {
        let mut property = storage_schema(storage);
        if name == "pool" {
            let pools = view.pools();
            if !pools.is_empty() {
                property.insert("enum".to_owned(), json!(pools));
            }
        }
        if !not_null {
            make_nullable(&mut property);
        }
        let mut described = Map::new();
        described.insert("description".to_owned(), json!(meaning));
        described.extend(property);
        described.insert("readOnly".to_owned(), json!(true));
        properties.insert(name, Value::Object(described));
    }
    for field in &view.fields {
        properties.insert(
            field.name.clone(),
            Value::Object(field_schema(field, Direction::Read)),
        );
    }
    let mut refs = Map::new();
    for field in view
        .object
        .returned_system_fields()
        .filter(|field| field.user)
    {
        refs.insert(field.name.to_owned(), schema_ref("Ref"));
    }
    for field in &view.fields {
        if matches!(field.kind, FieldKind::Lookup { .. } | FieldKind::User) {
            refs.insert(field.name.clone(), schema_ref("Ref"));
        }
    }
    properties.insert(
        "_refs".to_owned(),
        json!({
            "description": "For each lookup and user field that holds a value: the target's id and title.",
            "type": "object",
            "properties": refs,
            "additionalProperties": schema_ref("Ref"),
            "readOnly": true,
        }),
    );
    properties.insert(
        "_warnings".to_owned(),
        json!({
            "description": "After a save: what it noticed without refusing it. Absent when there is nothing to report.",
            "type": "array",
            "items": schema_ref("Warning"),
            "readOnly": true,
        }),
    );
    schemas.insert(
        view.base.clone(),
        json!({
            "title": label,
            "description": format!(
                "A {label} record as returned: system fields, then the fields this user may see \
                 (only the asked ones with `fields=`)."
            ),
            "type": "object",
            "properties": properties,
            "required": ["id"],
        }),
    );

    let mut input_properties = Map::new();
    if view.may_set_owner {
        input_properties.insert(
            "owner".to_owned(),
            json!({
                "description": "The owner's user id; the creator when not given. Only admins and users who may edit all records may set it.",
                "type": ["string", "null"],
                "pattern": format!("[^{WHITESPACE}]"),
            }),
        );
    }
    if view.object.pooled && view.may_set_pool {
        input_properties.insert(
            "pool".to_owned(),
            json!({
                "description": "Create the record straight into this pool (admins and the pool's managers); its owner is then empty.",
                "type": ["string", "null"],
                "enum": view.pools().into_iter().map(Value::from).chain([Value::Null]).collect::<Vec<_>>(),
            }),
        );
    }
    let writable = &view.writable;
    for field in writable {
        input_properties.insert(
            field.name.clone(),
            Value::Object(field_schema(field, Direction::Create)),
        );
    }
    let required: Vec<&str> = writable
        .iter()
        .filter(|field| field.required && field.default.is_none())
        .map(|field| field.name.as_str())
        .collect();
    let mut input = Map::new();
    input.insert("title".to_owned(), json!(format!("New {label}")));
    input.insert(
        "description".to_owned(),
        json!(format!(
            "The fields of a new {label} record. Computed and system fields are set by Keel."
        )),
    );
    input.insert("type".to_owned(), json!("object"));
    input.insert("properties".to_owned(), Value::Object(input_properties));
    if !required.is_empty() {
        input.insert("required".to_owned(), json!(required));
    }
    input.insert("patternProperties".to_owned(), ignored_keys());
    input.insert("additionalProperties".to_owned(), json!(false));
    schemas.insert(view.input_name(), Value::Object(input));

    let mut patch_properties = Map::new();
    if view.may_set_owner {
        patch_properties.insert(
            "owner".to_owned(),
            json!({
                "description": "The owner's user id. Only admins and users who may edit all records may change it.",
                "type": "string",
                "pattern": format!("[^{WHITESPACE}]"),
            }),
        );
    }
    for field in writable {
        patch_properties.insert(
            field.name.clone(),
            Value::Object(field_schema(field, Direction::Update)),
        );
    }
    schemas.insert(
        view.patch_name(),
        json!({
            "title": format!("{label} changes"),
            "description": format!(
                "The fields to change in a {label} record; fields not given keep their value."
            ),
            "type": "object",
            "properties": patch_properties.clone(),
            "patternProperties": ignored_keys(),
            "additionalProperties": false,
        }),
    );

    let mut bulk_properties = Map::new();
    bulk_properties.insert(
        "id".to_owned(),
        json!({ "description": "The record to update.", "type": "string" }),
    );
    bulk_properties.extend(patch_properties);
    schemas.insert(
        view.bulk_update_name(),
        json!({
            "title": format!("{label} update in bulk"),
            "description": format!("Changes to one existing {label} record, named by `id`."),
            "type": "object",
            "properties": bulk_properties,
            "required": ["id"],
            "patternProperties": ignored_keys(),
            "additionalProperties": false,
        }),
    );

    schemas.insert(
        view.page_name(),
        json!({
            "title": format!("Page of {label} records"),
            "type": "object",
            "properties": {
                "data": { "type": "array", "items": schema_ref(&view.base) },
                "next": {
                    "description": "The cursor for the next page (`after`), or null on the last page.",
                    "type": ["string", "null"],
                },
            },
            "required": ["data", "next"],
        }),
    );

    schemas.insert(
        view.field_name_schema(),
        json!({
            "title": format!("{label} field"),
            "description": format!("The name of a field of a {label} record."),
            "type": "string",
            "enum": view.all_field_names(),
        }),
    );
    schemas.insert(
        view.sortable_field_name_schema(),
        json!({
            "title": format!("{label} sortable field"),
            "description": format!(
                "The name of a field a list of {label} records may be sorted or grouped by."
            ),
            "type": "string",
            "enum": view.sortable_field_names(),
        }),
    );
    schemas.insert(view.filter_name(), filter_schema(view));
    schemas.insert(view.query_name(), query_schema(view));
    let numeric = view.numeric_field_names();
    if !numeric.is_empty() {
        schemas.insert(
            view.numeric_field_name_schema(),
            json!({
                "title": format!("{label} number field"),
                "description": format!("The name of a number field of a {label} record."),
                "type": "string",
                "enum": numeric,
            }),
        );
    }
}

/// The schema of one declared field's value: as returned (`Read`), or as a create or patch
/// takes it, which is exactly what the server accepts (docs/api.md, "Field values").
fn field_schema(field: &Field, direction: Direction) -> Map<String, Value> {
    let mut notes: Vec<String> = Vec::new();
    if let Some(help) = &field.help {
        notes.push(sentence(&english(help)));
    }
    let input = direction != Direction::Read;
    let mut value = Map::new();
    match &field.kind {
        FieldKind::Text | FieldKind::LongText if !input => {
            value.insert("type".to_owned(), json!("string"));
            text_constraints(field, &mut value);
        }
        FieldKind::Text => {
            // Stored trimmed; blank text is an empty value.
            value.insert("type".to_owned(), json!("string"));
            if let Some(max_length) = field.max_length {
                value.insert("maxLength".to_owned(), json!(max_length));
            }
            if let Some(pattern) = &field.pattern {
                value.insert(
                    "pattern".to_owned(),
                    json!(format!(
                        "^[{WHITESPACE}]*(?:(?:{pattern})[{WHITESPACE}]*)?$"
                    )),
                );
            }
            if field.required {
                require_text(&mut value);
            }
        }
        FieldKind::LongText => {
            value.insert("type".to_owned(), json!("string"));
            if let Some(max_length) = field.max_length {
                value.insert("maxLength".to_owned(), json!(max_length));
            }
            if let Some(pattern) = &field.pattern {
                value.insert("pattern".to_owned(), json!(format!("^(?:{pattern})?$")));
            }
            if field.required {
                value.insert("minLength".to_owned(), json!(1));
            }
        }
        FieldKind::Phone => {
            value.insert("type".to_owned(), json!("string"));
            if let Some(max_length) = field.max_length {
                value.insert("maxLength".to_owned(), json!(max_length));
            }
            if input {
                value.insert("pattern".to_owned(), json!(phone_pattern()));
                notes.push("A phone number: 3 to 20 digits, with spaces and `+-().x`.".to_owned());
            } else if let Some(pattern) = &field.pattern {
                value.insert("pattern".to_owned(), json!(format!("^(?:{pattern})$")));
            }
        }
        FieldKind::Email => {
            value.insert("type".to_owned(), json!("string"));
            if input {
                if let Some(max_length) = field.max_length {
                    value.insert("maxLength".to_owned(), json!(max_length));
                }
                value.insert(
                    "pattern".to_owned(),
                    json!(format!(
                        "^[{WHITESPACE}]*[^{WHITESPACE}@]+@[^{WHITESPACE}@]+\\.[^{WHITESPACE}@]+[{WHITESPACE}]*$"
                    )),
                );
                notes.push("An email address.".to_owned());
            } else {
                value.insert("format".to_owned(), json!("email"));
                text_constraints(field, &mut value);
            }
        }
        FieldKind::Url => {
            value.insert("type".to_owned(), json!("string"));
            if input {
                if let Some(max_length) = field.max_length {
                    value.insert("maxLength".to_owned(), json!(max_length));
                }
                value.insert(
                    "pattern".to_owned(),
                    json!(format!(
                        "^[{WHITESPACE}]*https?://[^{WHITESPACE}/?#]+[^{WHITESPACE}]*[{WHITESPACE}]*$"
                    )),
                );
                notes.push("An http(s) URL.".to_owned());
            } else {
                // Not `format: uri`: a stored http(s) URL may hold characters RFC 3986 wants
                // percent-encoded.
                text_constraints(field, &mut value);
            }
        }
        FieldKind::Integer => {
            value.insert("type".to_owned(), json!("integer"));
            number_constraints(field, &mut value);
            if input {
                let minimum = value
                    .get("minimum")
                    .and_then(Value::as_f64)
                    .map_or(-MAX_JSON_INTEGER as f64, |min| {
                        min.max(-MAX_JSON_INTEGER as f64)
                    });
                let maximum = value
                    .get("maximum")
                    .and_then(Value::as_f64)
                    .map_or(MAX_JSON_INTEGER as f64, |max| {
                        max.min(MAX_JSON_INTEGER as f64)
                    });
                if minimum <= -(MAX_JSON_INTEGER as f64) {
                    value.insert("minimum".to_owned(), json!(-MAX_JSON_INTEGER));
                }
                if maximum >= MAX_JSON_INTEGER as f64 {
                    value.insert("maximum".to_owned(), json!(MAX_JSON_INTEGER));
                }
            }
        }
        FieldKind::Decimal { scale } | FieldKind::Percent { scale } if input => {
            decimal_input_schema(field, *scale, &mut value);
            notes.push(if matches!(field.kind, FieldKind::Percent { .. }) {
                format!(
                    "Percentage points (15 means 15 %), up to {scale} digits after the point: a JSON number or a decimal string."
                )
            } else {
                format!(
                    "An exact decimal with up to {scale} digits after the point: a JSON number or a decimal string."
                )
            });
        }
        FieldKind::Decimal { scale } => {
            value.insert("type".to_owned(), json!(["number", "string"]));
            number_constraints(field, &mut value);
            notes.push(format!(
                "An exact decimal with up to {scale} digits after the point."
            ));
        }
        FieldKind::Percent { scale } => {
            value.insert("type".to_owned(), json!(["number", "string"]));
            number_constraints(field, &mut value);
            notes.push(format!(
                "Percentage points (15 means 15 %), up to {scale} digits after the point."
            ));
        }
        FieldKind::Money { scale } => {
            if input {
                decimal_input_schema(field, *scale, &mut value);
                notes.push(format!(
                    "Money: an exact decimal with up to {scale} digits after the point, as a string such as \"1999.00\"; numbers are accepted too."
                ));
            } else {
                money_schema(*scale, direction, &mut value, &mut notes);
            }
            if let Some(min) = &field.min {
                notes.push(format!("At least {min}."));
            }
            if let Some(max) = &field.max {
                notes.push(format!("At most {max}."));
            }
        }
        FieldKind::Boolean => {
            value.insert("type".to_owned(), json!("boolean"));
        }
        FieldKind::Date => {
            value.insert("type".to_owned(), json!("string"));
            value.insert("format".to_owned(), json!("date"));
            if input {
                value.insert(
                    "pattern".to_owned(),
                    json!(keel_runtime::coerce::DATE_PATTERN),
                );
            }
        }
        FieldKind::Datetime => {
            value.insert("type".to_owned(), json!("string"));
            value.insert("format".to_owned(), json!("date-time"));
            if input {
                value.insert(
                    "pattern".to_owned(),
                    json!(keel_runtime::coerce::DATETIME_PATTERN),
                );
                notes.push("RFC 3339 with an offset, e.g. `2026-05-01T09:30:00+08:00`.".to_owned());
            }
        }
        FieldKind::Choice { options } => {
            value.insert("type".to_owned(), json!("string"));
            value.insert("enum".to_owned(), option_keys(options));
            notes.push(option_labels(options));
        }
        FieldKind::MultiChoice { options } => {
            value.insert("type".to_owned(), json!("array"));
            value.insert(
                "items".to_owned(),
                json!({ "type": "string", "enum": option_keys(options) }),
            );
            value.insert("uniqueItems".to_owned(), json!(true));
            notes.push(option_labels(options));
        }
        FieldKind::Lookup { object, .. } => {
            value.insert("type".to_owned(), json!("string"));
            if input {
                require_text(&mut value);
            }
            notes.push(format!("The id of a record of `{object}`."));
        }
        FieldKind::User => {
            value.insert("type".to_owned(), json!("string"));
            if input {
                require_text(&mut value);
            }
            notes.push("The id of a user.".to_owned());
        }
        FieldKind::Autonumber { format } => {
            value.insert("type".to_owned(), json!("string"));
            notes.push(format!("Numbered by Keel on create: `{format}`."));
        }
        FieldKind::Formula { returns, .. } => {
            formula_schema(*returns, &mut value, &mut notes);
            notes.push("Computed by a formula.".to_owned());
        }
    }
    if field.unique {
        notes.push("Unique.".to_owned());
    }
    if field.mask {
        notes.push(
            "Shown masked to users other than the owner and roles that may unmask.".to_owned(),
        );
    }

    // In a record every field may be empty (a required field added later is empty on older
    // records); in a create or patch a required field must hold a value.
    let nullable = direction == Direction::Read || !field.required;
    if nullable {
        make_nullable(&mut value);
    }

    let mut schema = Map::new();
    if let Some(label) = &field.label {
        schema.insert("title".to_owned(), json!(english(label)));
    }
    if !notes.is_empty() {
        schema.insert("description".to_owned(), json!(notes.join(" ")));
    }
    schema.extend(value);
    if direction == Direction::Create
        && let Some(default) = documented_default(field)
    {
        schema.insert("default".to_owned(), default);
    }
    if direction == Direction::Read && field.is_computed() {
        schema.insert("readOnly".to_owned(), json!(true));
    }
    schema
}

/// Text that must hold something besides whitespace (a non-blank pattern; `pattern` finds a
/// match anywhere). A field pattern already in `value` is kept beside it with `allOf`.
fn require_text(value: &mut Map<String, Value>) {
    let non_blank = json!({ "pattern": format!("[^{WHITESPACE}]") });
    if value.contains_key("pattern") {
        value.insert("allOf".to_owned(), json!([non_blank]));
    } else if let Value::Object(pattern) = non_blank {
        value.extend(pattern);
    }
}

/// A phone number as the server reads it: optional surrounding whitespace, then 3 to 20
/// digits with spaces and `+-().x` between them.
fn phone_pattern() -> String {
    let punctuation = regex_class(keel_runtime::coerce::PHONE_PUNCTUATION);
    format!("^[{WHITESPACE}]*(?:[{punctuation}]*[0-9]){{3,20}}[{punctuation}]*[{WHITESPACE}]*$")
}

/// The characters of `chars` escaped for a regex character class.
fn regex_class(chars: &str) -> String {
    chars
        .chars()
        .map(|c| match c {
            '-' | '\\' | ']' | '^' => format!("\\{c}"),
            _ => c.to_string(),
        })
        .collect()
}

/// A decimal, percent or money value in a create or patch: a JSON number within the field's
/// bounds and scale, or a string of digits (`-`, `.`) that the bounds allow.
fn decimal_input_schema(field: &Field, scale: u32, value: &mut Map<String, Value>) {
    let limit = 10_f64.powi(18 - scale.min(18) as i32);
    let mut number = Map::new();
    number.insert("type".to_owned(), json!("number"));
    number_constraints(field, &mut number);
    if !number.contains_key("minimum") {
        number.insert("exclusiveMinimum".to_owned(), json!(-limit));
    }
    if !number.contains_key("maximum") {
        number.insert("exclusiveMaximum".to_owned(), json!(limit));
    }
    number.insert(
        "multipleOf".to_owned(),
        json!(10_f64.powi(-(scale.min(18) as i32))),
    );
    let minimum = field.min.as_ref().and_then(serde_json::Number::as_f64);
    let maximum = field.max.as_ref().and_then(serde_json::Number::as_f64);
    let text = json!({
        "type": "string",
        "pattern": decimal_string_pattern(scale, minimum, maximum),
    });
    value.insert("anyOf".to_owned(), json!([Value::Object(number), text]));
}

/// The decimal strings the server accepts for a field of `scale` within `minimum` and
/// `maximum` (whole-number bounds at or above zero are spelled out; other bounds only cap the
/// number of digits, and the server checks the rest).
fn decimal_string_pattern(scale: u32, minimum: Option<f64>, maximum: Option<f64>) -> String {
    let digits = 18 - scale.min(18);
    let fraction = if scale == 0 {
        r"(?:\.0+)?".to_owned()
    } else {
        format!(r"(?:\.[0-9]{{1,{scale}}}0*)?")
    };
    let sign = if minimum.is_some_and(|min| min >= 0.0) {
        ""
    } else {
        "-?"
    };
    match maximum {
        Some(max) if max >= 0.0 && max.fract() == 0.0 && max < 10_f64.powi(digits as i32) => {
            let max = max as u64;
            let below = if max == 0 {
                None
            } else {
                Some(format!("(?:{}){fraction}", up_to(max - 1)))
            };
            let exact = format!(r"{max}(?:\.0+)?");
            let whole = match below {
                Some(below) => format!("{below}|{exact}"),
                None => exact,
            };
            if sign.is_empty() {
                format!("^0*(?:{whole})$")
            } else {
                format!("^(?:-0*[0-9]{{1,{digits}}}{fraction}|0*(?:{whole}))$")
            }
        }
        _ => format!("^{sign}0*[0-9]{{1,{digits}}}{fraction}$"),
    }
}

/// A regex for the whole numbers 0 to `max` (no leading zeros needed; `0*` goes before it).
fn up_to(max: u64) -> String {
    let digits: Vec<u32> = max
        .to_string()
        .chars()
        .filter_map(|c| c.to_digit(10))
        .collect();
    let length = digits.len();
    let mut alternatives = Vec::new();
    if length > 1 {
        alternatives.push(format!("[0-9]{{1,{}}}", length - 1));
    }
    for (index, digit) in digits.iter().enumerate() {
        if *digit == 0 {
            continue;
        }
        let prefix: String = digits[..index].iter().map(u32::to_string).collect();
        let rest = length - index - 1;
        let tail = if rest == 0 {
            String::new()
        } else {
            format!("[0-9]{{{rest}}}")
        };
        alternatives.push(format!("{prefix}[0-{}]{tail}", digit - 1));
    }
    alternatives.push(max.to_string());
    alternatives.join("|")
}

fn money_schema(
    scale: u32,
    direction: Direction,
    value: &mut Map<String, Value>,
    notes: &mut Vec<String>,
) {
    if direction == Direction::Read {
        value.insert("type".to_owned(), json!("string"));
        notes.push(format!(
            "Money: an exact decimal with up to {scale} digits after the point, sent as a string such as \"1999.00\"."
        ));
    } else {
        value.insert("type".to_owned(), json!(["string", "number"]));
        notes.push(format!(
            "Money: an exact decimal with up to {scale} digits after the point, as a string such as \"1999.00\"; numbers are accepted too."
        ));
    }
    value.insert("pattern".to_owned(), json!(MONEY_PATTERN));
}

fn formula_schema(returns: FormulaType, value: &mut Map<String, Value>, notes: &mut Vec<String>) {
    match returns {
        FormulaType::Text => {
            value.insert("type".to_owned(), json!("string"));
        }
        FormulaType::Integer => {
            value.insert("type".to_owned(), json!("integer"));
        }
        FormulaType::Decimal | FormulaType::Percent => {
            value.insert("type".to_owned(), json!(["number", "string"]));
        }
        FormulaType::Money => money_schema(2, Direction::Read, value, notes),
        FormulaType::Boolean => {
            value.insert("type".to_owned(), json!("boolean"));
        }
        FormulaType::Date => {
            value.insert("type".to_owned(), json!("string"));
            value.insert("format".to_owned(), json!("date"));
        }
        FormulaType::Datetime => {
            value.insert("type".to_owned(), json!("string"));
            value.insert("format".to_owned(), json!("date-time"));
        }
    }
}

fn text_constraints(field: &Field, value: &mut Map<String, Value>) {
    if let Some(max_length) = field.max_length {
        value.insert("maxLength".to_owned(), json!(max_length));
    }
    if let Some(pattern) = &field.pattern {
        // Keel matches a field's pattern against the whole value; JSON Schema's `pattern`
        // matches anywhere, so it is anchored here.
        value.insert("pattern".to_owned(), json!(format!("^(?:{pattern})$")));
    }
}

fn number_constraints(field: &Field, value: &mut Map<String, Value>) {
    if let Some(min) = &field.min {
        value.insert("minimum".to_owned(), Value::Number(min.clone()));
    }
    if let Some(max) = &field.max {
        value.insert("maximum".to_owned(), Value::Number(max.clone()));
    }
}

/// A field's default as JSON Schema `default`, when it is a plain value. A relative date such
/// as `@today` is resolved at save time and is not a valid date itself, so it is left out.
fn documented_default(field: &Field) -> Option<Value> {
    let default = field.default.as_ref()?;
    match default {
        Value::Null => None,
        Value::String(text) if text.starts_with('@') => None,
        _ => Some(default.clone()),
    }
}

/// The schema of a system field's value, by its storage.
fn storage_schema(storage: Storage) -> Map<String, Value> {
    let mut value = Map::new();
    match storage {
        Storage::Text => {
            value.insert("type".to_owned(), json!("string"));
        }
        Storage::Integer => {
            value.insert("type".to_owned(), json!("integer"));
        }
        Storage::Decimal { .. } => {
            value.insert("type".to_owned(), json!(["number", "string"]));
        }
        Storage::Boolean => {
            value.insert("type".to_owned(), json!("boolean"));
        }
        Storage::Date => {
            value.insert("type".to_owned(), json!("string"));
            value.insert("format".to_owned(), json!("date"));
        }
        Storage::Datetime => {
            value.insert("type".to_owned(), json!("string"));
            value.insert("format".to_owned(), json!("date-time"));
        }
        Storage::Json => {
            value.insert("type".to_owned(), json!("array"));
            value.insert("items".to_owned(), json!({ "type": "string" }));
        }
    }
    value
}

fn storage_type_name(storage: Storage) -> &'static str {
    match storage {
        Storage::Text => "text",
        Storage::Integer => "integer",
        Storage::Decimal { .. } => "decimal",
        Storage::Boolean => "boolean",
        Storage::Date => "date",
        Storage::Datetime => "datetime",
        Storage::Json => "multi_choice",
    }
}

fn storage_example(storage: Storage) -> String {
    match storage {
        Storage::Integer | Storage::Decimal { .. } => "gte.1",
        Storage::Boolean => "eq.true",
        Storage::Date => "gte.@today",
        Storage::Datetime => "gte.@now-7d",
        Storage::Text | Storage::Json => "eq.value",
    }
    .to_owned()
}

fn field_example(field: &Field) -> String {
    match &field.kind {
        FieldKind::Choice { options } | FieldKind::MultiChoice { options } => match options.first()
        {
            Some(option) => format!("eq.{}", option.key),
            None => "eq.value".to_owned(),
        },
        FieldKind::Text | FieldKind::LongText => "like.abc*".to_owned(),
        FieldKind::Phone | FieldKind::Email | FieldKind::Url => "is.not_null".to_owned(),
        _ => storage_example(field.storage()),
    }
}

/// Turns `{type: T}` into `{type: [T, "null"]}` (OpenAPI 3.1 style), and adds `null` to an
/// `enum`, so that an empty value is valid.
fn make_nullable(value: &mut Map<String, Value>) {
    match value.get_mut("type") {
        Some(Value::String(single)) => {
            let single = std::mem::take(single);
            value.insert("type".to_owned(), json!([single, "null"]));
        }
        Some(Value::Array(types)) if !types.iter().any(|kind| kind == "null") => {
            types.push(json!("null"));
        }
        None => {
            if let Some(Value::Array(alternatives)) = value.get_mut("anyOf") {
                alternatives.push(json!({ "type": "null" }));
            }
        }
        _ => {}
    }
    if let Some(Value::Array(keys)) = value.get_mut("enum")
        && !keys.contains(&Value::Null)
    {
        keys.push(Value::Null);
    }
}

fn option_keys(options: &[keel_meta::ChoiceOption]) -> Value {
    Value::Array(options.iter().map(|option| json!(option.key)).collect())
}

/// "Options: `new` (New), `contacted` (Contacted)."
fn option_labels(options: &[keel_meta::ChoiceOption]) -> String {
    let listed: Vec<String> = options
        .iter()
        .map(|option| match &option.label {
            Some(label) => format!("`{}` ({})", option.key, english(label)),
            None => format!("`{}`", option.key),
        })
        .collect();
    format!("Options: {}.", listed.join(", "))
}

/// The filter parameter of one field (a component, shared by list, export and aggregate):
/// `op.value` with the value syntax of the field's type.
fn filter_parameter(field: &FilterableField) -> Value {
    json!({
        "name": field.name,
        "in": "query",
        "required": false,
        "description": format!(
            "Filter on {} ({}): `op.value`, e.g. `{}`.",
            field.label, field.type_name, field.example
        ),
        "schema": { "type": "string", "pattern": filter_parameter_pattern(field.storage) },
    })
}

/// Regex pieces of the filter grammar for one storage type: a comparison value, an item of
/// an `in` list, and whether `like` applies.
struct FilterSyntax {
    value: String,
    item: String,
    like: bool,
}

/// A date whose day exists in every month (the 29th to 31st are valid dates too, but a
/// pattern cannot know the calendar).
const FILTER_DATE: &str = "[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])";
/// `@now`, `@today`, optionally ± at most 100,000 seconds, minutes, hours, days or weeks.
const FILTER_RELATIVE: &str = "@(?:now|today)(?:[+-]0*(?:[0-9]{1,5}|100000)[smhdw])?";

fn filter_syntax(storage: Storage) -> FilterSyntax {
    // Numbers without surrounding blanks: a client's space would arrive as a `+`.
    let integer = "-?0*[0-9]{1,18}".to_owned();
    let time = "(?:[01][0-9]|2[0-3]):[0-5][0-9]";
    let seconds = ":[0-5][0-9](?:\\.[0-9]{1,9})?";
    let offset = "(?:Z|[+-](?:0[0-9]|1[0-3]):[0-5][0-9])";
    match storage {
        Storage::Text => FilterSyntax {
            // A value starting with `@` is a relative date, which text cannot be compared to.
            value: "(?:[^@\\x00][^\\x00]*)?".to_owned(),
            item: "[^,\\x00]*".to_owned(),
            like: true,
        },
        Storage::Integer => FilterSyntax {
            value: integer.clone(),
            item: integer,
            like: false,
        },
        Storage::Decimal { scale } => {
            // The store keeps 18 digits in all, `scale` of them after the point, and refuses a
            // value finer than the column (trailing zeros aside).
            let whole = 18_u32.saturating_sub(scale).max(1);
            let fraction = if scale == 0 {
                "(?:\\.0+)?".to_owned()
            } else {
                format!("(?:\\.[0-9]{{1,{scale}}}0*)?")
            };
            let decimal = format!("-?0*[0-9]{{1,{whole}}}{fraction}");
            FilterSyntax {
                value: decimal.clone(),
                item: decimal,
                like: false,
            }
        }
        Storage::Boolean => {
            let boolean = "(?:[Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee]|[Yy][Ee][Ss]|[Nn][Oo]|1|0)";
            FilterSyntax {
                value: boolean.to_owned(),
                item: boolean.to_owned(),
                like: false,
            }
        }
        Storage::Date => FilterSyntax {
            // The server reads the first ten characters as the date.
            value: format!("(?:{FILTER_DATE}[^\\x00]*|{FILTER_RELATIVE})"),
            item: format!("{FILTER_DATE}[^,\\x00]*"),
            like: false,
        },
        Storage::Datetime => {
            let datetime =
                format!("{FILTER_DATE}(?:T{time}(?:{seconds})?|T{time}{seconds}{offset})?");
            FilterSyntax {
                value: format!("(?:{datetime}|{FILTER_RELATIVE})"),
                item: datetime,
                like: false,
            }
        }
        Storage::Json => FilterSyntax {
            value: String::new(),
            item: String::new(),
            like: false,
        },
    }
}

/// The whole `op.value` of a filter on a field of `storage`.
fn filter_parameter_pattern(storage: Storage) -> String {
    if storage == Storage::Json {
        return "^is\\.(?:null|not_null)$".to_owned();
    }
    let syntax = filter_syntax(storage);
    let more = MAX_IN_VALUES - 1;
    let like = if syntax.like {
        format!("|like\\.[^\\x00]{{0,{MAX_PATTERN_CHARS}}}")
    } else {
        String::new()
    };
    format!(
        "^(?:(?:eq|ne|gt|gte|lt|lte)\\.{value}|in\\.\\((?:{item}(?:,{item}){{0,{more}}})?\\)|is\\.(?:null|not_null){like})$",
        value = syntax.value,
        item = syntax.item,
    )
}

/// `order` of one object: comma-separated sortable fields, each optionally after `-`
/// (descending) or `+` (ascending); blanks and empty items are skipped.
fn order_parameter(view: &ObjectView<'_>) -> Value {
    let fields = view
        .sortable_field_names()
        .iter()
        .map(|name| regex_escape(name))
        .collect::<Vec<_>>()
        .join("|");
    let item = format!("[{QUERY_WHITESPACE}]*(?:(?:-|\\+*)(?:{fields}))?[{QUERY_WHITESPACE}]*");
    json!({
        "name": "order",
        "in": "query",
        "required": false,
        "description": "Sort fields, comma-separated; `-` before a field sorts descending, `+` or nothing ascending (`-score,name`). The object's list order when absent; the record id always breaks ties. Multi-choice fields and fields masked for this user cannot be sorted by.",
        "schema": { "type": "string", "pattern": format!("^{item}(?:,{item})*$") },
    })
}

/// `name` with the regex metacharacters it could hold escaped (field names are identifiers,
/// so this is a safeguard).
fn regex_escape(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c.to_string()
            } else {
                format!("\\{c}")
            }
        })
        .collect()
}

/// Keys starting with `_` are never fields: the server ignores them in a body.
fn ignored_keys() -> Value {
    json!({ "^_": {} })
}

/// A value of a duplicate check: query-string text, read by the field's type (an empty value
/// is no value).
fn probe_schema(field: &Field) -> Value {
    let mut value = Map::new();
    value.insert("type".to_owned(), json!("string"));
    if let Some(max_length) = field.max_length {
        value.insert("maxLength".to_owned(), json!(max_length));
    }
    let blank = format!("[{QUERY_WHITESPACE}]*");
    match &field.kind {
        FieldKind::Phone => {
            let punctuation = regex_class(keel_runtime::coerce::PHONE_PUNCTUATION);
            value.insert(
                "pattern".to_owned(),
                json!(format!(
                    "^{blank}(?:(?:[{punctuation}]*[0-9]){{3,20}}[{punctuation}]*{blank})?$"
                )),
            );
        }
        FieldKind::Text => {
            if let Some(pattern) = &field.pattern {
                value.insert(
                    "pattern".to_owned(),
                    json!(format!("^{blank}(?:(?:{pattern}){blank})?$")),
                );
            }
        }
        // A probe of an email or URL field is read as one, like the field's input.
        FieldKind::Email => {
            value.insert(
                "pattern".to_owned(),
                json!(format!(
                    "^{blank}(?:[^{WHITESPACE}@]+@[^{WHITESPACE}@]+\\.[^{WHITESPACE}@]+{blank})?$"
                )),
            );
        }
        FieldKind::Url => {
            value.insert(
                "pattern".to_owned(),
                json!(format!(
                    "^{blank}(?:https?://[^{WHITESPACE}/?#]+[^{WHITESPACE}]*{blank})?$"
                )),
            );
        }
        FieldKind::Integer => {
            value.insert(
                "pattern".to_owned(),
                json!(format!("^{blank}(?:[+-]?[0-9]{{1,15}}{blank})?$")),
            );
        }
        FieldKind::Choice { options } => {
            let keys = options
                .iter()
                .map(|option| regex_escape(&option.key))
                .collect::<Vec<_>>()
                .join("|");
            value.insert(
                "pattern".to_owned(),
                json!(format!("^{blank}(?:(?:{keys}){blank})?$")),
            );
        }
        _ => {}
    }
    Value::Object(value)
}

/// The JSON filter of one object (`where`): each field to a value or to `{op: value}`,
/// `or` and `not` to combine, with the value syntax of each field's type.
fn filter_schema(view: &ObjectView<'_>) -> Value {
    let self_ref = schema_ref(&view.filter_name());
    let mut properties = Map::new();
    properties.insert(
        "or".to_owned(),
        json!({ "description": "Any of these filters holds.", "type": "array", "items": self_ref }),
    );
    properties.insert(
        "not".to_owned(),
        json!({ "description": "This filter does not hold.", "$ref": format!("#/components/schemas/{}", view.filter_name()) }),
    );
    for field in view.filterable_fields() {
        if field.name == "or" || field.name == "not" {
            continue;
        }
        properties.insert(field.name.clone(), filter_field_schema(field.storage));
    }
    json!({
        "title": format!("{} filter", view.label()),
        "description": "A map of field to a value (equality), to null (empty), or to `{op: value}`, all of which must hold. Operators: `eq`, `ne`, `gt`, `gte`, `lt`, `lte`, `in` (a list), `like` (text: matches the whole value, `*` is the wildcard), `is` (`null` or `not_null`). `or: [filter, …]` and `not: filter` combine filters. Date values may be relative, in the app timezone: `@now`, `@now-3d`, `@now+2h`, `@today`, `@today+1d`.",
        "type": "object",
        "properties": properties,
        "additionalProperties": false,
    })
}

/// What a filter may say about one field of `storage`, in the JSON form.
fn filter_field_schema(storage: Storage) -> Value {
    let is = json!({ "enum": [null, "null", "not_null"] });
    if storage == Storage::Json {
        return json!({
            "anyOf": [
                { "type": "null" },
                {
                    "type": "object",
                    "properties": { "is": is },
                    "required": ["is"],
                    "additionalProperties": false,
                },
            ],
        });
    }
    let syntax = filter_syntax(storage);
    // JSON numbers and booleans are read as their text.
    let mut scalars = vec![json!({ "type": "string", "pattern": format!("^{}$", syntax.value) })];
    let mut items = vec![json!({ "type": "string", "pattern": format!("^{}$", syntax.item) })];
    match storage {
        Storage::Text => {
            scalars.push(json!({ "type": ["number", "boolean"] }));
            items.push(json!({ "type": ["number", "boolean"] }));
        }
        Storage::Integer | Storage::Decimal { .. } => {
            let number = json!({ "type": "integer", "minimum": -MAX_FILTER_INTEGER, "maximum": MAX_FILTER_INTEGER });
            scalars.push(number.clone());
            items.push(number);
        }
        Storage::Boolean => {
            scalars.push(json!({ "type": "boolean" }));
            items.push(json!({ "type": "boolean" }));
        }
        _ => {}
    }
    let scalar = json!({ "anyOf": scalars });
    let mut operators = Map::new();
    for op in ["eq", "ne", "gt", "gte", "lt", "lte"] {
        operators.insert(op.to_owned(), scalar.clone());
    }
    operators.insert(
        "in".to_owned(),
        json!({ "type": "array", "maxItems": MAX_IN_VALUES, "items": { "anyOf": items } }),
    );
    if syntax.like {
        operators.insert(
            "like".to_owned(),
            json!({ "type": "string", "maxLength": MAX_PATTERN_CHARS, "pattern": "^[^\\x00]*$" }),
        );
    }
    operators.insert("is".to_owned(), is);
    json!({
        "anyOf": [
            { "type": "null" },
            scalar,
            {
                "type": "object",
                "properties": operators,
                "minProperties": 1,
                "additionalProperties": false,
            },
        ],
    })
}

/// The body of `POST /records/{object}/query`.
fn query_schema(view: &ObjectView<'_>) -> Value {
    let fields = json!({
        "description": "Only these fields (plus the system fields) in each record: a comma-separated string or a list.",
        "anyOf": [
            { "type": "array", "items": schema_ref(&view.field_name_schema()) },
            { "type": "null" },
        ],
    });
    let order_item = format!(
        "[{WHITESPACE}]*(?:(?:-|\\+*)(?:{}))?[{WHITESPACE}]*",
        view.sortable_field_names()
            .iter()
            .map(|name| regex_escape(name))
            .collect::<Vec<_>>()
            .join("|")
    );
    let order_text = format!("^{order_item}(?:,{order_item})*$");
    json!({
        "title": format!("{} query", view.label()),
        "description": "A list request with the filter as JSON.",
        "type": "object",
        "properties": {
            "where": { "anyOf": [schema_ref(&view.filter_name()), { "type": "null" }] },
            "order": {
                "description": "Sort fields; `-` before a field sorts descending. A comma-separated string, or a list of such strings.",
                "anyOf": [
                    { "type": "string", "pattern": order_text },
                    { "type": "array", "items": { "type": "string", "pattern": order_text } },
                    { "type": "null" },
                ],
            },
            "limit": {
                "type": ["integer", "null"],
                "minimum": 1,
                "maximum": MAX_PAGE_SIZE,
                "default": DEFAULT_PAGE_SIZE,
            },
            "after": { "description": "The `next` cursor of the previous page.", "type": ["string", "null"] },
            "q": {
                "description": "Text matched against the object's search fields.",
                "type": ["string", "null"],
                "maxLength": MAX_PATTERN_CHARS,
                "pattern": "^[^\\x00]*$",
            },
            "fields": fields,
        },
        "additionalProperties": false,
    })
}

/// The query parameters of a page of `view`'s records: `own` (the operation's own, whose
/// names are `own_names`), then `order`, `limit`, `after`, `q` and `fields`, then a filter
/// per filterable field whose name none of them takes.
fn list_parameters(view: &ObjectView<'_>, own: Vec<Value>, own_names: &[&str]) -> Vec<Value> {
    let mut parameters = own;
    parameters.extend([
        parameter_ref(&view.order_parameter_name()),
        parameter_ref("limit"),
        parameter_ref("after"),
        parameter_ref("q"),
        fields_parameter(view),
    ]);
    let mut reserved = own_names.to_vec();
    reserved.extend(["order", "limit", "after", "q", "fields"]);
    parameters.extend(filter_parameter_refs(view, &reserved));
    parameters
}

/// References to the filter parameters of `view`, leaving out fields whose name an
/// operation's own parameter already takes.
fn filter_parameter_refs(view: &ObjectView<'_>, reserved: &[&str]) -> Vec<Value> {
    view.filterable_fields()
        .into_iter()
        .filter(|field| !reserved.contains(&field.name.as_str()))
        .map(|field| parameter_ref(&view.filter_parameter_name(&field.name)))
        .collect()
}

/// `fields=a,b`: only these fields (plus the system fields) in each record.
fn fields_parameter(view: &ObjectView<'_>) -> Value {
    let mut parameter = list_parameter(
        "fields",
        "Only these fields (plus the system fields) in each record; all the fields this user may see when absent. An empty list or an empty item (`fields=`, `fields=a,,b`) is a 422.",
        schema_ref(&view.field_name_schema()),
    );
    // `fields=` reads as an empty list or as one empty name; the server refuses both.
    parameter["schema"]["minItems"] = json!(1);
    parameter
}

/// A comma-separated list of field names in the query string (`name=a,b`), each valid
/// against `item`.
fn list_parameter(name: &str, description: &str, item: Value) -> Value {
    json!({
        "name": name,
        "in": "query",
        "required": false,
        "description": description,
        "style": "form",
        "explode": false,
        "schema": { "type": "array", "items": item },
    })
}

fn shared_parameters() -> Map<String, Value> {
    let mut parameters = Map::new();
    parameters.insert(
        "id".to_owned(),
        json!({
            "name": "id",
            "in": "path",
            "required": true,
            "description": "The record's id.",
            "schema": { "type": "string" },
        }),
    );
    parameters.insert(
        "ifMatch".to_owned(),
        json!({
            "name": "If-Match",
            "in": "header",
            "required": false,
            "description": "The `ETag` the record had when it was read, e.g. `\"3\"` (a weak `W/\"3\"` reads the same; `*` matches any version); a record that changed since is refused with 412.",
            "schema": { "type": "string", "pattern": "^(?:\\*|(?:W/)?\"[+-]?[0-9]{1,18}\")$" },
        }),
    );
    parameters.insert(
        "limit".to_owned(),
        json!({
            "name": "limit",
            "in": "query",
            "required": false,
            "description": "How many records one page holds.",
            "schema": {
                "type": "integer",
                "minimum": 1,
                "maximum": MAX_PAGE_SIZE,
                "default": DEFAULT_PAGE_SIZE,
            },
        }),
    );
    parameters.insert(
        "after".to_owned(),
        json!({
            "name": "after",
            "in": "query",
            "required": false,
            "description": "The `next` cursor of the previous page.",
            "schema": { "type": "string" },
        }),
    );
    parameters.insert(
        "q".to_owned(),
        json!({
            "name": "q",
            "in": "query",
            "required": false,
            "description": "Text matched against the object's search fields.",
            "schema": { "type": "string", "maxLength": MAX_PATTERN_CHARS, "pattern": "^[^\\x00]*$" },
        }),
    );
    parameters
}

fn shared_schemas(schemas: &mut Map<String, Value>) {
    schemas.insert(
        "Problem".to_owned(),
        json!({
            "title": "Problem",
            "description": "An error (RFC 9457 problem details).",
            "type": "object",
            "properties": {
                "type": { "description": "A stable snake_case code for the kind of problem, e.g. `invalid_record`.", "type": "string" },
                "title": { "description": "A short, human-readable summary.", "type": "string" },
                "status": { "description": "The HTTP status code.", "type": "integer" },
                "detail": { "description": "What went wrong in this case.", "type": "string" },
                "errors": {
                    "description": "Every bad field (empty when there is none); in a bulk call a field is named `<index>.<field>`.",
                    "type": "array",
                    "items": schema_ref("FieldError"),
                },
                "matches": {
                    "description": "On a `conflict`: the matching records.",
                    "type": "array",
                    "items": schema_ref("DuplicateMatch"),
                },
                "current_version": {
                    "description": "On a `stale_version`: the record's version now.",
                    "type": "integer",
                },
            },
            "required": ["type", "title", "status"],
        }),
    );
    schemas.insert(
        "FieldError".to_owned(),
        json!({
            "title": "Field error",
            "type": "object",
            "properties": {
                "field": { "description": "The field's name.", "type": ["string", "null"] },
                "code": { "description": "A stable snake_case code, e.g. `required`.", "type": "string" },
                "message": { "description": "What is wrong, for people.", "type": "string" },
            },
            "required": ["field", "code", "message"],
        }),
    );
    schemas.insert(
        "Ref".to_owned(),
        json!({
            "title": "Reference",
            "description": "The record or user a lookup or user field points at.",
            "type": "object",
            "properties": {
                "id": { "type": "string" },
                "title": { "description": "The target's title, or a user's name.", "type": ["string", "null"] },
            },
            "required": ["id"],
        }),
    );
    schemas.insert(
        "DuplicateMatch".to_owned(),
        json!({
            "title": "Duplicate match",
            "description": "What a duplicate check reveals of a matching record: enough to avoid 撞单, nothing more.",
            "type": "object",
            "properties": {
                "id": { "type": "string" },
                "title": { "description": "The record's title, masked.", "type": "string" },
                "owner_name": { "description": "The owner's name.", "type": ["string", "null"] },
                "pool": { "description": "The pool the record sits in.", "type": ["string", "null"] },
                "fields": {
                    "description": "The duplicate key that matched.",
                    "type": "array",
                    "items": { "type": "string" },
                },
            },
            "required": ["id", "title"],
        }),
    );
    schemas.insert(
        "HistoryEntry".to_owned(),
        json!({
            "title": "Field change",
            "type": "object",
            "properties": {
                "at": { "type": "string", "format": "date-time" },
                "by": { "description": "The id of the user who made the change.", "type": ["string", "null"] },
                "field": { "type": "string" },
                "old": { "description": "The value before." },
                "new": { "description": "The value after." },
            },
            "required": ["at", "field"],
        }),
    );
    schemas.insert(
        "Warning".to_owned(),
        json!({
            "title": "Warning",
            "description": "Something a save noticed without refusing it, e.g. a `warn` duplicate key matched.",
            "type": "object",
            "properties": {
                "code": { "description": "A stable snake_case code, e.g. `possible_duplicate`.", "type": "string" },
                "message": { "type": "string" },
                "matches": { "type": "array", "items": schema_ref("DuplicateMatch") },
            },
            "required": ["code", "message"],
        }),
    );
    schemas.insert(
        "LoginRequest".to_owned(),
        json!({
            "title": "Login",
            "type": "object",
            "properties": {
                "username": { "type": "string" },
                "password": { "type": "string", "format": "password" },
            },
            "required": ["username", "password"],
            "additionalProperties": false,
        }),
    );
    schemas.insert(
        "LoginResponse".to_owned(),
        json!({
            "title": "Logged in",
            "type": "object",
            "properties": {
                "token": { "description": "Send as `Authorization: Bearer <token>`.", "type": "string" },
                "user": schema_ref("User"),
                "expires_at": {
                    "description": "When the session ends unless it is used again (it lasts 30 days after its last use).",
                    "type": "string",
                    "format": "date-time",
                },
            },
            "required": ["token", "user"],
        }),
    );
    schemas.insert(
        "User".to_owned(),
        json!({
            "title": "User",
            "type": "object",
            "properties": {
                "id": { "type": "string" },
                "username": { "type": "string" },
                "display_name": { "type": ["string", "null"] },
                "roles": { "type": "array", "items": { "type": "string" } },
                "admin": { "type": "boolean" },
                "manager": { "description": "The manager's username.", "type": ["string", "null"] },
                "department": { "description": "The department's name.", "type": ["string", "null"] },
                "language": { "type": ["string", "null"] },
                "email": {
                    "description": "The user's own email address, where email notifications reach them. Personal data: only the user and admins see it.",
                    "type": ["string", "null"],
                },
            },
            "required": ["id", "username"],
        }),
    );
    schemas.insert(
        "Health".to_owned(),
        json!({
            "title": "Health",
            "type": "object",
            "properties": {
                "status": { "type": "string", "enum": ["ok", "unavailable"] },
                "metadata": { "description": "The fingerprint of the metadata being served.", "type": "string" },
            },
            "required": ["status"],
        }),
    );
}

/// `responses` plus a reference to the problem response of each status in `problems`.
fn with_problems(responses: Value, problems: &[u16]) -> Value {
    let mut responses = match responses {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    // Any request can carry an undecodable query string (400) or an over-long URI (414).
    for status in [400, 414].iter().chain(problems) {
        if let Some((_, name, _)) = PROBLEM_RESPONSES.iter().find(|(code, _, _)| code == status) {
            responses.insert(
                status.to_string(),
                json!({ "$ref": format!("#/components/responses/{name}") }),
            );
        }
    }
    Value::Object(responses)
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn parameter_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/parameters/{name}") })
}

/// The English text of a label, else any.
fn english(label: &Label) -> String {
    label.text("en", "en").to_owned()
}

/// `text` ending in a full stop.
fn sentence(text: &str) -> String {
    let text = text.trim();
    if text.ends_with(['.', '!', '?', '。']) {
        text.to_owned()
    } else {
        format!("{text}.")
    }
}

/// `follow_up` → `FollowUp`.
fn pascal_case(name: &str) -> String {
    name.split('_')
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect()
}
