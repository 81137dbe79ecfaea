//! Forecasts at one cutoff: every member model, the ensemble and the
//! automatic choice, with quantiles and intervals calibrated from
//! out-of-sample residuals (split conformal on `log1p` counts).
//!
//! [`forecast_at`] runs every member from the cutoff and from the
//! calibration origins before it. `ensemble` is the mean of the three
//! members with the lowest calibration error (the univariate ablation is
//! not a candidate); `auto` is the member or ensemble with the lowest
//! calibration MASE.
//!
//! Calibration: the origins `cutoff − horizon − j·step` (j = 0…n−1) lie
//! before the cutoff so that every calibration target is known at the
//! cutoff. Each member forecasts from them with what it knew then (the
//! regression is refitted every seven origins, on targets up to the first
//! origin of each block). The residuals
//! `log1p(actual) − log1p(forecast)` of horizons `h − 2 … h + 2` give the
//! quantiles for horizon `h`; a quantile level `q` is taken at the
//! finite-sample conformal rank `⌈(n + 1)·q⌉` (upper) or `⌊(n + 1)·q⌋`
//! (lower). Every quantile is clamped at zero and the set is made monotone.

use std::collections::BTreeMap;

use crate::ModelError;
use crate::features::{ROW_HISTORY, sorted_median};
use crate::metrics::seasonal_naive_scale;
use crate::models::{
    BaselineParams, ElasticNetParams, EtsParams, Forecaster, MemberRun, ModelKind, SeriesInput, SignalLead, SignalPart,
};

/// Everything a forecast at a cutoff needs to know.
#[derive(Debug, Clone, PartialEq)]
pub struct ForecastParams {
    /// Days ahead, 1 to 28.
    pub horizon: usize,
    /// Models whose forecasts are wanted (members needed by `ensemble` and
    /// `auto` are run in any case).
    pub models: Vec<ModelKind>,
    /// Number of calibration origins.
    pub calibration_origins: usize,
    /// Days between calibration origins.
    pub calibration_step: usize,
    /// Horizons pooled on each side of a horizon for its quantiles.
    pub calibration_pool: usize,
    /// Days averaged by `moving_average`.
    pub moving_average_window: usize,
    pub ets: EtsParams,
    pub elasticnet: ElasticNetParams,
    /// Members combined by `ensemble`.
    pub ensemble_size: usize,
}

impl Default for ForecastParams {
    fn default() -> Self {
        Self {
            horizon: 14,
            models: vec![ModelKind::Auto],
            calibration_origins: 28,
            calibration_step: 6,
            calibration_pool: 2,
            moving_average_window: 7,
            ets: EtsParams { window: 730 },
            elasticnet: ElasticNetParams::default(),
            ensemble_size: 3,
        }
    }
}

/// Checked [`ForecastParams`].
#[derive(Debug)]
pub struct ValidForecastParams {
    params: ForecastParams,
    members: Vec<(ModelKind, Box<dyn Forecaster>)>,
}

impl ForecastParams {
    pub fn check(self) -> Result<ValidForecastParams, ModelError> {
        if !(1..=28).contains(&self.horizon) {
            return Err(ModelError::InvalidParameter {
                name: "horizon",
                value: self.horizon.to_string(),
                reason: "must be 1 to 28 days".into(),
            });
        }
        if self.calibration_origins < 5 || self.calibration_step == 0 {
            return Err(ModelError::InvalidParameter {
                name: "calibration",
                value: format!("{} origins every {} days", self.calibration_origins, self.calibration_step),
                reason: "need at least 5 origins, at least a day apart".into(),
            });
        }
        let combined = self.models.iter().any(|m| matches!(m, ModelKind::Ensemble | ModelKind::Auto));
        let mut members: Vec<(ModelKind, Box<dyn Forecaster>)> = Vec::new();
        for kind in ModelKind::MEMBERS {
            // The univariate ablation is not an ensemble candidate: it is the
            // main model minus its upstream features.
            let needed = self.models.contains(&kind) || (combined && kind != ModelKind::ElasticNetUnivariate);
            if !needed {
                continue;
            }
            let model: Box<dyn Forecaster> = match kind {
                ModelKind::Naive | ModelKind::SeasonalNaive | ModelKind::MovingAverage => {
                    Box::new(BaselineParams { kind, window: self.moving_average_window }.check()?)
                }
                ModelKind::Ets => Box::new(self.ets.check()?),
                ModelKind::ElasticNet => Box::new(self.elasticnet.clone().check()?),
                _ => Box::new(ElasticNetParams { upstream: false, ..self.elasticnet.clone() }.check()?),
            };
            members.push((kind, model));
        }
        Ok(ValidForecastParams { params: self, members })
    }
}

impl ValidForecastParams {
    pub fn params(&self) -> &ForecastParams {
        &self.params
    }
}

/// The forecast of one model from one cutoff.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelForecast {
    pub model: ModelKind,
    /// For `auto`: the model it chose.
    pub chosen: Option<ModelKind>,
    /// For `ensemble`: its members.
    pub members: Vec<ModelKind>,
    /// Mean absolute error of the median on the calibration origins, scaled
    /// by the in-sample seasonal-naive error (the calibration MASE).
    pub calibration_mase: f64,
    /// One entry per horizon 1..=H.
    pub steps: Vec<Step>,
    /// Each step's mean split into additive parts, one per step.
    pub attribution: Vec<Attribution>,
}

/// One forecast day's mean split into parts that sum to it exactly:
/// `level + Σ signals[i].part + rest = mean`.
///
/// For the regression (on `log1p` counts) the point forecast is split by
/// Shapley values on the count scale: `level` is the forecast with every
/// upstream signal at "no excess", and each signal's part is its average
/// marginal change of the forecast over every order of adding the signals,
/// so the parts sum exactly to the point forecast whatever the
/// back-transform does. Models without signals (naive, ETS, …) put their
/// whole point forecast in `level`; the ensemble averages its members'
/// parts. `rest` is the mean minus the point forecast: the calibration's
/// correction of the mean.
#[derive(Debug, Clone, PartialEq)]
pub struct Attribution {
    /// Level, lags, trend, weekday and holidays: the forecast without any
    /// upstream signal.
    pub level: f64,
    /// The upstream signals' parts.
    pub signals: Vec<SignalPart>,
    /// The mean minus the point forecast.
    pub rest: f64,
}

/// One day of a forecast.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    pub horizon: usize,
    pub mean: f64,
    pub q10: f64,
    pub q50: f64,
    pub q90: f64,
    pub lo80: f64,
    pub hi80: f64,
    pub lo95: f64,
    pub hi95: f64,
}

/// Forecasts of every asked model from one cutoff.
#[derive(Debug, Clone, PartialEq)]
pub struct CutoffForecast {
    /// Index of the last day used.
    pub cutoff: usize,
    pub forecasts: Vec<ModelForecast>,
    /// Leads of the upstream signals estimated at this cutoff (main model).
    pub leads: Vec<SignalLead>,
    /// In-sample seasonal-naive errors (absolute, squared) up to the cutoff.
    pub scale: (f64, f64),
}

/// Forecasts `horizon` days after `cutoff` (a day index of `input`) with
/// every asked model. Only days up to `cutoff` are read.
pub fn forecast_at(
    input: &SeriesInput,
    cutoff: usize,
    params: &ValidForecastParams,
) -> Result<CutoffForecast, ModelError> {
    let p = &params.params;
    let h = p.horizon;
    if cutoff >= input.target.len() {
        return Err(ModelError::NotEnoughData(format!(
            "cutoff index {cutoff} is past the series' {} days",
            input.target.len()
        )));
    }
    // Only what was known at the cutoff.
    let known = SeriesInput {
        start: input.start,
        target: input.target[..=cutoff].to_vec(),
        upstream: input
            .upstream
            .iter()
            .map(|s| crate::UpstreamSignal {
                name: s.name.clone(),
                baseline_weeks: s.baseline_weeks,
                excess: s.excess[..=cutoff.min(s.excess.len().saturating_sub(1))].to_vec(),
            })
            .collect(),
        holidays: input.holidays.clone(),
    };
    let needed = ROW_HISTORY + 2 * h + 28;
    if known.target.iter().filter(|v| v.is_finite()).count() < needed {
        return Err(ModelError::NotEnoughData(format!(
            "a forecast {h} days ahead needs at least {needed} known days up to the cutoff {}",
            input.date(cutoff)
        )));
    }
    let origins: Vec<usize> = (0..p.calibration_origins)
        .filter_map(|j| cutoff.checked_sub(h + j * p.calibration_step))
        .filter(|&o| o >= ROW_HISTORY + 14)
        .collect();
    let scale = seasonal_naive_scale(&known.target, 7).unwrap_or((f64::NAN, f64::NAN));

    let mut runs: BTreeMap<ModelKind, MemberRun> = BTreeMap::new();
    let mut leads = Vec::new();
    for (kind, model) in &params.members {
        let run = model.run(&known, cutoff, h, &origins)?;
        if *kind == ModelKind::ElasticNet {
            leads = run.leads.clone();
        }
        runs.insert(*kind, run);
    }
    let actual = |o: usize, step: usize| known.target.get(o + step + 1).copied().unwrap_or(f64::NAN);
    let calibration_error = |run: &MemberRun| {
        let mut sum = 0.0;
        let mut n = 0usize;
        for (&o, preds) in origins.iter().zip(&run.calibration) {
            for (step, f) in preds.iter().enumerate() {
                let a = actual(o, step);
                if a.is_finite() && f.is_finite() {
                    sum += (a - f).abs();
                    n += 1;
                } else if a.is_finite() {
                    // A model that cannot forecast a known day is not a candidate.
                    return f64::INFINITY;
                }
            }
        }
        if n == 0 { f64::INFINITY } else { sum / n as f64 }
    };

    // The ensemble: the mean of the best members by calibration error.
    let candidates: Vec<ModelKind> = runs
        .keys()
        .copied()
        .filter(|k| *k != ModelKind::ElasticNetUnivariate && runs[k].point.iter().all(|v| v.is_finite()))
        .collect();
    let mut ranked: Vec<(f64, ModelKind)> = candidates.iter().map(|k| (calibration_error(&runs[k]), *k)).collect();
    ranked.sort_by(|a, b| a.0.total_cmp(&b.0));
    let combined = p.models.iter().any(|m| matches!(m, ModelKind::Ensemble | ModelKind::Auto));
    let ensemble_members: Vec<ModelKind> =
        ranked.iter().filter(|(e, _)| e.is_finite()).take(p.ensemble_size).map(|(_, k)| *k).collect();
    if combined && !ensemble_members.is_empty() {
        let mean_of = |pick: &dyn Fn(&MemberRun) -> &Vec<f64>| -> Vec<f64> {
            let len = pick(&runs[&ensemble_members[0]]).len();
            (0..len)
                .map(|i| {
                    ensemble_members.iter().map(|k| pick(&runs[k])[i]).sum::<f64>() / ensemble_members.len() as f64
                })
                .collect()
        };
        let point = mean_of(&|r| &r.point);
        let calibration = (0..origins.len()).map(|j| mean_of(&|r| &r.calibration[j])).collect();
        runs.insert(ModelKind::Ensemble, MemberRun { point, calibration, leads: Vec::new(), parts: Vec::new() });
    }

    let mut out = Vec::new();
    let mut cache: BTreeMap<ModelKind, ModelForecast> = BTreeMap::new();
    let mut calibrated = |kind: ModelKind| -> Option<ModelForecast> {
        if let Some(f) = cache.get(&kind) {
            return Some(f.clone());
        }
        let run = runs.get(&kind)?;
        let mut f = calibrate(kind, run, &origins, &|o, s| actual(o, s), p.calibration_pool, scale.0);
        let sources: Vec<&MemberRun> = if kind == ModelKind::Ensemble {
            f.members = ensemble_members.clone();
            ensemble_members.iter().filter_map(|k| runs.get(k)).collect()
        } else {
            vec![run]
        };
        f.attribution = attribute(run, &sources, &f.steps);
        cache.insert(kind, f.clone());
        Some(f)
    };
    for &kind in &p.models {
        match kind {
            ModelKind::Auto => {
                let mut options: Vec<ModelForecast> =
                    candidates.iter().chain([ModelKind::Ensemble].iter()).filter_map(|&k| calibrated(k)).collect();
                options.retain(|f| f.calibration_mase.is_finite());
                options.sort_by(|a, b| a.calibration_mase.total_cmp(&b.calibration_mase));
                let Some(best) = options.into_iter().next() else {
                    return Err(ModelError::NotEnoughData("no model could be calibrated".into()));
                };
                out.push(ModelForecast { model: ModelKind::Auto, chosen: Some(best.model), ..best });
            }
            _ => {
                if runs.get(&kind).is_some_and(|r| r.point.iter().any(|v| !v.is_finite())) {
                    return Err(ModelError::NotEnoughData(format!(
                        "{} cannot forecast from {}: its features are unknown there",
                        kind.name(),
                        input.date(cutoff)
                    )));
                }
                let Some(f) = calibrated(kind) else { continue };
                out.push(f);
            }
        }
    }
    Ok(CutoffForecast { cutoff, forecasts: out, leads, scale })
}

/// The [`Attribution`] of each step of `run`, whose signal parts are the
/// mean of `sources`' (the run itself, or an ensemble's members).
fn attribute(run: &MemberRun, sources: &[&MemberRun], steps: &[Step]) -> Vec<Attribution> {
    let share = 1.0 / sources.len().max(1) as f64;
    steps
        .iter()
        .enumerate()
        .map(|(i, step)| {
            let mut signals: Vec<SignalPart> = Vec::new();
            for source in sources {
                for part in source.parts.get(i).and_then(Option::as_ref).map_or(&[][..], |p| &p.signals[..]) {
                    let same = |s: &&mut SignalPart| {
                        s.name == part.name && s.baseline_weeks == part.baseline_weeks && s.lead == part.lead
                    };
                    match signals.iter_mut().find(same) {
                        Some(s) => s.part += share * part.part,
                        None => signals.push(SignalPart { part: share * part.part, ..part.clone() }),
                    }
                }
            }
            let point = run.point.get(i).copied().unwrap_or(f64::NAN).max(0.0);
            let level = point - signals.iter().map(|s| s.part).sum::<f64>();
            Attribution { level, signals, rest: step.mean - point }
        })
        .collect()
}

/// Quantiles and intervals of a member's point forecast from its
/// calibration residuals.
fn calibrate(
    kind: ModelKind,
    run: &MemberRun,
    origins: &[usize],
    actual: &dyn Fn(usize, usize) -> f64,
    pool: usize,
    scale: f64,
) -> ModelForecast {
    let h = run.point.len();
    // Residuals on log1p counts, per horizon.
    let mut residuals: Vec<Vec<f64>> = vec![Vec::new(); h];
    let mut raw: Vec<Vec<f64>> = vec![Vec::new(); h];
    let mut abs_error = 0.0;
    let mut n = 0usize;
    let learned = kind.is_learned();
    for (&o, preds) in origins.iter().zip(&run.calibration) {
        for (step, f) in preds.iter().enumerate() {
            let a = actual(o, step);
            if a.is_finite() && f.is_finite() {
                residuals[step].push(a.max(0.0).ln_1p() - f.max(0.0).ln_1p());
                raw[step].push(a - f);
            }
        }
    }
    // Residuals of horizons h ± pool, sorted, per horizon.
    let pooled = |per_step: &[Vec<f64>], step: usize| -> Vec<f64> {
        let mut all: Vec<f64> =
            per_step[step.saturating_sub(pool)..=(step + pool).min(h - 1)].iter().flatten().copied().collect();
        all.sort_by(f64::total_cmp);
        all
    };
    let pools: Vec<Vec<f64>> = (0..h).map(|step| pooled(&residuals, step)).collect();
    // Median shift per horizon, for the calibration MASE of the median.
    for (&o, preds) in origins.iter().zip(&run.calibration) {
        for (step, f) in preds.iter().enumerate() {
            let a = actual(o, step);
            if a.is_finite() && f.is_finite() {
                let median = if learned { shift(f.max(0.0), conformal_quantile(&pools[step], 0.5)) } else { *f };
                abs_error += (a - median).abs();
                n += 1;
            }
        }
    }
    let steps = (0..h)
        .map(|step| {
            let f = run.point[step].max(0.0);
            let r = &pools[step];
            let q = |level: f64| shift(f, conformal_quantile(r, level));
            let (mut lo95, mut q10, q50, mut q90, mut hi95) =
                (q(0.025), q(0.1), if learned { q(0.5) } else { f }, q(0.9), q(0.975));
            q10 = q10.min(q50);
            q90 = q90.max(q50);
            lo95 = lo95.min(q10);
            hi95 = hi95.max(q90);
            // The mean: the point forecast corrected by the mean calibration
            // error on the count scale (a back-transformed log mean explodes on
            // intermittent series).
            let errors = pooled(&raw, step);
            let mean = if learned && !errors.is_empty() {
                (f + errors.iter().sum::<f64>() / errors.len() as f64).max(0.0)
            } else {
                f
            };
            Step { horizon: step + 1, mean, q10, q50, q90, lo80: q10, hi80: q90, lo95, hi95 }
        })
        .collect();
    let calibration_mase = if n > 0 && scale > 0.0 { abs_error / n as f64 / scale } else { f64::NAN };
    ModelForecast { model: kind, chosen: None, members: Vec::new(), calibration_mase, steps, attribution: Vec::new() }
}

/// `forecast` moved by `residual` on the `log1p` scale, at least zero.
fn shift(forecast: f64, residual: f64) -> f64 {
    if !residual.is_finite() {
        return if residual > 0.0 { f64::INFINITY } else { 0.0 };
    }
    (forecast.ln_1p() + residual).exp_m1().max(0.0)
}

/// The conformal quantile of sorted residuals: rank ⌈(n+1)q⌉ for upper
/// levels and ⌊(n+1)q⌋ for lower ones (1-based), clamped to the sample;
/// the plain median for q = 0.5. NaN for an empty sample.
pub fn conformal_quantile(sorted: &[f64], q: f64) -> f64 {
    let n = sorted.len();
    if n == 0 {
        return f64::NAN;
    }
    if (q - 0.5).abs() < 1e-12 {
        return sorted_median(sorted);
    }
    let position = (n as f64 + 1.0) * q;
    let rank = if q > 0.5 { position.ceil() } else { position.floor() };
    let index = (rank as i64 - 1).clamp(0, n as i64 - 1) as usize;
    sorted[index]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::UpstreamSignal;

    /// A deterministic uniform stream in [0, 1).
    fn uniform(seed: u64) -> impl FnMut() -> f64 {
        let mut state = seed;
        move || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 33) as f64 / (1u64 << 31) as f64
        }
    }

    /// A target that follows signal `surge` ten days later, beside a signal
    /// `noise` that it does not follow; `surge` pulses every 35 days and
    /// once just before the last day.
    fn led_series(days: usize) -> SeriesInput {
        let mut u = uniform(7);
        let pulse = |t: usize| t % 35 < 5 || (days - 7..days - 2).contains(&t);
        let surge: Vec<f64> = (0..days).map(|t| 4.0 * (u() - 0.5) + if pulse(t) { 80.0 } else { 0.0 }).collect();
        let noise: Vec<f64> = (0..days).map(|_| 30.0 * (u() - 0.5)).collect();
        let target = (0..days)
            .map(|t| {
                let weekly = [1.0, 1.1, 0.9, 1.0, 1.2, 0.8, 0.7][t % 7];
                let led = if t >= 10 { surge[t - 10].max(0.0) } else { 0.0 };
                (40.0 * weekly + 1.2 * led + 6.0 * (u() - 0.5)).round().max(0.0)
            })
            .collect();
        let signal = |name: &str, excess: Vec<f64>| UpstreamSignal { name: name.into(), baseline_weeks: 8, excess };
        SeriesInput {
            start: chrono::NaiveDate::from_ymd_opt(2023, 1, 2).unwrap(),
            target,
            upstream: vec![signal("surge", surge), signal("noise", noise)],
            holidays: Vec::new(),
        }
    }

    #[test]
    fn the_parts_sum_to_the_mean_and_the_leading_signal_carries_the_surge() {
        let days = 420;
        let input = led_series(days);
        let params = ForecastParams {
            horizon: 10,
            models: vec![ModelKind::ElasticNet, ModelKind::Ensemble, ModelKind::Auto, ModelKind::SeasonalNaive],
            calibration_origins: 10,
            calibration_step: 5,
            ..ForecastParams::default()
        }
        .check()
        .unwrap();
        let at = forecast_at(&input, days - 1, &params).unwrap();
        for f in &at.forecasts {
            assert_eq!(f.attribution.len(), f.steps.len(), "{:?}", f.model);
            for (a, step) in f.attribution.iter().zip(&f.steps) {
                let sum = a.level + a.signals.iter().map(|s| s.part).sum::<f64>() + a.rest;
                assert!((sum - step.mean).abs() < 1e-9 * step.mean.max(1.0), "{:?} h{}: {a:?}", f.model, step.horizon);
            }
            if f.model == ModelKind::SeasonalNaive {
                assert!(f.attribution.iter().all(|a| a.signals.is_empty() && a.rest == 0.0));
            }
        }
        let enet = at.forecasts.iter().find(|f| f.model == ModelKind::ElasticNet).unwrap();
        // The pulse of days −6..−2 arrives on days +4..+8.
        for a in &enet.attribution[4..8] {
            let top = a.signals.iter().max_by(|x, y| x.part.abs().total_cmp(&y.part.abs())).expect("a signal part");
            assert_eq!(top.name, "surge", "{a:?}");
            assert!(top.part > 0.5 * a.level, "{a:?}");
            assert!(top.lead >= 8 && top.lead <= 12, "{top:?}");
        }
    }

    #[test]
    fn shapley_parts_sum_to_the_change_and_treat_equal_signals_equally() {
        let parts = crate::models::shapley_parts(3.0, &[0.4, 0.4, -0.2]);
        let total = (3.0f64 + 0.6).exp_m1() - 3.0f64.exp_m1();
        assert!((parts.iter().sum::<f64>() - total).abs() < 1e-12);
        assert!((parts[0] - parts[1]).abs() < 1e-12 && parts[2] < 0.0);
        assert!(crate::models::shapley_parts(1.0, &[]).is_empty());
        let many = crate::models::shapley_parts(2.0, &[0.1; 14]);
        assert!((many.iter().sum::<f64>() - ((3.4f64).exp_m1() - 2.0f64.exp_m1())).abs() < 1e-9);
    }

    #[test]
    fn conformal_ranks() {
        let r: Vec<f64> = (1..=19).map(f64::from).collect();
        // (19 + 1)·0.9 = 18 → the 18th value; (20)·0.1 = 2 → the 2nd.
        assert_eq!(conformal_quantile(&r, 0.9), 18.0);
        assert_eq!(conformal_quantile(&r, 0.1), 2.0);
        assert_eq!(conformal_quantile(&r, 0.5), 10.0);
        // Beyond the sample: the extreme value.
        assert_eq!(conformal_quantile(&r, 0.975), 19.0);
        assert_eq!(conformal_quantile(&r, 0.025), 1.0);
        assert!(conformal_quantile(&[], 0.5).is_nan());
    }
}
