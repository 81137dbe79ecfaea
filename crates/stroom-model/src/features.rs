//! Features from daily series: the upstream density signal (excess over a
//! seasonal baseline, per route segment), its lead over the target
//! (estimated by lagged cross-correlation on training data only), and the
//! rows of the direct multi-horizon regression.
//!
//! Every feature at day `t` uses only data up to `t`, so a model fitted at a
//! cutoff never sees later days.
//!
//! [`density_excess`] compares each cell with the median of its same weekday
//! over the previous weeks, weighted so that a quiet rural cell on the path
//! outweighs a city. Every segment gives two signals: over the last
//! [`BASELINE_WEEKS`] weeks, which shows surges, and over the last
//! [`LONG_BASELINE_WEEKS`] weeks (two years), which follows the seasonal
//! level of the flow through the segment. [`estimate_lead`] finds each
//! signal's lead over the target by lagged cross-correlation, on data up to
//! the cutoff only.
//!
//! A regression row (`Design::row`) holds the weekly level of the `log1p`
//! target; target lags 0 to 6 and the same weekday in the last two weeks,
//! relative to that level; the four-week level; the day of week; the trend;
//! the holidays; and each upstream signal `lead` days before the forecast
//! day, when its lead covers the horizon. The regression predicts the change
//! from the weekly level, so that with no signal it stays at the current
//! level.

use chrono::{Datelike, NaiveDate};

/// Weeks of same-weekday history in a cell's recent baseline.
pub const BASELINE_WEEKS: usize = 8;

/// Weeks of same-weekday history in a cell's long baseline: two years, so
/// that it spans whole yearly cycles and does not follow the season.
pub const LONG_BASELINE_WEEKS: usize = 104;

/// Density excess of a group of cells (a route segment), one value per day,
/// over a baseline of `baseline_weeks` weeks (at least [`BASELINE_WEEKS`]).
///
/// `cells[c][t]` is cell `c`'s device total on day `t` (0 where every hour
/// was suppressed or unreported, NaN where the store has no data). Each
/// cell's baseline on day `t` is the median of the same weekday over the
/// previous `baseline_weeks` weeks (those the store has), and its weight `1
/// / (spread² + baseline + 1)`, with the spread the scaled median absolute
/// deviation of the same days, so that a cell whose count swings by
/// thousands, like a city, weighs little against a quiet rural cell on the
/// path. The segment's excess is the weighted mean of the cells' excesses
/// times the number of cells, so that it reads in devices. A cell counts on a day when it has
/// that day and the last [`BASELINE_WEEKS`] same weekdays; days where no
/// cell does are NaN.
///
/// Two baselines see different things. Over [`BASELINE_WEEKS`], a flow that
/// has lasted for two months is part of the baseline, and the excess shows
/// surges. Over [`LONG_BASELINE_WEEKS`], the baseline is the typical count
/// over the years, and the excess follows the seasonal level of the flow
/// that moves through the segment.
pub fn density_excess(cells: &[Vec<f64>], baseline_weeks: usize) -> Vec<f64> {
    let weeks = baseline_weeks.max(BASELINE_WEEKS);
    let days = cells.iter().map(Vec::len).max().unwrap_or(0);
    let mut weighted = vec![0.0f64; days];
    let mut weights = vec![0.0f64; days];
    let mut counted = vec![0usize; days];
    // Per weekday: the known values of the window, sorted.
    let mut windows: [Vec<f64>; 7] = Default::default();
    for series in cells {
        for window in &mut windows {
            window.clear();
        }
        for t in 7..series.len() {
            let window = &mut windows[t % 7];
            let entering = series[t - 7];
            if entering.is_finite() {
                let at = window.partition_point(|v| v.total_cmp(&entering).is_lt());
                window.insert(at, entering);
            }
            if let Some(leaving) = t.checked_sub(7 * (weeks + 1)).map(|i| series[i]) {
                if leaving.is_finite() {
                    let at = window.partition_point(|v| v.total_cmp(&leaving).is_lt());
                    window.remove(at);
                }
            }
            if t < 7 * BASELINE_WEEKS || !series[t].is_finite() {
                continue;
            }
            // The last eight same weekdays must be known.
            if (1..=BASELINE_WEEKS).any(|k| !series[t - 7 * k].is_finite()) {
                continue;
            }
            let baseline = sorted_median(window);
            let spread = 1.4826 * sorted_deviation(window, baseline);
            let weight = 1.0 / (spread * spread + baseline + 1.0);
            weighted[t] += weight * (series[t] - baseline);
            weights[t] += weight;
            counted[t] += 1;
        }
    }
    (0..days).map(|t| if counted[t] > 0 { weighted[t] / weights[t] * counted[t] as f64 } else { f64::NAN }).collect()
}

/// How unusual `value` is against `history` (the same weekday of earlier
/// weeks): the history's median, its spread, and the robust z-score
/// `(value − median) / spread`.
///
/// The spread is the scaled median absolute deviation (`1.4826 · MAD`,
/// the standard deviation for normal data), but never less than
/// `√(median + 1)`, the Poisson noise of a count of that size, so that a
/// history that happened to repeat one number does not make every change
/// look infinitely unusual. Unknown (non-finite) history values are skipped;
/// `None` when fewer than `min_history` are known or `value` is unknown.
pub fn robust_score(history: &[f64], value: f64, min_history: usize) -> Option<RobustScore> {
    let mut known: Vec<f64> = history.iter().copied().filter(|v| v.is_finite()).collect();
    if known.len() < min_history.max(1) || !value.is_finite() {
        return None;
    }
    known.sort_by(f64::total_cmp);
    let baseline = sorted_median(&known);
    let spread = (1.4826 * sorted_deviation(&known, baseline)).max((baseline.max(0.0) + 1.0).sqrt());
    Some(RobustScore { baseline, spread, z: (value - baseline) / spread })
}

/// A value against its history: see [`robust_score`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RobustScore {
    /// The median of the history.
    pub baseline: f64,
    /// The history's robust spread (at least the Poisson noise of the baseline).
    pub spread: f64,
    /// `(value − baseline) / spread`.
    pub z: f64,
}

/// The median absolute deviation of sorted values from `centre` (their
/// median). The distances below and above the centre are two sorted
/// sequences; their middle order statistics are found by bisection, in
/// logarithmic time.
fn sorted_deviation(sorted: &[f64], centre: f64) -> f64 {
    let n = sorted.len();
    if n == 0 {
        return f64::NAN;
    }
    let split = sorted.partition_point(|v| *v < centre);
    // below(i): the i-th smallest distance below the centre; above(j) above it.
    let below = |i: usize| centre - sorted[split - 1 - i];
    let above = |j: usize| sorted[split + j] - centre;
    let (nb, na) = (split, n - split);
    // The k-th smallest (0-based) of both: take i from below and k + 1 − i
    // from above, with the fewest i such that no distance left below is
    // smaller than one taken above.
    let kth = |k: usize| {
        let (mut lo, mut hi) = ((k + 1).saturating_sub(na), (k + 1).min(nb));
        while lo < hi {
            let i = (lo + hi) / 2;
            let j = k + 1 - i;
            if j > 0 && below(i) < above(j - 1) {
                lo = i + 1;
            } else {
                hi = i;
            }
        }
        let j = k + 1 - lo;
        let from_below = if lo > 0 { below(lo - 1) } else { f64::NEG_INFINITY };
        let from_above = if j > 0 { above(j - 1) } else { f64::NEG_INFINITY };
        from_below.max(from_above)
    };
    if n % 2 == 1 { kth(n / 2) } else { 0.5 * (kth(n / 2 - 1) + kth(n / 2)) }
}

/// The median of sorted values (the mean of the middle two for an even count).
pub(crate) fn sorted_median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 { sorted[n / 2] } else { 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]) }
}

#[cfg(test)]
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    sorted_median(values)
}

/// Trailing mean over `window` days ending at each day (NaN values are
/// skipped; NaN when the window holds none).
pub fn trailing_mean(values: &[f64], window: usize) -> Vec<f64> {
    let mut out = vec![f64::NAN; values.len()];
    let mut sum = 0.0;
    let mut count = 0usize;
    for t in 0..values.len() {
        if values[t].is_finite() {
            sum += values[t];
            count += 1;
        }
        if t >= window && values[t - window].is_finite() {
            sum -= values[t - window];
            count -= 1;
        }
        if count > 0 {
            out[t] = sum / count as f64;
        }
    }
    out
}

/// `log1p` of a count series, NaN kept.
pub fn log1p(values: &[f64]) -> Vec<f64> {
    values.iter().map(|v| if v.is_finite() { v.max(0.0).ln_1p() } else { f64::NAN }).collect()
}

/// Forward-filled copy: a NaN takes the last known value (leading NaNs stay).
pub fn forward_fill(values: &[f64]) -> Vec<f64> {
    let mut last = f64::NAN;
    values
        .iter()
        .map(|&v| {
            if v.is_finite() {
                last = v;
            }
            last
        })
        .collect()
}

/// The lead of an upstream signal over a target: the lag in days at which
/// the signal best correlates with the target later.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lead {
    pub days: usize,
    pub correlation: f64,
}

/// Estimates the lead of `signal` over `target` from days `..=end` by lagged
/// cross-correlation: both are smoothed over a week and the target's slow
/// level (its four-week mean) is removed, and the lag in `0..=max_lag` with
/// the highest Pearson correlation between `signal[t − lag]` and `target[t]`
/// is returned. `None` when no lag has a positive correlation above the
/// noise level `2/√n`.
pub fn estimate_lead(target: &[f64], signal: &[f64], end: usize, max_lag: usize) -> Option<Lead> {
    let end = end.min(target.len().saturating_sub(1)).min(signal.len().saturating_sub(1));
    let lt = log1p(&target[..=end]);
    let week = trailing_mean(&lt, 7);
    let month = trailing_mean(&lt, 28);
    let y: Vec<f64> = week.iter().zip(&month).map(|(w, m)| w - m).collect();
    let x = trailing_mean(&signal[..=end], 7);
    let mut best: Option<Lead> = None;
    for lag in 0..=max_lag {
        let pairs = (lag..=end).filter_map(|t| {
            let (a, b) = (x[t - lag], y[t]);
            (a.is_finite() && b.is_finite()).then_some((a, b))
        });
        let Some((r, n)) = pearson(pairs) else { continue };
        if r > 2.0 / (n as f64).sqrt() && best.is_none_or(|b| r > b.correlation) {
            best = Some(Lead { days: lag, correlation: r });
        }
    }
    best
}

fn pearson(pairs: impl Iterator<Item = (f64, f64)>) -> Option<(f64, usize)> {
    let (mut n, mut sx, mut sy, mut sxx, mut syy, mut sxy) = (0usize, 0.0, 0.0, 0.0, 0.0, 0.0);
    for (x, y) in pairs {
        n += 1;
        sx += x;
        sy += y;
        sxx += x * x;
        syy += y * y;
        sxy += x * y;
    }
    if n < 30 {
        return None;
    }
    let nf = n as f64;
    let cov = sxy - sx * sy / nf;
    let vx = sxx - sx * sx / nf;
    let vy = syy - sy * sy / nf;
    (vx > 0.0 && vy > 0.0).then(|| (cov / (vx * vy).sqrt(), n))
}

/// What the regression sees of one upstream segment.
#[derive(Debug, Clone)]
pub(crate) struct UpstreamFeature {
    /// Trailing weekly mean of the segment's excess, `asinh`-compressed.
    pub(crate) smoothed: Vec<f64>,
    pub(crate) lead: usize,
}

/// The regression's view of a series: the filled log target and the
/// upstream features with their leads.
#[derive(Debug, Clone)]
pub(crate) struct Design {
    pub(crate) start: NaiveDate,
    /// `log1p` of the target, forward-filled.
    pub(crate) log_target: Vec<f64>,
    pub(crate) week_mean: Vec<f64>,
    pub(crate) month_mean: Vec<f64>,
    pub(crate) upstream: Vec<UpstreamFeature>,
    pub(crate) holidays: Vec<NaiveDate>,
}

/// History a row needs, in days.
pub(crate) const ROW_HISTORY: usize = 28;

impl Design {
    pub(crate) fn new(
        start: NaiveDate,
        target: &[f64],
        upstream: Vec<UpstreamFeature>,
        holidays: Vec<NaiveDate>,
    ) -> Self {
        let log_target = forward_fill(&log1p(target));
        Self {
            start,
            week_mean: trailing_mean(&log_target, 7),
            month_mean: trailing_mean(&log_target, 28),
            log_target,
            upstream,
            holidays,
        }
    }

    pub(crate) fn width(&self) -> usize {
        1 + 7 + 2 + 1 + 6 + 1 + usize::from(!self.holidays.is_empty()) + self.upstream.len()
    }

    /// The level that rows and labels are relative to: the mean `log1p`
    /// target of the week up to `origin`. The regression predicts the change
    /// from it, so that with no signal it falls back to the current level.
    pub(crate) fn level(&self, origin: usize) -> f64 {
        self.week_mean.get(origin).copied().unwrap_or(f64::NAN)
    }

    /// The feature row for forecasting day `origin + horizon` from data up
    /// to `origin`, or `false` when the history is too short. Target lags
    /// are relative to [`Self::level`].
    pub(crate) fn row(&self, origin: usize, horizon: usize, out: &mut Vec<f64>) -> bool {
        out.clear();
        if origin < ROW_HISTORY || origin >= self.log_target.len() {
            return false;
        }
        let y = &self.log_target;
        let level = self.level(origin);
        // The level itself, and lags 0..6 of the target around it.
        out.push(level);
        for k in 0..7 {
            out.push(y[origin - k] - level);
        }
        // The same weekday in the last two available weeks.
        let back = 7 * horizon.div_ceil(7);
        let same = origin + horizon - back;
        out.push(y[same] - level);
        out.push(y[same - 7] - level);
        // The four-week level.
        out.push(self.month_mean[origin] - level);
        // Day of week of the forecast day.
        let date = self.start + chrono::Duration::days((origin + horizon) as i64);
        let weekday = date.weekday().num_days_from_monday() as usize;
        for d in 1..7 {
            out.push(f64::from(u8::from(weekday == d)));
        }
        // Trend, in years.
        out.push(origin as f64 / 365.25);
        if !self.holidays.is_empty() {
            out.push(f64::from(u8::from(self.holidays.contains(&date))));
        }
        // Upstream: the segment's signal `lead` days before the forecast day.
        // When that day is still ahead (a lead shorter than the horizon) the
        // signal says nothing yet about the forecast day, and the feature is a
        // constant that the fit ignores.
        for feature in &self.upstream {
            if feature.lead >= horizon {
                let at = (origin + horizon).checked_sub(feature.lead);
                out.push(at.map_or(f64::NAN, |i| feature.smoothed[i]));
            } else {
                out.push(0.0);
            }
        }
        out.iter().all(|v| v.is_finite())
    }
}

/// Builds the regression's view of one upstream signal for a lead.
pub(crate) fn upstream_feature(signal: &[f64], lead: usize) -> UpstreamFeature {
    let smoothed = trailing_mean(signal, 7).into_iter().map(f64::asinh).collect();
    UpstreamFeature { smoothed, lead }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A seeded uniform source in [0, 1) (a 64-bit LCG), so that the tests
    /// need no random crate and repeat exactly.
    fn uniform(seed: u64) -> impl FnMut() -> f64 {
        let mut state = seed;
        move || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 33) as f64 / (1u64 << 31) as f64
        }
    }

    #[test]
    fn a_lasting_flow_leaves_the_recent_excess_but_stays_in_the_long_one() {
        // A quiet cell; from day 200 on, 40 more devices pass every day.
        let days = 460;
        let cell: Vec<f64> = (0..days).map(|t| 20.0 + if t >= 200 { 40.0 } else { 0.0 }).collect();
        let recent = density_excess(std::slice::from_ref(&cell), BASELINE_WEEKS);
        let long = density_excess(std::slice::from_ref(&cell), LONG_BASELINE_WEEKS);
        assert!(recent[150].abs() < 1e-9 && long[150].abs() < 1e-9);
        assert!((recent[205] - 40.0).abs() < 1e-9, "{}", recent[205]);
        // Eight weeks on, the flow is the recent baseline...
        assert!(recent[200 + 7 * BASELINE_WEEKS..].iter().all(|v| v.abs() < 1e-9));
        // ...but not the long one, whose median moves only when the flow fills
        // half of its window: 28 or 29 same weekdays came before day 200, so
        // not before day 396, and by day 430 the flow is the majority.
        assert!(long[200..390].iter().all(|v| (v - 40.0).abs() < 1e-9), "{:?}", &long[200..390]);
        assert!(long[430..].iter().all(|v| v.abs() < 1e-9), "{:?}", &long[430..]);
    }

    #[test]
    fn deviation_of_sorted_values_matches_the_plain_computation() {
        let cases: [&[f64]; 5] = [
            &[5.0],
            &[1.0, 2.0],
            &[1.0, 1.0, 1.0, 9.0],
            &[0.0, 3.0, 4.0, 4.0, 10.0, 30.0],
            &[-2.0, 0.0, 1.0, 7.0, 8.0],
        ];
        let check = |sorted: &[f64]| {
            let mut copy = sorted.to_vec();
            let centre = median(&mut copy);
            let mut distances: Vec<f64> = sorted.iter().map(|v| (v - centre).abs()).collect();
            assert_eq!(sorted_deviation(sorted, centre), median(&mut distances), "{sorted:?}");
        };
        for sorted in cases {
            check(sorted);
        }
        // Random windows of every length up to 120, with ties.
        let mut next = uniform(3);
        for n in 1..=120 {
            for _ in 0..20 {
                let mut values: Vec<f64> = (0..n).map(|_| (next() * 40.0).floor()).collect();
                values.sort_by(f64::total_cmp);
                check(&values);
            }
        }
    }

    #[test]
    fn the_windowed_baseline_is_the_median_of_the_known_same_weekdays() {
        let mut next = uniform(11);
        let days = 300;
        // Integer counts with gaps (unknown days) but none in the last eight weeks
        // before the days checked.
        let cell: Vec<f64> =
            (0..days).map(|t| if t < 100 && next() < 0.2 { f64::NAN } else { (next() * 50.0).floor() }).collect();
        let weeks = 20;
        let excess = density_excess(std::slice::from_ref(&cell), weeks);
        for t in 160usize..days {
            let mut window: Vec<f64> =
                (1..=weeks).filter_map(|k| t.checked_sub(7 * k)).map(|i| cell[i]).filter(|v| v.is_finite()).collect();
            let baseline = median(&mut window);
            // One cell: the weighted mean is its own excess.
            assert!(
                (excess[t] - (cell[t] - baseline)).abs() < 1e-9,
                "day {t}: {} vs {}",
                excess[t],
                cell[t] - baseline
            );
        }
    }

    #[test]
    fn excess_is_zero_on_a_repeating_week_and_finds_a_spike() {
        let week = [10.0, 12.0, 11.0, 9.0, 30.0, 40.0, 8.0];
        let days = 100;
        let quiet: Vec<f64> = (0..days).map(|t| week[t % 7]).collect();
        let mut busy: Vec<f64> = (0..days).map(|t| 1000.0 * week[t % 7]).collect();
        busy[80] += 500.0;
        let excess = density_excess(&[quiet.clone(), busy], BASELINE_WEEKS);
        assert!(excess[..56].iter().all(|v| v.is_nan()));
        assert!(excess[56..80].iter().all(|v| v.abs() < 1e-9));
        assert!(excess[80] > 0.0);
        // A spike in the quiet cell weighs far more than the same spike in the city.
        let mut quiet_spike = quiet.clone();
        quiet_spike[80] += 500.0;
        let city: Vec<f64> = (0..days).map(|t| 1000.0 * week[t % 7] + if t % 3 == 0 { 800.0 } else { 0.0 }).collect();
        let a = density_excess(&[quiet_spike, city.clone()], BASELINE_WEEKS);
        let mut city_spike = city;
        city_spike[80] += 500.0;
        let b = density_excess(&[quiet, city_spike], BASELINE_WEEKS);
        assert!(a[80] > 10.0 * b[80].abs(), "{} vs {}", a[80], b[80]);
    }

    #[test]
    fn lead_is_recovered_from_a_shifted_signal() {
        // A signal of random pulses, and a target that follows it 12 days later.
        let mut next = uniform(7);
        let days = 500;
        let signal: Vec<f64> = (0..days).map(|_| if next() < 0.1 { 200.0 } else { 0.0 }).collect();
        let target: Vec<f64> =
            (0..days).map(|t| if t >= 12 { 5.0 + signal[t - 12] * 0.5 + 3.0 * next() } else { 5.0 }).collect();
        let lead = estimate_lead(&target, &signal, days - 1, 30).expect("a lead");
        assert!((11..=13).contains(&lead.days), "{lead:?}");
        // Noise has no lead.
        let noise: Vec<f64> = (0..days).map(|_| next()).collect();
        let none = estimate_lead(&noise, &signal, days - 1, 30);
        assert!(none.is_none_or(|l| l.correlation < 0.2), "{none:?}");
    }

    #[test]
    fn rows_use_no_day_after_the_origin() {
        let start = NaiveDate::from_ymd_opt(2024, 1, 1).expect("a date");
        let target: Vec<f64> = (0..100).map(|t| t as f64).collect();
        let signal: Vec<f64> = (0..100).map(|t| t as f64).collect();
        let design = Design::new(start, &target, vec![upstream_feature(&signal, 3)], Vec::new());
        let mut row = Vec::new();
        assert!(!design.row(10, 1, &mut row));
        assert!(design.row(50, 7, &mut row));
        assert_eq!(row.len(), design.width());
        // Changing every day after the origin changes no feature.
        let mut later = target.clone();
        for v in &mut later[51..] {
            *v = 1e6;
        }
        let mut later_signal = signal.clone();
        for v in &mut later_signal[51..] {
            *v = -1e6;
        }
        let other = Design::new(start, &later, vec![upstream_feature(&later_signal, 3)], Vec::new());
        let mut row2 = Vec::new();
        assert!(other.row(50, 7, &mut row2));
        assert_eq!(row, row2);
    }

    #[test]
    fn robust_scores_use_the_median_and_a_floored_spread() {
        // History 10, 12, 11, 13, 9, 100 (one outlier): median 11.5, MAD 1.5.
        let history = [10.0, 12.0, 11.0, 13.0, 9.0, 100.0, f64::NAN];
        let score = robust_score(&history, 20.0, 4).expect("enough history");
        assert_eq!(score.baseline, 11.5);
        let spread = (1.4826f64 * 1.5).max(12.5f64.sqrt());
        assert!((score.spread - spread).abs() < 1e-12, "{score:?}");
        assert!((score.z - 8.5 / spread).abs() < 1e-12);
        // A flat history: the Poisson floor, not a zero spread.
        let flat = robust_score(&[50.0; 8], 60.0, 4).expect("enough history");
        assert_eq!((flat.baseline, flat.spread), (50.0, 51f64.sqrt()));
        // Too little history, or no value.
        assert_eq!(robust_score(&[1.0, 2.0, f64::NAN], 3.0, 3), None);
        assert_eq!(robust_score(&[1.0, 2.0, 3.0], f64::NAN, 3), None);
    }
}
