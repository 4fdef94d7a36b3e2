//! Generators and simulations for the geo-locate benchmarks.
//!
//! - [`dump`]: writes a synthetic OpenCellID `cell_towers.csv` of any size, so the import and
//!   lookup benchmarks never need the real (multi-GB, licensed) dump and nothing large is
//!   committed;
//! - [`cities`]: randomised cities with wardrive data (WiGLE rows) for the accuracy harness;
//! - [`city`]: simulated cities of WiFi APs and LTE towers with log-distance path loss and
//!   shadowing, used by the accuracy harness to compare the estimator with the seed's
//!   `signal²` weighting.

pub mod cities;
pub mod city;
pub mod dump;

/// A small, fast, deterministic PRNG (SplitMix64) so that every run sees the same data.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `[lo, hi)`.
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// Uniform integer in `[0, n)`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// A standard normal deviate (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.unit().max(1e-300);
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}
