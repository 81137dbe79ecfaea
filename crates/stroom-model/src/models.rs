//! The forecasting models behind one trait. Each follows linfa's shape: a
//! params struct, checked into valid params (`check`), which forecast from a
//! cutoff. Every model works on the same [`SeriesInput`] and uses only the
//! days up to the origin it forecasts from.
//!
//! - [`BaselineParams`]: naive, seasonal naive (m = 7) and moving average.
//! - [`EtsParams`]: MSTL with a weekly season and AutoETS on the trend, from
//!   augurs, on `log1p` counts.
//! - [`ElasticNetParams`]: the direct multi-horizon ElasticNet from
//!   linfa-elasticnet on `log1p` counts, one model per horizon. Features
//!   are clamped to their training range; the penalty is chosen on
//!   selection origins that precede the calibration window; calibration
//!   forecasts come from refits every seven origins. With
//!   `upstream: false` it is the ablation `elasticnet_univariate`.

use augurs::ets::AutoETS;
use augurs::mstl::MSTLModel;
use augurs::{Fit as _, Predict as _};
use chrono::NaiveDate;
use linfa::prelude::*;
use linfa_elasticnet::ElasticNet;
use ndarray::{Array1, Array2};

use crate::features::{self, Design, ROW_HISTORY};
use crate::{Lead, ModelError};

/// A daily target series with the upstream signals that may lead it.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesInput {
    /// The date of index 0.
    pub start: NaiveDate,
    /// Daily counts; NaN where unknown.
    pub target: Vec<f64>,
    /// Upstream signals, aligned with `target` (same start and length).
    pub upstream: Vec<UpstreamSignal>,
    /// Days with a holiday effect (may be empty).
    pub holidays: Vec<NaiveDate>,
}

/// One upstream signal: a route segment's density excess per day over a
/// baseline of `baseline_weeks` (see [`crate::density_excess`]). A segment
/// usually comes twice, over the recent and the long baseline.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamSignal {
    pub name: String,
    pub baseline_weeks: usize,
    pub excess: Vec<f64>,
}

/// The lead of one upstream signal over the target, as estimated at a
/// cutoff (`None`: no lag correlates above the noise level).
#[derive(Debug, Clone, PartialEq)]
pub struct SignalLead {
    pub name: String,
    pub baseline_weeks: usize,
    pub lead: Option<Lead>,
}

impl SeriesInput {
    /// The date of day index `i`.
    pub fn date(&self, i: usize) -> NaiveDate {
        self.start + chrono::Duration::days(i as i64)
    }

    /// The day index of `date`, if inside the series' range (or just after it).
    pub fn index_of(&self, date: NaiveDate) -> Option<usize> {
        usize::try_from((date - self.start).num_days()).ok()
    }
}

/// The models stroom knows, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ModelKind {
    /// The last known value.
    Naive,
    /// The same weekday one week earlier (m = 7).
    SeasonalNaive,
    /// The mean of the last `window` days.
    MovingAverage,
    /// MSTL (weekly) with AutoETS on the trend, on `log1p` counts (augurs).
    Ets,
    /// Direct multi-horizon ElasticNet on `log1p` counts with lags, calendar,
    /// trend and upstream features (linfa).
    ElasticNet,
    /// The same regression without the upstream features (the ablation).
    ElasticNetUnivariate,
    /// The mean of the best three members by calibration error.
    Ensemble,
    /// The member or ensemble with the lowest calibration MASE.
    Auto,
}

impl ModelKind {
    /// Every model, members first.
    pub const ALL: [ModelKind; 8] = [
        ModelKind::Naive,
        ModelKind::SeasonalNaive,
        ModelKind::MovingAverage,
        ModelKind::Ets,
        ModelKind::ElasticNet,
        ModelKind::ElasticNetUnivariate,
        ModelKind::Ensemble,
        ModelKind::Auto,
    ];

    /// The models that are fitted on their own (not combinations).
    pub const MEMBERS: [ModelKind; 6] = [
        ModelKind::Naive,
        ModelKind::SeasonalNaive,
        ModelKind::MovingAverage,
        ModelKind::Ets,
        ModelKind::ElasticNet,
        ModelKind::ElasticNetUnivariate,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Naive => "naive",
            ModelKind::SeasonalNaive => "seasonal_naive",
            ModelKind::MovingAverage => "moving_average",
            ModelKind::Ets => "ets",
            ModelKind::ElasticNet => "elasticnet",
            ModelKind::ElasticNetUnivariate => "elasticnet_univariate",
            ModelKind::Ensemble => "ensemble",
            ModelKind::Auto => "auto",
        }
    }

    /// Parses a model name (as [`Self::name`] gives it; `-` may stand for `_`).
    pub fn parse(name: &str) -> Result<Self, ModelError> {
        let wanted = name.trim().to_ascii_lowercase().replace('-', "_");
        Self::ALL
            .into_iter()
            .find(|k| k.name() == wanted)
            .ok_or_else(|| ModelError::UnknownModel(name.to_owned(), Self::ALL.map(ModelKind::name).join(", ")))
    }

    /// Parses a comma-separated list of model names, keeping order, without repeats.
    pub fn parse_list(names: &str) -> Result<Vec<Self>, ModelError> {
        let mut kinds = Vec::new();
        for name in names.split(',').filter(|n| !n.trim().is_empty()) {
            let kind = Self::parse(name)?;
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
        if kinds.is_empty() {
            return Err(ModelError::InvalidParameter {
                name: "models",
                value: names.to_owned(),
                reason: "no model named".into(),
            });
        }
        Ok(kinds)
    }

    /// Whether the model works on `log1p` counts (its median is calibrated
    /// and its mean bias-corrected); the baselines' point forecast is their
    /// median and mean by definition.
    pub fn is_learned(self) -> bool {
        !matches!(self, ModelKind::Naive | ModelKind::SeasonalNaive | ModelKind::MovingAverage)
    }
}

/// What a member model produces at one cutoff: the point forecast for the
/// horizon and point forecasts from each calibration origin.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberRun {
    /// Point forecasts for days `cutoff + 1 ..= cutoff + horizon`.
    pub point: Vec<f64>,
    /// For each calibration origin (same order as given), forecasts for
    /// `origin + 1 ..= origin + horizon` from what the model knew at that
    /// origin (see each model).
    pub calibration: Vec<Vec<f64>>,
    /// Leads of the upstream signals that the model used.
    pub leads: Vec<SignalLead>,
    /// How each day of `point` splits into what the model forecasts without
    /// any upstream signal and each signal's part (empty for models that
    /// read no signal; `None` for a day without a forecast).
    pub parts: Vec<Option<PointParts>>,
}

/// One day of a point forecast split into additive parts: `base + Σ
/// signals[i].part = point`.
#[derive(Debug, Clone, PartialEq)]
pub struct PointParts {
    /// The forecast with every upstream signal at "no excess" (level, lags,
    /// calendar, trend and holidays).
    pub base: f64,
    /// Each upstream signal that entered the day's forecast.
    pub signals: Vec<SignalPart>,
}

/// One upstream signal's part of a forecast day, in arrivals.
#[derive(Debug, Clone, PartialEq)]
pub struct SignalPart {
    /// The signal (the route segment).
    pub name: String,
    /// The baseline of its density excess, in weeks.
    pub baseline_weeks: usize,
    /// Its lead over the target, in days.
    pub lead: usize,
    /// Arrivals it adds (or, negative, removes).
    pub part: f64,
}

/// Shapley values of `contributions` on the count scale: with `v(S) =
/// max(expm1(base + Σ_{i∈S} c_i), 0)`, each signal's average marginal
/// change over every order in which the signals could be added. They sum
/// exactly to `v(all) − v(∅)`. Beyond twelve signals (4096 subsets) the
/// change is split in proportion to the log-scale contributions instead.
pub(crate) fn shapley_parts(base_log: f64, contributions: &[f64]) -> Vec<f64> {
    let n = contributions.len();
    let value = |log: f64| log.exp_m1().max(0.0);
    let total = value(base_log + contributions.iter().sum::<f64>()) - value(base_log);
    if n == 0 {
        return Vec::new();
    }
    if n > 12 {
        let sum: f64 = contributions.iter().sum();
        return if sum.abs() > 1e-12 {
            contributions.iter().map(|c| total * c / sum).collect()
        } else {
            vec![total / n as f64; n]
        };
    }
    let subsets = 1usize << n;
    let values: Vec<f64> = (0..subsets)
        .map(|mask| {
            let log = base_log + (0..n).filter(|i| mask >> i & 1 == 1).map(|i| contributions[i]).sum::<f64>();
            value(log)
        })
        .collect();
    // weight[s] = s!(n−s−1)!/n! for a subset of size s without the player.
    let factorial = |k: usize| (1..=k).map(|i| i as f64).product::<f64>();
    let weight: Vec<f64> = (0..n).map(|s| factorial(s) * factorial(n - s - 1) / factorial(n)).collect();
    (0..n)
        .map(|i| {
            (0..subsets)
                .filter(|mask| mask >> i & 1 == 0)
                .map(|mask| weight[mask.count_ones() as usize] * (values[mask | 1 << i] - values[mask]))
                .sum()
        })
        .collect()
}

/// The one trait of the member models.
pub trait Forecaster: std::fmt::Debug + Send + Sync {
    /// Forecasts `horizon` days from `cutoff` (data up to and including
    /// `cutoff`), and from each calibration origin (all before `cutoff`).
    fn run(
        &self,
        input: &SeriesInput,
        cutoff: usize,
        horizon: usize,
        calibration_origins: &[usize],
    ) -> Result<MemberRun, ModelError>;
}

/// Parameters of the baseline models.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BaselineParams {
    pub kind: ModelKind,
    /// Days averaged by the moving average.
    pub window: usize,
}

/// Checked [`BaselineParams`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BaselineValidParams(BaselineParams);

impl BaselineParams {
    pub fn check(self) -> Result<BaselineValidParams, ModelError> {
        if !matches!(self.kind, ModelKind::Naive | ModelKind::SeasonalNaive | ModelKind::MovingAverage) {
            return Err(ModelError::InvalidParameter {
                name: "kind",
                value: self.kind.name().into(),
                reason: "not a baseline".into(),
            });
        }
        if self.window == 0 {
            return Err(ModelError::InvalidParameter {
                name: "window",
                value: "0".into(),
                reason: "a moving average needs at least one day".into(),
            });
        }
        Ok(BaselineValidParams(self))
    }
}

impl BaselineValidParams {
    fn forecast_from(&self, y: &[f64], origin: usize, horizon: usize) -> Vec<f64> {
        let p = self.0;
        match p.kind {
            ModelKind::Naive => vec![y[origin]; horizon],
            ModelKind::SeasonalNaive => (1..=horizon)
                .map(|h| {
                    let back = 7 * h.div_ceil(7);
                    if origin + h >= back { y[origin + h - back] } else { f64::NAN }
                })
                .collect(),
            _ => {
                let from = (origin + 1).saturating_sub(p.window);
                let known: Vec<f64> = y[from..=origin].iter().copied().filter(|v| v.is_finite()).collect();
                let mean = if known.is_empty() { f64::NAN } else { known.iter().sum::<f64>() / known.len() as f64 };
                vec![mean; horizon]
            }
        }
    }
}

impl Forecaster for BaselineValidParams {
    fn run(
        &self,
        input: &SeriesInput,
        cutoff: usize,
        horizon: usize,
        calibration_origins: &[usize],
    ) -> Result<MemberRun, ModelError> {
        let y = features::forward_fill(&input.target);
        Ok(MemberRun {
            point: self.forecast_from(&y, cutoff, horizon),
            calibration: calibration_origins.iter().map(|&o| self.forecast_from(&y, o, horizon)).collect(),
            leads: Vec::new(),
            parts: Vec::new(),
        })
    }
}

/// Parameters of the statistical baseline: MSTL with a weekly season and
/// AutoETS on the trend (augurs), on `log1p` counts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EtsParams {
    /// Days of history fitted (the most recent ones).
    pub window: usize,
}

/// Checked [`EtsParams`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EtsValidParams(EtsParams);

impl EtsParams {
    pub fn check(self) -> Result<EtsValidParams, ModelError> {
        if self.window < 28 {
            return Err(ModelError::InvalidParameter {
                name: "ets window",
                value: self.window.to_string(),
                reason: "MSTL needs at least four weeks".into(),
            });
        }
        Ok(EtsValidParams(self))
    }
}

impl EtsValidParams {
    fn forecast_from(&self, log_y: &[f64], origin: usize, horizon: usize) -> Result<Vec<f64>, ModelError> {
        let from = (origin + 1).saturating_sub(self.0.window);
        let history: Vec<f64> = log_y[from..=origin].iter().copied().filter(|v| v.is_finite()).collect();
        if history.len() < 28 {
            return Ok(vec![f64::NAN; horizon]);
        }
        let model = MSTLModel::new(vec![7], AutoETS::non_seasonal().into_trend_model());
        let fitted = model.fit(&history).map_err(|e| ModelError::Fit { model: "ets".into(), reason: e.to_string() })?;
        let forecast = fitted
            .predict(horizon, None)
            .map_err(|e| ModelError::Fit { model: "ets".into(), reason: e.to_string() })?;
        Ok(forecast.point.iter().map(|v| v.exp_m1().max(0.0)).collect())
    }
}

impl Forecaster for EtsValidParams {
    fn run(
        &self,
        input: &SeriesInput,
        cutoff: usize,
        horizon: usize,
        calibration_origins: &[usize],
    ) -> Result<MemberRun, ModelError> {
        let log_y = features::forward_fill(&features::log1p(&input.target));
        let mut calibration = Vec::with_capacity(calibration_origins.len());
        for &origin in calibration_origins {
            calibration.push(self.forecast_from(&log_y, origin, horizon)?);
        }
        Ok(MemberRun {
            point: self.forecast_from(&log_y, cutoff, horizon)?,
            calibration,
            leads: Vec::new(),
            parts: Vec::new(),
        })
    }
}

/// Parameters of the main model: one ElasticNet per horizon on `log1p`
/// counts (linfa-elasticnet), with standardised features.
#[derive(Debug, Clone, PartialEq)]
pub struct ElasticNetParams {
    /// Candidate penalties; the one with the lowest error on the selection
    /// origins (before the calibration origins) is used.
    pub penalties: Vec<f64>,
    pub l1_ratio: f64,
    /// Most days of training rows (the most recent ones).
    pub max_train_days: usize,
    /// Use the upstream signals (false: the univariate ablation).
    pub upstream: bool,
    /// Longest lead of an upstream signal searched, in days.
    pub max_lead: usize,
    /// Calibration origins per refit: the calibration forecasts come from a
    /// fit on targets up to the first origin of each block of this many.
    pub refit_every: usize,
}

impl Default for ElasticNetParams {
    fn default() -> Self {
        Self {
            penalties: vec![0.001, 0.01, 0.05, 0.2],
            l1_ratio: 0.5,
            max_train_days: 1095,
            upstream: true,
            max_lead: 42,
            refit_every: 7,
        }
    }
}

/// Checked [`ElasticNetParams`].
#[derive(Debug, Clone, PartialEq)]
pub struct ElasticNetValidParams(ElasticNetParams);

impl ElasticNetParams {
    pub fn check(self) -> Result<ElasticNetValidParams, ModelError> {
        if self.penalties.is_empty() || self.penalties.iter().any(|p| !p.is_finite() || *p < 0.0) {
            return Err(ModelError::InvalidParameter {
                name: "penalties",
                value: format!("{:?}", self.penalties),
                reason: "need at least one finite, non-negative penalty".into(),
            });
        }
        if !(0.0..=1.0).contains(&self.l1_ratio) {
            return Err(ModelError::InvalidParameter {
                name: "l1_ratio",
                value: self.l1_ratio.to_string(),
                reason: "must be in 0..=1".into(),
            });
        }
        if self.max_train_days < 56 {
            return Err(ModelError::InvalidParameter {
                name: "max_train_days",
                value: self.max_train_days.to_string(),
                reason: "need at least eight weeks of rows".into(),
            });
        }
        if self.refit_every == 0 {
            return Err(ModelError::InvalidParameter {
                name: "refit_every",
                value: "0".into(),
                reason: "need at least one calibration origin per refit".into(),
            });
        }
        Ok(ElasticNetValidParams(self))
    }
}

/// One fitted horizon: standardisation and coefficients.
#[derive(Debug, Clone)]
struct HorizonFit {
    mean: Vec<f64>,
    scale: Vec<f64>,
    /// The range of each feature in training: a new row is clamped to it, so
    /// that an unseen extreme (a surge upstream) cannot extrapolate linearly.
    low: Vec<f64>,
    high: Vec<f64>,
    weights: Vec<f64>,
    intercept: f64,
}

impl HorizonFit {
    fn predict(&self, row: &[f64]) -> f64 {
        let mut value = self.intercept;
        for (i, x) in row.iter().enumerate() {
            let x = x.clamp(self.low[i], self.high[i]);
            value += self.weights[i] * (x - self.mean[i]) / self.scale[i];
        }
        value
    }
}

impl ElasticNetValidParams {
    /// The design at `cutoff`: leads estimated from data up to `cutoff` only.
    fn design(&self, input: &SeriesInput, cutoff: usize) -> (Design, Vec<SignalLead>) {
        let mut upstream = Vec::new();
        let mut leads = Vec::new();
        if self.0.upstream {
            // A signal counts only when it is known at the cutoff: an upstream
            // feed that stopped cannot inform the forecast.
            for signal in input.upstream.iter().filter(|s| s.excess.get(cutoff).is_some_and(|v| v.is_finite())) {
                let lead = features::estimate_lead(&input.target, &signal.excess, cutoff, self.0.max_lead);
                if let Some(l) = lead {
                    upstream.push(features::upstream_feature(&signal.excess, l.days));
                }
                leads.push(SignalLead { name: signal.name.clone(), baseline_weeks: signal.baseline_weeks, lead });
            }
        }
        (Design::new(input.start, &input.target, upstream, input.holidays.clone()), leads)
    }

    /// Fits every horizon on rows whose target day is at most `last`.
    fn fit(
        &self,
        design: &Design,
        target_log: &[f64],
        last: usize,
        horizon: usize,
        penalty: f64,
    ) -> Result<Vec<Option<HorizonFit>>, ModelError> {
        let width = design.width();
        let mut fits = Vec::with_capacity(horizon);
        let mut row = Vec::with_capacity(width);
        for h in 1..=horizon {
            let Some(top) = last.checked_sub(h) else {
                fits.push(None);
                continue;
            };
            let first = top.saturating_sub(self.0.max_train_days).max(ROW_HISTORY);
            let mut xs = Vec::new();
            let mut ys = Vec::new();
            for origin in first..=top {
                let label = target_log[origin + h] - design.level(origin);
                if label.is_finite() && design.row(origin, h, &mut row) {
                    xs.extend_from_slice(&row);
                    ys.push(label);
                }
            }
            let n = ys.len();
            if n < 2 * width.max(14) {
                fits.push(None);
                continue;
            }
            let mut mean = vec![0.0; width];
            let mut scale = vec![0.0; width];
            let mut low = vec![0.0; width];
            let mut high = vec![0.0; width];
            for i in 0..width {
                let column = (0..n).map(|r| xs[r * width + i]);
                let m = column.clone().sum::<f64>() / n as f64;
                let v = column.clone().map(|x| (x - m).powi(2)).sum::<f64>() / n as f64;
                mean[i] = m;
                scale[i] = if v > 1e-12 { v.sqrt() } else { 1.0 };
                low[i] = column.clone().fold(f64::INFINITY, f64::min);
                high[i] = column.fold(f64::NEG_INFINITY, f64::max);
            }
            let standardised: Vec<f64> =
                xs.chunks(width).flat_map(|r| r.iter().enumerate().map(|(i, x)| (x - mean[i]) / scale[i])).collect();
            let x = Array2::from_shape_vec((n, width), standardised)
                .map_err(|e| ModelError::Fit { model: "elasticnet".into(), reason: e.to_string() })?;
            let dataset = Dataset::new(x, Array1::from_vec(ys));
            let model = ElasticNet::params()
                .penalty(penalty)
                .l1_ratio(self.0.l1_ratio)
                .max_iterations(1000)
                .tolerance(1e-4)
                .fit(&dataset)
                .map_err(|e| ModelError::Fit { model: "elasticnet".into(), reason: e.to_string() })?;
            fits.push(Some(HorizonFit {
                mean,
                scale,
                low,
                high,
                weights: model.hyperplane().to_vec(),
                intercept: model.intercept(),
            }));
        }
        Ok(fits)
    }

    /// Each day's forecast from `origin` split into the forecast without any
    /// upstream signal and the Shapley part of each signal. A signal's
    /// log-scale contribution is its coefficient times the change of its
    /// (clamped, standardised) feature from "no excess" (an excess of 0) to
    /// its value; `leads` names the design's signals in order.
    fn parts(
        &self,
        design: &Design,
        fits: &[Option<HorizonFit>],
        origin: usize,
        leads: &[SignalLead],
    ) -> Vec<Option<PointParts>> {
        let named: Vec<&SignalLead> = leads.iter().filter(|l| l.lead.is_some()).collect();
        let signals = design.upstream.len();
        let mut row = Vec::new();
        fits.iter()
            .enumerate()
            .map(|(i, fit)| {
                let fit = fit.as_ref()?;
                if !design.row(origin, i + 1, &mut row) {
                    return None;
                }
                let offset = row.len() - signals;
                let log = design.level(origin) + fit.predict(&row);
                let mut used = Vec::new();
                let mut contributions = Vec::new();
                for (j, feature) in design.upstream.iter().enumerate() {
                    let k = offset + j;
                    // A signal whose lead is shorter than the horizon is not in the row.
                    if feature.lead < i + 1 || fit.weights[k] == 0.0 {
                        continue;
                    }
                    let at = |x: f64| fit.weights[k] * x.clamp(fit.low[k], fit.high[k]) / fit.scale[k];
                    let c = at(row[k]) - at(0.0);
                    if c != 0.0 {
                        used.push(j);
                        contributions.push(c);
                    }
                }
                let base_log = log - contributions.iter().sum::<f64>();
                let shares = shapley_parts(base_log, &contributions);
                let signals = used
                    .iter()
                    .zip(shares)
                    .map(|(&j, part)| SignalPart {
                        name: named.get(j).map_or_else(|| format!("signal {j}"), |l| l.name.clone()),
                        baseline_weeks: named.get(j).map_or(0, |l| l.baseline_weeks),
                        lead: design.upstream[j].lead,
                        part,
                    })
                    .collect();
                Some(PointParts { base: base_log.exp_m1().max(0.0), signals })
            })
            .collect()
    }

    fn predict(&self, design: &Design, fits: &[Option<HorizonFit>], origin: usize) -> Vec<f64> {
        let mut row = Vec::new();
        fits.iter()
            .enumerate()
            .map(|(i, fit)| match fit {
                Some(fit) if design.row(origin, i + 1, &mut row) => {
                    (design.level(origin) + fit.predict(&row)).exp_m1().max(0.0)
                }
                _ => f64::NAN,
            })
            .collect()
    }
}

impl Forecaster for ElasticNetValidParams {
    fn run(
        &self,
        input: &SeriesInput,
        cutoff: usize,
        horizon: usize,
        calibration_origins: &[usize],
    ) -> Result<MemberRun, ModelError> {
        let (design, leads) = self.design(input, cutoff);
        let target_log = features::log1p(&input.target);
        // The penalty is chosen on selection origins: the calibration origins
        // moved back by the span they cover, scored by a fit that saw targets
        // up to the earliest of them. The calibration forecasts then come from
        // fits with that penalty on targets up to their own block of origins
        // (below), so that the residuals that set the intervals were not used
        // to choose it.
        let mut penalty = self.0.penalties[0];
        let mut calibration = Vec::new();
        if let (Some(earliest), Some(latest)) =
            (calibration_origins.iter().copied().min(), calibration_origins.iter().copied().max())
        {
            let span = latest - earliest + 1;
            let selection: Vec<usize> = calibration_origins
                .iter()
                .filter_map(|o| o.checked_sub(span))
                .filter(|&o| o >= ROW_HISTORY + 28)
                .collect();
            if self.0.penalties.len() > 1 && selection.len() >= 5 {
                let first = selection.iter().copied().min().unwrap_or(earliest);
                let (select_design, _) = self.design(input, first);
                let mut best = f64::INFINITY;
                for &candidate in &self.0.penalties {
                    let fits = self.fit(&select_design, &target_log, first, horizon, candidate)?;
                    let mut error = 0.0;
                    let mut n = 0usize;
                    for &o in &selection {
                        for (h, f) in self.predict(&select_design, &fits, o).iter().enumerate() {
                            let actual = input.target.get(o + h + 1).copied().unwrap_or(f64::NAN);
                            if actual.is_finite() && f.is_finite() {
                                error += (actual.max(0.0).ln_1p() - f.ln_1p()).abs();
                                n += 1;
                            }
                        }
                    }
                    let error = if n > 0 { error / n as f64 } else { f64::INFINITY };
                    if error < best {
                        best = error;
                        penalty = candidate;
                    }
                }
            }
            // Refitted every `refit_every` origins (in time order), each fit
            // on targets up to the first origin of its block: a residual then
            // reflects a model about as fresh as the one that forecasts from
            // the cutoff, not one fitted months before.
            let mut order: Vec<usize> = (0..calibration_origins.len()).collect();
            order.sort_by_key(|&i| calibration_origins[i]);
            calibration = vec![Vec::new(); calibration_origins.len()];
            for block in order.chunks(self.0.refit_every) {
                let first = calibration_origins[block[0]];
                let (block_design, _) = self.design(input, first);
                let fits = self.fit(&block_design, &target_log, first, horizon, penalty)?;
                for &i in block {
                    calibration[i] = self.predict(&block_design, &fits, calibration_origins[i]);
                }
            }
        }
        let fits = self.fit(&design, &target_log, cutoff, horizon, penalty)?;
        let parts = self.parts(&design, &fits, cutoff, &leads);
        Ok(MemberRun { point: self.predict(&design, &fits, cutoff), calibration, leads, parts })
    }
}
