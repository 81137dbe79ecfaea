//! The colour scales of maps. Forecast maps use viridis (perceptually
//! uniform, readable with the common colour-vision deficiencies and in
//! greyscale), in classes whose breaks are quantiles of the mapped values
//! rounded to two significant digits. Nowcast maps use ColorBrewer's
//! diverging red–blue scheme (colour-blind safe) with fixed breaks at ±1, ±2
//! and ±3 robust z-scores, so the same colour means the same on every day.

use crate::text::format_value;

/// Viridis at nine evenly spaced points (matplotlib's table), from dark
/// purple (0) to yellow (1).
const VIRIDIS: [(u8, u8, u8); 9] = [
    (0x44, 0x01, 0x54),
    (0x47, 0x2d, 0x7b),
    (0x3b, 0x52, 0x8b),
    (0x2c, 0x72, 0x8e),
    (0x21, 0x90, 0x8c),
    (0x27, 0xad, 0x81),
    (0x5d, 0xc8, 0x63),
    (0xaa, 0xdc, 0x32),
    (0xfd, 0xe7, 0x25),
];

/// Viridis at `t` in 0..=1, as `#rrggbb`.
pub(crate) fn viridis(t: f64) -> String {
    let t = t.clamp(0.0, 1.0) * (VIRIDIS.len() - 1) as f64;
    let i = (t.floor() as usize).min(VIRIDIS.len() - 2);
    let f = t - i as f64;
    let (a, b) = (VIRIDIS[i], VIRIDIS[i + 1]);
    let mix = |x: u8, y: u8| (f64::from(x) + (f64::from(y) - f64::from(x)) * f).round() as u8;
    format!("#{:02x}{:02x}{:02x}", mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// ColorBrewer's RdBu in seven classes, from blue (far below usual) through
/// white to red (far above).
const RDBU: [&str; 7] = ["#2166ac", "#67a9cf", "#d1e5f0", "#f7f7f7", "#fddbc7", "#ef8a62", "#b2182b"];
/// The nowcast scale's class breaks, in robust z-scores.
const Z_BREAKS: [f64; 6] = [-3.0, -2.0, -1.0, 1.0, 2.0, 3.0];

/// The most classes a map legend shows.
pub(crate) const MAX_CLASSES: usize = 6;

/// Value classes and their colours. Low values are light (yellow), high values
/// dark (purple), so that more reads as darker on paper.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ColourScale {
    min: f64,
    max: f64,
    /// Upper bounds of every class but the last, strictly increasing.
    breaks: Vec<f64>,
    /// The nowcast's diverging scale (fixed breaks) instead of viridis.
    diverging: bool,
}

impl ColourScale {
    /// The scale for `values` (finite numbers), or `None` when there are none.
    pub(crate) fn from_values(values: &[f64]) -> Option<Self> {
        let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        if sorted.is_empty() {
            return None;
        }
        sorted.sort_by(f64::total_cmp);
        let (min, max) = (sorted[0], sorted[sorted.len() - 1]);
        let mut breaks: Vec<f64> = Vec::new();
        for i in 1..MAX_CLASSES {
            let quantile = sorted[i * sorted.len() / MAX_CLASSES];
            let rounded = round_significant(quantile, 2);
            if rounded > min && rounded < max && breaks.last().is_none_or(|&last| rounded > last) {
                breaks.push(rounded);
            }
        }
        Some(Self { min, max, breaks, diverging: false })
    }

    /// The nowcast's scale of robust z-scores: seven classes with breaks at
    /// ±1, ±2 and ±3.
    pub(crate) fn z_scores() -> Self {
        Self { min: f64::NEG_INFINITY, max: f64::INFINITY, breaks: Z_BREAKS.to_vec(), diverging: true }
    }

    /// The number of classes.
    pub(crate) fn classes(&self) -> usize {
        self.breaks.len() + 1
    }

    /// The class of `value`: the first class whose upper break is above it.
    pub(crate) fn class_of(&self, value: f64) -> usize {
        self.breaks.iter().position(|&b| value < b).unwrap_or(self.breaks.len())
    }

    /// The fill colour of class `class`.
    pub(crate) fn colour(&self, class: usize) -> String {
        if self.diverging {
            return RDBU[class.min(RDBU.len() - 1)].to_owned();
        }
        let classes = self.classes();
        if classes == 1 {
            return viridis(0.5);
        }
        viridis(1.0 - class as f64 / (classes - 1) as f64)
    }

    /// The legend label of class `class`, e.g. "12 – 25".
    pub(crate) fn label(&self, class: usize) -> String {
        if self.diverging {
            let z = |v: f64| format!("{v:+.0}").replace('-', "\u{2212}");
            return match class {
                0 => format!("z below {}: far below usual", z(self.breaks[0])),
                c if c + 1 == self.classes() => format!("z {} or more: far above usual", z(self.breaks[c - 1])),
                c => format!("z {} to {}", z(self.breaks[c - 1]), z(self.breaks[c])),
            };
        }
        let lower = if class == 0 { self.min } else { self.breaks[class - 1] };
        let upper = if class + 1 == self.classes() { self.max } else { self.breaks[class] };
        if format_value(lower) == format_value(upper) {
            format_value(lower)
        } else {
            format!("{} – {}", format_value(lower), format_value(upper))
        }
    }
}

/// Rounds to `digits` significant digits.
fn round_significant(value: f64, digits: i32) -> f64 {
    if value == 0.0 {
        return 0.0;
    }
    let magnitude = 10f64.powi(value.abs().log10().floor() as i32 - digits + 1);
    (value / magnitude).round() * magnitude
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn viridis_ends_and_middle() {
        assert_eq!(viridis(0.0), "#440154");
        assert_eq!(viridis(1.0), "#fde725");
        assert_eq!(viridis(0.5), "#21908c");
        assert_eq!(viridis(-3.0), "#440154");
    }

    #[test]
    fn scale_breaks_are_rounded_increasing_quantiles() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        let scale = ColourScale::from_values(&values).unwrap();
        assert_eq!(scale.breaks, vec![17.0, 34.0, 51.0, 67.0, 84.0]);
        assert_eq!(scale.classes(), 6);
        assert_eq!(scale.class_of(1.0), 0);
        assert_eq!(scale.class_of(16.9), 0);
        assert_eq!(scale.class_of(17.0), 1);
        assert_eq!(scale.class_of(100.0), 5);
        assert_eq!(scale.label(0), "1 – 17");
        assert_eq!(scale.label(5), "84 – 100");
        // Darker means more.
        assert_eq!(scale.colour(0), "#fde725");
        assert_eq!(scale.colour(5), "#440154");
    }

    #[test]
    fn scale_of_few_distinct_values() {
        assert_eq!(ColourScale::from_values(&[]), None);
        assert_eq!(ColourScale::from_values(&[f64::NAN]), None);
        let one = ColourScale::from_values(&[5.0, 5.0, 5.0]).unwrap();
        assert_eq!(one.classes(), 1);
        assert_eq!(one.label(0), "5");
        assert_eq!(one.class_of(5.0), 0);
        let skewed = ColourScale::from_values(&[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1000.0]).unwrap();
        assert!(skewed.classes() <= 2);
        assert_eq!(skewed.class_of(1000.0), skewed.classes() - 1);
    }

    #[test]
    fn the_z_scale_has_fixed_breaks_and_diverges_from_white() {
        let scale = ColourScale::z_scores();
        assert_eq!(scale.classes(), 7);
        assert_eq!(scale.class_of(-7.0), 0);
        assert_eq!(scale.class_of(0.0), 3);
        assert_eq!(scale.class_of(0.99), 3);
        assert_eq!(scale.class_of(1.0), 4);
        assert_eq!(scale.class_of(12.0), 6);
        assert_eq!(scale.colour(3), "#f7f7f7");
        assert_eq!(scale.label(0), "z below \u{2212}3: far below usual");
        assert_eq!(scale.label(3), "z \u{2212}1 to +1");
        assert_eq!(scale.label(6), "z +3 or more: far above usual");
    }

    #[test]
    fn round_significant_cases() {
        assert_eq!(round_significant(1234.0, 2), 1200.0);
        assert!((round_significant(0.0456, 2) - 0.046).abs() < 1e-15);
        assert_eq!(round_significant(-17.0, 1), -20.0);
    }
}
