//! Scripts inside the save path: before-save and before-delete triggers, validations, and the
//! [`ScriptHost`] through which a script reads and writes records as its user.
//!
//! A script runs on a blocking thread (`ScriptRunner`), but its data calls must run in the
//! transaction of the save that started it: on SQLite a second write transaction would wait
//! for the first forever, and a script must see the record being saved. So the host the
//! script holds is a channel back to the async task that owns the transaction: each call is
//! sent there, run through the same `create_in`/`update_in` and query paths as any other
//! save, and answered. Saves a script makes are saves of their own — they run their own
//! triggers and validations and leave their own outbox rows — one step deeper in the chain
//! (docs/rules.md, "Chains").

use std::sync::Arc;

use keel_meta::{Object, Value};
use keel_script::{
    HostError, RunError, RunInput, RunOutput, ScriptEvent, ScriptHost, ScriptMap, ScriptUser,
    ScriptValue,
};
use keel_store::outbox::NewNotification;
use keel_store::records::{Deleted, RecordWrite, Row, SelectQuery};
use serde_json::{Map, Value as Json};
use tokio::sync::{mpsc, oneshot};

use crate::actor::Actor;
use crate::coerce::{CoerceContext, FieldProblem, Source, coerce};
use crate::records::access;
use crate::records::read::record_query;
use crate::records::write::SaveContext;
use crate::records::{MAX_PAGE_SIZE, RecordError, Records};

/// How many saves one chain of rules and scripts may make, one causing the next.
pub const MAX_CHAIN_DEPTH: usize = 8;

/// Why a save happens: the rules and scripts that led to it, outermost first (empty for a
/// save a person made).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Cause {
    pub chain: Vec<String>,
}

impl Cause {
    /// The cause of a save made by `step` (a rule or a script) on behalf of this one; an
    /// error naming the chain when it would go deeper than [`MAX_CHAIN_DEPTH`].
    pub fn then(&self, step: &str) -> Result<Cause, RecordError> {
        let mut chain = self.chain.clone();
        chain.push(step.to_owned());
        if chain.len() > MAX_CHAIN_DEPTH {
            return Err(RecordError::ChainTooDeep { chain });
        }
        Ok(Cause { chain })
    }
}

/// One data call of a running script, sent to the task that owns the transaction.
enum HostCall {
    Find {
        object: String,
        filter: ScriptMap,
        one: bool,
    },
    Get {
        object: String,
        id: String,
    },
    Count {
        object: String,
        filter: ScriptMap,
    },
    Create {
        object: String,
        values: ScriptMap,
    },
    Update {
        object: String,
        id: String,
        values: ScriptMap,
    },
    Notify {
        user_id: String,
        message: String,
    },
}

enum HostAnswer {
    Records(Vec<ScriptMap>),
    Record(Option<ScriptMap>),
    Count(i64),
    Done,
}

type Reply = oneshot::Sender<Result<HostAnswer, HostError>>;

/// The host a script holds: every call goes over the channel and blocks the script's thread
/// until the answer comes back.
struct ChannelHost {
    calls: mpsc::Sender<(HostCall, Reply)>,
    script: String,
}

impl ChannelHost {
    fn ask(&self, call: HostCall) -> Result<HostAnswer, HostError> {
        let (reply, answer) = oneshot::channel();
        self.calls
            .blocking_send((call, reply))
            .map_err(|_| HostError::from("the save this script runs in has ended"))?;
        answer
            .blocking_recv()
            .map_err(|_| HostError::from("the save this script runs in has ended"))?
    }
}

fn unexpected() -> HostError {
    HostError::from("the host answered a different call")
}

impl ScriptHost for ChannelHost {
    fn find(&self, object: &str, filter: &ScriptMap) -> Result<Vec<ScriptMap>, HostError> {
        match self.ask(HostCall::Find {
            object: object.to_owned(),
            filter: filter.clone(),
            one: false,
        })? {
            HostAnswer::Records(records) => Ok(records),
            _ => Err(unexpected()),
        }
    }

    fn find_one(&self, object: &str, filter: &ScriptMap) -> Result<Option<ScriptMap>, HostError> {
        match self.ask(HostCall::Find {
            object: object.to_owned(),
            filter: filter.clone(),
            one: true,
        })? {
            HostAnswer::Records(records) => Ok(records.into_iter().next()),
            _ => Err(unexpected()),
        }
    }

    fn get(&self, object: &str, id: &str) -> Result<Option<ScriptMap>, HostError> {
        match self.ask(HostCall::Get {
            object: object.to_owned(),
            id: id.to_owned(),
        })? {
            HostAnswer::Record(record) => Ok(record),
            _ => Err(unexpected()),
        }
    }

    fn count(&self, object: &str, filter: &ScriptMap) -> Result<i64, HostError> {
        match self.ask(HostCall::Count {
            object: object.to_owned(),
            filter: filter.clone(),
        })? {
            HostAnswer::Count(count) => Ok(count),
            _ => Err(unexpected()),
        }
    }

    fn create(&self, object: &str, values: &ScriptMap) -> Result<ScriptMap, HostError> {
        match self.ask(HostCall::Create {
            object: object.to_owned(),
            values: values.clone(),
        })? {
            HostAnswer::Record(Some(record)) => Ok(record),
            _ => Err(unexpected()),
        }
    }

    fn update(&self, object: &str, id: &str, values: &ScriptMap) -> Result<ScriptMap, HostError> {
        match self.ask(HostCall::Update {
            object: object.to_owned(),
            id: id.to_owned(),
            values: values.clone(),
        })? {
            HostAnswer::Record(Some(record)) => Ok(record),
            _ => Err(unexpected()),
        }
    }

    fn notify(&self, user_id: &str, message: &str) -> Result<(), HostError> {
        match self.ask(HostCall::Notify {
            user_id: user_id.to_owned(),
            message: message.to_owned(),
        })? {
            HostAnswer::Done => Ok(()),
            _ => Err(unexpected()),
        }
    }

    fn log(&self, message: &str) -> Result<(), HostError> {
        tracing::info!(script = %self.script, "{message}");
        Ok(())
    }
}

/// The user a script runs as.
pub(crate) fn script_user(actor: &Actor) -> ScriptUser {
    ScriptUser {
        id: actor.id.clone(),
        username: actor.username.clone(),
        roles: actor.roles.clone(),
        manager: actor.manager.clone(),
        department: actor.department.clone(),
    }
}

/// A stored value as a script sees it: dates and datetimes typed, `multi_choice` keys as an
/// array, empty as `()`.
pub(crate) fn script_value(value: &Value) -> ScriptValue {
    match value {
        Value::Null => ScriptValue::Unit,
        Value::Text(text) => ScriptValue::Text(text.clone()),
        Value::Integer(n) => ScriptValue::Integer(*n),
        Value::Decimal(d) => ScriptValue::Decimal(*d),
        Value::Boolean(b) => ScriptValue::Boolean(*b),
        Value::Date(date) => ScriptValue::Date(*date),
        Value::Datetime(at) => ScriptValue::Datetime(*at),
        Value::List(items) => {
            ScriptValue::Array(items.iter().cloned().map(ScriptValue::Text).collect())
        }
    }
}

/// A row as a script map (every column it has).
pub(crate) fn script_map(row: &Row) -> ScriptMap {
    row.iter()
        .filter(|(name, _)| !matches!(name.as_str(), "deleted_at" | "deleted_by"))
        .map(|(name, value)| (name.clone(), script_value(value)))
        .collect()
}

/// A script value as JSON input (what a client would send for it).
pub(crate) fn json_value(value: &ScriptValue) -> Json {
    match value {
        ScriptValue::Unit => Json::Null,
        ScriptValue::Text(text) => Json::String(text.clone()),
        ScriptValue::Integer(n) => Json::from(*n),
        ScriptValue::Decimal(d) => Json::String(d.normalize().to_string()),
        ScriptValue::Boolean(b) => Json::Bool(*b),
        ScriptValue::Date(date) => Json::String(date.format("%Y-%m-%d").to_string()),
        ScriptValue::Datetime(at) => {
            Json::String(at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        }
        ScriptValue::Array(items) => Json::Array(items.iter().map(json_value).collect()),
        ScriptValue::Map(map) => Json::Object(json_map(map)),
    }
}

pub(crate) fn json_map(map: &ScriptMap) -> Map<String, Json> {
    map.iter()
        .map(|(key, value)| (key.clone(), json_value(value)))
        .collect()
}

fn host_error(error: RecordError) -> HostError {
    match error {
        RecordError::Invalid(problems) => HostError::from(
            problems
                .iter()
                .map(|problem| format!("{}: {}", problem.field, problem.message))
                .collect::<Vec<_>>()
                .join("; "),
        ),
        RecordError::Store(error) => {
            tracing::error!("a script's data call failed: {error}");
            HostError::from("the database failed")
        }
        other => HostError::from(other.to_string()),
    }
}

impl Records {
    /// Runs the script `name` in the transaction `write`, as `save.actor`, serving its data
    /// calls there. `nested` says another run waits for this one (it then takes no runner
    /// slot). Saves the script makes are one step deeper in the chain than `save`, the step
    /// named after the script (or `step`, for a rule's script).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn run_script_in(
        &self,
        mut write: Option<&mut RecordWrite>,
        save: &mut SaveContext<'_>,
        name: &str,
        record: ScriptMap,
        old: Option<ScriptMap>,
        event: ScriptEvent,
        nested: bool,
        step: Option<&str>,
    ) -> Result<RunOutput, RecordError> {
        let Some(script) = self.schema.scripts.get(name) else {
            return Err(RecordError::Script(RunError::Internal {
                script: name.to_owned(),
                message: "there is no such script".to_owned(),
            }));
        };
        let compiled = self
            .sandbox
            .compile(name, &script.source)
            .map_err(RecordError::Script)?;
        let input = RunInput {
            record,
            old,
            user: script_user(save.actor),
            event,
            now: save.now,
            timezone: self.timezone(),
        };
        let (calls, mut incoming) = mpsc::channel(1);
        let host: Arc<dyn ScriptHost> = Arc::new(ChannelHost {
            calls,
            script: name.to_owned(),
        });
        let run = async {
            if nested {
                self.runner.run_nested(compiled, input, host).await
            } else {
                self.runner.run(compiled, input, host).await
            }
        };
        tokio::pin!(run);
        let cause = save.cause.then(step.unwrap_or(name));
        loop {
            tokio::select! {
                biased;
                Some((call, reply)) = incoming.recv() => {
                    let answer = match (&cause, write.as_deref_mut()) {
                        (Ok(cause), Some(write)) => {
                            Box::pin(self.serve_call(write, save, cause, call)).await
                        }
                        (Err(error), _) => Err(HostError::from(error.to_string())),
                        (Ok(_), None) => Err(HostError::from(
                            "this script runs before the save's transaction and reads no records",
                        )),
                    };
                    // The script may have stopped meanwhile (its deadline): nobody to answer.
                    let _ = reply.send(answer);
                }
                result = &mut run => return result.map_err(RecordError::Script),
            }
        }
    }

    /// Runs one data call of a script in `write`.
    async fn serve_call(
        &self,
        write: &mut RecordWrite,
        save: &mut SaveContext<'_>,
        cause: &Cause,
        call: HostCall,
    ) -> Result<HostAnswer, HostError> {
        let actor = save.actor;
        match call {
            HostCall::Get { object, id } => {
                let object = self.object(&object).map_err(host_error)?;
                let query = record_query(
                    object,
                    &id,
                    access::read_condition(&self.schema, actor, &object.name),
                    Deleted::Exclude,
                );
                let row = write
                    .select(&query)
                    .await
                    .map_err(|e| host_error(e.into()))?;
                Ok(HostAnswer::Record(
                    row.first().map(|row| self.readable_map(actor, object, row)),
                ))
            }
            HostCall::Find {
                object,
                filter,
                one,
            } => {
                let object = self.object(&object).map_err(host_error)?;
                let condition = self.script_condition(actor, object, &filter)?;
                let query = SelectQuery {
                    limit: Some(if one { 1 } else { MAX_PAGE_SIZE }),
                    condition,
                    ..SelectQuery::new(object)
                };
                let rows = write
                    .select(&query)
                    .await
                    .map_err(|e| host_error(e.into()))?;
                Ok(HostAnswer::Records(
                    rows.iter()
                        .map(|row| self.readable_map(actor, object, row))
                        .collect(),
                ))
            }
            HostCall::Count { object, filter } => {
                let object = self.object(&object).map_err(host_error)?;
                let condition = self.script_condition(actor, object, &filter)?;
                let count = write
                    .count(object, &condition, Deleted::Exclude)
                    .await
                    .map_err(|e| host_error(e.into()))?;
                Ok(HostAnswer::Count(count))
            }
            HostCall::Create { object, values } => {
                let object = self.object(&object).map_err(host_error)?;
                let mut nested = save.nested(cause.clone());
                let row = self
                    .create_in(write, &mut nested, object, &json_map(&values), None)
                    .await;
                save.absorb(nested);
                let row = row.map_err(host_error)?;
                Ok(HostAnswer::Record(Some(
                    self.readable_map(actor, object, &row),
                )))
            }
            HostCall::Update { object, id, values } => {
                let object = self.object(&object).map_err(host_error)?;
                let mut nested = save.nested(cause.clone());
                let row = self
                    .update_in(write, &mut nested, object, &id, &json_map(&values), None)
                    .await;
                save.absorb(nested);
                let row = row.map_err(host_error)?;
                Ok(HostAnswer::Record(Some(
                    self.readable_map(actor, object, &row),
                )))
            }
            HostCall::Notify { user_id, message } => {
                let notification = NewNotification {
                    id: uuid::Uuid::now_v7().to_string(),
                    user_id,
                    message,
                    object: save.subject.as_ref().map(|(object, _)| object.clone()),
                    record_id: save.subject.as_ref().map(|(_, id)| id.clone()),
                    created_at: save.now,
                };
                self.notify_users(write, save, vec![notification], None)
                    .await
                    .map_err(host_error)?;
                Ok(HostAnswer::Done)
            }
        }
    }

    /// A script's filter map as a condition within the actor's read scope.
    fn script_condition(
        &self,
        actor: &Actor,
        object: &Object,
        filter: &ScriptMap,
    ) -> Result<keel_store::records::Condition, HostError> {
        let filter = keel_meta::Filter::from_json(&Json::Object(json_map(filter)))
            .map_err(|error| HostError::from(error.to_string()))?;
        self.list_condition(actor, object, Some(&filter), None)
            .map_err(host_error)
    }

    /// A row as the actor may read it, as a script map: hidden fields left out.
    fn readable_map(&self, actor: &Actor, object: &Object, row: &Row) -> ScriptMap {
        let readable = access::readable_fields(&self.schema, actor, object);
        script_map(row)
            .into_iter()
            .filter(|(name, _)| {
                keel_meta::is_system_field(name) || readable.iter().any(|field| field == name)
            })
            .collect()
    }

    /// Whether the object has before-save scripts and none of them can touch the database
    /// (decided once per app: see [`reads_nothing`]).
    pub(super) fn before_save_reads_nothing(&self, object: &Object) -> bool {
        self.pure_before_save.contains(&object.name)
    }

    /// Runs the object's `before_save` scripts over `row` (the record about to be saved;
    /// `current` the stored one on update) and takes in what they changed, coerced and
    /// checked like input: a script may set declared fields that are not computed.
    pub(super) async fn before_save(
        &self,
        mut write: Option<&mut RecordWrite>,
        save: &mut SaveContext<'_>,
        object: &Object,
        row: &mut Row,
        current: Option<&Row>,
    ) -> Result<(), RecordError> {
        if object.triggers.before_save.is_empty() {
            return Ok(());
        }
        let event = if current.is_some() {
            ScriptEvent::Update
        } else {
            ScriptEvent::Create
        };
        let old = current.map(script_map);
        let context = CoerceContext {
            timezone: self.timezone(),
            source: Source::Json,
        };
        for name in &object.triggers.before_save {
            let before = script_map(row);
            let output = self
                .run_script_in(
                    write.as_deref_mut(),
                    save,
                    name,
                    before.clone(),
                    old.clone(),
                    event,
                    !save.cause.chain.is_empty(),
                    None,
                )
                .await?;
            let mut problems = Vec::new();
            for (key, value) in &output.record {
                if before.get(key) == Some(value)
                    || (!before.contains_key(key) && *value == ScriptValue::Unit)
                {
                    continue;
                }
                let problem = |code: &'static str, message: String| FieldProblem {
                    field: key.clone(),
                    code,
                    message: format!("script `{name}` set `{key}`: {message}"),
                };
                match object.field(key) {
                    Some(field) if !field.is_computed() => {
                        match coerce(field, &json_value(value), context) {
                            Ok(typed) => {
                                row.insert(key.clone(), typed);
                            }
                            Err(refused) => problems.push(problem(refused.code, refused.message)),
                        }
                    }
                    Some(_) => problems.push(problem(
                        "read_only",
                        "the field is computed; scripts cannot set it".to_owned(),
                    )),
                    None if keel_meta::is_system_field(key) => problems.push(problem(
                        "read_only",
                        "system fields cannot be set by a script".to_owned(),
                    )),
                    None => problems.push(problem(
                        "unknown_field",
                        format!("{} has no such field", object.name),
                    )),
                }
            }
            for key in before.keys() {
                if !output.record.contains_key(key) && object.field(key).is_some() {
                    row.insert(key.clone(), Value::Null);
                }
            }
            if !problems.is_empty() {
                return Err(RecordError::Invalid(problems));
            }
        }
        Ok(())
    }

    /// Runs the object's `before_delete` scripts over the record about to be deleted; a
    /// `reject` refuses the delete.
    pub(super) async fn before_delete(
        &self,
        write: &mut RecordWrite,
        save: &mut SaveContext<'_>,
        object: &Object,
        current: &Row,
    ) -> Result<(), RecordError> {
        for name in &object.triggers.before_delete {
            self.run_script_in(
                Some(&mut *write),
                save,
                name,
                script_map(current),
                Some(script_map(current)),
                ScriptEvent::Delete,
                !save.cause.chain.is_empty(),
                None,
            )
            .await?;
        }
        Ok(())
    }

    /// The object's `validations`: every one whose `when` holds refuses the save, with its
    /// message in the actor's language, on the first field it names.
    pub(super) fn validate(
        &self,
        actor: &Actor,
        object: &Object,
        row: &Row,
        current: Option<&Row>,
    ) -> Result<(), RecordError> {
        if object.validations.is_empty() {
            return Ok(());
        }
        let record = ScriptValue::Map(script_map(row));
        let old = current.map_or(ScriptValue::Unit, |current| {
            ScriptValue::Map(script_map(current))
        });
        let user = expression_user(actor);
        let event = ScriptValue::Text(
            if current.is_some() {
                "update"
            } else {
                "create"
            }
            .to_owned(),
        );
        let language = actor
            .language
            .clone()
            .unwrap_or_else(|| self.schema.app.language.clone());
        let mut problems = Vec::new();
        for (index, validation) in object.validations.iter().enumerate() {
            let field = validation.fields.first().cloned().unwrap_or_default();
            let holds = self.sandbox.evaluate(
                &validation.when,
                &[
                    ("record", record.clone()),
                    ("old", old.clone()),
                    ("user", user.clone()),
                    ("event", event.clone()),
                ],
            );
            match holds {
                Ok(ScriptValue::Boolean(false)) | Ok(ScriptValue::Unit) => {}
                Ok(ScriptValue::Boolean(true)) => problems.push(FieldProblem {
                    field,
                    code: "validation_failed",
                    message: validation
                        .message
                        .text(&language, &self.schema.app.language)
                        .to_owned(),
                }),
                Ok(other) => problems.push(FieldProblem {
                    field,
                    code: "validation_failed",
                    message: format!(
                        "validation {} of {} must give true or false, not {other:?}",
                        index + 1,
                        object.name
                    ),
                }),
                Err(error) => problems.push(FieldProblem {
                    field,
                    code: "validation_failed",
                    message: format!(
                        "validation {} of {} failed at line {}: {}",
                        index + 1,
                        object.name,
                        error.line,
                        error.message
                    ),
                }),
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(RecordError::Invalid(problems))
        }
    }

    /// Writes in-app notifications in `write` and, when the app has channels or email,
    /// outbox rows to deliver them there too (`key` makes those rows idempotent).
    pub(super) async fn notify_users(
        &self,
        write: &mut RecordWrite,
        save: &mut SaveContext<'_>,
        notifications: Vec<NewNotification>,
        key: Option<&str>,
    ) -> Result<(), RecordError> {
        if notifications.is_empty() {
            return Ok(());
        }
        write.insert_notifications(&notifications).await?;
        save.notified = true;
        self.enqueue_external_notifications(write, save, &notifications, key)
            .await
    }
}

/// The user as expressions see it (`user`), the same map scripts get.
pub(crate) fn expression_user(actor: &Actor) -> ScriptValue {
    script_user(actor).to_value()
}

/// The objects whose before-save scripts may run before a create's transaction opens: they
/// have some, and none of them can read or write records, send a notification or call a
/// function by name (`call`, `Fn`, `curry`), as far as their text shows. A false "may touch
/// the database" only keeps a script inside the transaction.
pub(super) fn reads_nothing(schema: &keel_meta::Schema) -> std::collections::HashSet<String> {
    let Ok(data_call) =
        regex::Regex::new(r"\b(find|find_one|get|count|create|update|notify|call|Fn|curry)\s*\(")
    else {
        return std::collections::HashSet::new();
    };
    schema
        .objects
        .values()
        .filter(|object| {
            !object.triggers.before_save.is_empty()
                && object.triggers.before_save.iter().all(|name| {
                    schema
                        .scripts
                        .get(name)
                        .is_some_and(|script| !data_call.is_match(&script.source))
                })
        })
        .map(|object| object.name.clone())
        .collect()
}
