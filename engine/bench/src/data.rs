//! Deterministic synthetic leads for the benchmark app (`bench/app`): the same seed and row
//! count always give the same rows, ids included, so two runs measure the same data.
//!
//! The distribution is what the benchmark queries need to be realistic: `status` is uniform
//! over its five keys (so `status=eq.qualified` matches a fifth of the table), `score` is
//! uniform over 0..=100 (about 200 leads per score per status at 100k rows), creation times
//! spread evenly over one year, and some optional fields are empty. This module writes
//! nothing; `keel-bench-gen` does.

use chrono::{DateTime, Duration, TimeZone as _, Utc};

/// The `status` keys of the benchmark lead, in metadata order.
pub const STATUSES: [&str; 5] = ["new", "contacted", "qualified", "converted", "invalid"];
/// The `source` keys of the benchmark lead, in metadata order.
pub const SOURCES: [&str; 4] = ["web", "referral", "event", "cold_call"];

const SURNAMES: [&str; 20] = [
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭",
    "何", "高", "林", "罗",
];
const GIVEN_NAMES: [&str; 20] = [
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明",
    "超", "秀英", "华", "平",
];
const CITIES: [&str; 10] = [
    "北京", "上海", "深圳", "杭州", "广州", "成都", "南京", "武汉", "苏州", "西安",
];
const BRANDS: [&str; 10] = [
    "星辰", "远航", "华信", "恒通", "瑞丰", "博远", "天成", "金桥", "汇智", "宏达",
];
const KINDS: [&str; 5] = [
    "科技有限公司",
    "贸易有限公司",
    "制造有限公司",
    "信息技术有限公司",
    "咨询有限公司",
];
const MOBILE_PREFIXES: [&str; 6] = ["130", "135", "138", "150", "186", "199"];

/// SplitMix64: a tiny, fast, well-mixed generator. Not for secrets; for reproducible data.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64 { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..bound` (`bound` > 0; the tiny modulo bias does not matter here).
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound.max(1)
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// One element of `items` (which must not be empty).
    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        let index = usize::try_from(self.below(items.len() as u64)).unwrap_or(0);
        items.get(index).copied().unwrap_or("")
    }

    fn bytes10(&mut self) -> [u8; 10] {
        let high = self.next_u64().to_be_bytes();
        let low = self.next_u64().to_be_bytes();
        [
            high[0], high[1], high[2], high[3], high[4], high[5], high[6], high[7], low[0], low[1],
        ]
    }
}

/// One generated lead: the declared fields plus the id and creation time (the generator
/// fills the other system columns).
#[derive(Debug, Clone, PartialEq)]
pub struct Lead {
    /// UUIDv7 text whose time part is `created_at`, so ids sort like creation times.
    pub id: String,
    pub created_at: DateTime<Utc>,
    pub name: String,
    pub company: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub source: Option<&'static str>,
    pub status: &'static str,
    pub score: i64,
}

/// An iterator over `rows` leads made from `seed`, oldest first.
#[derive(Debug, Clone)]
pub struct LeadGenerator {
    random: SplitMix64,
    rows: u64,
    next: u64,
    start: DateTime<Utc>,
    step: Duration,
}

impl LeadGenerator {
    /// Leads created evenly over the year 2025 (fixed, so the data does not depend on today).
    pub fn new(seed: u64, rows: u64) -> LeadGenerator {
        let start = Utc
            .with_ymd_and_hms(2025, 1, 1, 0, 0, 0)
            .single()
            .unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
        let year_micros: i64 = 365 * 24 * 3_600 * 1_000_000;
        let step_micros = (year_micros / i64::try_from(rows.max(1)).unwrap_or(i64::MAX)).max(1);
        LeadGenerator {
            random: SplitMix64::new(seed),
            rows,
            next: 0,
            start,
            step: Duration::microseconds(step_micros),
        }
    }
}

impl Iterator for LeadGenerator {
    type Item = Lead;

    fn next(&mut self) -> Option<Lead> {
        if self.next >= self.rows {
            return None;
        }
        let index = self.next;
        self.next += 1;
        let random = &mut self.random;
        let created_at = self.start + self.step * i32::try_from(index).unwrap_or(i32::MAX);
        let millis = u64::try_from(created_at.timestamp_millis()).unwrap_or(0);
        let id = uuid::Builder::from_unix_timestamp_millis(millis, &random.bytes10())
            .into_uuid()
            .to_string();
        let name = format!("{}{}", random.pick(&SURNAMES), random.pick(&GIVEN_NAMES));
        let company = (!random.chance(10)).then(|| {
            format!(
                "{}{}{}",
                random.pick(&CITIES),
                random.pick(&BRANDS),
                random.pick(&KINDS)
            )
        });
        let phone = (!random.chance(5)).then(|| {
            format!(
                "{}{:08}",
                random.pick(&MOBILE_PREFIXES),
                random.below(100_000_000)
            )
        });
        let email = (!random.chance(20)).then(|| format!("lead{index}@example.com"));
        let source = (!random.chance(15)).then(|| random.pick(&SOURCES));
        let status = random.pick(&STATUSES);
        let score = i64::try_from(random.below(101)).unwrap_or(0);
        Some(Lead {
            id,
            created_at,
            name,
            company,
            phone,
            email,
            source,
            status,
            score,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_leads_and_another_seed_does_not() {
        let first: Vec<Lead> = LeadGenerator::new(7, 50).collect();
        let again: Vec<Lead> = LeadGenerator::new(7, 50).collect();
        let other: Vec<Lead> = LeadGenerator::new(8, 50).collect();
        assert_eq!(first.len(), 50);
        assert_eq!(first, again);
        assert_ne!(first, other);
    }

    #[test]
    fn ids_are_uuid_v7_in_creation_order_and_unique() {
        let leads: Vec<Lead> = LeadGenerator::new(1, 2_000).collect();
        let mut ids: Vec<&str> = leads.iter().map(|lead| lead.id.as_str()).collect();
        assert!(ids.windows(2).all(|pair| pair[0] < pair[1]));
        ids.dedup();
        assert_eq!(ids.len(), 2_000);
        let parsed = uuid::Uuid::parse_str(&leads[0].id).unwrap();
        assert_eq!(parsed.get_version_num(), 7);
        assert!(
            leads
                .windows(2)
                .all(|pair| pair[0].created_at < pair[1].created_at)
        );
    }

    #[test]
    fn values_stay_within_the_metadata() {
        for lead in LeadGenerator::new(3, 5_000) {
            assert!((0..=100).contains(&lead.score));
            assert!(STATUSES.contains(&lead.status));
            assert!(lead.source.is_none_or(|source| SOURCES.contains(&source)));
            assert!(lead.name.chars().count() <= 100);
            assert!(lead.phone.is_none_or(|phone| phone.len() == 11));
        }
    }
}
