//! The briefing (docs/reports.md, "Briefing"): what happened in the current day, week or
//! month against the period before, each figure under the caller's record scope.
//!
//! Which objects the figures count is read from the metadata where it can be: the
//! opportunities are the object of the first process with a won stage (its amount by the
//! rule of [`super::amount_field`]), and the won amount is what entered that process's won
//! stages. Leads, customers and follow-ups are the standard app's `lead`, `account` and
//! `follow_up` objects; an app without one gets `null` for that figure, as does a caller
//! who may read none of its records.

use chrono::{Datelike as _, Days, Months, NaiveDate};
use keel_meta::{Object, Outcome, Process};
use keel_store::records::{Condition, Measure, aggregate};
use keel_store::reports::entered;
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::{Value as Json, json};

use super::{
    ReportError, Reports, amount_field, bad, created_between, decimal, money, ratio, scale_of,
};
use crate::actor::Actor;

/// The length of a briefing's period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    Day,
    /// Monday to Sunday.
    Week,
    Month,
}

impl Period {
    /// `day`, `week` or `month`; a 422 naming `period` otherwise.
    pub fn parse(text: &str) -> Result<Period, ReportError> {
        match text.trim() {
            "day" => Ok(Period::Day),
            "week" => Ok(Period::Week),
            "month" => Ok(Period::Month),
            other => Err(bad(
                "period",
                format!("`{other}` is not a period: use day, week or month"),
            )),
        }
    }

    /// The period holding `day`, and the one before it.
    fn around(self, day: NaiveDate) -> Option<(PeriodRange, PeriodRange)> {
        let (start, end, previous) = match self {
            Period::Day => (
                day,
                day.checked_add_days(Days::new(1))?,
                day.checked_sub_days(Days::new(1))?,
            ),
            Period::Week => {
                let monday = day
                    .checked_sub_days(Days::new(u64::from(day.weekday().num_days_from_monday())))?;
                (
                    monday,
                    monday.checked_add_days(Days::new(7))?,
                    monday.checked_sub_days(Days::new(7))?,
                )
            }
            Period::Month => {
                let first = day.with_day(1)?;
                (
                    first,
                    first.checked_add_months(Months::new(1))?,
                    first.checked_sub_months(Months::new(1))?,
                )
            }
        };
        Some((
            PeriodRange {
                from: start,
                to: end,
            },
            PeriodRange {
                from: previous,
                to: start,
            },
        ))
    }
}

/// Days `[from, to)` in the app timezone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PeriodRange {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

/// One figure now and in the previous period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// A count (a number) or an amount (a decimal string).
    pub value: Json,
    pub previous: Json,
    /// `value − previous`, in the figure's unit.
    pub change: Json,
    /// `(value − previous) / previous` (4 decimals; `null` when `previous` is zero).
    pub change_rate: Option<f64>,
}

impl Change {
    fn count(value: i64, previous: i64) -> Change {
        Change {
            value: json!(value),
            previous: json!(previous),
            change: json!(value - previous),
            change_rate: ratio(Decimal::from(value - previous), Decimal::from(previous)),
        }
    }

    fn amount(value: Decimal, previous: Decimal, scale: u32) -> Change {
        Change {
            value: money(value, scale),
            previous: money(previous, scale),
            change: money(value - previous, scale),
            change_rate: ratio(value - previous, previous),
        }
    }
}

/// New opportunities: how many and what they are worth.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpportunityFigures {
    pub object: String,
    pub count: Change,
    /// `null` without an amount field the caller may see.
    pub amount: Option<Change>,
}

/// The briefing of one period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Briefing {
    pub period: Period,
    pub current: PeriodRange,
    pub previous: PeriodRange,
    pub new_leads: Option<Change>,
    pub new_customers: Option<Change>,
    pub new_opportunities: Option<OpportunityFigures>,
    /// Σ amount of the opportunities that entered a won stage in the period.
    pub won_amount: Option<Change>,
    /// Follow-ups logged (created) in the period.
    pub follow_ups: Option<Change>,
}

impl Reports {
    /// The briefing of the current `period` (in the app timezone, by the clock) against
    /// the previous one, under the actor's record scope.
    pub async fn briefing(&self, actor: &Actor, period: Period) -> Result<Briefing, ReportError> {
        let (current, previous) = period
            .around(self.today())
            .ok_or_else(|| bad("period", "the period is out of range"))?;
        let schema = self.records.schema().clone();
        let created = |object: &'static str| schema.object(object);
        let new_leads = self
            .created_counts(actor, created("lead"), current, previous)
            .await?;
        let new_customers = self
            .created_counts(actor, created("account"), current, previous)
            .await?;
        let follow_ups = self
            .created_counts(actor, created("follow_up"), current, previous)
            .await?;
        let process = schema.processes.values().find(|process| {
            process
                .stages
                .iter()
                .any(|stage| stage.outcome == Some(Outcome::Won))
        });
        let mut new_opportunities = None;
        let mut won_amount = None;
        if let Some(process) = process
            && let Some(object) = schema.object(&process.object)
        {
            new_opportunities = self.opportunities(actor, object, current, previous).await?;
            won_amount = self
                .won_amount(actor, process, object, current, previous)
                .await?;
        }
        Ok(Briefing {
            period,
            current,
            previous,
            new_leads,
            new_customers,
            new_opportunities,
            won_amount,
            follow_ups,
        })
    }

    /// The count and Σ amount of `object`'s records created in `range`, under the scope.
    async fn created_in(
        &self,
        scope: &Condition,
        object: &Object,
        range: PeriodRange,
        amount: Option<&str>,
    ) -> Result<(i64, Decimal), ReportError> {
        let condition = Condition::All(vec![
            scope.clone(),
            created_between(self.start_of(range.from)?, self.start_of(range.to)?),
        ]);
        let mut measures = vec![Measure::Count];
        if let Some(amount) = amount {
            measures.push(Measure::Sum(amount.to_owned()));
        }
        let rows = aggregate(self.records.db(), object, &condition, &[], &measures).await?;
        let row = rows.into_iter().next().unwrap_or_default();
        let count = match row.get("count") {
            Some(keel_meta::Value::Integer(count)) => *count,
            _ => 0,
        };
        let sum = amount
            .and_then(|amount| row.get(&format!("sum_{amount}")))
            .map(decimal)
            .unwrap_or_default();
        Ok((count, sum))
    }

    async fn created_counts(
        &self,
        actor: &Actor,
        object: Option<&Object>,
        current: PeriodRange,
        previous: PeriodRange,
    ) -> Result<Option<Change>, ReportError> {
        let Some(object) = object else {
            return Ok(None);
        };
        let Some(scope) = self.read_scope(actor, object) else {
            return Ok(None);
        };
        let (now, _) = self.created_in(&scope, object, current, None).await?;
        let (before, _) = self.created_in(&scope, object, previous, None).await?;
        Ok(Some(Change::count(now, before)))
    }

    async fn opportunities(
        &self,
        actor: &Actor,
        object: &Object,
        current: PeriodRange,
        previous: PeriodRange,
    ) -> Result<Option<OpportunityFigures>, ReportError> {
        let Some(scope) = self.read_scope(actor, object) else {
            return Ok(None);
        };
        let amount = amount_field(&self.records, actor, object);
        let (now, now_amount) = self.created_in(&scope, object, current, amount).await?;
        let (before, before_amount) = self.created_in(&scope, object, previous, amount).await?;
        let scale = scale_of(object, amount);
        Ok(Some(OpportunityFigures {
            object: object.name.clone(),
            count: Change::count(now, before),
            amount: amount.map(|_| Change::amount(now_amount, before_amount, scale)),
        }))
    }

    async fn won_amount(
        &self,
        actor: &Actor,
        process: &Process,
        object: &Object,
        current: PeriodRange,
        previous: PeriodRange,
    ) -> Result<Option<Change>, ReportError> {
        let Some(scope) = self.read_scope(actor, object) else {
            return Ok(None);
        };
        let Some(amount) = amount_field(&self.records, actor, object) else {
            return Ok(None);
        };
        let won: Vec<String> = process
            .stages
            .iter()
            .filter(|stage| stage.outcome == Some(Outcome::Won))
            .map(|stage| stage.key.clone())
            .collect();
        let mut sums = [Decimal::ZERO; 2];
        for (slot, range) in sums.iter_mut().zip([current, previous]) {
            let (_, sum) = entered(
                self.records.db(),
                object,
                &scope,
                &process.name,
                &won,
                self.start_of(range.from)?,
                self.start_of(range.to)?,
                Some(amount),
            )
            .await?;
            *slot = decimal(&sum);
        }
        Ok(Some(Change::amount(
            sums[0],
            sums[1],
            scale_of(object, Some(amount)),
        )))
    }
}
