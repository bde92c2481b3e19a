//! Grouped figures over live records: counts, sums, averages, minimums and maximums.
//!
//! Figures are exact on both databases. A sum of a decimal column is a [`Value::Decimal`] at
//! the column's scale (SQLite sums the scaled integers, then rescales), a sum of an integer
//! column a [`Value::Integer`], and a sum of no values is zero. An average is computed here
//! from the exact sum and the count of filled values, rounded half away from zero to the
//! column's scale + 2, and is NULL when no value is filled; minimum and maximum are NULL
//! then too. Groups come back ordered by the group columns, empty groups (NULL) first. This
//! module does not join other objects or bucket dates; those belong to reports.

use keel_meta::{Object, Storage, Value};
use rust_decimal::{Decimal, RoundingStrategy};

use super::columns::ObjectColumns;
use super::execute::{Shape, fetch};
use super::select::push_from_where;
use super::statement::Statement;
use super::{Condition, Deleted, Row};
use crate::db::{Db, Dialect};
use crate::error::StoreError;

/// One figure per group.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Measure {
    /// Records in the group: `count`.
    Count,
    /// `sum_<column>`, of an integer or decimal column.
    Sum(String),
    /// `avg_<column>`, of an integer or decimal column.
    Avg(String),
    /// `min_<column>`, of any column but a list.
    Min(String),
    /// `max_<column>`, of any column but a list.
    Max(String),
}

/// The figures of the live records of `object` matching `condition`, grouped by
/// `group_by`. Each row holds the group columns by name, then one entry per measure
/// (`count`, `sum_<c>`, `avg_<c>`, `min_<c>`, `max_<c>`). Without group columns there is one
/// row, even when nothing matches.
pub async fn aggregate(
    db: &Db,
    object: &Object,
    condition: &Condition,
    group_by: &[String],
    measures: &[Measure],
) -> Result<Vec<Row>, StoreError> {
    let plan = aggregate_statement(db.dialect(), object, condition, group_by, measures)?;
    let mut pooled = db.acquire().await?;
    let rows = fetch(&mut pooled.connection(), &plan.statement, &plan.shapes).await?;
    rows.into_iter().map(|values| plan.row(values)).collect()
}

/// What each output entry is computed from.
#[derive(Debug, Clone)]
enum Output {
    /// The next selected value as is (group columns, count, sum, min, max).
    Column(String),
    /// An average from the next two selected values: the sum, then the count of values.
    Average { name: String, scale: u32 },
}

struct AggregatePlan {
    statement: Statement,
    shapes: Vec<Shape>,
    outputs: Vec<Output>,
}

fn aggregate_statement(
    dialect: Dialect,
    object: &Object,
    condition: &Condition,
    group_by: &[String],
    measures: &[Measure],
) -> Result<AggregatePlan, StoreError> {
    let columns = ObjectColumns::of(object);
    let mut statement = Statement::new(dialect, columns.table());
    let mut shapes = Vec::new();
    let mut outputs = Vec::new();
    let mut selected: Vec<String> = Vec::new();
    for column in group_by {
        let storage = columns.storage(column)?;
        selected.push(crate::naming::quote(column));
        shapes.push(Shape::Stored(storage));
        outputs.push(Output::Column(column.clone()));
    }
    for measure in measures {
        let numeric = |column: &str| -> Result<Storage, StoreError> {
            match columns.storage(column)? {
                storage @ (Storage::Integer | Storage::Decimal { .. }) => Ok(storage),
                _ => Err(statement.invalid(format!(
                    "`{column}` is not a number: only numbers have a sum or an average"
                ))),
            }
        };
        match measure {
            Measure::Count => {
                selected.push("count(*)".to_owned());
                shapes.push(Shape::Count);
                outputs.push(Output::Column("count".to_owned()));
            }
            Measure::Sum(column) => {
                let storage = numeric(column)?;
                selected.push(format!("sum({})", crate::naming::quote(column)));
                shapes.push(Shape::Sum(storage));
                outputs.push(Output::Column(format!("sum_{column}")));
            }
            Measure::Avg(column) => {
                let storage = numeric(column)?;
                let quoted = crate::naming::quote(column);
                selected.push(format!("sum({quoted})"));
                selected.push(format!("count({quoted})"));
                shapes.push(Shape::Sum(storage));
                shapes.push(Shape::Count);
                outputs.push(Output::Average {
                    name: format!("avg_{column}"),
                    scale: match storage {
                        Storage::Decimal { scale } => scale,
                        _ => 0,
                    },
                });
            }
            Measure::Min(column) | Measure::Max(column) => {
                let storage = columns.storage(column)?;
                let minimum = matches!(measure, Measure::Min(_));
                let function = match (dialect, storage, minimum) {
                    (_, Storage::Json, _) => {
                        return Err(statement.invalid(format!(
                            "`{column}` holds lists, which have no minimum or maximum"
                        )));
                    }
                    (Dialect::Postgres, Storage::Boolean, true) => "bool_and",
                    (Dialect::Postgres, Storage::Boolean, false) => "bool_or",
                    (_, _, true) => "min",
                    (_, _, false) => "max",
                };
                selected.push(format!("{function}({})", crate::naming::quote(column)));
                shapes.push(Shape::Stored(storage));
                outputs.push(Output::Column(format!(
                    "{}_{column}",
                    if minimum { "min" } else { "max" }
                )));
            }
        }
    }
    if selected.is_empty() {
        return Err(statement.invalid("an aggregate needs a group column or a measure"));
    }
    statement.push("SELECT ");
    // Every piece is a quoted column or a constant function name.
    statement.push(&selected.join(", "));
    push_from_where(&mut statement, &columns, condition, Deleted::Exclude)?;
    if !group_by.is_empty() {
        let quoted: Vec<String> = group_by
            .iter()
            .map(|column| crate::naming::quote(column))
            .collect();
        statement.push(" GROUP BY ");
        statement.push(&quoted.join(", "));
        statement.push(" ORDER BY ");
        let nulls = match dialect {
            Dialect::Sqlite => " ASC",
            Dialect::Postgres => " ASC NULLS FIRST",
        };
        statement.push(&quoted.join(&format!("{nulls}, ")));
        statement.push(nulls);
    }
    Ok(AggregatePlan {
        statement,
        shapes,
        outputs,
    })
}

impl AggregatePlan {
    fn row(&self, values: Vec<Value>) -> Result<Row, StoreError> {
        let mut values = values.into_iter();
        let mut row = Row::with_capacity(self.outputs.len());
        for output in &self.outputs {
            match output {
                Output::Column(name) => {
                    row.insert(name.clone(), values.next().unwrap_or(Value::Null));
                }
                Output::Average { name, scale } => {
                    let sum = values.next().unwrap_or(Value::Null);
                    let filled = values.next().unwrap_or(Value::Null);
                    row.insert(name.clone(), average(sum, filled, *scale)?);
                }
            }
        }
        Ok(row)
    }
}

/// `sum / count` rounded half away from zero to `scale + 2` decimals; NULL for no values.
fn average(sum: Value, count: Value, scale: u32) -> Result<Value, StoreError> {
    let count = match count {
        Value::Integer(0) => return Ok(Value::Null),
        Value::Integer(count) => Decimal::from(count),
        other => {
            return Err(StoreError::UnreadableValue {
                what: format!("a count of {other:?}"),
            });
        }
    };
    let sum = match sum {
        Value::Integer(sum) => Decimal::from(sum),
        Value::Decimal(sum) => sum,
        other => {
            return Err(StoreError::UnreadableValue {
                what: format!("a sum of {other:?}"),
            });
        }
    };
    let quotient = sum
        .checked_div(count)
        .ok_or_else(|| StoreError::UnreadableValue {
            what: format!("the average {sum} / {count}"),
        })?;
    let mut rounded =
        quotient.round_dp_with_strategy(scale + 2, RoundingStrategy::MidpointAwayFromZero);
    rounded.rescale(scale + 2);
    Ok(Value::Decimal(rounded))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn averages_are_exact_and_rounded_to_two_more_decimals() {
        let average = |sum, count, scale| average(sum, Value::Integer(count), scale).unwrap();
        assert_eq!(
            average(Value::Decimal(Decimal::new(1000, 2)), 3, 2),
            Value::Decimal(Decimal::new(33_333, 4))
        );
        assert_eq!(
            average(Value::Integer(2), 3, 0),
            Value::Decimal(Decimal::new(67, 2))
        );
        assert_eq!(
            average(Value::Integer(-1), 8, 0),
            Value::Decimal(Decimal::new(-13, 2))
        );
        assert_eq!(average(Value::Integer(0), 0, 0), Value::Null);
    }
}
