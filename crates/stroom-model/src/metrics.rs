//! Forecast accuracy metrics, with the conventions of utilsforecast so that
//! figures can be compared with other tools:
//!
//! - MAE, MASE, sMAPE and WAPE score the median forecast `q50` (absolute error
//!   is minimised by the median); RMSE and RMSSE score the `mean` (squared
//!   error is minimised by the mean).
//! - MASE and RMSSE are scaled by the in-sample seasonal-naive error (m = 7)
//!   of the data up to the fold's cutoff: `mean |y_t − y_{t−7}|` and
//!   `mean (y_t − y_{t−7})²`.
//! - sMAPE is on the 0–200 scale: `200 · mean |y − f| / (|y| + |f|)`, a 0/0
//!   term counting as 0 (utilsforecast reports the same quantity on 0–1).
//! - WAPE is `Σ|y − f| / Σ|y|`.
//! - Coverage is the share of actuals inside the closed interval; the
//!   interval (Winkler) score of a central (1 − α) interval [l, u] is
//!   `(u − l) + 2/α·(l − y)·[y < l] + 2/α·(y − u)·[y > u]`; pinball is the
//!   mean quantile loss over q10, q50 and q90.
//!
//! Over folds, every metric is computed per fold and then averaged (each
//! fold has the same horizon). Per horizon, the rows of all folds at that
//! horizon form one sample (MASE and RMSSE still scale each row by its own
//! fold's scale).

/// One forecast with its actual value, the unit that metrics score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    pub actual: f64,
    pub mean: f64,
    pub q10: f64,
    pub q50: f64,
    pub q90: f64,
    pub lo80: f64,
    pub hi80: f64,
    pub lo95: f64,
    pub hi95: f64,
    /// In-sample seasonal-naive mean absolute error of this row's fold.
    pub scale_abs: f64,
    /// In-sample seasonal-naive mean squared error of this row's fold.
    pub scale_sq: f64,
}

/// The metrics of a set of forecasts.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Metrics {
    /// Number of scored forecasts.
    pub n: usize,
    pub mae: f64,
    pub mase: f64,
    pub smape: f64,
    pub wape: f64,
    pub rmse: f64,
    pub rmsse: f64,
    pub coverage80: f64,
    pub coverage95: f64,
    pub interval_score80: f64,
    pub interval_score95: f64,
    pub pinball: f64,
}

impl Metrics {
    /// Column names, in the order of [`Self::values`].
    pub const COLUMNS: [&'static str; 12] = [
        "n",
        "mae",
        "mase",
        "smape",
        "wape",
        "rmse",
        "rmsse",
        "coverage80",
        "coverage95",
        "interval_score80",
        "interval_score95",
        "pinball",
    ];

    /// The values in the order of [`Self::COLUMNS`].
    pub fn values(&self) -> [f64; 12] {
        [
            self.n as f64,
            self.mae,
            self.mase,
            self.smape,
            self.wape,
            self.rmse,
            self.rmsse,
            self.coverage80,
            self.coverage95,
            self.interval_score80,
            self.interval_score95,
            self.pinball,
        ]
    }
}

/// In-sample seasonal-naive errors of `train` with season `m`: the mean
/// absolute and the mean squared difference `y_t − y_{t−m}` over the pairs
/// where both are known. `None` when no pair is known.
pub fn seasonal_naive_scale(train: &[f64], m: usize) -> Option<(f64, f64)> {
    let mut abs = 0.0;
    let mut sq = 0.0;
    let mut n = 0usize;
    for t in m..train.len() {
        let d = train[t] - train[t - m];
        if d.is_finite() {
            abs += d.abs();
            sq += d * d;
            n += 1;
        }
    }
    (n > 0).then(|| (abs / n as f64, sq / n as f64))
}

/// Mean quantile (pinball) loss of forecast `f` for quantile `q`.
pub fn quantile_loss(actual: f64, f: f64, q: f64) -> f64 {
    let d = actual - f;
    (q * d).max((q - 1.0) * d)
}

/// Interval score of the central `1 − alpha` interval `[lo, hi]`.
pub fn interval_score(actual: f64, lo: f64, hi: f64, alpha: f64) -> f64 {
    let mut score = hi - lo;
    if actual < lo {
        score += 2.0 / alpha * (lo - actual);
    }
    if actual > hi {
        score += 2.0 / alpha * (actual - hi);
    }
    score
}

fn smape_term(actual: f64, f: f64) -> f64 {
    let denominator = actual.abs() + f.abs();
    if denominator == 0.0 { 0.0 } else { 200.0 * (actual - f).abs() / denominator }
}

fn ratio(numerator: f64, denominator: f64) -> f64 {
    if denominator == 0.0 { f64::NAN } else { numerator / denominator }
}

/// The metrics of one sample of forecasts (one fold, or one horizon across
/// folds): every mean is taken over the rows.
pub fn sample_metrics(rows: &[Scored]) -> Metrics {
    let n = rows.len();
    if n == 0 {
        return Metrics { n: 0, ..all_nan() };
    }
    let nf = n as f64;
    let mean = |f: &dyn Fn(&Scored) -> f64| rows.iter().map(f).sum::<f64>() / nf;
    let abs_sum: f64 = rows.iter().map(|r| (r.actual - r.q50).abs()).sum();
    let actual_sum: f64 = rows.iter().map(|r| r.actual.abs()).sum();
    Metrics {
        n,
        mae: abs_sum / nf,
        mase: mean(&|r| ratio((r.actual - r.q50).abs(), r.scale_abs)),
        smape: mean(&|r| smape_term(r.actual, r.q50)),
        wape: ratio(abs_sum, actual_sum),
        rmse: mean(&|r| (r.actual - r.mean).powi(2)).sqrt(),
        rmsse: mean(&|r| ratio((r.actual - r.mean).powi(2), r.scale_sq)).sqrt(),
        coverage80: mean(&|r| f64::from(u8::from(r.lo80 <= r.actual && r.actual <= r.hi80))),
        coverage95: mean(&|r| f64::from(u8::from(r.lo95 <= r.actual && r.actual <= r.hi95))),
        interval_score80: mean(&|r| interval_score(r.actual, r.lo80, r.hi80, 0.2)),
        interval_score95: mean(&|r| interval_score(r.actual, r.lo95, r.hi95, 0.05)),
        pinball: mean(&|r| {
            (quantile_loss(r.actual, r.q10, 0.1)
                + quantile_loss(r.actual, r.q50, 0.5)
                + quantile_loss(r.actual, r.q90, 0.9))
                / 3.0
        }),
    }
}

fn all_nan() -> Metrics {
    Metrics {
        n: 0,
        mae: f64::NAN,
        mase: f64::NAN,
        smape: f64::NAN,
        wape: f64::NAN,
        rmse: f64::NAN,
        rmsse: f64::NAN,
        coverage80: f64::NAN,
        coverage95: f64::NAN,
        interval_score80: f64::NAN,
        interval_score95: f64::NAN,
        pinball: f64::NAN,
    }
}

/// The average of per-fold metrics (`n` is the total count). Folds with no
/// scored row are left out.
pub fn average_folds(folds: &[Metrics]) -> Metrics {
    let kept: Vec<&Metrics> = folds.iter().filter(|m| m.n > 0).collect();
    if kept.is_empty() {
        return Metrics { n: 0, ..all_nan() };
    }
    let k = kept.len() as f64;
    let avg = |f: &dyn Fn(&Metrics) -> f64| kept.iter().map(|m| f(m)).sum::<f64>() / k;
    Metrics {
        n: kept.iter().map(|m| m.n).sum(),
        mae: avg(&|m| m.mae),
        mase: avg(&|m| m.mase),
        smape: avg(&|m| m.smape),
        wape: avg(&|m| m.wape),
        rmse: avg(&|m| m.rmse),
        rmsse: avg(&|m| m.rmsse),
        coverage80: avg(&|m| m.coverage80),
        coverage95: avg(&|m| m.coverage95),
        interval_score80: avg(&|m| m.interval_score80),
        interval_score95: avg(&|m| m.interval_score95),
        pinball: avg(&|m| m.pinball),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(actual: f64, f: f64, lo: f64, hi: f64) -> Scored {
        Scored {
            actual,
            mean: f,
            q10: lo,
            q50: f,
            q90: hi,
            lo80: lo,
            hi80: hi,
            lo95: lo - 1.0,
            hi95: hi + 1.0,
            scale_abs: 2.0,
            scale_sq: 4.0,
        }
    }

    #[test]
    fn hand_computed_values() {
        // actual 10, forecast 8, interval [7, 9]: error 2, outside the interval above.
        // actual 0, forecast 0, interval [0, 1]: error 0, sMAPE 0/0 counts as 0.
        // actual 5, forecast 6, interval [4, 8]: error 1, inside.
        let rows = [row(10.0, 8.0, 7.0, 9.0), row(0.0, 0.0, 0.0, 1.0), row(5.0, 6.0, 4.0, 8.0)];
        let m = sample_metrics(&rows);
        assert_eq!(m.n, 3);
        assert!((m.mae - 1.0).abs() < 1e-12);
        assert!((m.mase - 0.5).abs() < 1e-12);
        assert!((m.rmse - (5.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert!((m.rmsse - (5.0f64 / 12.0).sqrt()).abs() < 1e-12);
        // sMAPE: 200·2/18, 0, 200·1/11.
        assert!((m.smape - (200.0 * 2.0 / 18.0 + 200.0 / 11.0) / 3.0).abs() < 1e-12);
        assert!((m.wape - 3.0 / 15.0).abs() < 1e-12);
        assert!((m.coverage80 - 2.0 / 3.0).abs() < 1e-12);
        // 95%: [6, 10], [-1, 2], [3, 9]: all inside.
        assert!((m.coverage95 - 1.0).abs() < 1e-12);
        // Interval score 80%: (2 + 10·1) + 1 + 4 = 17, over 3.
        assert!((m.interval_score80 - 17.0 / 3.0).abs() < 1e-12);
        // Pinball, row 1: q10 at 7 → 0.1·3, q50 at 8 → 0.5·2, q90 at 9 → 0.9·1; sum 2.2.
        // Row 2: q90 at 1 → 0.1·1 = 0.1. Row 3: q10 at 4 → 0.1, q50 at 6 → 0.5, q90 at 8 → 0.3; sum 0.9.
        assert!((m.pinball - (2.2 + 0.1 + 0.9) / 9.0).abs() < 1e-12);
    }

    #[test]
    fn seasonal_naive_scale_skips_unknown_days() {
        let train = [1.0, 2.0, f64::NAN, 4.0, 3.0, 6.0, 2.0];
        let (abs, sq) = seasonal_naive_scale(&train, 2).expect("pairs exist");
        // m = 2: t=2 is NaN (skipped), t=3: 4−2=2, t=4: 3−NaN (skipped), t=5: 6−4=2, t=6: 2−3=−1.
        assert!((abs - 5.0 / 3.0).abs() < 1e-12);
        assert!((sq - 9.0 / 3.0).abs() < 1e-12);
        assert!(seasonal_naive_scale(&[1.0, 2.0], 7).is_none());
    }

    #[test]
    fn fold_average_weights_folds_equally() {
        let a = Metrics { n: 2, mae: 1.0, ..Metrics::default() };
        let b = Metrics { n: 2, mae: 3.0, ..Metrics::default() };
        let empty = Metrics { n: 0, mae: f64::NAN, ..Metrics::default() };
        let m = average_folds(&[a, b, empty]);
        assert_eq!(m.n, 4);
        assert!((m.mae - 2.0).abs() < 1e-12);
    }
}
