//! Rolling-origin backtests with statsforecast's fold convention: for
//! horizon H, F folds and step S, the cutoffs (last day used) are
//! `last − H − (F − 1 − i)·S` for i = 0…F−1, where `last` is the last day
//! with a known value, and each fold forecasts the H days after its cutoff.

use chrono::NaiveDate;

use crate::ModelError;
use crate::forecast::{CutoffForecast, ValidForecastParams, forecast_at};
use crate::metrics::{Metrics, Scored, average_folds, sample_metrics};
use crate::models::{ModelKind, SeriesInput};

/// Folds of a backtest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Folds {
    pub horizon: usize,
    pub folds: usize,
    pub step: usize,
}

impl Folds {
    /// The cutoff indexes, oldest first, for a series whose last known day
    /// is `last`.
    pub fn cutoffs(&self, last: usize) -> Result<Vec<usize>, ModelError> {
        if self.folds == 0 || self.step == 0 {
            return Err(ModelError::InvalidParameter {
                name: "folds/step",
                value: format!("{}/{}", self.folds, self.step),
                reason: "need at least one fold and a step of at least one day".into(),
            });
        }
        (0..self.folds)
            .map(|i| {
                last.checked_sub(self.horizon + (self.folds - 1 - i) * self.step).ok_or_else(|| {
                    ModelError::NotEnoughData(format!(
                        "{} folds of {} days every {} days reach back {} days, the series has {}",
                        self.folds,
                        self.horizon,
                        self.step,
                        self.horizon + (self.folds - 1) * self.step,
                        last + 1
                    ))
                })
            })
            .collect()
    }
}

/// One forecast of a backtest, as written to `forecasts.parquet`.
#[derive(Debug, Clone, PartialEq)]
pub struct BacktestRow {
    pub model: String,
    pub cutoff: NaiveDate,
    pub date: NaiveDate,
    pub horizon: usize,
    /// NaN where the actual is unknown.
    pub actual: f64,
    pub mean: f64,
    pub q10: f64,
    pub q50: f64,
    pub q90: f64,
    pub lo80: f64,
    pub hi80: f64,
    pub lo95: f64,
    pub hi95: f64,
    /// For `auto`, the model it chose at this cutoff.
    pub chosen: Option<String>,
    /// In-sample seasonal-naive errors (absolute, squared) up to the cutoff.
    pub scale_abs: f64,
    pub scale_sq: f64,
}

/// Metrics of one model, over all horizons (`horizon` None) or one.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsRow {
    pub model: String,
    pub horizon: Option<usize>,
    pub metrics: Metrics,
}

/// The result of a backtest.
#[derive(Debug, Clone, PartialEq)]
pub struct Backtest {
    pub cutoffs: Vec<NaiveDate>,
    pub rows: Vec<BacktestRow>,
    pub metrics: Vec<MetricsRow>,
    /// Per fold: the leads estimated at its cutoff.
    pub folds: Vec<CutoffForecast>,
}

/// The last day index with a known target value.
pub fn last_known(input: &SeriesInput) -> Option<usize> {
    input.target.iter().rposition(|v| v.is_finite())
}

/// Rows of one cutoff's forecasts, with actuals from `actuals` (a series
/// aligned with the input; NaN where unknown).
pub fn rows_of(input: &SeriesInput, actuals: &[f64], forecast: &CutoffForecast) -> Vec<BacktestRow> {
    let cutoff = forecast.cutoff;
    let mut rows = Vec::new();
    for f in &forecast.forecasts {
        for step in &f.steps {
            let day = cutoff + step.horizon;
            rows.push(BacktestRow {
                model: f.model.name().into(),
                cutoff: input.date(cutoff),
                date: input.date(day),
                horizon: step.horizon,
                actual: actuals.get(day).copied().unwrap_or(f64::NAN),
                mean: step.mean,
                q10: step.q10,
                q50: step.q50,
                q90: step.q90,
                lo80: step.lo80,
                hi80: step.hi80,
                lo95: step.lo95,
                hi95: step.hi95,
                chosen: f.chosen.map(|k| k.name().to_owned()),
                scale_abs: forecast.scale.0,
                scale_sq: forecast.scale.1,
            });
        }
    }
    rows
}

/// Runs a backtest on one input (the latest data vintage). For backtests
/// on past vintages, call [`forecast_at`] per cutoff with each vintage's
/// input and [`summarise`] the rows.
pub fn backtest(input: &SeriesInput, folds: Folds, params: &ValidForecastParams) -> Result<Backtest, ModelError> {
    backtest_with_progress(input, folds, params, &|_, _| {})
}

/// [`backtest`], calling `progress(done, total)` as each fold finishes (from
/// the thread that ran it).
pub fn backtest_with_progress(
    input: &SeriesInput,
    folds: Folds,
    params: &ValidForecastParams,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<Backtest, ModelError> {
    if folds.horizon != params.params().horizon {
        return Err(ModelError::InvalidParameter {
            name: "horizon",
            value: folds.horizon.to_string(),
            reason: format!("the forecast parameters say {}", params.params().horizon),
        });
    }
    let last = last_known(input).ok_or_else(|| ModelError::NotEnoughData("the series has no known value".into()))?;
    let cutoffs = folds.cutoffs(last)?;
    // Folds are independent: they run on every core, each thread taking the
    // next fold, and are put back in cutoff order.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(cutoffs.len()).max(1);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let finished = std::sync::atomic::AtomicUsize::new(0);
    let mut results: Vec<(usize, Result<CutoffForecast, ModelError>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(&cutoff) = cutoffs.get(i) else { break };
                        done.push((i, forecast_at(input, cutoff, params)));
                        let finished = finished.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                        progress(finished, cutoffs.len());
                    }
                    done
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("a backtest thread panicked")).collect()
    });
    results.sort_by_key(|(i, _)| *i);
    let mut rows = Vec::new();
    let mut fold_forecasts = Vec::new();
    for (_, forecast) in results {
        let forecast = forecast?;
        rows.extend(rows_of(input, &input.target, &forecast));
        fold_forecasts.push(forecast);
    }
    let metrics = summarise(&rows, &params.params().models);
    Ok(Backtest { cutoffs: cutoffs.iter().map(|&c| input.date(c)).collect(), rows, metrics, folds: fold_forecasts })
}

fn scored(row: &BacktestRow) -> Option<Scored> {
    row.actual.is_finite().then_some(Scored {
        actual: row.actual,
        mean: row.mean,
        q10: row.q10,
        q50: row.q50,
        q90: row.q90,
        lo80: row.lo80,
        hi80: row.hi80,
        lo95: row.lo95,
        hi95: row.hi95,
        scale_abs: row.scale_abs,
        scale_sq: row.scale_sq,
    })
}

/// Metrics per model (averaged over folds) and per model and horizon.
pub fn summarise(rows: &[BacktestRow], models: &[ModelKind]) -> Vec<MetricsRow> {
    let mut out = Vec::new();
    let mut names: Vec<String> = models.iter().map(|m| m.name().to_owned()).collect();
    for row in rows {
        if !names.contains(&row.model) {
            names.push(row.model.clone());
        }
    }
    for name in names {
        let mine: Vec<&BacktestRow> = rows.iter().filter(|r| r.model == name).collect();
        if mine.is_empty() {
            continue;
        }
        let mut cutoffs: Vec<NaiveDate> = mine.iter().map(|r| r.cutoff).collect();
        cutoffs.sort();
        cutoffs.dedup();
        let per_fold: Vec<Metrics> = cutoffs
            .iter()
            .map(|c| {
                let sample: Vec<Scored> = mine.iter().filter(|r| r.cutoff == *c).filter_map(|r| scored(r)).collect();
                sample_metrics(&sample)
            })
            .collect();
        out.push(MetricsRow { model: name.clone(), horizon: None, metrics: average_folds(&per_fold) });
        let max_h = mine.iter().map(|r| r.horizon).max().unwrap_or(0);
        for h in 1..=max_h {
            let sample: Vec<Scored> = mine.iter().filter(|r| r.horizon == h).filter_map(|r| scored(r)).collect();
            out.push(MetricsRow { model: name.clone(), horizon: Some(h), metrics: sample_metrics(&sample) });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutoffs_follow_statsforecast() {
        let folds = Folds { horizon: 14, folds: 3, step: 7 };
        // last = 100: 100 − 14 − (2 − i)·7 → 72, 79, 86.
        assert_eq!(folds.cutoffs(100).expect("fits"), vec![72, 79, 86]);
        assert!(Folds { horizon: 14, folds: 20, step: 7 }.cutoffs(100).is_err());
    }
}
