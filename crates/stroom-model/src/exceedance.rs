//! The chance that arrivals exceed a capacity, from a forecast's published
//! quantiles.
//!
//! A forecast day publishes five quantiles: `lo95` (the 2.5% quantile),
//! `q10`, `q50`, `q90` and `hi95` (97.5%). Between them the distribution
//! function is interpolated linearly, so the probability is exact at each
//! quantile (`P(X > q90) = 0.10`). Beyond them it is a stated assumption:
//! an exponential tail that continues the slope of the two outermost
//! quantiles (above `hi95`, `P(X > c) = 0.025·exp(−(c − hi95)/θ)` with
//! `θ = (hi95 − q90)/ln 4`, so the tail meets `q90` as well; below `lo95`
//! the mirror image, cut at zero because counts are never negative). Every
//! [`Exceedance`] says when its probability comes from a tail.
//!
//! A rolling window of days is the sum of its days. Its quantiles are taken
//! as the sums of the days' quantiles, which assumes that the days' errors
//! move together (a forecast that is too low one day is too low the next,
//! as level errors are): this widens the window's interval compared with
//! independent days, so it errs towards an alert.

/// The cumulative probabilities of the published quantiles.
const LEVELS: [f64; 5] = [0.025, 0.10, 0.50, 0.90, 0.975];

/// A forecast day's (or window's) published quantiles, ordered
/// `lo95 ≤ q10 ≤ q50 ≤ q90 ≤ hi95`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quantiles {
    /// The 2.5% quantile.
    pub lo95: f64,
    /// The 10% quantile.
    pub q10: f64,
    /// The median.
    pub q50: f64,
    /// The 90% quantile.
    pub q90: f64,
    /// The 97.5% quantile.
    pub hi95: f64,
}

/// Which tail of the distribution an exceedance probability comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tail {
    /// The capacity is below `lo95`: the probability is above 0.975 and
    /// rests on the lower tail's assumed shape.
    Lower,
    /// The capacity is above `hi95`: the probability is below 0.025 and
    /// rests on the upper tail's assumed shape.
    Upper,
}

impl Tail {
    /// `"lower"` or `"upper"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Tail::Lower => "lower",
            Tail::Upper => "upper",
        }
    }
}

/// How likely, and by how much, arrivals exceed a capacity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Exceedance {
    /// `P(X > capacity)`, in `[0, 1]`.
    pub probability: f64,
    /// `E[max(X − capacity, 0)]`: the expected number of arrivals above the
    /// capacity (zero days included).
    pub expected_excess: f64,
    /// Set when the probability lies beyond the published quantiles.
    pub tail: Option<Tail>,
}

impl Quantiles {
    fn values(&self) -> [f64; 5] {
        [self.lo95, self.q10, self.q50, self.q90, self.hi95]
    }

    /// The quantiles of a sum of days whose errors move together: the sums
    /// of the days' quantiles, plus `known` (days already observed).
    pub fn comonotonic_sum(days: &[Quantiles], known: f64) -> Quantiles {
        let mut sum = Quantiles { lo95: known, q10: known, q50: known, q90: known, hi95: known };
        for day in days {
            sum.lo95 += day.lo95;
            sum.q10 += day.q10;
            sum.q50 += day.q50;
            sum.q90 += day.q90;
            sum.hi95 += day.hi95;
        }
        sum
    }

    /// The upper tail's scale `θ`: zero when `q90 = hi95` (no mass beyond).
    fn upper_scale(&self) -> f64 {
        ((self.hi95 - self.q90) / ((1.0 - LEVELS[3]) / (1.0 - LEVELS[4])).ln()).max(0.0)
    }

    /// The lower tail's scale, like [`Quantiles::upper_scale`].
    fn lower_scale(&self) -> f64 {
        ((self.q10 - self.lo95) / (LEVELS[1] / LEVELS[0]).ln()).max(0.0)
    }

    /// `P(X ≤ x)` under the interpolation and the tails.
    fn cdf(&self, x: f64) -> f64 {
        let v = self.values();
        if x < 0.0 {
            return 0.0;
        }
        if x < v[0] {
            let theta = self.lower_scale();
            return if theta > 0.0 { LEVELS[0] * (-(v[0] - x) / theta).exp() } else { 0.0 };
        }
        if x >= v[4] {
            let theta = self.upper_scale();
            // No mass beyond hi95 when q90 = hi95.
            return if theta > 0.0 { 1.0 - (1.0 - LEVELS[4]) * (-(x - v[4]) / theta).exp() } else { 1.0 };
        }
        // The last knot at or below x; ties jump to the highest level.
        let j = (0..4).rev().find(|&j| v[j] <= x).unwrap_or(0);
        let (a, b) = (v[j], v[j + 1]);
        if b > a { LEVELS[j] + (LEVELS[j + 1] - LEVELS[j]) * (x - a) / (b - a) } else { LEVELS[j + 1] }
    }

    /// The chance that the value exceeds `capacity`, with the expected
    /// excess. Non-finite quantiles or capacity give probability `NaN`.
    pub fn exceedance(&self, capacity: f64) -> Exceedance {
        let v = self.values();
        if !capacity.is_finite() || v.iter().any(|x| !x.is_finite()) {
            return Exceedance { probability: f64::NAN, expected_excess: f64::NAN, tail: None };
        }
        let tail = if capacity > v[4] {
            Some(Tail::Upper)
        } else if capacity < v[0] && v[0] > 0.0 {
            Some(Tail::Lower)
        } else {
            None
        };
        let probability = (1.0 - self.cdf(capacity)).clamp(0.0, 1.0);
        Exceedance { probability, expected_excess: self.expected_excess(capacity), tail }
    }

    /// `∫_c^∞ P(X > x) dx`: trapezoids between knots (the survival is linear
    /// there), closed forms in the tails.
    fn expected_excess(&self, capacity: f64) -> f64 {
        let v = self.values();
        let c = capacity.max(0.0);
        // Below c = max(capacity, 0) everything exceeds a negative capacity.
        let mut total = (c - capacity).max(0.0);
        // Lower tail, from c to lo95: S(x) = 1 − 0.025·exp(−(lo95 − x)/θ).
        if c < v[0] {
            let theta = self.lower_scale();
            let width = v[0] - c;
            let mass = if theta > 0.0 { LEVELS[0] * theta * (1.0 - (-width / theta).exp()) } else { 0.0 };
            total += width - mass;
        }
        // Between knots.
        for j in 0..4 {
            let (a, b) = (v[j].max(c), v[j + 1]);
            if b > a {
                let (sa, sb) = (1.0 - self.cdf(a), 1.0 - LEVELS[j + 1]);
                total += 0.5 * (sa + sb) * (b - a);
            }
        }
        // Upper tail, from max(c, hi95): 0.025·θ·exp(−(x₀ − hi95)/θ).
        let theta = self.upper_scale();
        if theta > 0.0 {
            let from = c.max(v[4]);
            total += (1.0 - LEVELS[4]) * theta * (-(from - v[4]) / theta).exp();
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q() -> Quantiles {
        Quantiles { lo95: 40.0, q10: 60.0, q50: 100.0, q90: 150.0, hi95: 190.0 }
    }

    #[test]
    fn the_probability_is_exact_at_every_published_quantile() {
        let q = q();
        for (value, level) in q.values().into_iter().zip(LEVELS) {
            let e = q.exceedance(value);
            assert!((e.probability - (1.0 - level)).abs() < 1e-12, "at {value}: {e:?}");
            assert_eq!(e.tail, None);
        }
    }

    #[test]
    fn the_probability_falls_as_the_capacity_rises_and_tails_are_stated() {
        let q = q();
        let mut last = 1.0;
        for c in (-20..400).map(f64::from) {
            let e = q.exceedance(c);
            assert!(e.probability <= last + 1e-12, "at {c}: {} after {last}", e.probability);
            last = e.probability;
        }
        assert_eq!(q.exceedance(-1.0).probability, 1.0);
        let above = q.exceedance(230.0);
        assert_eq!(above.tail, Some(Tail::Upper));
        assert!(above.probability > 0.0 && above.probability < 0.025);
        // The tail continues through q90: θ = 40 / ln 4, so 40 more halves it twice.
        assert!((above.probability - 0.025 / 4.0).abs() < 1e-12, "{above:?}");
        let below = q.exceedance(20.0);
        assert_eq!(below.tail, Some(Tail::Lower));
        assert!(below.probability > 0.975 && below.probability < 1.0);
    }

    #[test]
    fn the_expected_excess_is_the_integral_of_the_survival() {
        let q = q();
        for c in [-10.0, 0.0, 30.0, 55.0, 100.0, 170.0, 250.0] {
            // A fine midpoint sum of P(X > x) from c to far in the tail.
            let (mut sum, step) = (0.0, 0.01);
            let mut x = c + step / 2.0;
            while x < 2000.0 {
                sum += (1.0 - q.cdf(x)) * step;
                x += step;
            }
            let e = q.exceedance(c).expected_excess;
            assert!((e - sum).abs() < 1e-3 * sum.max(1.0), "at {c}: {e} against {sum}");
        }
    }

    #[test]
    fn a_point_forecast_exceeds_exactly_below_its_value() {
        let q = Quantiles { lo95: 0.0, q10: 0.0, q50: 0.0, q90: 0.0, hi95: 0.0 };
        assert_eq!(q.exceedance(0.0).probability, 0.0);
        assert_eq!(q.exceedance(0.0).expected_excess, 0.0);
        assert_eq!(q.exceedance(-1.0).probability, 1.0);
        let q = Quantiles { lo95: 5.0, q10: 5.0, q50: 5.0, q90: 5.0, hi95: 5.0 };
        assert!(q.exceedance(4.9).probability > 0.99);
        assert!(q.exceedance(5.1).probability < 1e-12);
    }

    #[test]
    fn a_window_sums_its_days_and_what_was_observed() {
        let sum = Quantiles::comonotonic_sum(&[q(), q()], 30.0);
        assert_eq!(sum, Quantiles { lo95: 110.0, q10: 150.0, q50: 230.0, q90: 330.0, hi95: 410.0 });
        assert!(q().exceedance(f64::NAN).probability.is_nan());
    }
}
