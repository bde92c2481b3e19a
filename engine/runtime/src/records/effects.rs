//! What a save leaves for after its commit, and doing it: event rules and after-save /
//! after-delete scripts go into the outbox in the save's transaction (docs/rules.md), and
//! [`Records::perform`] runs one claimed outbox row whose effects live in this database — a
//! rule's actions, a script — in one transaction with marking the row done, so they happen
//! exactly once however often the row is claimed. Deliveries that leave the database
//! (webhooks, email, chat) are queued as outbox rows of their own and sent by
//! `crate::outbox`.

use chrono::{DateTime, Utc};
use keel_meta::{
    Action, FieldKind, Object, Recipient, Rule, RuleEvent, RuleTrigger, Storage, Value,
};
use keel_script::{ScriptEvent, ScriptValue};
use keel_store::outbox::{NewEntry, NewNotification};
use keel_store::records::{RecordWrite, Row};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json, json};
use sha2::{Digest, Sha256};

use crate::actor::Actor;
use crate::records::scripting::{Cause, expression_user, script_map};
use crate::records::write::SaveContext;
use crate::records::{RecordError, Records};

/// Outbox kinds whose work is done in this database by [`Records::perform`].
pub const KIND_RULE: &str = "rule";
pub const KIND_SCRIPT: &str = "script";
/// Outbox kinds delivered outside (by `crate::outbox`).
pub const KIND_WEBHOOK: &str = "webhook";
pub const KIND_CHAT: &str = "chat";
pub const KIND_EMAIL: &str = "email";

/// A rule or script to run after a save, as the outbox keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AfterSave {
    /// The rule (kind `rule`) or script (kind `script`).
    pub name: String,
    pub object: String,
    pub record_id: String,
    /// `create`, `update` or `delete`.
    pub event: String,
    /// The record as saved, and before (JSON as the API writes values).
    pub record: Map<String, Json>,
    pub old: Option<Map<String, Json>>,
    /// Who saved it.
    pub user: String,
    /// The rules and scripts that led to the save.
    pub chain: Vec<String>,
}

/// A webhook to POST.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WebhookDelivery {
    pub rule: String,
    pub url: Option<String>,
    pub url_env: Option<String>,
    pub secret_env: Option<String>,
    pub event: String,
    pub body: Json,
}

/// A chat message to one of the app's channels.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChatDelivery {
    pub channel: String,
    pub text: String,
}

/// An email to one user.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EmailDelivery {
    pub user_id: String,
    pub subject: String,
    pub body: String,
}

/// How a claimed row ended.
#[derive(Debug)]
pub enum Performed {
    /// Done (or done already by another worker: nothing to do).
    Done,
    /// Failed in a way a later attempt may not (the database was unavailable).
    Retry(String),
    /// Failed for good: a script fault, a refused save, a chain too deep, a rule that no
    /// longer exists.
    Dead(String),
}

fn event_name(event: RuleEvent) -> &'static str {
    match event {
        RuleEvent::Create => "create",
        RuleEvent::Update => "update",
        RuleEvent::Delete => "delete",
    }
}

fn script_event(event: &str) -> ScriptEvent {
    match event {
        "create" => ScriptEvent::Create,
        "delete" => ScriptEvent::Delete,
        "transition" => ScriptEvent::Transition,
        "schedule" => ScriptEvent::Schedule,
        _ => ScriptEvent::Update,
    }
}

/// A row as JSON, every column as the API writes its value.
pub(crate) fn row_json(row: &Row) -> Map<String, Json> {
    row.iter()
        .filter(|(name, _)| !matches!(name.as_str(), "deleted_by"))
        .map(|(name, value)| (name.clone(), value.to_json()))
        .collect()
}

/// A JSON snapshot back as a typed row, by the object's column storages.
fn row_from_json(object: &Object, record: &Map<String, Json>) -> Row {
    let storages: Vec<(String, Storage)> = object
        .columns()
        .into_iter()
        .map(|column| (column.name, column.storage))
        .collect();
    let mut row = Row::new();
    for (name, json) in record {
        let storage = storages
            .iter()
            .find(|(column, _)| column == name)
            .map(|(_, storage)| *storage);
        row.insert(name.clone(), value_from_json(storage, json));
    }
    row
}

fn value_from_json(storage: Option<Storage>, json: &Json) -> Value {
    match (storage, json) {
        (_, Json::Null) => Value::Null,
        (Some(Storage::Date), Json::String(text)) => text
            .parse()
            .map_or_else(|_| Value::Text(text.clone()), Value::Date),
        (Some(Storage::Datetime), Json::String(text)) => DateTime::parse_from_rfc3339(text)
            .map_or_else(
                |_| Value::Text(text.clone()),
                |at| Value::Datetime(at.with_timezone(&Utc)),
            ),
        (Some(Storage::Decimal { .. }), Json::String(text)) => text
            .parse()
            .map_or_else(|_| Value::Text(text.clone()), Value::Decimal),
        (_, Json::String(text)) => Value::Text(text.clone()),
        (_, Json::Bool(flag)) => Value::Boolean(*flag),
        (_, Json::Number(number)) => number.as_i64().map_or(Value::Null, Value::Integer),
        (_, Json::Array(items)) => Value::List(
            items
                .iter()
                .filter_map(|item| item.as_str().map(str::to_owned))
                .collect(),
        ),
        (_, Json::Object(_)) => Value::Null,
    }
}

/// A stable id derived from `parts` (a UUID in form): the same outbox row and action always
/// give the same id, so a record a retried action creates is created once.
fn derived_id(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    let digest = hasher.finalize();
    let mut bytes = [0_u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Uuid::new_v8(bytes).to_string()
}

impl Records {
    /// The event rules of `object` that fire for `event`, with `when` holding.
    fn firing_rules<'s>(
        &'s self,
        actor: &Actor,
        object: &Object,
        event: RuleEvent,
        row: &Row,
        old: Option<&Row>,
    ) -> Result<Vec<&'s Rule>, RecordError> {
        let mut firing = Vec::new();
        let mut values: Option<[(&str, ScriptValue); 4]> = None;
        for rule in self.schema.rules.values() {
            if !rule.enabled || rule.object != object.name {
                continue;
            }
            let RuleTrigger::Event { on } = &rule.trigger else {
                continue;
            };
            if !on.contains(&event) {
                continue;
            }
            if let Some(when) = &rule.when {
                let variables = values.get_or_insert_with(|| {
                    [
                        ("record", ScriptValue::Map(script_map(row))),
                        (
                            "old",
                            old.map_or(ScriptValue::Unit, |old| ScriptValue::Map(script_map(old))),
                        ),
                        ("user", expression_user(actor)),
                        ("event", ScriptValue::Text(event_name(event).to_owned())),
                    ]
                });
                match self.sandbox.evaluate(when, variables) {
                    Ok(ScriptValue::Boolean(true)) => {}
                    Ok(_) => continue,
                    Err(error) => {
                        return Err(RecordError::Invalid(vec![crate::coerce::FieldProblem {
                            field: String::new(),
                            code: "rule_failed",
                            message: format!(
                                "the `when` of rule `{}` failed at line {}: {}",
                                rule.name, error.line, error.message
                            ),
                        }]));
                    }
                }
            }
            firing.push(rule);
        }
        Ok(firing)
    }

    /// The `on_enter` scripts of the stage a save moved the record into: the first stage on
    /// a create, the target stage of a transition that happened (not one that waits for
    /// approval). Other saves cannot change a stage (`stages`).
    fn entered_stage_scripts<'s>(
        &'s self,
        save: &SaveContext<'_>,
        object: &Object,
        event: RuleEvent,
        row: &Row,
    ) -> Vec<&'s String> {
        let mut scripts = Vec::new();
        match event {
            RuleEvent::Delete => {}
            RuleEvent::Create => {
                for process in self.processes_of(&object.name) {
                    if let Some(Value::Text(stage)) = row.get(&process.stage_field)
                        && let Some(stage) = process.stages.iter().find(|s| s.key == *stage)
                    {
                        scripts.extend(stage.on_enter.iter());
                    }
                }
            }
            RuleEvent::Update => {
                if let Some(stage_move) = save.transition
                    && !save.stage_pending
                    && let Some(process) = self.schema.processes.get(&stage_move.process.name)
                    && let Some(stage) = process.stages.iter().find(|s| s.key == stage_move.to.key)
                {
                    scripts.extend(stage.on_enter.iter());
                }
            }
        }
        scripts
    }

    /// Puts what a save leaves for after its commit into the outbox, in its transaction: one
    /// row per firing event rule and per after-save (after-delete) script.
    pub(super) async fn enqueue_effects(
        &self,
        write: &mut RecordWrite,
        save: &mut SaveContext<'_>,
        object: &Object,
        event: RuleEvent,
        row: &Row,
        old: Option<&Row>,
    ) -> Result<(), RecordError> {
        let entries = self.effect_entries(save, object, event, row, old)?;
        if !entries.is_empty() {
            write.insert_outbox(&entries).await?;
            save.outboxed = true;
        }
        Ok(())
    }

    /// The outbox rows a save of `row` leaves (see [`Records::enqueue_effects`]), for the
    /// caller to write in its transaction.
    pub(super) fn effect_entries(
        &self,
        save: &SaveContext<'_>,
        object: &Object,
        event: RuleEvent,
        row: &Row,
        old: Option<&Row>,
    ) -> Result<Vec<NewEntry>, RecordError> {
        let scripts: &[String] = match event {
            RuleEvent::Delete => &object.triggers.after_delete,
            _ => &object.triggers.after_save,
        };
        let rules = self.firing_rules(save.actor, object, event, row, old)?;
        let entered = self.entered_stage_scripts(save, object, event, row);
        if rules.is_empty() && scripts.is_empty() && entered.is_empty() {
            return Ok(Vec::new());
        }
        let Some(Value::Text(record_id)) = row.get("id") else {
            return Ok(Vec::new());
        };
        let version = match row.get("version") {
            Some(Value::Integer(version)) => *version,
            _ => 0,
        };
        let work = |kind: &str, name: &str| {
            AfterSave {
                name: name.to_owned(),
                object: object.name.clone(),
                record_id: record_id.clone(),
                event: event_name(event).to_owned(),
                record: row_json(row),
                old: old.map(row_json),
                user: save.actor.id.clone(),
                chain: save.cause.chain.clone(),
            }
            .entry(kind, save.now, version)
        };
        let mut entries = Vec::new();
        for rule in rules {
            entries.push(work(KIND_RULE, &rule.name)?);
        }
        for script in scripts {
            entries.push(work(KIND_SCRIPT, script)?);
        }
        for script in entered {
            let mut entry = work(KIND_SCRIPT, script)?;
            // The stage's `on_enter`: the script sees `event == "transition"`.
            let mut payload: AfterSave = serde_json::from_str(&entry.payload)
                .map_err(|error| RecordError::BadRequest(error.to_string()))?;
            payload.event = "transition".to_owned();
            entry = payload.entry(KIND_SCRIPT, save.now, version)?;
            entries.push(entry);
        }
        Ok(entries)
    }

    /// Writes `notifications` in `write` and queues their deliveries by email and chat as
    /// [`Records::enqueue_external_notifications`] does: for work outside a save (pool
    /// moves and the auto-return sweep). `key` makes the outbox rows idempotent. The caller
    /// wakes `signals().notifications` and `signals().outbox` after the commit.
    pub(crate) async fn write_notifications(
        &self,
        write: &mut RecordWrite,
        actor: &Actor,
        now: DateTime<Utc>,
        notifications: &[NewNotification],
        key: Option<&str>,
    ) -> Result<(), RecordError> {
        if notifications.is_empty() {
            return Ok(());
        }
        write.insert_notifications(notifications).await?;
        let mut save = SaveContext::new(actor, now, crate::coerce::Source::Json);
        self.enqueue_external_notifications(write, &mut save, notifications, key)
            .await
    }

    /// Queues the deliveries of in-app notifications that leave the database: one email per
    /// recipient when the app has `smtp:`, and one message per chat channel.
    pub(super) async fn enqueue_external_notifications(
        &self,
        write: &mut RecordWrite,
        save: &mut SaveContext<'_>,
        notifications: &[NewNotification],
        key: Option<&str>,
    ) -> Result<(), RecordError> {
        let app = &self.schema.app;
        if app.smtp.is_none() && app.channels.is_empty() {
            return Ok(());
        }
        let mut entries = Vec::new();
        let subject = app.name.text(&app.language, &app.language).to_owned();
        let base = key.map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned);
        if app.smtp.is_some() {
            for notification in notifications {
                let email = EmailDelivery {
                    user_id: notification.user_id.clone(),
                    subject: subject.clone(),
                    body: notification.message.clone(),
                };
                entries.push(external_entry(
                    KIND_EMAIL,
                    &json!(email),
                    &format!("{base}/email/{}", notification.user_id),
                    save.now,
                )?);
            }
        }
        // A group bot gets each message once, however many people it was for.
        let mut messages: Vec<&str> = notifications
            .iter()
            .map(|notification| notification.message.as_str())
            .collect();
        messages.dedup();
        for channel in &app.channels {
            for (index, message) in messages.iter().enumerate() {
                let chat = ChatDelivery {
                    channel: channel.name.clone(),
                    text: (*message).to_owned(),
                };
                entries.push(external_entry(
                    KIND_CHAT,
                    &json!(chat),
                    &format!("{base}/chat/{}/{index}", channel.name),
                    save.now,
                )?);
            }
        }
        write.insert_outbox(&entries).await?;
        save.outboxed = true;
        Ok(())
    }

    /// Runs one claimed `rule` or `script` row in one transaction with marking it done.
    pub async fn perform(
        &self,
        id: &str,
        kind: &str,
        payload: &str,
        worker: &str,
    ) -> Result<(Performed, bool, bool), RecordError> {
        let work: AfterSave = match serde_json::from_str(payload) {
            Ok(work) => work,
            Err(error) => {
                return Ok((
                    Performed::Dead(format!("the outbox row cannot be read: {error}")),
                    false,
                    false,
                ));
            }
        };
        let Some(object) = self.schema.object(&work.object) else {
            return Ok((
                Performed::Dead(format!("there is no object `{}` any more", work.object)),
                false,
                false,
            ));
        };
        let now = self.clock.now();
        // Only scripts act as the user who saved; a rule without one acts as the engine.
        let runs_script = kind == KIND_SCRIPT
            || self.schema.rules.get(&work.name).is_some_and(|rule| {
                rule.actions
                    .iter()
                    .any(|action| matches!(action, Action::Script { .. }))
            });
        let causing = if runs_script {
            self.actor_by_id(&work.user)
                .await?
                .unwrap_or_else(Actor::system)
        } else {
            Actor::system()
        };
        let system = Actor::system();
        let record = row_from_json(object, &work.record);
        let old = work.old.as_ref().map(|old| row_from_json(object, old));
        // Everything a rule's notifications need is read before the transaction opens: on
        // SQLite a read from the pool while holding the write lock could wait for a
        // connection held by a writer waiting for that lock.
        let rule = (kind != KIND_SCRIPT)
            .then(|| self.schema.rules.get(&work.name))
            .flatten();
        let messages = match rule {
            Some(rule) => match self
                .prepare_notifications(rule, object, &record, &work, now)
                .await
            {
                Ok(messages) => messages,
                Err(RecordError::Store(error)) => {
                    return Ok((Performed::Retry(error.to_string()), false, false));
                }
                Err(error) => {
                    return Ok((
                        Performed::Dead(format!("rule `{}`: {}", work.name, describe(&error))),
                        false,
                        false,
                    ));
                }
            },
            None => Vec::new(),
        };
        let mut write = self.db.begin_records_write().await?;
        if !write.finish_outbox(id, worker, now).await? {
            return Ok((Performed::Done, false, false));
        }
        let cause = Cause {
            chain: work.chain.clone(),
        };
        let mut save = SaveContext::new(&causing, now, crate::coerce::Source::Json);
        save.cause = cause.clone();
        save.subject = Some((object.name.clone(), work.record_id.clone()));
        let result = match kind {
            KIND_SCRIPT => self
                .run_script_in(
                    Some(&mut write),
                    &mut save,
                    &work.name,
                    script_map(&record),
                    old.as_ref().map(script_map),
                    script_event(&work.event),
                    false,
                    None,
                )
                .await
                .map(drop),
            _ => match rule {
                None => Err(RecordError::BadRequest(format!(
                    "there is no rule `{}` any more",
                    work.name
                ))),
                Some(rule) => {
                    let mut system_save =
                        SaveContext::new(&system, now, crate::coerce::Source::Json);
                    system_save.subject = save.subject.clone();
                    let result = self
                        .run_actions(
                            &mut write,
                            &mut save,
                            &mut system_save,
                            rule,
                            object,
                            &record,
                            old.as_ref(),
                            &work,
                            id,
                            messages,
                        )
                        .await;
                    save.notified |= system_save.notified;
                    save.outboxed |= system_save.outboxed;
                    result
                }
            },
        };
        match result {
            Ok(()) => {
                write.commit().await?;
                Ok((Performed::Done, save.notified, save.outboxed))
            }
            Err(RecordError::Store(error)) => {
                drop(write);
                Ok((Performed::Retry(error.to_string()), false, false))
            }
            Err(error) => {
                drop(write);
                let step = if kind == KIND_SCRIPT {
                    "script"
                } else {
                    "rule"
                };
                Ok((
                    Performed::Dead(format!("{step} `{}`: {}", work.name, describe(&error))),
                    false,
                    false,
                ))
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn run_actions(
        &self,
        write: &mut RecordWrite,
        save: &mut SaveContext<'_>,
        system_save: &mut SaveContext<'_>,
        rule: &Rule,
        object: &Object,
        record: &Row,
        old: Option<&Row>,
        work: &AfterSave,
        outbox_id: &str,
        messages: Vec<Vec<NewNotification>>,
    ) -> Result<(), RecordError> {
        let cause = save.cause.then(&rule.name)?;
        system_save.cause = cause.clone();
        let mut messages = messages.into_iter();
        for (index, action) in rule.actions.iter().enumerate() {
            let step = index.to_string();
            let notifications = messages.next().unwrap_or_default();
            match action {
                Action::Notify { .. } => {
                    let key = format!("{outbox_id}/{step}");
                    self.notify_users(write, system_save, notifications, Some(&key))
                        .await?;
                }
                Action::Set { values } => {
                    let input: Map<String, Json> = values
                        .iter()
                        .map(|(key, value)| (key.clone(), value.clone()))
                        .collect();
                    let mut nested = system_save.nested(cause.clone());
                    let result = self
                        .update_in(write, &mut nested, object, &work.record_id, &input, None)
                        .await;
                    system_save.absorb(nested);
                    result?;
                }
                Action::Create {
                    object: target,
                    values,
                } => {
                    let target_object = self.object(target)?;
                    let mut input: Map<String, Json> = values
                        .iter()
                        .map(|(key, value)| (key.clone(), value.clone()))
                        .collect();
                    if !input.contains_key("owner")
                        && !input.contains_key("pool")
                        && let Some(owner) = record.get("owner").filter(|owner| !owner.is_null())
                    {
                        input.insert("owner".to_owned(), owner.to_json());
                    }
                    let id = derived_id(&[outbox_id, &step]);
                    let mut nested = system_save.nested(cause.clone());
                    let result = self
                        .create_in(write, &mut nested, target_object, &input, Some(id))
                        .await;
                    system_save.absorb(nested);
                    result?;
                }
                Action::Script { script } => {
                    let mut scripted = save.nested(save.cause.clone());
                    scripted.subject = save.subject.clone();
                    let step = format!("{}:{script}", rule.name);
                    let result = self
                        .run_script_in(
                            Some(&mut *write),
                            &mut scripted,
                            script,
                            script_map(record),
                            old.map(script_map),
                            script_event(&work.event),
                            false,
                            Some(&step),
                        )
                        .await;
                    save.absorb(scripted);
                    result?;
                }
                Action::Webhook {
                    url,
                    url_env,
                    secret_env,
                } => {
                    let delivery = WebhookDelivery {
                        rule: rule.name.clone(),
                        url: url.clone(),
                        url_env: url_env.clone(),
                        secret_env: secret_env.clone(),
                        event: work.event.clone(),
                        body: json!({
                            "rule": rule.name,
                            "event": work.event,
                            "object": object.name,
                            "record_id": work.record_id,
                            "record": work.record,
                            "old": work.old,
                            "at": save.now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                        }),
                    };
                    let entry = external_entry(
                        KIND_WEBHOOK,
                        &json!(delivery),
                        &format!("{outbox_id}/{step}"),
                        save.now,
                    )?;
                    write.insert_outbox(&[entry]).await?;
                    save.outboxed = true;
                }
            }
        }
        Ok(())
    }

    /// The notifications of each of a rule's actions (empty for actions that notify
    /// nobody), each recipient's message rendered over the record as they may see it.
    async fn prepare_notifications(
        &self,
        rule: &Rule,
        object: &Object,
        record: &Row,
        work: &AfterSave,
        now: DateTime<Utc>,
    ) -> Result<Vec<Vec<NewNotification>>, RecordError> {
        let mut all = Vec::with_capacity(rule.actions.len());
        for action in &rule.actions {
            let mut notifications = Vec::new();
            if let Action::Notify { to, message } = action {
                for recipient in self.recipients(to, record).await? {
                    let text = self.render_for(&recipient, object, record, message).await?;
                    notifications.push(NewNotification {
                        id: uuid::Uuid::now_v7().to_string(),
                        user_id: recipient.id.clone(),
                        message: text,
                        object: Some(object.name.clone()),
                        record_id: Some(work.record_id.clone()),
                        created_at: now,
                    });
                }
            }
            all.push(notifications);
        }
        Ok(all)
    }

    /// Who a `notify` action reaches: active users only.
    async fn recipients(&self, to: &Recipient, record: &Row) -> Result<Vec<Actor>, RecordError> {
        let owner = match record.get("owner") {
            Some(Value::Text(owner)) => Some(owner.clone()),
            _ => None,
        };
        let ids: Vec<String> = match to {
            Recipient::Owner => owner.into_iter().collect(),
            Recipient::Manager => match owner {
                Some(owner) => self
                    .actor_by_id(&owner)
                    .await?
                    .and_then(|actor| actor.manager)
                    .into_iter()
                    .collect(),
                None => Vec::new(),
            },
            Recipient::User(name) => {
                match keel_store::users::find_by_username(&self.db, name).await? {
                    Some(user) => vec![user.id],
                    None => vec![name.clone()],
                }
            }
            Recipient::Role(role) => keel_store::users::list(&self.db)
                .await?
                .into_iter()
                .filter(|user| user.active && user.roles.iter().any(|r| r == role))
                .map(|user| user.id)
                .collect(),
        };
        let mut actors = Vec::new();
        for id in ids {
            if let Some(actor) = self.actor_by_id(&id).await? {
                actors.push(actor);
            }
        }
        Ok(actors)
    }

    /// The active user `id` as an actor.
    pub(crate) async fn actor_by_id(&self, id: &str) -> Result<Option<Actor>, RecordError> {
        if id == "system" {
            return Ok(Some(Actor::system()));
        }
        let user = keel_store::users::find_by_id(&self.db, id).await?;
        Ok(user.and_then(|user| self.actor_of(user)))
    }

    /// `user` as an actor, or `None` when the account is deactivated.
    pub(crate) fn actor_of(&self, user: keel_store::users::UserRow) -> Option<Actor> {
        if !user.active {
            return None;
        }
        let admin = user.roles.iter().any(|role| {
            self.schema
                .roles
                .roles
                .get(role)
                .is_some_and(|role| role.admin)
        });
        Some(Actor {
            id: user.id,
            username: user.username,
            display_name: user.display_name,
            roles: user.roles,
            admin,
            manager: user.manager_id,
            department: user.department_id,
            language: user.language,
        })
    }

    /// A rule's message for `recipient`, over the record as they may see it: fields hidden
    /// from them read `***`, masked ones masked, empty ones empty.
    async fn render_for(
        &self,
        recipient: &Actor,
        object: &Object,
        record: &Row,
        message: &keel_meta::Label,
    ) -> Result<String, RecordError> {
        let fields = super::output::output_fields(&self.schema, recipient, object, None)?;
        let mut rendered =
            super::output::render_rows(self, recipient, object, &fields, vec![record.clone()])
                .await?;
        let mut visible = match rendered.pop() {
            Some(Json::Object(map)) => map,
            _ => Map::new(),
        };
        for (name, field) in &object.fields {
            if !visible.contains_key(name) {
                visible.insert(name.clone(), Json::String("***".to_owned()));
            }
            if let (FieldKind::Lookup { .. } | FieldKind::User, Some(Json::Object(refs))) =
                (&field.kind, visible.get("_refs"))
                && let Some(title) = refs
                    .get(name)
                    .and_then(|reference| reference.get("title"))
                    .cloned()
            {
                visible.insert(format!("{name}_title"), title);
            }
        }
        for value in visible.values_mut() {
            if value.is_null() {
                *value = Json::String(String::new());
            }
        }
        if let Some(title) = visible.get(&object.title).cloned() {
            visible.entry("title".to_owned()).or_insert(title);
        }
        let language = recipient
            .language
            .clone()
            .unwrap_or_else(|| self.schema.app.language.clone());
        let template = message.text(&language, &self.schema.app.language);
        crate::deliver::render_message(template, &json!({ "record": visible })).map_err(|error| {
            RecordError::BadRequest(format!("the message template failed: {error}"))
        })
    }
}

impl AfterSave {
    fn entry(&self, kind: &str, now: DateTime<Utc>, version: i64) -> Result<NewEntry, RecordError> {
        let payload = serde_json::to_string(self)
            .map_err(|error| RecordError::BadRequest(format!("cannot queue work: {error}")))?;
        Ok(NewEntry {
            id: uuid::Uuid::now_v7().to_string(),
            kind: kind.to_owned(),
            payload,
            // One run of a rule or script per saved version of a record and event.
            idempotency_key: format!(
                "{kind}/{}/{}/{}/{version}/{}",
                self.name, self.object, self.record_id, self.event
            ),
            due_at: now,
            created_at: now,
        })
    }
}

fn external_entry(
    kind: &str,
    payload: &Json,
    key: &str,
    now: DateTime<Utc>,
) -> Result<NewEntry, RecordError> {
    Ok(NewEntry {
        id: uuid::Uuid::now_v7().to_string(),
        kind: kind.to_owned(),
        payload: payload.to_string(),
        idempotency_key: format!("{kind}/{key}"),
        due_at: now,
        created_at: now,
    })
}

/// A failed action, in words for the admin's outbox view.
fn describe(error: &RecordError) -> String {
    match error {
        RecordError::Invalid(problems) => problems
            .iter()
            .map(|problem| {
                if problem.field.is_empty() {
                    problem.message.clone()
                } else {
                    format!("{}: {}", problem.field, problem.message)
                }
            })
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    }
}
