//! The migration planner: compares the layout the metadata asks for with the live database
//! and lists the steps between them, each classified safe or destructive and carrying its
//! SQL.
//!
//! Planning reads the database (to count the rows a step would touch) but never changes
//! data; it may create `pg_temp` helper functions on PostgreSQL, which live only as long as
//! the session. Steps are returned in execution order: archived tables, new tables, column
//! changes per table, dropped indexes and foreign keys, SQLite table rebuilds, new indexes,
//! new foreign keys. Executing and recording them is `migrate`'s job, not this module's.

use std::collections::{BTreeSet, HashMap, HashSet};

use super::sql::{self, ColumnDefinition, storage_name};
use super::{Plan, Safety, Step, StepKind};
use crate::convert::{POSTGRES_TRY_FUNCTIONS, conversion, needs_postgres_try_functions};
use crate::db::{Connection, Dialect};
use crate::error::StoreError;
use crate::introspect::{LiveColumn, LiveDatabase, LiveForeignKey, LiveIndex, LiveTable};
use crate::layout::{
    ColumnFill, ColumnLayout, IndexLayout, Reference, TableLayout, default_sql, on_delete_sql,
    sql_type,
};
use crate::naming::{
    MAX_IDENTIFIER_LENGTH, archive_name, cut, foreign_key_name, is_archive_name, quote,
};
use crate::processes::{STAGE_SUMMARY, stage_summary_backfill};
use chrono::{DateTime, Utc};

/// What earlier migrations left behind that the planner must honour: read from the latest
/// row of `keel_metadata_versions`.
#[derive(Debug, Clone, Default)]
pub struct Memory {
    /// The fingerprint of the metadata last applied.
    pub fingerprint: Option<String>,
    /// `object.field` of every field that was required when last applied; `None` when no
    /// version was ever recorded. A field newly required is checked against existing rows;
    /// one required before is not checked again.
    pub required_fields: Option<HashSet<String>>,
    /// Destructive steps accepted with `--allow-destructive` that the database cannot carry
    /// out (a unique index over duplicates): kind, object and field.
    pub acknowledged: HashSet<(StepKind, String, Option<String>)>,
    /// Each role's definition and grants when last applied; `None` before any was recorded.
    pub roles: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Plans the migration of the database behind `connection` from `live` to `layout`.
pub async fn build_plan(
    connection: &mut Connection<'_>,
    layout: &[TableLayout],
    live: &LiveDatabase,
    memory: &Memory,
    now: DateTime<Utc>,
) -> Result<Plan, StoreError> {
    let mut planner = Planner {
        dialect: connection.dialect(),
        connection,
        now,
        try_functions_ready: false,
        phases: Phases::default(),
    };
    planner.archive_removed_tables(layout, live).await?;
    let (creates, deferred_foreign_keys) = new_table_steps(planner.dialect, layout, live);
    planner.phases.create_tables = creates;
    planner.phases.add_foreign_keys = deferred_foreign_keys;
    for desired in layout {
        if let Some(existing) = live.table(&desired.name) {
            planner
                .plan_existing_table(desired, existing, live, memory)
                .await?;
        }
    }
    Ok(planner.phases.into_plan(memory))
}

/// The steps that create every table of `layout` missing from `live`, and (PostgreSQL) the
/// foreign keys that must wait until their target table exists.
///
/// Tables are created in dependency order so that PostgreSQL foreign keys can be declared
/// inline; a key in a cycle is added afterwards with `ALTER TABLE`. SQLite does not check
/// targets at `CREATE TABLE`, so there every key is inline.
pub fn new_table_steps(
    dialect: Dialect,
    layout: &[TableLayout],
    live: &LiveDatabase,
) -> (Vec<Step>, Vec<Step>) {
    let mut available: HashSet<&str> = live.tables.keys().map(String::as_str).collect();
    let mut missing: Vec<&TableLayout> = layout
        .iter()
        .filter(|table| !available.contains(table.name.as_str()))
        .collect();
    let mut creates = Vec::new();
    let mut deferred = Vec::new();
    while !missing.is_empty() {
        let ready = missing
            .iter()
            .position(|table| {
                table.columns.iter().all(|column| {
                    column.references.as_ref().is_none_or(|reference| {
                        reference.table == table.name
                            || available.contains(reference.table.as_str())
                    })
                })
            })
            // A cycle: create the first table anyway and add its open keys later.
            .unwrap_or(0);
        let table = missing.remove(ready);
        let mut definitions = Vec::new();
        for column in &table.columns {
            let mut definition = ColumnDefinition::new(dialect, &column.name, column.storage)
                .with_default(dialect, column.default);
            definition.not_null = column.not_null;
            definition.primary_key = column.primary_key;
            if let Some(reference) = &column.references {
                let inline = dialect == Dialect::Sqlite
                    || reference.table == table.name
                    || available.contains(reference.table.as_str());
                if inline {
                    definition.reference = Some((&table.name, reference));
                } else {
                    deferred.push(add_foreign_key_step(&table.name, column, reference, 0));
                }
            }
            definitions.push(definition);
        }
        let mut statements = vec![sql::create_table(dialect, &table.name, &definitions)];
        statements.extend(table.indexes.iter().map(|index| {
            sql::create_index(
                dialect,
                &table.name,
                &index.name,
                &index.columns,
                index.unique,
                &index.nulls_first,
            )
        }));
        creates.push(Step {
            kind: StepKind::CreateTable,
            object: table.name.clone(),
            field: None,
            safety: Safety::Safe,
            description: format!("create table {}", table.name),
            affected_rows: None,
            sql: statements,
        });
        available.insert(&table.name);
    }
    (creates, deferred)
}

fn add_foreign_key_step(
    table: &str,
    column: &ColumnLayout,
    reference: &Reference,
    orphans: i64,
) -> Step {
    let safe = orphans == 0;
    let mut description = format!(
        "add foreign key {table}.{} → {} (on delete {})",
        column.name,
        reference.table,
        on_delete_sql(reference.on_delete).to_ascii_lowercase()
    );
    if !safe {
        description.push_str(&format!(
            ": {} to a missing {} (they keep their value; the key applies to new and changed rows)",
            rows(orphans, "refers", "refer"),
            reference.table
        ));
    }
    Step {
        kind: StepKind::AddForeignKey,
        object: table.to_owned(),
        field: Some(column.name.clone()),
        safety: if safe {
            Safety::Safe
        } else {
            Safety::Destructive
        },
        description,
        affected_rows: (orphans > 0).then_some(orphans),
        sql: vec![sql::add_foreign_key(table, &column.name, reference, !safe)],
    }
}

/// Steps collected per phase, concatenated in execution order at the end.
#[derive(Default)]
struct Phases {
    archive_tables: Vec<Step>,
    create_tables: Vec<Step>,
    columns: Vec<Step>,
    drop_indexes: Vec<Step>,
    drop_foreign_keys: Vec<Step>,
    rebuilds: Vec<Step>,
    add_indexes: Vec<Step>,
    add_foreign_keys: Vec<Step>,
    acknowledged: Vec<Step>,
}

impl Phases {
    fn into_plan(self, memory: &Memory) -> Plan {
        let mut steps = Vec::new();
        let mut acknowledged = self.acknowledged;
        for step in self
            .archive_tables
            .into_iter()
            .chain(self.create_tables)
            .chain(self.columns)
            .chain(self.drop_indexes)
            .chain(self.drop_foreign_keys)
            .chain(self.rebuilds)
            .chain(self.add_indexes)
            .chain(self.add_foreign_keys)
        {
            let key = (step.kind, step.object.clone(), step.field.clone());
            if step.safety == Safety::Destructive
                && step.sql.is_empty()
                && memory.acknowledged.contains(&key)
            {
                acknowledged.push(step);
            } else {
                steps.push(step);
            }
        }
        Plan {
            steps,
            acknowledged,
        }
    }
}

struct Planner<'x, 'c> {
    dialect: Dialect,
    connection: &'x mut Connection<'c>,
    now: DateTime<Utc>,
    try_functions_ready: bool,
    phases: Phases,
}

/// A table as it will be after the column steps planned so far: what index and foreign-key
/// planning compare against.
struct WorkingTable {
    table: LiveTable,
    /// Current column name → the name its data has in the database before the migration
    /// (`None`: a new column, empty).
    sources: HashMap<String, Option<String>>,
}

impl WorkingTable {
    fn new(table: LiveTable) -> WorkingTable {
        let sources = table
            .columns
            .iter()
            .map(|column| (column.name.clone(), Some(column.name.clone())))
            .collect();
        WorkingTable { table, sources }
    }

    fn source(&self, column: &str) -> Option<&str> {
        self.sources
            .get(column)
            .and_then(|source| source.as_deref())
    }

    fn rename(&mut self, old: &str, new: &str) {
        let rename = |name: &mut String| {
            if name == old {
                *name = new.to_owned();
            }
        };
        self.table
            .columns
            .iter_mut()
            .for_each(|column| rename(&mut column.name));
        for index in &mut self.table.indexes {
            index.columns.iter_mut().for_each(rename);
        }
        self.table
            .foreign_keys
            .iter_mut()
            .for_each(|key| rename(&mut key.column));
        let source = self.sources.remove(old).flatten();
        self.sources.insert(new.to_owned(), source);
    }

    fn add(
        &mut self,
        column: LiveColumn,
        foreign_key: Option<LiveForeignKey>,
        source: Option<String>,
    ) {
        self.sources.insert(column.name.clone(), source);
        self.table.columns.push(column);
        self.table.foreign_keys.extend(foreign_key);
    }

    fn has(&self, name: &str) -> bool {
        self.table.has_column(name)
    }
}

impl Planner<'_, '_> {
    async fn count(&mut self, query: String) -> Result<i64, StoreError> {
        self.connection.count(&query).await
    }

    async fn ensure_try_functions(&mut self) -> Result<(), StoreError> {
        if !self.try_functions_ready {
            for statement in POSTGRES_TRY_FUNCTIONS {
                self.connection.execute(statement).await?;
            }
            self.try_functions_ready = true;
        }
        Ok(())
    }

    /// An archive name for `name` that no existing name in `taken` uses.
    fn archive_name_avoiding(&self, name: &str, taken: &dyn Fn(&str) -> bool) -> String {
        let base = archive_name(name, self.now);
        let mut candidate = base.clone();
        let mut attempt = 1;
        while taken(&candidate) {
            attempt += 1;
            let suffix = format!("_{attempt}");
            candidate = format!(
                "{}{suffix}",
                cut(&base, MAX_IDENTIFIER_LENGTH - suffix.len())
            );
        }
        candidate
    }

    /// Tables whose object is gone are renamed to an archive name, never dropped. Only
    /// tables that look like Keel object tables (id, version, created_at) count; `keel_`
    /// tables and others are left alone.
    async fn archive_removed_tables(
        &mut self,
        layout: &[TableLayout],
        live: &LiveDatabase,
    ) -> Result<(), StoreError> {
        let wanted: HashSet<&str> = layout.iter().map(|table| table.name.as_str()).collect();
        let mut taken: BTreeSet<String> = live.tables.keys().cloned().collect();
        for table in live.tables.values() {
            let looks_like_object = ["id", "version", "created_at"]
                .iter()
                .all(|column| table.has_column(column));
            if wanted.contains(table.name.as_str())
                || table.name.starts_with("keel_")
                || !looks_like_object
            {
                continue;
            }
            let archive = self.archive_name_avoiding(&table.name, &|name| taken.contains(name));
            taken.insert(archive.clone());
            let count = self
                .count(format!("SELECT count(*) FROM {}", quote(&table.name)))
                .await?;
            // Index names are schema-wide: free them for a future table of the same name.
            let mut statements: Vec<String> = table
                .indexes
                .iter()
                .filter(|index| index.droppable)
                .map(|index| sql::drop_index(&index.name))
                .collect();
            if self.dialect == Dialect::Postgres {
                // Archived rows must not keep restricting deletes elsewhere.
                statements.extend(
                    table
                        .foreign_keys
                        .iter()
                        .filter_map(|key| key.name.as_deref())
                        .map(|name| sql::drop_constraint(&table.name, name)),
                );
                if let Some(primary_key) = &table.primary_key_constraint {
                    let renamed = bounded_name(&format!("{archive}_pkey"));
                    statements.push(sql::rename_constraint(&table.name, primary_key, &renamed));
                }
            }
            if self.dialect == Dialect::Sqlite && !table.foreign_keys.is_empty() {
                // SQLite cannot drop a key in place: copy the rows into an archive table
                // declared without keys, so archived rows neither restrict nor cascade.
                statements.extend(sqlite_copy_table(
                    &table.name,
                    &archive,
                    &table.columns,
                    &|_| None,
                ));
            } else {
                statements.push(sql::rename_table(&table.name, &archive));
            }
            self.phases.archive_tables.push(Step {
                kind: StepKind::ArchiveTable,
                object: table.name.clone(),
                field: None,
                safety: Safety::Destructive,
                description: format!(
                    "drop table {} (archived as {archive}, {})",
                    table.name,
                    rows(count, "", "")
                ),
                affected_rows: Some(count),
                sql: statements,
            });
        }
        Ok(())
    }

    async fn plan_existing_table(
        &mut self,
        desired: &TableLayout,
        live: &LiveTable,
        live_database: &LiveDatabase,
        memory: &Memory,
    ) -> Result<(), StoreError> {
        let table = desired.name.as_str();
        let dialect = self.dialect;
        let mut working = WorkingTable::new(live.clone());
        let mut consumed: HashSet<&str> = HashSet::new();
        let mut renames: Vec<(&str, &ColumnLayout)> = Vec::new();
        let mut existing: Vec<&ColumnLayout> = Vec::new();
        let mut additions: Vec<&ColumnLayout> = Vec::new();
        for column in &desired.columns {
            if live.has_column(&column.name) {
                consumed.insert(&column.name);
                existing.push(column);
            } else if let Some(old) = column.renamed_from.as_deref()
                && live.has_column(old)
                && desired.column(old).is_none()
                && !consumed.contains(old)
            {
                consumed.insert(old);
                renames.push((old, column));
                existing.push(column);
            } else {
                additions.push(column);
            }
        }

        for (old, column) in renames {
            let mut statements = vec![sql::rename_column(table, old, &column.name)];
            // Keep constraint names matching their column, so a later column called `old`
            // can have its own.
            if let Some(name) = live
                .foreign_keys
                .iter()
                .find(|key| key.column == old)
                .and_then(|key| key.name.as_deref())
                && name == foreign_key_name(table, old)
            {
                let new_name = foreign_key_name(table, &column.name);
                statements.push(sql::rename_constraint(table, name, &new_name));
                if let Some(key) = working
                    .table
                    .foreign_keys
                    .iter_mut()
                    .find(|key| key.column == old)
                {
                    key.name = Some(new_name);
                }
            }
            working.rename(old, &column.name);
            self.phases.columns.push(Step {
                kind: StepKind::RenameColumn,
                object: table.to_owned(),
                field: Some(column.name.clone()),
                safety: Safety::Safe,
                description: format!("rename column {table}.{old} to {}", column.name),
                affected_rows: None,
                sql: statements,
            });
        }

        for column in &live.columns {
            if consumed.contains(column.name.as_str())
                || is_archive_name(&column.name)
                || column.primary_key
            {
                continue;
            }
            let archive = {
                let taken = |name: &str| working.has(name);
                self.archive_name_avoiding(&column.name, &taken)
            };
            let count = self
                .count(format!(
                    "SELECT count(*) FROM {} WHERE {} IS NOT NULL",
                    quote(table),
                    quote(&column.name)
                ))
                .await?;
            let mut statements = vec![sql::rename_column(table, &column.name, &archive)];
            if dialect == Dialect::Postgres && column.not_null {
                statements.push(sql::drop_not_null(table, &archive));
            }
            working.rename(&column.name, &archive);
            // The stage summary is derived from the stage history, which stays: nothing is
            // lost with it, and a process added again fills in a new one.
            let derived = column.name == STAGE_SUMMARY;
            self.phases.columns.push(Step {
                kind: StepKind::ArchiveColumn,
                object: table.to_owned(),
                field: Some(column.name.clone()),
                safety: if derived {
                    Safety::Safe
                } else {
                    Safety::Destructive
                },
                description: if derived {
                    format!(
                        "drop column {table}.{} (the stage summary of a process no longer \
                         declared; archived as {archive})",
                        column.name
                    )
                } else {
                    format!(
                        "drop column {table}.{} (archived as {archive}, {} with a value)",
                        column.name,
                        rows(count, "", "")
                    )
                },
                affected_rows: (!derived).then_some(count),
                sql: statements,
            });
        }

        for column in &existing {
            self.plan_type_change(table, column, &mut working).await?;
        }

        for column in additions {
            let mut definition = ColumnDefinition::new(dialect, &column.name, column.storage)
                .with_default(dialect, column.default);
            // NOT NULL needs a default to fill the existing rows.
            definition.not_null = column.not_null && column.default.is_some();
            let mut foreign_key = None;
            if let Some(reference) = &column.references {
                definition.reference = Some((table, reference));
                foreign_key = Some(LiveForeignKey {
                    name: Some(foreign_key_name(table, &column.name)),
                    column: column.name.clone(),
                    target_table: reference.table.clone(),
                    on_delete: Some(reference.on_delete),
                });
            }
            let mut statements = vec![sql::add_column(dialect, table, &definition)];
            let mut description = format!(
                "add column {table}.{} ({})",
                column.name,
                storage_name(column.storage)
            );
            if let Some(ColumnFill::StageSummary) = column.fill {
                statements.push(stage_summary_backfill(dialect, table));
                description.push_str(", filled in from the stage history");
            }
            working.add(
                LiveColumn {
                    name: column.name.clone(),
                    declared_type: sql_type(dialect, column.storage),
                    storage: Some(column.storage),
                    not_null: definition.not_null,
                    primary_key: false,
                    default_sql: column.default.map(|default| default_sql(dialect, default)),
                },
                foreign_key,
                None,
            );
            self.phases.columns.push(Step {
                kind: StepKind::AddColumn,
                object: table.to_owned(),
                field: Some(column.name.clone()),
                safety: Safety::Safe,
                description,
                affected_rows: None,
                sql: statements,
            });
        }

        for column in &existing {
            if column.required != Some(true) {
                continue;
            }
            let was_required = |name: &str| {
                memory
                    .required_fields
                    .as_ref()
                    .is_some_and(|fields| fields.contains(&format!("{table}.{name}")))
            };
            if was_required(&column.name)
                || column.renamed_from.as_deref().is_some_and(was_required)
            {
                continue;
            }
            let Some(source) = working.source(&column.name).map(str::to_owned) else {
                continue;
            };
            let empty = self
                .count(format!(
                    "SELECT count(*) FROM {} WHERE {} IS NULL",
                    quote(table),
                    quote(&source)
                ))
                .await?;
            if empty > 0 {
                self.phases.columns.push(Step {
                    kind: StepKind::RequireField,
                    object: table.to_owned(),
                    field: Some(column.name.clone()),
                    safety: Safety::Destructive,
                    description: format!(
                        "make {table}.{} required: {} no value (they keep it empty until edited, and then must fill it in)",
                        column.name,
                        rows(empty, "has", "have")
                    ),
                    affected_rows: Some(empty),
                    sql: Vec::new(),
                });
            }
        }

        let surviving_indexes = self.plan_indexes(desired, &working).await?;
        self.plan_foreign_keys(desired, &working, live_database, surviving_indexes)
            .await
    }

    /// A column whose storage type differs from the metadata's. PostgreSQL widens in place;
    /// otherwise the old column is archived, a new one added and filled with the values
    /// that convert.
    async fn plan_type_change(
        &mut self,
        table: &str,
        column: &ColumnLayout,
        working: &mut WorkingTable,
    ) -> Result<(), StoreError> {
        let dialect = self.dialect;
        let Some(current) = working.table.column(&column.name).cloned() else {
            return Ok(());
        };
        if current.primary_key || current.storage == Some(column.storage) {
            return Ok(());
        }
        let Some(source) = working.source(&column.name).map(str::to_owned) else {
            return Ok(());
        };
        let from = current.storage;
        if needs_postgres_try_functions(dialect, from, column.storage) {
            self.ensure_try_functions().await?;
        }
        let counting = conversion(dialect, from, column.storage, &quote(&source));
        let lossy_rows = match &counting.lossy {
            Some(predicate) => {
                self.count(format!(
                    "SELECT count(*) FROM {} WHERE {} IS NOT NULL AND ({predicate})",
                    quote(table),
                    quote(&source)
                ))
                .await?
            }
            None => 0,
        };
        let safe = counting.widening && lossy_rows == 0;
        let from_name = from.map_or_else(|| current.declared_type.clone(), storage_name);
        let to_name = storage_name(column.storage);
        let new_type = sql_type(dialect, column.storage);

        if safe && dialect == Dialect::Postgres {
            let in_place = conversion(dialect, from, column.storage, &quote(&column.name));
            if let Some(live) = working
                .table
                .columns
                .iter_mut()
                .find(|live| live.name == column.name)
            {
                live.storage = Some(column.storage);
                live.declared_type = new_type.clone();
            }
            self.phases.columns.push(Step {
                kind: StepKind::ChangeColumnType,
                object: table.to_owned(),
                field: Some(column.name.clone()),
                safety: Safety::Safe,
                description: format!(
                    "change column {table}.{} from {from_name} to {to_name}",
                    column.name
                ),
                affected_rows: None,
                sql: vec![sql::alter_column_type(
                    table,
                    &column.name,
                    &new_type,
                    &in_place.value,
                )],
            });
            return Ok(());
        }

        let archive = {
            let taken = |name: &str| working.has(name);
            self.archive_name_avoiding(&column.name, &taken)
        };
        let filling = conversion(dialect, from, column.storage, &quote(&archive));
        let mut statements = vec![sql::rename_column(table, &column.name, &archive)];
        if dialect == Dialect::Postgres && current.not_null {
            statements.push(sql::drop_not_null(table, &archive));
        }
        let definition = ColumnDefinition::new(dialect, &column.name, column.storage);
        statements.push(sql::add_column(dialect, table, &definition));
        statements.push(sql::fill_column(table, &column.name, &filling.value));
        working.rename(&column.name, &archive);
        working.add(
            LiveColumn {
                name: column.name.clone(),
                declared_type: new_type,
                storage: Some(column.storage),
                not_null: false,
                primary_key: false,
                default_sql: None,
            },
            None,
            Some(source),
        );
        let description = if safe {
            format!(
                "change column {table}.{} from {from_name} to {to_name} (the old column is kept as {archive})",
                column.name
            )
        } else {
            format!(
                "change column {table}.{} from {from_name} to {to_name}: {} not convert exactly ({}; the old values are kept in {archive})",
                column.name,
                rows(lossy_rows, "would", "would"),
                counting.lossy_effect
            )
        };
        self.phases.columns.push(Step {
            kind: StepKind::ChangeColumnType,
            object: table.to_owned(),
            field: Some(column.name.clone()),
            safety: if safe {
                Safety::Safe
            } else {
                Safety::Destructive
            },
            description,
            affected_rows: Some(lossy_rows),
            sql: statements,
        });
        Ok(())
    }

    /// Drops Keel's indexes the metadata no longer wants and creates the missing ones.
    /// Returns the indexes that stay, which a SQLite table rebuild must recreate.
    async fn plan_indexes(
        &mut self,
        desired: &TableLayout,
        working: &WorkingTable,
    ) -> Result<Vec<LiveIndex>, StoreError> {
        let table = desired.name.as_str();
        let wanted: HashMap<&str, &IndexLayout> = desired
            .indexes
            .iter()
            .map(|index| (index.name.as_str(), index))
            .collect();
        let mut kept: HashSet<&str> = HashSet::new();
        let mut surviving = Vec::new();
        for index in &working.table.indexes {
            let matches = wanted.get(index.name.as_str()).is_some_and(|wanted| {
                wanted.columns == index.columns && wanted.unique == index.unique
            });
            if matches {
                kept.insert(index.name.as_str());
                surviving.push(index.clone());
            } else if index.droppable {
                self.phases.drop_indexes.push(Step {
                    kind: StepKind::DropIndex,
                    object: table.to_owned(),
                    field: None,
                    safety: Safety::Safe,
                    description: format!("drop index {} on {table}", index.name),
                    affected_rows: None,
                    sql: vec![sql::drop_index(&index.name)],
                });
            } else {
                surviving.push(index.clone());
            }
        }
        for index in &desired.indexes {
            if kept.contains(index.name.as_str()) {
                continue;
            }
            let columns = index.columns.join(", ");
            let create = sql::create_index(
                self.dialect,
                table,
                &index.name,
                &index.columns,
                index.unique,
                &index.nulls_first,
            );
            if !index.unique {
                self.phases.add_indexes.push(Step {
                    kind: StepKind::AddIndex,
                    object: table.to_owned(),
                    field: None,
                    safety: Safety::Safe,
                    description: format!("create index {} on {table} ({columns})", index.name),
                    affected_rows: None,
                    sql: vec![create],
                });
                continue;
            }
            let field = index.columns.first().cloned();
            let duplicates = match index.columns.as_slice() {
                [column] => match working.source(column) {
                    Some(source) => {
                        let source = quote(source);
                        self.count(format!(
                            "SELECT count(*) FROM {t} WHERE {source} IS NOT NULL AND {source} IN \
                             (SELECT {source} FROM {t} WHERE {source} IS NOT NULL \
                              GROUP BY {source} HAVING count(*) > 1)",
                            t = quote(table)
                        ))
                        .await?
                    }
                    None => 0,
                },
                _ => 0,
            };
            let step = if duplicates == 0 {
                Step {
                    kind: StepKind::AddUniqueIndex,
                    object: table.to_owned(),
                    field,
                    safety: Safety::Safe,
                    description: format!(
                        "create unique index {} on {table} ({columns})",
                        index.name
                    ),
                    affected_rows: None,
                    sql: vec![create],
                }
            } else {
                Step {
                    kind: StepKind::AddUniqueIndex,
                    object: table.to_owned(),
                    field,
                    safety: Safety::Destructive,
                    description: format!(
                        "make {table}.{columns} unique: {} a value with another row (the unique index {} is created once the duplicates are resolved)",
                        rows(duplicates, "shares", "share"),
                        index.name
                    ),
                    affected_rows: Some(duplicates),
                    sql: Vec::new(),
                }
            };
            self.phases.add_indexes.push(step);
        }
        Ok(surviving)
    }

    /// Adds, changes and drops foreign keys. PostgreSQL alters constraints directly; SQLite
    /// can only declare a key with its column, so there a changed key rebuilds the table.
    async fn plan_foreign_keys(
        &mut self,
        desired: &TableLayout,
        working: &WorkingTable,
        live_database: &LiveDatabase,
        surviving_indexes: Vec<LiveIndex>,
    ) -> Result<(), StoreError> {
        let table = desired.name.as_str();
        let dialect = self.dialect;
        let mut rebuild_reasons = Vec::new();
        let mut rebuild_orphans = 0;
        for column in &desired.columns {
            let current = working
                .table
                .foreign_keys
                .iter()
                .find(|key| key.column == column.name);
            let matches = match (&column.references, current) {
                (Some(reference), Some(key)) => {
                    key.target_table == reference.table
                        && key.on_delete == Some(reference.on_delete)
                }
                (None, None) => true,
                _ => false,
            };
            if matches {
                continue;
            }
            let orphans = match &column.references {
                Some(reference) => {
                    self.count_orphans(
                        table,
                        working.source(&column.name),
                        &reference.table,
                        live_database,
                    )
                    .await?
                }
                None => 0,
            };
            match dialect {
                Dialect::Postgres => {
                    if let Some(key) = current
                        && let Some(name) = &key.name
                    {
                        self.phases
                            .drop_foreign_keys
                            .push(drop_foreign_key_step(table, key, name));
                    }
                    if let Some(reference) = &column.references {
                        self.phases
                            .add_foreign_keys
                            .push(add_foreign_key_step(table, column, reference, orphans));
                    }
                }
                Dialect::Sqlite => {
                    rebuild_orphans += orphans;
                    rebuild_reasons.push(match (&column.references, current) {
                        (Some(reference), _) => format!(
                            "{}: key to {} (on delete {})",
                            column.name,
                            reference.table,
                            on_delete_sql(reference.on_delete).to_ascii_lowercase()
                        ),
                        (None, Some(key)) => {
                            format!("{}: no key to {}", column.name, key.target_table)
                        }
                        (None, None) => column.name.clone(),
                    });
                }
            }
        }
        // Archived columns keep no keys: they would restrict deletes elsewhere, or worse,
        // cascade them into live rows.
        for key in &working.table.foreign_keys {
            if desired.column(&key.column).is_some() || !is_archive_name(&key.column) {
                continue;
            }
            match (dialect, &key.name) {
                (Dialect::Postgres, Some(name)) => self
                    .phases
                    .drop_foreign_keys
                    .push(drop_foreign_key_step(table, key, name)),
                (Dialect::Sqlite, _) => rebuild_reasons.push(format!(
                    "{}: no key to {} (archived)",
                    key.column, key.target_table
                )),
                (Dialect::Postgres, None) => {}
            }
        }
        if !rebuild_reasons.is_empty() {
            let step = sqlite_rebuild_step(
                desired,
                working,
                &surviving_indexes,
                &rebuild_reasons,
                rebuild_orphans,
            );
            self.phases.rebuilds.push(step);
        }
        Ok(())
    }

    /// Rows of `table` whose `source` column names a row missing from `target`.
    async fn count_orphans(
        &mut self,
        table: &str,
        source: Option<&str>,
        target: &str,
        live_database: &LiveDatabase,
    ) -> Result<i64, StoreError> {
        let Some(source) = source else {
            return Ok(0);
        };
        let source = quote(source);
        let query = if live_database.table(target).is_some() {
            format!(
                "SELECT count(*) FROM {t} WHERE {source} IS NOT NULL AND NOT EXISTS \
                 (SELECT 1 FROM {target} WHERE {target}.\"id\" = CAST({t}.{source} AS TEXT))",
                t = quote(table),
                target = quote(target)
            )
        } else {
            format!(
                "SELECT count(*) FROM {} WHERE {source} IS NOT NULL",
                quote(table)
            )
        };
        self.count(query).await
    }
}

fn drop_foreign_key_step(table: &str, key: &LiveForeignKey, name: &str) -> Step {
    Step {
        kind: StepKind::DropForeignKey,
        object: table.to_owned(),
        field: Some(key.column.clone()),
        safety: Safety::Safe,
        description: format!(
            "drop foreign key {table}.{} → {}",
            key.column, key.target_table
        ),
        affected_rows: None,
        sql: vec![sql::drop_constraint(table, name)],
    }
}

/// SQLite cannot add, change or drop a foreign key of an existing column, so the table is
/// rebuilt: created anew under a temporary name with the wanted keys, filled, the old table
/// dropped and the new one renamed (SQLite's documented procedure; `apply` runs it with
/// foreign-key enforcement off, so dropping the old table cascades nowhere). Archived
/// columns lose their keys on the way.
fn sqlite_rebuild_step(
    desired: &TableLayout,
    working: &WorkingTable,
    surviving_indexes: &[LiveIndex],
    reasons: &[String],
    orphans: i64,
) -> Step {
    let table = desired.name.as_str();
    let temporary = bounded_name(&format!("keel_rebuild_{table}"));
    let reference_of = |column: &str| -> Option<&Reference> {
        desired
            .column(column)
            .and_then(|wanted| wanted.references.as_ref())
    };
    let mut statements =
        sqlite_copy_table(table, &temporary, &working.table.columns, &reference_of);
    statements.push(sql::rename_table(&temporary, table));
    for index in surviving_indexes {
        let statement = match &index.sql {
            // SQLite's own index behind the primary key: the new table has it already.
            None => continue,
            Some(original) if !index.droppable => original.clone(),
            Some(_) => sql::create_index(
                Dialect::Sqlite,
                table,
                &index.name,
                &index.columns,
                index.unique,
                &[],
            ),
        };
        statements.push(statement);
    }
    let safe = orphans == 0;
    let mut description = format!(
        "rebuild table {table} to change foreign keys ({})",
        reasons.join("; ")
    );
    if !safe {
        description.push_str(&format!(
            ": {} to a missing record (they keep their value; the keys apply to new and changed rows)",
            rows(orphans, "refers", "refer")
        ));
    }
    Step {
        kind: StepKind::RebuildTable,
        object: table.to_owned(),
        field: None,
        safety: if safe {
            Safety::Safe
        } else {
            Safety::Destructive
        },
        description,
        affected_rows: (!safe).then_some(orphans),
        sql: statements,
    }
}

/// SQLite: creates `target` with `columns` (keys only where `reference_of` gives one), copies
/// every row of `source` into it and drops `source`. Run with foreign-key enforcement off.
fn sqlite_copy_table<'r>(
    source: &str,
    target: &str,
    columns: &[LiveColumn],
    reference_of: &dyn Fn(&str) -> Option<&'r Reference>,
) -> Vec<String> {
    let definitions: Vec<ColumnDefinition<'_>> = columns
        .iter()
        .map(|column| ColumnDefinition {
            name: &column.name,
            sql_type: column.declared_type.clone(),
            not_null: column.not_null,
            primary_key: column.primary_key,
            default: column.default_sql.clone(),
            reference: reference_of(&column.name).map(|reference| (target, reference)),
        })
        .collect();
    let column_list: Vec<String> = columns.iter().map(|column| quote(&column.name)).collect();
    let column_list = column_list.join(", ");
    vec![
        sql::create_table(Dialect::Sqlite, target, &definitions),
        format!(
            "INSERT INTO {} ({column_list}) SELECT {column_list} FROM {}",
            quote(target),
            quote(source)
        ),
        format!("DROP TABLE {}", quote(source)),
    ]
}

/// `name` cut to the identifier limit.
fn bounded_name(name: &str) -> String {
    cut(name, MAX_IDENTIFIER_LENGTH).to_owned()
}

/// `1 row has`, `2 rows have`: a count of rows with its verb (or none, when both are empty).
fn rows(count: i64, singular_verb: &str, plural_verb: &str) -> String {
    let (noun, verb) = if count == 1 {
        ("row", singular_verb)
    } else {
        ("rows", plural_verb)
    };
    if verb.is_empty() {
        format!("{count} {noun}")
    } else {
        format!("{count} {noun} {verb}")
    }
}
