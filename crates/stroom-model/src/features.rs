//! Features from daily series: the upstream density signal (excess over a
//! seasonal baseline, per route segment), its lead over the target
//! (estimated by lagged cross-correlation on training data only), and the
//! rows of the direct multi-horizon regression.
//!
//! Every feature at day `t` uses only data up to `t`, so a model fitted at a
//! cutoff never sees later days.

use chrono::{Datelike, NaiveDate};

/// Weeks of same-weekday history in a cell's seasonal baseline.
pub const BASELINE_WEEKS: usize = 8;

/// Density excess of a group of cells (a route segment), one value per day.
///
/// `cells[c][t]` is cell `c`'s device total on day `t` (0 where every hour
/// was suppressed or unreported, NaN where the store has no data). Each cell's baseline on day `t` is the
/// median of the same weekday over the previous [`BASELINE_WEEKS`] weeks,
/// and its spread the scaled median absolute deviation of those days. The
/// segment's excess is the inverse-variance weighted mean of the cells'
/// excesses (weight `1 / (spread² + baseline + 1)`: a cell whose count
/// swings by thousands, like a city, weighs little against a quiet rural
/// cell on the path), times the number of cells, so that it reads in
/// devices. A cell counts on a day when it has that day and a full
/// baseline; days where no cell does are NaN.
pub fn density_excess(cells: &[Vec<f64>]) -> Vec<f64> {
    let days = cells.iter().map(Vec::len).max().unwrap_or(0);
    let mut out = vec![f64::NAN; days];
    let history = 7 * BASELINE_WEEKS;
    let mut window = [0.0f64; BASELINE_WEEKS];
    for (t, value) in out.iter_mut().enumerate().skip(history) {
        let mut weighted = 0.0;
        let mut weights = 0.0;
        let mut n = 0usize;
        for series in cells {
            if series.len() <= t {
                continue;
            }
            for (k, slot) in window.iter_mut().enumerate() {
                *slot = series[t - 7 * (k + 1)];
            }
            if !series[t].is_finite() || window.iter().any(|v| !v.is_finite()) {
                continue;
            }
            let baseline = median(&mut window);
            for slot in &mut window {
                *slot = (*slot - baseline).abs();
            }
            let spread = 1.4826 * median(&mut window);
            let weight = 1.0 / (spread * spread + baseline + 1.0);
            weighted += weight * (series[t] - baseline);
            weights += weight;
            n += 1;
        }
        if n > 0 {
            *value = weighted / weights * n as f64;
        }
    }
    out
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 { values[n / 2] } else { 0.5 * (values[n / 2 - 1] + values[n / 2]) }
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

    #[test]
    fn excess_is_zero_on_a_repeating_week_and_finds_a_spike() {
        let week = [10.0, 12.0, 11.0, 9.0, 30.0, 40.0, 8.0];
        let days = 100;
        let quiet: Vec<f64> = (0..days).map(|t| week[t % 7]).collect();
        let mut busy: Vec<f64> = (0..days).map(|t| 1000.0 * week[t % 7]).collect();
        busy[80] += 500.0;
        let excess = density_excess(&[quiet.clone(), busy]);
        assert!(excess[..56].iter().all(|v| v.is_nan()));
        assert!(excess[56..80].iter().all(|v| v.abs() < 1e-9));
        assert!(excess[80] > 0.0);
        // A spike in the quiet cell weighs far more than the same spike in the city.
        let mut quiet_spike = quiet.clone();
        quiet_spike[80] += 500.0;
        let city: Vec<f64> = (0..days).map(|t| 1000.0 * week[t % 7] + if t % 3 == 0 { 800.0 } else { 0.0 }).collect();
        let a = density_excess(&[quiet_spike, city.clone()]);
        let mut city_spike = city;
        city_spike[80] += 500.0;
        let b = density_excess(&[quiet, city_spike]);
        assert!(a[80] > 10.0 * b[80].abs(), "{} vs {}", a[80], b[80]);
    }

    #[test]
    fn lead_is_recovered_from_a_shifted_signal() {
        // A signal of random pulses, and a target that follows it 12 days later.
        let mut state = 7u64;
        let mut next = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 33) as f64 / (1u64 << 31) as f64
        };
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
}
