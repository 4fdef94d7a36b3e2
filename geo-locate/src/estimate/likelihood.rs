//! The WiFi fix as the mean of a posterior over position, under the log-distance model with the
//! transmit power and the path-loss exponent unknown (see the `estimate` module docs, step 3).
//!
//! A reading of AP i at `sᵢ` dBm from a device at `x` is modelled as
//! `sᵢ = P − 10·n·log10(dᵢ) + eᵢ`, where `dᵢ = √(‖x − aᵢ‖² + uᵢ²)` softens the distance by the
//! uncertainty `uᵢ` of the learned AP position `aᵢ`, and `eᵢ ~ N(0, σ² + (10·n·uᵢ/(ln 10·dᵢ))²)`
//! adds that uncertainty, linearised, to the shadowing: a poorly known AP counts less. `P` (the power at 1 m,
//! common to the query) has a Gaussian prior and is integrated out in closed form; `n` has a
//! uniform prior over a range and is summed over a few values. A reading without a signal
//! says only that the AP was heard: `Pr(s ≥ sensitivity)`. The position's prior is uniform over
//! a box around the APs. The posterior is evaluated on a grid twice (the whole box, then a
//! finer grid around the first mean); the answer is its mean, and the radius holding 95 % of
//! its mass around the mean is the 95 % radius before calibration.

/// One AP of the cluster, in a local metric frame.
#[derive(Debug, Clone, Copy)]
pub(super) struct Anchor {
    /// Position, metres.
    pub xy: (f64, f64),
    /// Signal heard, dBm (clamped by the caller), `None` when not reported.
    pub signal: Option<f64>,
    /// Uncertainty of the position, metres (at least 1).
    pub sigma_m: f64,
}

/// The model's parameters (see [`super::EstimatorConfig`] for their meaning and defaults).
#[derive(Debug, Clone, Copy)]
pub(super) struct Model {
    pub exponent_lo: f64,
    pub exponent_hi: f64,
    pub power_mean_dbm: f64,
    pub power_sd_db: f64,
    pub shadowing_db: f64,
    pub sensitivity_dbm: f64,
    pub margin_m: f64,
    /// Centre of the Gaussian prior on position (the weighted centroid), metres.
    pub prior_centre: (f64, f64),
    /// Its σ, metres (infinite: a flat prior over the box).
    pub prior_sigma_m: f64,
}

/// The posterior's summary.
#[derive(Debug, Clone, Copy)]
pub(super) struct Posterior {
    /// Posterior mean, metres in the anchors' frame.
    pub mean: (f64, f64),
    /// Radius around the mean holding 95 % of the posterior mass, metres.
    pub radius95_m: f64,
}

/// Grid points per side in each of the two passes.
const GRID: usize = 32;
/// Values of the path-loss exponent summed over.
const EXPONENTS: usize = 6;

/// `ln Φ(z)` for the standard normal CDF, accurate to about 1e-7 relative in `Φ` (erfc by
/// Numerical Recipes' Chebyshev fit), and asymptotically right far in the lower tail.
fn ln_phi(z: f64) -> f64 {
    let x = -z / std::f64::consts::SQRT_2;
    // erfc(x) for x ≥ 0; Φ(z) = erfc(x)/2.
    let t = 1.0 / (1.0 + 0.5 * x.abs());
    let poly = -x * x - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    if x >= 0.0 {
        // ln(erfc(x)/2) = ln t + poly − ln 2, fine far in the tail.
        t.ln() + poly - std::f64::consts::LN_2
    } else {
        // erfc(x) = 2 − erfc(−x).
        (1.0 - 0.5 * t * poly.exp()).ln()
    }
}

impl Model {
    /// The log-likelihood at `p`, summed over the exponents (up to a constant). `scratch`
    /// holds `(10·log10 dᵢ, uᵢ/dᵢ)` per anchor.
    fn log_likelihood(&self, anchors: &[Anchor], p: (f64, f64), scratch: &mut [(f64, f64)]) -> f64 {
        let var = self.shadowing_db * self.shadowing_db;
        let tau2 = self.power_sd_db * self.power_sd_db;
        for (a, slot) in anchors.iter().zip(scratch.iter_mut()) {
            let d2 = (p.0 - a.xy.0).powi(2) + (p.1 - a.xy.1).powi(2) + a.sigma_m * a.sigma_m;
            let d2 = d2.max(1.0);
            // 10·log10(d), d ≥ 1 m, and the position's uncertainty relative to the distance.
            *slot = (5.0 * d2.log10(), a.sigma_m / d2.sqrt());
        }
        let mut best = f64::NEG_INFINITY;
        let mut lls = [0.0f64; EXPONENTS];
        for (j, ll) in lls.iter_mut().enumerate() {
            let n = self.exponent_lo
                + (self.exponent_hi - self.exponent_lo) * j as f64 / (EXPONENTS - 1) as f64;
            // An AP position known to ±u at distance d adds (10·n·u / (ln 10 · d))² dB² to the
            // reading's variance (the log-distance model, linearised).
            let k_pos = 10.0 * n / std::f64::consts::LN_10;
            let (mut w_sum, mut wm, mut wm2, mut ln_v) = (0.0, 0.0, 0.0, 0.0);
            let mut v = 0.0;
            for (a, &(l, rel)) in anchors.iter().zip(scratch.iter()) {
                let vi = var + (k_pos * rel).powi(2);
                match a.signal {
                    Some(s) => {
                        // mᵢ = sᵢ + n·Lᵢ estimates P.
                        let m = s + n * l;
                        let w = 1.0 / vi;
                        w_sum += w;
                        wm += w * m;
                        wm2 += w * m * m;
                        ln_v += vi.ln();
                    }
                    None => {
                        v += ln_phi(
                            (self.power_mean_dbm - n * l - self.sensitivity_dbm)
                                / (vi + tau2).sqrt(),
                        );
                    }
                }
            }
            if w_sum > 0.0 {
                let mean = wm / w_sum;
                let scatter = (wm2 - w_sum * mean * mean).max(0.0);
                v -= 0.5 * scatter;
                v -= 0.5 * ln_v;
                v -= 0.5 * (1.0 + w_sum * tau2).ln();
                v -= 0.5 * (mean - self.power_mean_dbm).powi(2) / (1.0 / w_sum + tau2);
            }
            *ll = v;
            best = best.max(v);
        }
        let c = self.prior_centre;
        let prior = -0.5 * ((p.0 - c.0).powi(2) + (p.1 - c.1).powi(2))
            / (self.prior_sigma_m * self.prior_sigma_m);
        prior + best + lls.iter().map(|v| (v - best).exp()).sum::<f64>().ln()
    }

    /// Posterior weights on a `GRID`×`GRID` grid over the box, normalised to a maximum of 1.
    fn grid(
        &self,
        anchors: &[Anchor],
        lo: (f64, f64),
        step: (f64, f64),
        scratch: &mut [(f64, f64)],
    ) -> Vec<((f64, f64), f64)> {
        let mut out = Vec::with_capacity(GRID * GRID);
        let mut best = f64::NEG_INFINITY;
        for iy in 0..GRID {
            for ix in 0..GRID {
                let p = (
                    lo.0 + (ix as f64 + 0.5) * step.0,
                    lo.1 + (iy as f64 + 0.5) * step.1,
                );
                let ll = self.log_likelihood(anchors, p, scratch);
                best = best.max(ll);
                out.push((p, ll));
            }
        }
        for (_, w) in &mut out {
            *w = if best.is_finite() {
                (*w - best).exp()
            } else {
                1.0
            };
        }
        out
    }

    /// The posterior mean and 95 % radius, or `None` without anchors or on numeric failure.
    pub(super) fn posterior(&self, anchors: &[Anchor]) -> Option<Posterior> {
        if anchors.is_empty() {
            return None;
        }
        let mut scratch = vec![(0.0, 0.0); anchors.len()];
        let (mut minx, mut maxx, mut miny, mut maxy) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for a in anchors {
            minx = minx.min(a.xy.0);
            maxx = maxx.max(a.xy.0);
            miny = miny.min(a.xy.1);
            maxy = maxy.max(a.xy.1);
        }
        let m = self.margin_m;
        let lo = (minx - m, miny - m);
        let step = (
            (maxx - minx + 2.0 * m) / GRID as f64,
            (maxy - miny + 2.0 * m) / GRID as f64,
        );
        let coarse = self.grid(anchors, lo, step, &mut scratch);
        let (mean, sd) = moments(&coarse)?;
        // Zoom in: ±4 σ of the first pass, at least two of its cells each way.
        let half = (4.0 * sd).max(2.0 * step.0.max(step.1)).max(5.0);
        let fine_step = (2.0 * half / GRID as f64, 2.0 * half / GRID as f64);
        let fine = self.grid(
            anchors,
            (mean.0 - half, mean.1 - half),
            fine_step,
            &mut scratch,
        );
        let (mean, _) = moments(&fine)?;
        let mut by_distance: Vec<(f64, f64)> = fine
            .iter()
            .map(|(p, w)| ((p.0 - mean.0).hypot(p.1 - mean.1), *w))
            .collect();
        by_distance.sort_by(|a, b| a.0.total_cmp(&b.0));
        let total: f64 = by_distance.iter().map(|(_, w)| w).sum();
        let mut acc = 0.0;
        let mut radius = by_distance.last().map_or(0.0, |(d, _)| *d);
        for (d, w) in &by_distance {
            acc += w;
            if acc >= 0.95 * total {
                radius = *d;
                break;
            }
        }
        // Half a grid cell of resolution.
        let radius = radius.hypot(0.5 * fine_step.0);
        Some(Posterior {
            mean,
            radius95_m: radius,
        })
    }
}

/// Weighted mean and RMS distance from it.
fn moments(grid: &[((f64, f64), f64)]) -> Option<((f64, f64), f64)> {
    let total: f64 = grid.iter().map(|(_, w)| w).sum();
    if !(total.is_finite() && total > 0.0) {
        return None;
    }
    let x = grid.iter().map(|(p, w)| p.0 * w).sum::<f64>() / total;
    let y = grid.iter().map(|(p, w)| p.1 * w).sum::<f64>() / total;
    let var = grid
        .iter()
        .map(|(p, w)| w * ((p.0 - x).powi(2) + (p.1 - y).powi(2)))
        .sum::<f64>()
        / total;
    Some(((x, y), var.sqrt()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ln_phi_matches_known_values() {
        assert!((ln_phi(0.0) - 0.5f64.ln()).abs() < 1e-7);
        assert!((ln_phi(1.96) - 0.975f64.ln()).abs() < 1e-5);
        assert!((ln_phi(-1.96) - 0.025f64.ln()).abs() < 1e-4);
        // Far tail: Φ(−10) ≈ 7.62e−24.
        assert!((ln_phi(-10.0) - 7.62e-24f64.ln()).abs() < 0.01);
        assert!(ln_phi(10.0) <= 0.0 && ln_phi(10.0) > -1e-12);
    }
}
