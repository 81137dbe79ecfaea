//! A small, fully specified random number generator and the samplers the
//! simulator needs. Written out here rather than taken from a crate so that
//! the same seed gives byte-identical output across dependency upgrades.

/// xoshiro256++ seeded through SplitMix64.
#[derive(Debug, Clone)]
pub(crate) struct Rng {
    s: [u64; 4],
}

pub(crate) fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

impl Rng {
    /// An independent stream for (`seed`, `stream`, `index`).
    pub(crate) fn stream(seed: u64, stream: u64, index: u64) -> Self {
        let mut x = splitmix64(seed ^ splitmix64(stream.wrapping_mul(0x1000_0000_01B3) ^ splitmix64(index)));
        let mut s = [0u64; 4];
        for slot in &mut s {
            x = splitmix64(x);
            *slot = x;
        }
        Self { s }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        let result = (self.s[0].wrapping_add(self.s[3])).rotate_left(23).wrapping_add(self.s[0]);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1).
    pub(crate) fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Standard normal (Box-Muller; one value per call, for simplicity).
    pub(crate) fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform();
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Gamma(shape, scale) by Marsaglia and Tsang.
    pub(crate) fn gamma(&mut self, shape: f64, scale: f64) -> f64 {
        if shape < 1.0 {
            let u = self.uniform().max(f64::MIN_POSITIVE);
            return self.gamma(shape + 1.0, scale) * u.powf(1.0 / shape);
        }
        let d = shape - 1.0 / 3.0;
        let c = 1.0 / (9.0 * d).sqrt();
        loop {
            let x = self.normal();
            let v = (1.0 + c * x).powi(3);
            if v <= 0.0 {
                continue;
            }
            let u = self.uniform();
            if u < 1.0 - 0.0331 * x.powi(4) || u.ln() < 0.5 * x * x + d * (1.0 - v + v.ln()) {
                return d * v * scale;
            }
        }
    }

    /// Poisson(lambda): inversion for small means, Hörmann's PTRS otherwise.
    pub(crate) fn poisson(&mut self, lambda: f64) -> u64 {
        if !(lambda > 0.0) {
            return 0;
        }
        if lambda < 12.0 {
            let limit = (-lambda).exp();
            let mut product = self.uniform();
            let mut k = 0;
            while product > limit {
                product *= self.uniform();
                k += 1;
            }
            return k;
        }
        let slam = lambda.sqrt();
        let loglam = lambda.ln();
        let b = 0.931 + 2.53 * slam;
        let a = -0.059 + 0.02483 * b;
        let inv_alpha = 1.1239 + 1.1328 / (b - 3.4);
        let vr = 0.9277 - 3.6224 / (b - 2.0);
        loop {
            let u = self.uniform() - 0.5;
            let v = self.uniform();
            let us = 0.5 - u.abs();
            let k = ((2.0 * a / us + b) * u + lambda + 0.43).floor();
            if us >= 0.07 && v <= vr {
                return k as u64;
            }
            if k < 0.0 || (us < 0.013 && v > us) {
                continue;
            }
            if (v * inv_alpha / (a / (us * us) + b)).ln() <= -lambda + k * loglam - ln_factorial(k) {
                return k as u64;
            }
        }
    }

    /// Negative binomial as a gamma-Poisson mixture: mean `mean`, variance
    /// `mean + mean² / shape`.
    pub(crate) fn negative_binomial(&mut self, mean: f64, shape: f64) -> u64 {
        if !(mean > 0.0) {
            return 0;
        }
        let rate = self.gamma(shape, mean / shape);
        self.poisson(rate)
    }

    /// Binomial(n, p): exact Bernoulli sums for small n, otherwise a normal
    /// approximation rounded and clamped to 0..=n.
    pub(crate) fn binomial(&mut self, n: u64, p: f64) -> u64 {
        if n == 0 || p <= 0.0 {
            return 0;
        }
        if p >= 1.0 {
            return n;
        }
        if n <= 64 {
            return (0..n).filter(|_| self.uniform() < p).count() as u64;
        }
        let mean = n as f64 * p;
        let sd = (mean * (1.0 - p)).sqrt();
        (mean + sd * self.normal()).round().clamp(0.0, n as f64) as u64
    }
}

fn ln_factorial(k: f64) -> f64 {
    if k < 10.0 {
        (1..=k as u64).map(|i| (i as f64).ln()).sum()
    } else {
        // Stirling series.
        (k + 0.5) * k.ln() - k + 0.5 * std::f64::consts::TAU.ln() + 1.0 / (12.0 * k) - 1.0 / (360.0 * k.powi(3))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moments(samples: &[f64]) -> (f64, f64) {
        let n = samples.len() as f64;
        let mean = samples.iter().sum::<f64>() / n;
        let var = samples.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
        (mean, var)
    }

    #[test]
    fn samplers_have_their_moments() {
        let mut rng = Rng::stream(1, 2, 3);
        for lambda in [0.5, 5.0, 40.0, 900.0] {
            let samples: Vec<f64> = (0..40_000).map(|_| rng.poisson(lambda) as f64).collect();
            let (mean, var) = moments(&samples);
            assert!((mean / lambda - 1.0).abs() < 0.03, "poisson {lambda}: mean {mean}");
            assert!((var / lambda - 1.0).abs() < 0.06, "poisson {lambda}: var {var}");
        }
        let samples: Vec<f64> = (0..40_000).map(|_| rng.negative_binomial(50.0, 4.0) as f64).collect();
        let (mean, var) = moments(&samples);
        assert!((mean / 50.0 - 1.0).abs() < 0.03, "{mean}");
        assert!((var / (50.0 + 2500.0 / 4.0) - 1.0).abs() < 0.08, "{var}");
        let samples: Vec<f64> = (0..40_000).map(|_| rng.binomial(200, 0.8) as f64).collect();
        let (mean, _) = moments(&samples);
        assert!((mean - 160.0).abs() < 0.5);
    }

    #[test]
    fn streams_are_deterministic_and_distinct() {
        let a: Vec<u64> = (0..4)
            .map({
                let mut r = Rng::stream(42, 1, 7);
                move |_| r.next_u64()
            })
            .collect();
        let b: Vec<u64> = (0..4)
            .map({
                let mut r = Rng::stream(42, 1, 7);
                move |_| r.next_u64()
            })
            .collect();
        let c: Vec<u64> = (0..4)
            .map({
                let mut r = Rng::stream(42, 1, 8);
                move |_| r.next_u64()
            })
            .collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
