//! Property checks of `Schedule::next_after` against a brute-force oracle, over many generated
//! expressions, start times and time zones (deterministic PRNG, fake clock).
//!
//! The oracle knows each generated field as a set of values (computed here from the generator's own
//! description, not by the parser) and walks UTC minute by minute. An instant `u` is a run when
//! - its wall-clock time matches and `u` is that wall-clock time's first occurrence (a repeated hour runs
//!   once), or
//! - the wall clock jumped forward into `u` (a daylight-saving gap ends at `u`) and some wall-clock minute
//!   skipped by the jump matches (a run in the gap moves to the end of the gap).

use chrono::{DateTime, Datelike, Duration, NaiveDateTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use libvieter::schedule::{Schedule, ScheduleError};

/// splitmix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u32) -> u32 {
        (self.next() % u64::from(n)) as u32
    }
    fn range(&mut self, lo: u32, hi: u32) -> u32 {
        lo + self.below(hi - lo + 1)
    }
}

/// A generated field: its text and the set of values it allows.
struct GenField {
    text: String,
    values: Vec<bool>,
}

/// Generates a field over `min..=max`; `dense` favours `*` and wide items.
fn gen_field(rng: &mut Rng, min: u32, max: u32, star_chance: u32) -> GenField {
    let mut values = vec![false; max as usize + 1];
    if rng.below(100) < star_chance {
        if rng.below(3) == 0 {
            let step = rng.range(1, (max - min).min(12));
            for v in (min..=max).step_by(step as usize) {
                values[v as usize] = true;
            }
            return GenField { text: format!("*/{step}"), values };
        }
        for v in min..=max {
            values[v as usize] = true;
        }
        return GenField { text: "*".into(), values };
    }
    let mut items = Vec::new();
    for _ in 0..rng.range(1, 3) {
        let a = rng.range(min, max);
        let b = rng.range(a, max);
        let step = rng.range(1, (max - min).min(10));
        let (text, lo, hi, st) = match rng.below(4) {
            0 => (a.to_string(), a, a, 1),
            1 => (format!("{a}-{b}"), a, b, 1),
            2 => (format!("{a}/{step}"), a, max, step),
            _ => (format!("{a}-{b}/{step}"), a, b, step),
        };
        for v in (lo..=hi).step_by(st as usize) {
            values[v as usize] = true;
        }
        items.push(text);
    }
    GenField { text: items.join(","), values }
}

struct GenSchedule {
    expr: String,
    minute: Vec<bool>,
    hour: Vec<bool>,
    day: Vec<bool>,
    month: Vec<bool>,
    /// Indexed 0-6 from Sunday; `None` for Vieter's form.
    weekday: Option<Vec<bool>>,
    /// Cron's OR rule applies (both day fields restricted).
    either: bool,
}

fn gen_schedule(rng: &mut Rng) -> GenSchedule {
    let minute = gen_field(rng, 0, 59, 15);
    let hour = gen_field(rng, 0, 23, 50);
    let mut day = gen_field(rng, 1, 31, 70);
    let mut month = gen_field(rng, 1, 12, 80);
    if rng.below(10) == 0 {
        // Late days in short months: often never matching (`30 2`), sometimes only in leap years.
        let (text, days): (&str, &[usize]) =
            [("30", &[30][..]), ("31", &[31]), ("29-31", &[29, 30, 31]), ("30/1", &[30, 31])]
                [rng.below(4) as usize];
        day = GenField { text: text.into(), values: (0..=31).map(|d| days.contains(&d)).collect() };
        let short: Vec<usize> = [2, 4, 6, 9, 11].into_iter().filter(|_| rng.below(2) == 0).collect();
        let short = if short.is_empty() { vec![2] } else { short };
        let text = short.iter().map(|m| m.to_string()).collect::<Vec<_>>().join(",");
        month = GenField { text, values: (0..=12).map(|m| short.contains(&m)).collect() };
    }
    if rng.below(2) == 0 {
        // Vieter form: 2 to 4 fields, trailing `*` may be left out.
        let fields = [&minute.text, &hour.text, &day.text, &month.text];
        let mut count = 4;
        while count > 2 && fields[count - 1] == "*" && rng.below(2) == 0 {
            count -= 1;
        }
        let expr = fields[..count].iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ");
        GenSchedule {
            expr,
            minute: minute.values,
            hour: hour.values,
            day: day.values,
            month: month.values,
            weekday: None,
            either: false,
        }
    } else {
        let dow = gen_field(rng, 0, 7, 60);
        let mut weekday = vec![false; 7];
        for (v, &on) in dow.values.iter().enumerate() {
            if on {
                weekday[v % 7] = true;
            }
        }
        let either = !day.text.starts_with('*') && !dow.text.starts_with('*');
        GenSchedule {
            expr: format!("{} {} {} {} {}", minute.text, hour.text, day.text, month.text, dow.text),
            minute: minute.values,
            hour: hour.values,
            day: day.values,
            month: month.values,
            weekday: Some(weekday),
            either,
        }
    }
}

impl GenSchedule {
    fn matches(&self, local: NaiveDateTime) -> bool {
        let dom = self.day[local.day() as usize];
        let day_ok = match &self.weekday {
            None => dom,
            Some(w) => {
                let dow = w[local.weekday().num_days_from_sunday() as usize];
                if self.either {
                    dom || dow
                } else {
                    dom && dow
                }
            }
        };
        self.minute[local.minute() as usize]
            && self.hour[local.hour() as usize]
            && self.month[local.month() as usize]
            && day_ok
    }

    /// Some (month, day) pair exists (29 February included) or the weekday rule makes every month match.
    fn can_match(&self) -> bool {
        if self.either {
            return true;
        }
        let days_in = [0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
        (1..=12).any(|m| self.month[m] && (1..=days_in[m]).any(|d| self.day[d]))
    }
}

fn local(u: DateTime<Utc>, tz: Tz) -> NaiveDateTime {
    u.with_timezone(&tz).naive_local()
}

/// The oracle: is the whole minute `u` a run of `g` in `tz`?
fn is_run(g: &GenSchedule, u: DateTime<Utc>, tz: Tz) -> bool {
    let here = local(u, tz);
    let first_occurrence = tz.from_local_datetime(&here).earliest().map(|d| d.with_timezone(&Utc)) == Some(u);
    if g.matches(here) && first_occurrence {
        return true;
    }
    // A jump forward into `u`: the skipped wall-clock minutes run at `u`.
    let before = local(u - Duration::minutes(1), tz);
    let mut skipped = before + Duration::minutes(1);
    while skipped < here {
        if g.matches(skipped) {
            return true;
        }
        skipped += Duration::minutes(1);
    }
    false
}

/// The first run strictly after `t`, walking at most `limit` minutes.
fn brute_next(g: &GenSchedule, t: DateTime<Utc>, tz: Tz, limit: i64) -> Option<DateTime<Utc>> {
    let start = t.with_second(0).and_then(|d| d.with_nanosecond(0)).unwrap_or(t) + Duration::minutes(1);
    (0..limit).map(|i| start + Duration::minutes(i)).find(|&u| is_run(g, u, tz))
}

const ZONES: [Tz; 5] = [
    chrono_tz::UTC,
    chrono_tz::Europe::Brussels,
    chrono_tz::America::New_York,
    // Half-hour daylight-saving shift.
    chrono_tz::Australia::Lord_Howe,
    // Offset of +05:45.
    chrono_tz::Asia::Kathmandu,
];

/// Transition instants worth starting near.
fn dst_instants() -> Vec<DateTime<Utc>> {
    [
        (2025, 3, 30, 1, 0),   // Brussels spring forward
        (2025, 10, 26, 1, 0),  // Brussels fall back
        (2025, 3, 9, 7, 0),    // New York spring forward
        (2025, 11, 2, 6, 0),   // New York fall back
        (2025, 4, 5, 15, 0),   // Lord Howe fall back (02:00 → 01:30)
        (2025, 10, 4, 15, 30), // Lord Howe spring forward (02:00 → 02:30)
    ]
    .iter()
    .map(|&(y, mo, d, h, mi)| Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap())
    .collect()
}

fn random_start(rng: &mut Rng) -> DateTime<Utc> {
    let transitions = dst_instants();
    if rng.below(2) == 0 {
        let base = transitions[rng.below(transitions.len() as u32) as usize];
        base - Duration::minutes(i64::from(rng.below(60 * 30))) + Duration::seconds(i64::from(rng.below(60)))
    } else {
        let base = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
        base + Duration::seconds(i64::from(rng.below(6 * 365 * 24 * 3600)))
    }
}

#[test]
fn next_after_agrees_with_a_minute_walk() {
    let mut rng = Rng(0x5eed);
    let (mut checked, mut found_by_walk, mut rejected) = (0, 0, 0);
    const WINDOW: i64 = 3 * 24 * 60;
    while checked < 2000 {
        let g = gen_schedule(&mut rng);
        let schedule = match Schedule::parse(&g.expr) {
            Ok(s) => s,
            Err(ScheduleError::NeverMatches { .. }) => {
                assert!(!g.can_match(), "{:?} was refused but can match", g.expr);
                rejected += 1;
                continue;
            }
            Err(e) => panic!("{:?} refused: {e}", g.expr),
        };
        assert!(g.can_match(), "{:?} accepted but never matches", g.expr);
        // The canonical text means the same.
        let again = Schedule::parse(&schedule.to_string()).unwrap();
        assert_eq!(again, schedule, "{}", g.expr);
        let tz = ZONES[rng.below(ZONES.len() as u32) as usize];
        let t = random_start(&mut rng);
        let next = schedule.next_after(t, tz).unwrap_or_else(|| panic!("{:?} has no run after {t}", g.expr));
        let ctx = format!("{:?} in {tz} after {t}: next_after = {next}", g.expr);
        assert!(next > t, "{ctx}");
        assert_eq!(next.second(), 0, "{ctx}");
        assert!(is_run(&g, next, tz), "{ctx}: not a run by the oracle (local {})", local(next, tz));
        // Nothing between t and next is a run.
        let walked = brute_next(&g, t, tz, WINDOW);
        match walked {
            Some(w) => {
                assert_eq!(w, next, "{ctx}: the walk found {w} first");
                found_by_walk += 1;
            }
            None => assert!(next > t + Duration::minutes(WINDOW), "{ctx}: the walk found nothing"),
        }
        // The next few runs keep agreeing, in strictly increasing order.
        let mut prev = next;
        for run in schedule.upcoming(next, tz).take(3) {
            assert!(run > prev, "{ctx}");
            assert!(is_run(&g, run, tz), "{ctx}: upcoming run {run} is not a run");
            if run - prev <= Duration::minutes(WINDOW) {
                assert_eq!(brute_next(&g, prev, tz, WINDOW), Some(run), "{ctx}: after {prev}");
            }
            prev = run;
        }
        checked += 1;
    }
    println!("{checked} expressions, {found_by_walk} confirmed by the minute walk, {rejected} refused");
    // The generator exercised both the walk and the refusal path.
    assert!(found_by_walk > 800, "only {found_by_walk} cases checked by the walk");
    assert!(rejected > 0, "no never-matching expression was generated");
}

#[test]
fn every_minute_around_dst_transitions() {
    // "* *" runs every wall-clock minute once: across a gap the first minute after it runs once, across a
    // fold the repeated minutes do not run again.
    let every: Schedule = "* *".parse().unwrap();
    for tz in [chrono_tz::Europe::Brussels, chrono_tz::America::New_York, chrono_tz::Australia::Lord_Howe] {
        for at in dst_instants() {
            let start = at - Duration::hours(3);
            let end = at + Duration::hours(3);
            let runs: Vec<_> = every.upcoming(start, tz).take_while(|&u| u < end).collect();
            // Every UTC minute that is the first occurrence of its wall-clock minute, and only those.
            let expected: Vec<_> = (1..6 * 60)
                .map(|i| start + Duration::minutes(i))
                .filter(|&u| {
                    tz.from_local_datetime(&local(u, tz)).earliest().map(|d| d.with_timezone(&Utc)) == Some(u)
                })
                .collect();
            assert_eq!(runs, expected, "{tz} around {at}");
            let repeated = 6 * 60 - 1 - runs.len();
            assert!([0, 30, 60].contains(&repeated), "{tz} around {at}: {repeated} minutes repeated");
        }
    }
    // Fall back in Brussels: 02:00-02:59 occurs twice; "*/10 2" runs 6 times, not 12.
    let tz = chrono_tz::Europe::Brussels;
    let s: Schedule = "*/10 2".parse().unwrap();
    let start = Utc.with_ymd_and_hms(2025, 10, 25, 22, 0, 0).unwrap();
    let runs: Vec<_> = s.upcoming(start, tz).take_while(|&u| u < start + Duration::hours(12)).collect();
    assert_eq!(runs.len(), 6, "{runs:?}");
    assert_eq!(runs[0], Utc.with_ymd_and_hms(2025, 10, 26, 0, 0, 0).unwrap()); // 02:00 CEST
                                                                               // Spring forward in Brussels: 02:00-02:59 does not exist; "*/10 2" runs once, at 03:00 CEST.
    let start = Utc.with_ymd_and_hms(2025, 3, 29, 22, 0, 0).unwrap();
    let runs: Vec<_> = s.upcoming(start, tz).take_while(|&u| u < start + Duration::hours(12)).collect();
    assert_eq!(runs, [Utc.with_ymd_and_hms(2025, 3, 30, 1, 0, 0).unwrap()]);
    // New York spring forward: 02:30 → 03:00 EDT (07:00 UTC); fall back: 01:30 once, at 05:30 UTC (EDT).
    let ny = chrono_tz::America::New_York;
    let s: Schedule = "30 2".parse().unwrap();
    let t = Utc.with_ymd_and_hms(2025, 3, 8, 12, 0, 0).unwrap();
    assert_eq!(s.next_after(t, ny), Some(Utc.with_ymd_and_hms(2025, 3, 9, 7, 0, 0).unwrap()));
    let s: Schedule = "30 1".parse().unwrap();
    let t = Utc.with_ymd_and_hms(2025, 11, 1, 12, 0, 0).unwrap();
    let runs: Vec<_> = s.upcoming(t, ny).take(2).collect();
    assert_eq!(
        runs,
        [
            Utc.with_ymd_and_hms(2025, 11, 2, 5, 30, 0).unwrap(),
            Utc.with_ymd_and_hms(2025, 11, 3, 6, 30, 0).unwrap()
        ]
    );
}

#[test]
fn month_year_ends_and_leap_days() {
    let utc = |y, mo, d, h, mi| Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap();
    let cases = [
        ("0 0 29 2", utc(2025, 3, 1, 0, 0), utc(2028, 2, 29, 0, 0)),
        ("0 0 29 2", utc(2028, 2, 29, 0, 0), utc(2032, 2, 29, 0, 0)),
        ("0 0 29 2", utc(2097, 1, 1, 0, 0), utc(2104, 2, 29, 0, 0)), // 2100 is not a leap year
        ("0 0 31", utc(2025, 1, 31, 0, 0), utc(2025, 3, 31, 0, 0)),
        ("0 0 30", utc(2025, 1, 30, 0, 0), utc(2025, 3, 30, 0, 0)),
        ("0 0 1 1", utc(2025, 12, 31, 23, 59), utc(2026, 1, 1, 0, 0)),
        ("59 23 31 12", utc(2025, 1, 1, 0, 0), utc(2025, 12, 31, 23, 59)),
        ("0 12 28-31 2", utc(2025, 2, 28, 12, 0), utc(2026, 2, 28, 12, 0)),
        ("0 12 28-31 2", utc(2027, 2, 28, 12, 0), utc(2028, 2, 28, 12, 0)),
        ("0 12 28-31 2", utc(2028, 2, 28, 12, 0), utc(2028, 2, 29, 12, 0)),
        ("0 0 13 * fri", utc(2025, 1, 1, 0, 0), utc(2025, 1, 3, 0, 0)), // OR: any Friday or the 13th
        ("0 0 * 2 5", utc(2025, 3, 1, 0, 0), utc(2026, 2, 6, 0, 0)),
    ];
    for (expr, after, expected) in cases {
        let s: Schedule = expr.parse().unwrap();
        assert_eq!(s.next_after(after, chrono_tz::UTC), Some(expected), "{expr} after {after}");
    }
    // The same in a zone east of UTC: midnight local on 29 February is the previous evening in UTC.
    let s: Schedule = "0 0 29 2".parse().unwrap();
    let next = s.next_after(utc(2025, 3, 1, 0, 0), chrono_tz::Europe::Brussels).unwrap();
    assert_eq!(next, utc(2028, 2, 28, 23, 0));
}

#[test]
fn refused_expressions_name_the_field() {
    let mut rng = Rng(99);
    for _ in 0..300 {
        // Break one field of a valid expression and check the error points at it.
        let fields = ["minute", "hour", "day", "month", "weekday"];
        let (mins, maxs) = ([0, 0, 1, 1, 0], [59, 23, 31, 12, 7]);
        let i = rng.below(5) as usize;
        let bad = match rng.below(4) {
            0 => (maxs[i] + 1 + rng.below(100)).to_string(),
            1 => format!("*/{}", if rng.below(2) == 0 { 0 } else { maxs[i] - mins[i] + 1 }),
            2 => format!("{}-{}", maxs[i], mins[i]),
            _ => format!("{},", mins[i]),
        };
        let mut parts = ["0", "0", "1", "1", "*"];
        parts[i] = &bad;
        let expr = parts.join(" ");
        let err = Schedule::parse(&expr).unwrap_err();
        let message = err.to_string();
        assert!(message.starts_with(&format!("{} field '{bad}'", fields[i])), "{expr}: {message}");
        assert_eq!(err.field().map(|f| f.to_string()).as_deref(), Some(fields[i]), "{expr}");
    }
}
