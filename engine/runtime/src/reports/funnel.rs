//! The sales funnel of a process (docs/reports.md, "Funnel"): the cohort of records created
//! in a period, how far each got, and what they are worth.

use chrono::{Datelike as _, Months, NaiveDate};
use keel_meta::{Label, Outcome, Process, Value};
use keel_store::records::{CompareOp, Condition};
use keel_store::reports::{FunnelQuery, Stays, funnel_groups};
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::Value as Json;

use super::{
    ReportError, Reports, amount_field, bad, created_between, decimal, money, parse_date, ratio,
    scale_of,
};
use crate::actor::Actor;
use crate::records::RecordError;

/// `GET /reports/funnel?process=&from=&to=&owner=`, as given (each checked here, so that an
/// error names the parameter).
#[derive(Debug, Clone, Default)]
pub struct FunnelParams {
    /// The process; the app's first process when absent.
    pub process: Option<String>,
    /// First day of the period (`YYYY-MM-DD`, app timezone); the first of this month when
    /// absent.
    pub from: Option<String>,
    /// The day after the period (exclusive); a month after `from` when absent.
    pub to: Option<String>,
    /// Only records owned by this user id.
    pub owner: Option<String>,
}

/// The funnel of one process over one cohort.
#[derive(Debug, Clone, Serialize)]
pub struct Funnel {
    pub process: String,
    pub label: Option<Label>,
    pub object: String,
    pub from: NaiveDate,
    /// Exclusive.
    pub to: NaiveDate,
    pub owner: Option<String>,
    /// The field summed as the amount (`None`: no amount field, or hidden from the caller;
    /// every amount is then `null`).
    pub amount_field: Option<String>,
    /// Records in the cohort.
    pub total: i64,
    pub total_amount: Option<Json>,
    pub stages: Vec<FunnelStage>,
    pub won: i64,
    pub lost: i64,
    /// In a stage without an outcome.
    pub open: i64,
    pub won_amount: Option<Json>,
    pub lost_amount: Option<Json>,
    /// `won / total`, `lost / total` (4 decimals; `null` for an empty cohort).
    pub won_rate: Option<f64>,
    pub lost_rate: Option<f64>,
    /// By amount: `won_amount / total_amount`, `lost_amount / total_amount`.
    pub won_amount_rate: Option<f64>,
    pub lost_amount_rate: Option<f64>,
    /// Σ amount × stage probability / 100 of the open records.
    pub weighted_pipeline: Option<Json>,
}

/// One stage of the funnel.
#[derive(Debug, Clone, Serialize)]
pub struct FunnelStage {
    pub key: String,
    pub label: Option<Label>,
    pub outcome: Option<Outcome>,
    pub probability: u32,
    /// Records that reached the stage; for a lost stage, records that ended there.
    pub reached: i64,
    /// Σ amount of those records.
    pub amount: Option<Json>,
    /// `reached` of the next non-lost stage / `reached` of this one (`null` for the last
    /// and for lost stages, or when nothing reached this one).
    pub conversion_next: Option<f64>,
    /// `reached` / `reached` of the first stage.
    pub conversion_first: Option<f64>,
    /// Average days of the completed stays in the stage (2 decimals; `null` without any).
    pub avg_days: Option<f64>,
}

impl Reports {
    /// The funnel of `params.process` for the records the actor may read.
    pub async fn funnel(&self, actor: &Actor, params: FunnelParams) -> Result<Funnel, ReportError> {
        let schema = self.records.schema().clone();
        let process: &Process = match params.process.as_deref().map(str::trim) {
            Some(name) if !name.is_empty() => schema
                .processes
                .get(name)
                .ok_or_else(|| bad("process", format!("there is no process `{name}`")))?,
            _ => schema
                .processes
                .values()
                .next()
                .ok_or_else(|| bad("process", "this app declares no process"))?,
        };
        let object = schema
            .object(&process.object)
            .ok_or_else(|| RecordError::UnknownObject(process.object.clone()))?;
        let from = match params.from.as_deref() {
            Some(text) => parse_date("from", text)?,
            None => self.today().with_day(1).unwrap_or_else(|| self.today()),
        };
        let to = match params.to.as_deref() {
            Some(text) => parse_date("to", text)?,
            None => from
                .checked_add_months(Months::new(1))
                .ok_or_else(|| bad("from", "the date is out of range"))?,
        };
        if to <= from {
            return Err(bad(
                "to",
                format!("`to` ({to}) must be after `from` ({from})"),
            ));
        }
        let owner = match params.owner.as_deref().map(str::trim) {
            Some("") => return Err(bad("owner", "`owner` is empty")),
            other => other.map(str::to_owned),
        };
        let Some(scope) = self.read_scope(actor, object) else {
            return Err(RecordError::Forbidden {
                message: format!("you may not read `{}` records", object.name),
                fields: Vec::new(),
            }
            .into());
        };
        let mut cohort = vec![
            scope,
            created_between(self.start_of(from)?, self.start_of(to)?),
        ];
        if let Some(owner) = &owner {
            cohort.push(Condition::Compare {
                column: "owner".to_owned(),
                op: CompareOp::Eq,
                value: Value::Text(owner.clone()),
            });
        }
        let ladder: Vec<String> = process
            .stages
            .iter()
            .filter(|stage| stage.outcome != Some(Outcome::Lost))
            .map(|stage| stage.key.clone())
            .collect();
        let won: Vec<String> = process
            .stages
            .iter()
            .filter(|stage| stage.outcome == Some(Outcome::Won))
            .map(|stage| stage.key.clone())
            .collect();
        let keys: Vec<String> = process
            .stages
            .iter()
            .map(|stage| stage.key.clone())
            .collect();
        let amount = amount_field(&self.records, actor, object);
        let query = FunnelQuery {
            stages: &keys,
            object,
            stage_field: &process.stage_field,
            ladder: &ladder,
            won: &won,
            amount,
            cohort: Condition::All(cohort),
        };
        let db = self.records.db();
        let groups = funnel_groups(db, &query).await?;
        // Per stage: the completed stays of the whole cohort.
        let mut times = vec![Stays::default(); keys.len()];
        for group in &groups {
            for (total, stays) in times.iter_mut().zip(&group.stays) {
                total.count += stays.count;
                total.seconds += stays.seconds;
            }
        }

        let scale = scale_of(object, amount);
        let shown = |sum: Decimal| amount.map(|_| money(sum, scale));
        // Per ladder index: records whose reach is at least it (suffix sums of the groups).
        let mut reached = vec![(0_i64, Decimal::ZERO); ladder.len()];
        let (mut total, mut total_amount) = (0_i64, Decimal::ZERO);
        let (mut won_count, mut won_amount) = (0_i64, Decimal::ZERO);
        let (mut open_count, mut weighted) = (0_i64, Decimal::ZERO);
        let mut ended: std::collections::HashMap<&str, (i64, Decimal)> = Default::default();
        for group in &groups {
            let sum = decimal(&group.amount);
            total += group.count;
            total_amount += sum;
            if let Some(reach) = group.reach {
                for entry in reached.iter_mut().take(reach + 1) {
                    entry.0 += group.count;
                    entry.1 += sum;
                }
            }
            let stage = group
                .stage
                .as_deref()
                .and_then(|key| process.stages.iter().find(|stage| stage.key == key));
            match stage.map(|stage| (stage, stage.outcome)) {
                Some((_, Some(Outcome::Won))) => {
                    won_count += group.count;
                    won_amount += sum;
                }
                Some((stage, Some(Outcome::Lost))) => {
                    let entry = ended.entry(stage.key.as_str()).or_default();
                    entry.0 += group.count;
                    entry.1 += sum;
                }
                Some((stage, None)) => {
                    open_count += group.count;
                    weighted += sum * Decimal::from(stage.probability) / Decimal::from(100);
                }
                // An empty stage or a key the process no longer has: in the cohort only.
                None => {}
            }
        }
        let lost_count: i64 = ended.values().map(|(count, _)| count).sum();
        let lost_amount: Decimal = ended.values().map(|(_, sum)| *sum).sum();
        let first = reached.first().map_or(0, |(count, _)| *count);
        let mut stages = Vec::with_capacity(process.stages.len());
        let mut ladder_index = 0_usize;
        for (stage, time) in process.stages.iter().zip(&times) {
            let (count, sum, next) = if stage.outcome == Some(Outcome::Lost) {
                let (count, sum) = ended.get(stage.key.as_str()).copied().unwrap_or_default();
                (count, sum, None)
            } else {
                let (count, sum) = reached.get(ladder_index).copied().unwrap_or_default();
                let next = reached.get(ladder_index + 1).map(|(next, _)| *next);
                ladder_index += 1;
                (count, sum, next)
            };
            stages.push(FunnelStage {
                key: stage.key.clone(),
                label: stage.label.clone(),
                outcome: stage.outcome,
                probability: stage.probability,
                reached: count,
                amount: shown(sum),
                conversion_next: next
                    .and_then(|next| ratio(Decimal::from(next), Decimal::from(count))),
                conversion_first: ratio(Decimal::from(count), Decimal::from(first)),
                avg_days: average_days(time.seconds, time.count),
            });
        }
        let by_amount = |part: Decimal| amount.and_then(|_| ratio(part, total_amount));
        Ok(Funnel {
            process: process.name.clone(),
            label: process.label.clone(),
            object: object.name.clone(),
            from,
            to,
            owner,
            amount_field: amount.map(str::to_owned),
            total,
            total_amount: shown(total_amount),
            stages,
            won: won_count,
            lost: lost_count,
            open: open_count,
            won_amount: shown(won_amount),
            lost_amount: shown(lost_amount),
            won_rate: ratio(Decimal::from(won_count), Decimal::from(total)),
            lost_rate: ratio(Decimal::from(lost_count), Decimal::from(total)),
            won_amount_rate: by_amount(won_amount),
            lost_amount_rate: by_amount(lost_amount),
            weighted_pipeline: shown(weighted),
        })
    }
}

/// `seconds / stays` in days, rounded to 2 decimals; `None` for no stays.
fn average_days(seconds: i64, stays: i64) -> Option<f64> {
    use rust_decimal::prelude::ToPrimitive as _;
    if stays <= 0 {
        return None;
    }
    let days = Decimal::from(seconds) / Decimal::from(stays) / Decimal::from(86_400);
    days.round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
        .to_f64()
}
