//! Build schedules: Vieter's `minute hour day month` syntax and standard 5-field cron.
//!
//! A [`Schedule`] is parsed once, validated completely (out-of-range values, zero steps, reversed ranges,
//! empty list items and expressions that can never match are refused with an error naming the field), and
//! then answers "when is the next run after `t`?" in a given time zone with [`Schedule::next_after`].
//! Nothing here reads a clock: the caller always passes the time in.
//!
//! # Two syntaxes, told apart by the number of fields
//! - 2 to 4 fields: Vieter's `minute hour [day [month]]`; missing fields are `*`. There is no day-of-week.
//! - 5 fields: cron's `minute hour day-of-month month day-of-week`. Day-of-week is 0-7 (0 and 7 are
//!   Sunday); months and weekdays may also be written as English three-letter names (`jan`, `mon`, any
//!   case). When both the day-of-month and the day-of-week field are restricted (neither starts with `*`),
//!   a day matches if *either* matches, as cron's manual specifies; otherwise both must match (so
//!   `0 0 */2 * mon` runs on Mondays that fall on odd days).
//!
//! Each field is a comma-separated list of `*`, `a`, `*/n`, `a/n` (from `a` to the field's maximum in
//! steps of `n`), `a-b` and `a-b/n`. Ranges: minutes 0-59, hours 0-23, days 1-31, months 1-12. A step is
//! 1 up to the width of the field (`*/60` for minutes is refused).
//!
//! # Why not the `saffron` crate
//! saffron 0.1 compiles, but it is a Quartz-style parser: its day-of-week numbers are 1-7 for
//! Sunday-Saturday, so the standard cron expression `0 0 * * 1` (Mondays) would run on Sundays and
//! `0 0 * * 0` is refused; its parse error carries no detail (no field, no value); it knows only UTC; and it
//! does not accept Vieter's 2- to 4-field form. Parsing and matching are therefore implemented here.
//!
//! # Time zones and daylight-saving time
//! The fields are matched against the wall-clock time of the configured zone (a [`chrono_tz::Tz`]):
//! - A local time that does not exist (skipped by a spring-forward transition, e.g. 02:30 in Brussels on
//!   the last Sunday of March) is **moved to the first valid instant after the gap** (03:00 local there).
//!   Several matching minutes inside one gap give one run at that instant.
//! - A local time that occurs twice (fall-back transition) runs **once, at its first occurrence**.
//!
//! ```
//! use chrono::{TimeZone, Utc};
//! use libvieter::schedule::Schedule;
//!
//! let s: Schedule = "0 3".parse().unwrap(); // every day at 03:00
//! assert_eq!(s.to_string(), "0 3 * *");
//! let t = Utc.with_ymd_and_hms(2024, 12, 31, 12, 0, 0).unwrap();
//! let next = s.next_after(t, chrono_tz::Europe::Brussels).unwrap();
//! assert_eq!(next, Utc.with_ymd_and_hms(2025, 1, 1, 2, 0, 0).unwrap()); // 03:00 CET
//!
//! let err = "0 0 32".parse::<Schedule>().unwrap_err();
//! assert_eq!(err.to_string(), "day field '32': 32 is outside 1-31");
//! ```

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// Which field of an expression an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldName {
    Minute,
    Hour,
    /// Day of the month.
    Day,
    Month,
    /// Day of the week (5-field cron only).
    Weekday,
}

impl fmt::Display for FieldName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FieldName::Minute => "minute",
            FieldName::Hour => "hour",
            FieldName::Day => "day",
            FieldName::Month => "month",
            FieldName::Weekday => "weekday",
        })
    }
}

/// What is wrong inside one field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldProblem {
    #[error("{value} is outside {min}-{max}")]
    OutOfRange { value: u32, min: u32, max: u32 },
    #[error("step {step} is outside 1-{max}")]
    StepOutOfRange { step: u32, max: u32 },
    #[error("range {start}-{end} is reversed")]
    ReversedRange { start: u32, end: u32 },
    #[error("empty list item")]
    EmptyItem,
    #[error("'{0}' is not a number")]
    NotANumber(String),
    #[error("'{0}' is neither a number nor a name")]
    NotANumberOrName(String),
}

/// Why an expression was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("schedule is empty")]
    Empty,
    #[error(
        "schedule '{expr}' has {count} fields: use 2 to 4 (minute hour [day [month]]) or 5 (minute hour \
         day-of-month month day-of-week)"
    )]
    FieldCount { expr: String, count: usize },
    #[error("{field} field '{text}': {problem}")]
    Field { field: FieldName, text: String, problem: FieldProblem },
    #[error("schedule '{expr}' never matches: no month in the month field has a day from the day field")]
    NeverMatches { expr: String },
}

impl ScheduleError {
    /// The field the error is about, if it is about one.
    pub fn field(&self) -> Option<FieldName> {
        match self {
            ScheduleError::Field { field, .. } => Some(*field),
            ScheduleError::NeverMatches { .. } => Some(FieldName::Day),
            _ => None,
        }
    }
}

/// How the day-of-month and day-of-week sets combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum DayRule {
    /// Both sets must match (Vieter syntax, whose weekday set is full, or cron where one of the two fields
    /// starts with `*`).
    Both,
    /// Both fields restricted: either may match (cron's OR rule).
    Either,
}

/// A parsed, validated schedule. `Display` gives the canonical expression; serde uses that string.
///
/// Equality compares the canonical expressions.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Schedule {
    canonical: String,
    /// Bit `m` set: minute `m` matches.
    minutes: u64,
    /// Bit `h` set: hour `h` matches.
    hours: u32,
    /// Bit `d` (1-31) set: day-of-month `d` matches.
    days: u32,
    /// Bit `m` (1-12) set: month `m` matches.
    months: u16,
    /// Bit `w` (0 = Sunday .. 6 = Saturday) set: that weekday matches.
    weekdays: u8,
    rule: DayRule,
}

/// The definition of one field.
struct Spec {
    name: FieldName,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const MONTH_NAMES: [&str; 12] =
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
const WEEKDAY_NAMES: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

const MINUTE: Spec = Spec { name: FieldName::Minute, min: 0, max: 59, names: &[] };
const HOUR: Spec = Spec { name: FieldName::Hour, min: 0, max: 23, names: &[] };
const DAY: Spec = Spec { name: FieldName::Day, min: 1, max: 31, names: &[] };
const MONTH: Spec = Spec { name: FieldName::Month, min: 1, max: 12, names: &MONTH_NAMES };
const WEEKDAY: Spec = Spec { name: FieldName::Weekday, min: 0, max: 7, names: &WEEKDAY_NAMES };

/// One parsed field: its bit set and its canonical text.
struct Field {
    mask: u64,
    text: String,
}

impl Spec {
    fn error(&self, text: &str, problem: FieldProblem) -> ScheduleError {
        ScheduleError::Field { field: self.name, text: text.to_owned(), problem }
    }

    fn value(&self, field: &str, s: &str) -> Result<u32, ScheduleError> {
        if s.is_empty() {
            return Err(self.error(field, FieldProblem::EmptyItem));
        }
        let value = if s.bytes().all(|b| b.is_ascii_digit()) {
            // Saturate absurdly long numbers: they are out of range either way.
            s.parse::<u32>().unwrap_or(u32::MAX)
        } else if let Some(i) = self.names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
            // Months are named from 1, weekdays from 0.
            if self.name == FieldName::Month {
                i as u32 + 1
            } else {
                i as u32
            }
        } else if self.names.is_empty() {
            return Err(self.error(field, FieldProblem::NotANumber(s.to_owned())));
        } else {
            return Err(self.error(field, FieldProblem::NotANumberOrName(s.to_owned())));
        };
        if value < self.min || value > self.max {
            return Err(self.error(field, FieldProblem::OutOfRange { value, min: self.min, max: self.max }));
        }
        Ok(value)
    }

    fn step(&self, field: &str, s: &str) -> Result<u32, ScheduleError> {
        let max = self.max - self.min;
        if s.is_empty() {
            return Err(self.error(field, FieldProblem::EmptyItem));
        }
        if !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(self.error(field, FieldProblem::NotANumber(s.to_owned())));
        }
        let step = s.parse::<u32>().unwrap_or(u32::MAX);
        if step == 0 || step > max {
            return Err(self.error(field, FieldProblem::StepOutOfRange { step, max }));
        }
        Ok(step)
    }

    /// Parses a comma list into a bit set and the canonical text (names replaced by numbers).
    fn parse(&self, field: &str) -> Result<Field, ScheduleError> {
        let mut mask = 0u64;
        let mut canonical = Vec::new();
        for item in field.split(',') {
            if item.is_empty() {
                return Err(self.error(field, FieldProblem::EmptyItem));
            }
            let (range, step) = match item.split_once('/') {
                Some((r, s)) => (r, Some(self.step(field, s)?)),
                None => (item, None),
            };
            let (start, end, text) = if range == "*" {
                (self.min, self.max, "*".to_owned())
            } else if let Some((a, b)) = range.split_once('-') {
                let (a, b) = (self.value(field, a)?, self.value(field, b)?);
                if a > b {
                    return Err(self.error(field, FieldProblem::ReversedRange { start: a, end: b }));
                }
                (a, b, format!("{a}-{b}"))
            } else {
                let a = self.value(field, range)?;
                // `a/n` runs from `a` to the maximum (`a/1` is written `a-max`); a plain `a` is just `a`.
                match step {
                    Some(1) => (a, self.max, format!("{a}-{}", self.max)),
                    Some(_) => (a, self.max, a.to_string()),
                    None => (a, a, a.to_string()),
                }
            };
            let step = step.unwrap_or(1);
            let mut v = start;
            while v <= end {
                mask |= 1 << v;
                v += step;
            }
            canonical.push(if step == 1 { text } else { format!("{text}/{step}") });
        }
        Ok(Field { mask, text: canonical.join(",") })
    }
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

/// The lowest set bit of `mask` at or above `from`, if any.
fn next_bit(mask: u64, from: u32) -> Option<u32> {
    if from >= 64 {
        return None;
    }
    let rest = mask >> from;
    (rest != 0).then(|| from + rest.trailing_zeros())
}

/// How many years ahead [`Schedule::next_local`] looks before giving up. Every valid schedule matches
/// within 8 years (29 February across a non-leap century year); the calendar repeats every 400 years.
const SEARCH_YEARS: i32 = 401;

impl Schedule {
    /// Parses an expression (see the [module documentation](self) for the syntax).
    pub fn parse(expr: &str) -> Result<Self, ScheduleError> {
        let fields: Vec<&str> = expr.split_whitespace().collect();
        let joined = fields.join(" ");
        let (cron, specs): (bool, &[Spec]) = match fields.len() {
            0 => return Err(ScheduleError::Empty),
            2..=4 => (false, &[MINUTE, HOUR, DAY, MONTH]),
            5 => (true, &[MINUTE, HOUR, DAY, MONTH, WEEKDAY]),
            count => return Err(ScheduleError::FieldCount { expr: joined, count }),
        };
        let mut parsed = Vec::with_capacity(specs.len());
        for (i, spec) in specs.iter().enumerate() {
            parsed.push(spec.parse(fields.get(i).copied().unwrap_or("*"))?);
        }
        let canonical = parsed.iter().map(|f| f.text.as_str()).collect::<Vec<_>>().join(" ");
        let (minutes, hours, days, months) = (parsed[0].mask, parsed[1].mask, parsed[2].mask, parsed[3].mask);
        let (weekdays, rule) = if cron {
            let raw = parsed[4].mask;
            // 7 is Sunday too.
            let weekdays = ((raw | (raw >> 7)) & 0x7f) as u8;
            let dom_star = fields[2].starts_with('*');
            let dow_star = fields[4].starts_with('*');
            let rule = if dom_star || dow_star { DayRule::Both } else { DayRule::Either };
            (weekdays, rule)
        } else {
            (0x7f, DayRule::Both)
        };
        let schedule = Schedule {
            canonical,
            minutes,
            hours: hours as u32,
            days: days as u32,
            months: months as u16,
            weekdays,
            rule,
        };
        if rule == DayRule::Both {
            // Some selected month must have some selected day (29 February counts: leap years exist).
            let possible = (1..=12u32)
                .filter(|m| schedule.months & (1 << m) != 0)
                .any(|m| (1..=days_in_month(2000, m)).any(|d| schedule.days & (1 << d) != 0));
            if !possible {
                return Err(ScheduleError::NeverMatches { expr: joined });
            }
        }
        Ok(schedule)
    }

    /// `true` for the 5-field cron form.
    pub fn is_cron(&self) -> bool {
        self.canonical.split(' ').count() == 5
    }

    fn day_matches(&self, date: NaiveDate) -> bool {
        let dom = self.days & (1 << date.day()) != 0;
        let dow = self.weekdays & (1 << date.weekday().num_days_from_sunday()) != 0;
        match self.rule {
            DayRule::Both => dom && dow,
            DayRule::Either => dom || dow,
        }
    }

    /// Whether the wall-clock minute `local` (seconds ignored) matches every field.
    pub fn matches_local(&self, local: NaiveDateTime) -> bool {
        self.months & (1 << local.month()) != 0
            && self.day_matches(local.date())
            && self.hours & (1 << local.hour()) != 0
            && self.minutes & (1 << local.minute()) != 0
    }

    /// The first matching wall-clock minute strictly after `after`, ignoring time zones.
    pub fn next_local(&self, after: NaiveDateTime) -> Option<NaiveDateTime> {
        let start = after.with_second(0)?.with_nanosecond(0)?.checked_add_signed(Duration::minutes(1))?;
        let last_year = start.year().checked_add(SEARCH_YEARS)?;
        let (mut year, mut month, mut day) = (start.year(), start.month(), start.day());
        let (mut hour, mut minute) = (start.hour(), start.minute());
        loop {
            if year > last_year {
                return None;
            }
            // Month.
            match next_bit(u64::from(self.months), month) {
                Some(m) if m == month => {}
                Some(m) => (month, day, hour, minute) = (m, 1, 0, 0),
                None => {
                    (year, month, day, hour, minute) = (year + 1, 1, 1, 0, 0);
                    continue;
                }
            }
            // Day.
            let date = match NaiveDate::from_ymd_opt(year, month, day) {
                Some(date) if day <= days_in_month(year, month) => date,
                _ => {
                    (month, day, hour, minute) = (month + 1, 1, 0, 0);
                    if month > 12 {
                        (year, month) = (year + 1, 1);
                    }
                    continue;
                }
            };
            if !self.day_matches(date) {
                (day, hour, minute) = (day + 1, 0, 0);
                continue;
            }
            // Hour.
            match next_bit(u64::from(self.hours), hour) {
                Some(h) if h == hour => {}
                Some(h) => (hour, minute) = (h, 0),
                None => {
                    (day, hour, minute) = (day + 1, 0, 0);
                    continue;
                }
            }
            // Minute.
            match next_bit(self.minutes, minute) {
                Some(m) => return date.and_hms_opt(hour, m, 0),
                None => {
                    (hour, minute) = (hour + 1, 0);
                    if hour > 23 {
                        (day, hour) = (day + 1, 0);
                    }
                    continue;
                }
            }
        }
    }

    /// The first run strictly after `t`, the fields read as wall-clock time in `tz`.
    ///
    /// A matching local time inside a daylight-saving gap runs at the first instant after the gap; a local
    /// time that occurs twice runs at its first occurrence only. `None` only if nothing matches within
    /// 400 years (a local time that never exists in `tz`), or at the end of chrono's calendar.
    pub fn next_after(&self, t: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        let mut local = t.with_timezone(&tz).naive_local();
        loop {
            let candidate = self.next_local(local)?;
            if let Some(instant) = resolve(candidate, tz) {
                if instant > t {
                    return Some(instant);
                }
            }
            local = candidate;
        }
    }

    /// The runs after `t`, in order (the CLI prints the first N).
    ///
    /// ```
    /// use chrono::{TimeZone, Utc};
    /// let s: libvieter::schedule::Schedule = "0 */6".parse().unwrap();
    /// let t = Utc.with_ymd_and_hms(2025, 1, 1, 5, 0, 0).unwrap();
    /// let hours: Vec<u32> = s.upcoming(t, chrono_tz::UTC).take(3).map(|d| chrono::Timelike::hour(&d)).collect();
    /// assert_eq!(hours, [6, 12, 18]);
    /// ```
    pub fn upcoming(&self, t: DateTime<Utc>, tz: Tz) -> impl Iterator<Item = DateTime<Utc>> + '_ {
        std::iter::successors(self.next_after(t, tz), move |&prev| self.next_after(prev, tz))
    }
}

/// The instant of the wall-clock time `local` in `tz`: its first occurrence if it occurs twice, the first
/// valid instant after the gap if it does not exist.
pub fn resolve(local: NaiveDateTime, tz: Tz) -> Option<DateTime<Utc>> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(d) => Some(d.with_timezone(&Utc)),
        LocalResult::Ambiguous(a, b) => Some(a.min(b).with_timezone(&Utc)),
        LocalResult::None => {
            // Walk forward to the end of the gap (transitions fall on whole minutes; gaps last at most a
            // day, as when Samoa skipped 30 December 2011).
            let mut probe = local.with_second(0)?;
            for _ in 0..2 * 24 * 60 {
                probe = probe.checked_add_signed(Duration::minutes(1))?;
                match tz.from_local_datetime(&probe) {
                    LocalResult::Single(d) => return Some(d.with_timezone(&Utc)),
                    LocalResult::Ambiguous(a, b) => return Some(a.min(b).with_timezone(&Utc)),
                    LocalResult::None => {}
                }
            }
            None
        }
    }
}

impl FromStr for Schedule {
    type Err = ScheduleError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Schedule::parse(s)
    }
}

impl TryFrom<String> for Schedule {
    type Error = ScheduleError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Schedule::parse(&s)
    }
}

impl From<Schedule> for String {
    fn from(s: Schedule) -> String {
        s.canonical
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical)
    }
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Schedule({:?})", self.canonical)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::{America::New_York, Europe::Brussels, UTC};

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    fn s(expr: &str) -> Schedule {
        expr.parse().unwrap_or_else(|e| panic!("{expr}: {e}"))
    }

    #[test]
    fn canonical_forms() {
        for (expr, canonical) in [
            ("0 3", "0 3 * *"),
            ("  0   3  1 ", "0 3 1 *"),
            ("*/5 1-5/2 1,15 jan", "*/5 1-5/2 1,15 1"),
            ("0 0 * * MON-fri", "0 0 * * 1-5"),
            ("5/10 3", "5/10 3 * *"),
            ("5/1 3/1", "5-59 3-23 * *"),
            ("*/1 0-23/1", "* 0-23 * *"),
            ("0 0 * * 7", "0 0 * * 7"),
            ("0 0 1 DEC sun", "0 0 1 12 0"),
        ] {
            let parsed = s(expr);
            assert_eq!(parsed.to_string(), canonical, "{expr}");
            assert_eq!(s(canonical), parsed, "{expr} round trip");
        }
    }

    #[test]
    fn errors_name_the_field_and_value() {
        for (expr, message) in [
            ("0 0 32", "day field '32': 32 is outside 1-31"),
            ("60 0", "minute field '60': 60 is outside 0-59"),
            ("0 24", "hour field '24': 24 is outside 0-23"),
            ("0 0 1 13", "month field '13': 13 is outside 1-12"),
            ("0 0 1 0", "month field '0': 0 is outside 1-12"),
            ("0 0 0", "day field '0': 0 is outside 1-31"),
            ("0 0 * * 8", "weekday field '8': 8 is outside 0-7"),
            ("*/0 3", "minute field '*/0': step 0 is outside 1-59"),
            ("*/60 3", "minute field '*/60': step 60 is outside 1-59"),
            ("0 5-2", "hour field '5-2': range 5-2 is reversed"),
            ("1,,2 3", "minute field '1,,2': empty list item"),
            ("1, 3", "minute field '1,': empty list item"),
            ("0 -3", "hour field '-3': empty list item"),
            ("0 3/", "hour field '3/': empty list item"),
            ("x 3", "minute field 'x': 'x' is not a number"),
            ("0 0 1 foo", "month field 'foo': 'foo' is neither a number nor a name"),
            ("0 0 * * mon-xyz", "weekday field 'mon-xyz': 'xyz' is neither a number nor a name"),
            ("0 99999999999999", "hour field '99999999999999': 4294967295 is outside 0-23"),
            ("0 0 30 2", "schedule '0 0 30 2' never matches: no month in the month field has a day from the day field"),
            ("0 0 31 4", "schedule '0 0 31 4' never matches: no month in the month field has a day from the day field"),
            ("0", "schedule '0' has 1 fields: use 2 to 4 (minute hour [day [month]]) or 5 (minute hour day-of-month month day-of-week)"),
            ("", "schedule is empty"),
        ] {
            let err = Schedule::parse(expr).unwrap_err();
            assert_eq!(err.to_string(), message, "{expr:?}");
        }
        assert_eq!(Schedule::parse("0 0 32").unwrap_err().field(), Some(FieldName::Day));
        assert!(Schedule::parse("0 0 1 2 3 4").is_err());
        // Names only where they make sense.
        assert!(Schedule::parse("0 0 mon").is_err());
        // 31 April never matches, but with a weekday in the OR rule it does.
        assert!(Schedule::parse("0 0 31 4 mon").is_ok());
        assert!(Schedule::parse("0 0 29 2").is_ok());
    }

    #[test]
    fn serde_is_the_canonical_string() {
        let json = serde_json::to_string(&s("0 3")).unwrap();
        assert_eq!(json, "\"0 3 * *\"");
        assert_eq!(serde_json::from_str::<Schedule>(&json).unwrap(), s("0 3"));
        assert!(serde_json::from_str::<Schedule>("\"0 0 30 2\"").is_err());
    }

    #[test]
    fn month_and_year_ends() {
        let d = s("0 0 31");
        assert_eq!(d.next_after(utc(2025, 4, 1, 0, 0), UTC), Some(utc(2025, 5, 31, 0, 0)));
        assert_eq!(d.next_after(utc(2025, 12, 31, 0, 0), UTC), Some(utc(2026, 1, 31, 0, 0)));
        let y = s("59 23 31 12");
        assert_eq!(y.next_after(utc(2025, 12, 31, 23, 59), UTC), Some(utc(2026, 12, 31, 23, 59)));
        assert_eq!(y.next_after(utc(2025, 12, 31, 23, 58), UTC), Some(utc(2025, 12, 31, 23, 59)));
        let leap = s("0 0 29 2");
        assert_eq!(leap.next_after(utc(2025, 3, 1, 0, 0), UTC), Some(utc(2028, 2, 29, 0, 0)));
        assert_eq!(leap.next_after(utc(2096, 3, 1, 0, 0), UTC), Some(utc(2104, 2, 29, 0, 0)));
        // Seconds count: 00:00:30 is after the 00:00 run.
        let every = s("* *");
        let t = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 30).unwrap();
        assert_eq!(every.next_after(t, UTC), Some(utc(2025, 1, 1, 0, 1)));
    }

    #[test]
    fn steps_and_ranges() {
        let t = utc(2025, 1, 1, 0, 0);
        let runs: Vec<_> = s("5/20 1-3/2").upcoming(t, UTC).take(6).collect();
        let expected: Vec<_> = [(1, 5), (1, 25), (1, 45), (3, 5), (3, 25), (3, 45)]
            .iter()
            .map(|&(h, m)| utc(2025, 1, 1, h, m))
            .collect();
        assert_eq!(runs, expected);
    }

    #[test]
    fn cron_weekdays_and_or_rule() {
        // 2025-06-04 is a Wednesday.
        let t = utc(2025, 6, 4, 12, 0);
        assert_eq!(s("0 0 * * 1").next_after(t, UTC), Some(utc(2025, 6, 9, 0, 0)));
        assert_eq!(s("0 0 * * 0").next_after(t, UTC), Some(utc(2025, 6, 8, 0, 0)));
        assert_eq!(s("0 0 * * 7").next_after(t, UTC), Some(utc(2025, 6, 8, 0, 0)));
        assert_eq!(s("0 0 * * fri-sat").next_after(t, UTC), Some(utc(2025, 6, 6, 0, 0)));
        // Both restricted: the 1st of the month OR a Monday.
        let either = s("0 0 1 * 1");
        assert_eq!(either.next_after(t, UTC), Some(utc(2025, 6, 9, 0, 0)));
        assert_eq!(either.next_after(utc(2025, 6, 30, 0, 0), UTC), Some(utc(2025, 7, 1, 0, 0)));
        // A `*`-led day-of-month (`*/2`: odd days) is not "restricted": both sets must match.
        assert_eq!(s("0 0 */2 * 1").next_after(t, UTC), Some(utc(2025, 6, 9, 0, 0)));
        assert_eq!(s("0 0 */2 * 1").next_after(utc(2025, 6, 9, 0, 0), UTC), Some(utc(2025, 6, 23, 0, 0)));
        // Vieter form with a * day equals cron with * weekday.
        assert_eq!(s("0 3").next_after(t, UTC), s("0 3 * * *").next_after(t, UTC));
    }

    #[test]
    fn dst_gap_moves_to_the_end_of_the_gap() {
        // Brussels, 2025-03-30: 02:00 CET jumps to 03:00 CEST (01:00 UTC).
        let run = s("30 2").next_after(utc(2025, 3, 29, 12, 0), Brussels);
        assert_eq!(run, Some(utc(2025, 3, 30, 1, 0)));
        // Then the next day at 02:30 CEST.
        assert_eq!(s("30 2").next_after(utc(2025, 3, 30, 1, 0), Brussels), Some(utc(2025, 3, 31, 0, 30)));
        // Several minutes in the gap: one run.
        let runs: Vec<_> = s("*/15 2-3").upcoming(utc(2025, 3, 30, 0, 0), Brussels).take(3).collect();
        assert_eq!(runs, [utc(2025, 3, 30, 1, 0), utc(2025, 3, 30, 1, 15), utc(2025, 3, 30, 1, 30)]);
    }

    #[test]
    fn dst_fold_runs_once() {
        // New York, 2025-11-02: 02:00 EDT falls back to 01:00 EST; 01:30 happens at 05:30 and 06:30 UTC.
        let sched = s("30 1");
        let first = sched.next_after(utc(2025, 11, 2, 0, 0), New_York);
        assert_eq!(first, Some(utc(2025, 11, 2, 5, 30)));
        assert_eq!(sched.next_after(utc(2025, 11, 2, 5, 30), New_York), Some(utc(2025, 11, 3, 6, 30)));
        // Starting inside the second pass of the hour: nothing more that day.
        assert_eq!(sched.next_after(utc(2025, 11, 2, 6, 0), New_York), Some(utc(2025, 11, 3, 6, 30)));
    }

    #[test]
    fn never_existing_local_time_is_bounded() {
        // Every time is resolvable in UTC: a deep future search still terminates.
        assert_eq!(s("0 0 29 2").next_after(utc(2025, 3, 1, 0, 0), UTC).map(|d| d.year()), Some(2028));
        assert!(s("0 0").next_after(DateTime::<Utc>::MAX_UTC, UTC).is_none());
    }
}
