//! A DDSketch of internet speeds (Masson, Rim & Lee, VLDB 2019): each speed falls in a
//! bin of logarithmic width, so any quantile is returned within 1 % of the true value
//! at that rank, whatever the distribution, in a few hundred bins at most.

use super::{put_varint, unzigzag, zigzag, Reader, SketchBytesError};
use crate::domain::fleet::MAX_SPEED_IN_MEAN;
use std::collections::BTreeMap;

/// The relative error of every quantile.
pub const RELATIVE_ERROR: f64 = 0.01;
/// Speeds below this (in Mbit/s: a bit per second) count as 0, as in a day's mean.
const SMALLEST: f64 = 1e-6;
/// Bytes format version.
const FORMAT: u8 = 1;

/// γ = (1 + α) / (1 − α): bin `k` holds the speeds in (γ^(k−1), γ^k].
fn gamma_ln() -> f64 {
    ((1.0 + RELATIVE_ERROR) / (1.0 - RELATIVE_ERROR)).ln()
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpeedSketch {
    /// Speeds counted as 0.
    zeros: u64,
    /// Bin index → how many speeds fell in it.
    bins: BTreeMap<i16, u64>,
}

impl SpeedSketch {
    pub fn add(&mut self, speed: f64) {
        // NaN and negatives never pass validation; they would count as 0 here.
        if speed.is_nan() || speed < SMALLEST {
            self.zeros += 1;
            return;
        }
        let k = (speed.min(MAX_SPEED_IN_MEAN).ln() / gamma_ln()).ceil();
        *self.bins.entry(k as i16).or_default() += 1;
    }

    pub fn merge(&mut self, other: &SpeedSketch) {
        self.zeros += other.zeros;
        for (k, n) in &other.bins {
            *self.bins.entry(*k).or_default() += n;
        }
    }

    pub fn count(&self) -> u64 {
        self.zeros + self.bins.values().sum::<u64>()
    }

    pub fn is_empty(&self) -> bool {
        self.count() == 0
    }

    /// The speed at quantile `q` (0 to 1): within [`RELATIVE_ERROR`] of the
    /// `⌊q·(n−1)⌋`-th smallest speed counted; `None` when nothing was counted.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let rank = (q.clamp(0.0, 1.0) * (n - 1) as f64).floor() as u64;
        if rank < self.zeros {
            return Some(0.0);
        }
        let mut seen = self.zeros;
        let gamma = gamma_ln().exp();
        for (k, count) in &self.bins {
            seen += count;
            if seen > rank {
                // The bin's value of least relative error to both its ends.
                return Some(2.0 * gamma.powi(i32::from(*k)) / (gamma + 1.0));
            }
        }
        None
    }

    /// The bytes a store keeps: format, zeros, then each bin as (index step, count).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + 3 * self.bins.len());
        out.push(FORMAT);
        put_varint(&mut out, self.zeros);
        put_varint(&mut out, self.bins.len() as u64);
        let mut previous = 0i64;
        for (k, n) in &self.bins {
            put_varint(&mut out, zigzag(i64::from(*k) - previous));
            put_varint(&mut out, *n);
            previous = i64::from(*k);
        }
        out
    }

    /// Reads [`SpeedSketch::to_bytes`]; no bytes at all is an empty sketch.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SketchBytesError> {
        if bytes.is_empty() {
            return Ok(Self::default());
        }
        let mut r = Reader(bytes);
        if r.byte()? != FORMAT {
            return Err(SketchBytesError("unknown speed sketch format"));
        }
        let zeros = r.varint()?;
        let len = r.varint()?;
        let mut bins = BTreeMap::new();
        let mut k = 0i64;
        for _ in 0..len {
            k += unzigzag(r.varint()?);
            let index = i16::try_from(k).map_err(|_| SketchBytesError("bin out of range"))?;
            bins.insert(index, r.varint()?);
        }
        r.finish()?;
        Ok(Self { zeros, bins })
    }
}

#[cfg(test)]
mod tests {
    use super::super::TestRandom;
    use super::*;

    /// The exact `⌊q·(n−1)⌋`-th smallest.
    fn exact(sorted: &[f64], q: f64) -> f64 {
        sorted[(q * (sorted.len() - 1) as f64).floor() as usize]
    }

    fn worst_error(speeds: &[f64]) -> f64 {
        let mut sketch = SpeedSketch::default();
        speeds.iter().for_each(|s| sketch.add(*s));
        let mut sorted = speeds.to_vec();
        sorted.sort_by(f64::total_cmp);
        [0.0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1.0]
            .iter()
            .map(|q| {
                let (got, want) = (sketch.quantile(*q).unwrap(), exact(&sorted, *q));
                match want {
                    0.0 => got,
                    _ => (got - want).abs() / want,
                }
            })
            .fold(0.0, f64::max)
    }

    #[test]
    fn quantiles_are_within_one_percent_of_exact_ones_over_random_speeds() {
        let mut random = TestRandom::seeded(7);
        let log_normal: Vec<f64> = (0..200_000).map(|_| random.log_normal(40.0, 1.2)).collect();
        assert!(
            worst_error(&log_normal) <= RELATIVE_ERROR,
            "{}",
            worst_error(&log_normal)
        );
        let uniform: Vec<f64> = (0..200_000).map(|_| random.unit() * 1000.0).collect();
        assert!(worst_error(&uniform) <= RELATIVE_ERROR);
        // A failing link reports 0: a day of mostly failures has a p50 of exactly 0.
        let mut mixed: Vec<f64> = (0..1000).map(|i| if i % 3 == 0 { 25.0 } else { 0.0 }).collect();
        mixed.push(1e300);
        assert!(worst_error(&mixed[..1000]) <= RELATIVE_ERROR);
        let mut sketch = SpeedSketch::default();
        mixed.iter().for_each(|s| sketch.add(*s));
        assert_eq!(sketch.quantile(0.5), Some(0.0));
        let top = sketch.quantile(1.0).unwrap();
        assert!(
            (top / MAX_SPEED_IN_MEAN - 1.0).abs() <= RELATIVE_ERROR,
            "capped, not lost"
        );
    }

    #[test]
    fn merged_sketches_equal_one_sketch_of_all_speeds() {
        let mut random = TestRandom::seeded(11);
        let speeds: Vec<f64> = (0..5000).map(|_| random.log_normal(10.0, 2.0)).collect();
        let mut whole = SpeedSketch::default();
        speeds.iter().for_each(|s| whole.add(*s));
        let mut parts = SpeedSketch::default();
        for chunk in speeds.chunks(333) {
            let mut part = SpeedSketch::default();
            chunk.iter().for_each(|s| part.add(*s));
            parts.merge(&part);
        }
        assert_eq!(parts, whole);
        assert_eq!(whole.count(), 5000);
    }

    #[test]
    fn bytes_round_trip_and_stay_small() {
        let mut random = TestRandom::seeded(3);
        let mut sketch = SpeedSketch::default();
        (0..100_000).for_each(|_| sketch.add(random.log_normal(40.0, 1.0)));
        sketch.add(0.0);
        let bytes = sketch.to_bytes();
        assert!(bytes.len() < 2_000, "{} bytes", bytes.len());
        assert_eq!(SpeedSketch::from_bytes(&bytes), Ok(sketch));
        assert_eq!(SpeedSketch::from_bytes(&[]), Ok(SpeedSketch::default()));
        assert!(SpeedSketch::from_bytes(&[9]).is_err());
        assert!(SpeedSketch::from_bytes(&bytes[..bytes.len() - 1]).is_err());
        assert_eq!(SpeedSketch::default().quantile(0.5), None);
    }
}
