//! `vieter schedule '<expr>' [--count N] [--tz ZONE]`: the next run times of a schedule, computed offline.

use clap::Args;
use libvieter::schedule::Schedule;

use crate::output::table;
use crate::Context;

#[derive(Debug, Args)]
pub struct ScheduleArgs {
    /// Vieter's `minute hour [day [month]]` or 5-field cron (`minute hour day month weekday`).
    expression: String,
    /// How many run times to print.
    #[arg(long, short = 'n', default_value_t = 5)]
    count: usize,
    /// Time zone the schedule is read in (the server's `timezone` setting), e.g. Europe/Brussels.
    #[arg(long, default_value = "UTC")]
    tz: String,
}

pub fn run(ctx: &Context, args: ScheduleArgs) -> Result<(), String> {
    let schedule = Schedule::parse(&args.expression).map_err(|e| format!("invalid schedule: {e}"))?;
    let tz: chrono_tz::Tz = args.tz.parse().map_err(|_| format!("unknown time zone {:?}", args.tz))?;
    let runs: Vec<_> = schedule.upcoming(chrono::Utc::now(), tz).take(args.count).collect();
    ctx.out.print(&runs, || {
        let mut t = table(["RUN (UTC)", &format!("RUN ({tz})")]);
        for r in &runs {
            t.add_row(vec![
                r.format("%Y-%m-%d %H:%M").to_string(),
                r.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z").to_string(),
            ]);
        }
        t
    })
}
