//! Scenario "soak": the relay at one low, steady rate for a long time (by default 20
//! chats, one per agent, 10 msg/s each, both sides sending, for an hour), with the hub's
//! resident memory read every few seconds. This module is the pure part: the samples,
//! the growth over the run's last stretch (the verdict: a bounded hub levels off), and
//! the curve as a table. `relay::run` takes the samples.

use serde_json::{Value, json};

/// The stretch at the run's end whose growth is the verdict: the last 20 minutes.
pub const WINDOW_SECS: f64 = 20.0 * 60.0;

/// The most the hub's resident memory may grow over [`WINDOW_SECS`] (1 MiB, in KiB).
pub const TARGET_GROWTH_KIB: f64 = 1024.0;

/// One reading of the hub's resident memory.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Seconds since the traffic started.
    pub secs: f64,
    /// VmRSS, KiB.
    pub rss_kib: u64,
}

impl Sample {
    pub fn json(&self) -> Value {
        json!([(self.secs * 10.0).round() / 10.0, self.rss_kib])
    }

    /// Reads back what [`Sample::json`] wrote.
    pub fn from_json(v: &Value) -> Option<Sample> {
        Some(Sample {
            secs: v.get(0)?.as_f64()?,
            rss_kib: v.get(1)?.as_u64()?,
        })
    }
}

/// How much the memory grew over the last stretch of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Growth {
    /// The stretch's length: [`WINDOW_SECS`], or the run's second half when the run is
    /// shorter than twice that (a short trial run, labelled so).
    pub window_secs: f64,
    /// The rise of the least-squares line through the stretch's samples, KiB: one
    /// sample's noise (a burst of frames in flight) does not decide it.
    pub fitted_kib: f64,
    /// The same line's slope, KiB a minute.
    pub kib_per_min: f64,
    /// The last sample minus the first of the stretch, KiB.
    pub end_to_end_kib: i64,
    /// The highest and lowest samples of the stretch, KiB.
    pub max_kib: u64,
    pub min_kib: u64,
    pub samples: usize,
}

impl Growth {
    /// The fitted line's rise over 20 minutes: over the window itself in a full run, and
    /// a shortened run's slope carried to 20 minutes (a short stretch must not pass by
    /// being short).
    pub fn per_twenty_minutes_kib(&self) -> f64 {
        self.kib_per_min * WINDOW_SECS / 60.0
    }

    pub fn meets_target(&self) -> bool {
        self.per_twenty_minutes_kib() < TARGET_GROWTH_KIB
    }

    pub fn json(&self) -> Value {
        json!({
            "window_secs": self.window_secs.round() as i64,
            "fitted_growth_kib": self.fitted_kib.round() as i64,
            "kib_per_min": (self.kib_per_min * 10.0).round() / 10.0,
            "per_twenty_minutes_kib": self.per_twenty_minutes_kib().round() as i64,
            "end_to_end_kib": self.end_to_end_kib,
            "max_kib": self.max_kib,
            "min_kib": self.min_kib,
            "samples": self.samples,
            "target_kib": TARGET_GROWTH_KIB,
            "meets_target": self.meets_target(),
        })
    }
}

/// The growth over the last [`WINDOW_SECS`] of `samples` (in time order), or over the
/// second half of a shorter run; None with fewer than three samples in the stretch.
pub fn growth(samples: &[Sample]) -> Option<Growth> {
    let (first, last) = (samples.first()?, samples.last()?);
    let run = last.secs - first.secs;
    let window_secs = if run >= 2.0 * WINDOW_SECS {
        WINDOW_SECS
    } else {
        run / 2.0
    };
    let from = last.secs - window_secs;
    let stretch: Vec<&Sample> = samples.iter().filter(|s| s.secs >= from).collect();
    if stretch.len() < 3 {
        return None;
    }
    let n = stretch.len() as f64;
    let mean_t = stretch.iter().map(|s| s.secs).sum::<f64>() / n;
    let mean_m = stretch.iter().map(|s| s.rss_kib as f64).sum::<f64>() / n;
    let (mut covariance, mut variance) = (0.0, 0.0);
    for s in &stretch {
        covariance += (s.secs - mean_t) * (s.rss_kib as f64 - mean_m);
        variance += (s.secs - mean_t).powi(2);
    }
    let slope = if variance > 0.0 { covariance / variance } else { 0.0 };
    let span = stretch[stretch.len() - 1].secs - stretch[0].secs;
    Some(Growth {
        window_secs,
        fitted_kib: slope * span,
        kib_per_min: slope * 60.0,
        end_to_end_kib: stretch[stretch.len() - 1].rss_kib as i64 - stretch[0].rss_kib as i64,
        max_kib: stretch.iter().map(|s| s.rss_kib).max().unwrap_or(0),
        min_kib: stretch.iter().map(|s| s.rss_kib).min().unwrap_or(0),
        samples: stretch.len(),
    })
}

/// The curve as Markdown rows, one a minute (the first sample at or after each whole
/// minute) plus the last: minute, VmRSS in MiB, change since the row before.
pub fn curve_rows(samples: &[Sample]) -> Vec<(f64, f64, Option<f64>)> {
    let mut rows = vec![];
    let mut next_minute = 0.0;
    for (i, s) in samples.iter().enumerate() {
        let last = i + 1 == samples.len();
        if s.secs + 0.5 >= next_minute || last {
            let mib = s.rss_kib as f64 / 1024.0;
            let change = rows.last().map(|(_, before, _): &(f64, f64, Option<f64>)| mib - before);
            rows.push((s.secs / 60.0, mib, change));
            next_minute = (s.secs / 60.0 + 0.5).floor() * 60.0 + 60.0;
        }
    }
    rows
}

/// The report's soak section: the verdict's figures and the curve.
pub fn section(figures: &Value) -> String {
    let samples: Vec<Sample> = figures["rss_samples"]
        .as_array()
        .map(|a| a.iter().filter_map(Sample::from_json).collect())
        .unwrap_or_default();
    let mut md = format!(
        "\n## Soak: the hub's resident memory over a long steady run\n\n\
         {} chats, one per agent, {} msg/s in all ({} a chat, both sides sending), {}-byte messages, default \
         configuration (embedded store, acknowledgements after the journal's commit, default limits), neither \
         process pinned; VmRSS from /proc every {} s over {:.0} minutes of traffic. The table has one sample a minute.\n\n",
        figures["chats"],
        number(&figures["soak_rate"]),
        figures["soak_rate"]
            .as_f64()
            .zip(figures["chats"].as_f64())
            .map_or("?".into(), |(r, c)| format!("{}", r / c)),
        figures["message_bytes"],
        number(&figures["rss_every_secs"]),
        samples.last().map_or(0.0, |s| s.secs / 60.0),
    );
    if let Some(g) = growth(&samples) {
        md.push_str(&format!(
            "Over the last {:.0} minutes ({} samples): the least-squares line through the samples rises {:.0} KiB ({:.1} KiB \
             a minute); last sample minus first {} KiB; range {:.1}–{:.1} MiB. Target: less than {:.0} KiB over the last 20 \
             minutes of an hour{}.\n\n",
            g.window_secs / 60.0,
            g.samples,
            g.fitted_kib,
            g.kib_per_min,
            g.end_to_end_kib,
            g.min_kib as f64 / 1024.0,
            g.max_kib as f64 / 1024.0,
            TARGET_GROWTH_KIB,
            if g.window_secs < WINDOW_SECS {
                format!(
                    " (a shortened run: judged on its second half's slope carried to 20 minutes, {:.0} KiB)",
                    g.per_twenty_minutes_kib()
                )
            } else {
                String::new()
            },
        ));
    }
    md.push_str("| minute | VmRSS MiB | change MiB |\n| --- | --- | --- |\n");
    for (minute, mib, change) in curve_rows(&samples) {
        md.push_str(&format!(
            "| {minute:.1} | {mib:.1} | {} |\n",
            change.map_or("".into(), |c| format!("{c:+.2}"))
        ));
    }
    md
}

/// A figure as written in the prose: whole numbers without a decimal point.
pub fn number(v: &Value) -> String {
    match v.as_f64() {
        Some(f) if f.fract() == 0.0 => format!("{f:.0}"),
        Some(f) => f.to_string(),
        None => "?".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(minutes: u64, start_kib: u64, kib_per_min: u64) -> Vec<Sample> {
        (0..=minutes * 6)
            .map(|i| Sample {
                secs: i as f64 * 10.0,
                rss_kib: start_kib + kib_per_min * i / 6,
            })
            .collect()
    }

    #[test]
    fn an_hour_is_judged_on_its_last_twenty_minutes() {
        // Grows 100 KiB a minute for 40 minutes, then stays flat.
        let mut samples = line(40, 50_000, 100);
        let top = samples.last().unwrap().rss_kib;
        samples.extend((241..=360).map(|i| Sample {
            secs: i as f64 * 10.0,
            rss_kib: top,
        }));
        let g = growth(&samples).unwrap();
        assert_eq!(g.window_secs, WINDOW_SECS);
        assert_eq!(g.samples, 121);
        assert_eq!(g.end_to_end_kib, 0);
        assert!(g.fitted_kib.abs() < 1.0, "{g:?}");
        assert!(g.meets_target());
    }

    #[test]
    fn a_steady_creep_falls_short() {
        // 1 MiB a minute for an hour: 20 MiB over the window.
        let g = growth(&line(60, 50_000, 1024)).unwrap();
        assert!((g.fitted_kib - 20.0 * 1024.0).abs() < 200.0, "{g:?}");
        assert!((g.kib_per_min - 1024.0).abs() < 10.0, "{g:?}");
        assert!(!g.meets_target());
    }

    #[test]
    fn a_short_run_is_judged_on_its_second_half_carried_to_twenty_minutes() {
        let g = growth(&line(10, 50_000, 10)).unwrap();
        assert_eq!(g.window_secs, 300.0);
        assert_eq!(g.samples, 31);
        assert!(g.meets_target(), "{g:?}");
        // 900 KiB over 5 minutes is under 1 MiB, but 3.6 MiB over 20.
        let g = growth(&line(10, 50_000, 180)).unwrap();
        assert!(g.fitted_kib < TARGET_GROWTH_KIB, "{g:?}");
        assert!(!g.meets_target(), "{g:?}");
        assert!(growth(&line(0, 50_000, 10)).is_none());
    }

    #[test]
    fn the_curve_has_a_row_a_minute_and_the_last_sample() {
        let mut samples = line(3, 1024, 1024);
        samples.push(Sample {
            secs: 185.0,
            rss_kib: 5 * 1024,
        });
        let rows = curve_rows(&samples);
        let minutes: Vec<f64> = rows.iter().map(|r| r.0).collect();
        assert_eq!(minutes, vec![0.0, 1.0, 2.0, 3.0, 185.0 / 60.0]);
        assert_eq!(rows[1].2, Some(1.0));
        assert_eq!(rows[0].2, None);
    }
}
