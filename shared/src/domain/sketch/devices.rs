//! How many distinct devices reported: exact (a sorted set of 64-bit device hashes)
//! while that is smaller than a HyperLogLog, then a HyperLogLog of 2¹⁴ registers
//! (standard error 0.8 %). A school's day is usually exact; the fleet's is estimated.

use super::{put_varint, Reader, SketchBytesError};
use crate::domain::event::DeviceId;
use sha2::{Digest, Sha256};

/// Register-index bits.
const P: u32 = 14;
const REGISTERS: usize = 1 << P;
/// Above this many hashes the exact set would outweigh the registers (8 bytes each).
const EXACT_MAX: usize = REGISTERS / 8;
const SPARSE: u8 = 1;
const DENSE: u8 = 2;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceSketch {
    /// Each device's hash, sorted, once.
    Exact(Vec<u64>),
    /// HyperLogLog registers: the most leading zeros (plus one) seen per register.
    Estimated(Box<[u8]>),
}

impl Default for DeviceSketch {
    fn default() -> Self {
        Self::Exact(Vec::new())
    }
}

/// A device's hash: the same on every machine and release (a store keeps it).
fn hash(device: &DeviceId) -> u64 {
    let digest = Sha256::digest(device.as_str().as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

fn register_update(registers: &mut [u8], h: u64) {
    let index = (h >> (64 - P)) as usize;
    let rest = (h << P) | (1 << (P - 1));
    let rank = rest.leading_zeros() as u8 + 1;
    if registers[index] < rank {
        registers[index] = rank;
    }
}

impl DeviceSketch {
    pub fn add(&mut self, device: &DeviceId) {
        self.add_hash(hash(device));
    }

    fn add_hash(&mut self, h: u64) {
        match self {
            Self::Exact(hashes) => {
                if let Err(at) = hashes.binary_search(&h) {
                    hashes.insert(at, h);
                    if hashes.len() > EXACT_MAX {
                        *self = Self::Estimated(Self::registers_of(hashes));
                    }
                }
            }
            Self::Estimated(registers) => register_update(registers, h),
        }
    }

    fn registers_of(hashes: &[u64]) -> Box<[u8]> {
        let mut registers = vec![0u8; REGISTERS].into_boxed_slice();
        hashes.iter().for_each(|h| register_update(&mut registers, *h));
        registers
    }

    pub fn merge(&mut self, other: &DeviceSketch) {
        match (&mut *self, other) {
            (_, Self::Exact(hashes)) => hashes.iter().for_each(|h| self.add_hash(*h)),
            (Self::Estimated(mine), Self::Estimated(theirs)) => {
                for (m, t) in mine.iter_mut().zip(theirs.iter()) {
                    *m = (*m).max(*t);
                }
            }
            (Self::Exact(hashes), Self::Estimated(theirs)) => {
                let mut registers = theirs.clone();
                hashes.iter().for_each(|h| register_update(&mut registers, *h));
                *self = Self::Estimated(registers);
            }
        }
    }

    /// Distinct devices: exact below 2,048, else within a few percent (0.8 % standard
    /// error).
    pub fn estimate(&self) -> u64 {
        match self {
            Self::Exact(hashes) => hashes.len() as u64,
            Self::Estimated(registers) => {
                let m = REGISTERS as f64;
                let zeros = registers.iter().filter(|r| **r == 0).count();
                let sum: f64 = registers.iter().map(|r| (-f64::from(*r)).exp2()).sum();
                let raw = 0.7213 / (1.0 + 1.079 / m) * m * m / sum;
                let estimate = match zeros {
                    // Small counts: linear counting is the better estimate.
                    z if z > 0 && raw <= 2.5 * m => m * (m / z as f64).ln(),
                    _ => raw,
                };
                estimate.round() as u64
            }
        }
    }

    /// The bytes a store keeps: the exact set delta-coded, or the raw registers.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Self::Exact(hashes) => {
                let mut out = Vec::with_capacity(2 + 9 * hashes.len());
                out.push(SPARSE);
                put_varint(&mut out, hashes.len() as u64);
                let mut previous = 0u64;
                for h in hashes {
                    put_varint(&mut out, h - previous);
                    previous = *h;
                }
                out
            }
            Self::Estimated(registers) => {
                let mut out = Vec::with_capacity(1 + REGISTERS);
                out.push(DENSE);
                out.extend_from_slice(registers);
                out
            }
        }
    }

    /// Reads [`DeviceSketch::to_bytes`]; no bytes at all is an empty sketch.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SketchBytesError> {
        if bytes.is_empty() {
            return Ok(Self::default());
        }
        let mut r = Reader(bytes);
        let sketch = match r.byte()? {
            SPARSE => {
                let len = r.varint()?;
                if len > EXACT_MAX as u64 {
                    return Err(SketchBytesError("exact set too large"));
                }
                let mut hashes = Vec::with_capacity(len as usize);
                let mut h = 0u64;
                for i in 0..len {
                    let step = r.varint()?;
                    if i > 0 && step == 0 {
                        return Err(SketchBytesError("repeated device hash"));
                    }
                    h = h.checked_add(step).ok_or(SketchBytesError("hash out of range"))?;
                    hashes.push(h);
                }
                Self::Exact(hashes)
            }
            DENSE => Self::Estimated(r.take(REGISTERS)?.into()),
            _ => return Err(SketchBytesError("unknown device sketch format")),
        };
        r.finish()?;
        Ok(sketch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn devices(from: usize, to: usize) -> impl Iterator<Item = DeviceId> {
        (from..to).map(|i| DeviceId::parse(&format!("pibook-{i:07}")).unwrap())
    }

    fn sketch_of(from: usize, to: usize) -> DeviceSketch {
        let mut sketch = DeviceSketch::default();
        devices(from, to).for_each(|d| sketch.add(&d));
        sketch
    }

    #[test]
    fn small_sets_are_counted_exactly_and_once() {
        let mut sketch = sketch_of(0, 500);
        devices(0, 500).for_each(|d| sketch.add(&d));
        assert_eq!(sketch.estimate(), 500);
        assert!(matches!(sketch, DeviceSketch::Exact(_)));
        assert_eq!(DeviceSketch::default().estimate(), 0);
    }

    #[test]
    fn large_sets_are_estimated_within_two_percent() {
        for n in [2_049, 10_000, 100_000, 1_000_000] {
            let estimate = sketch_of(0, n).estimate() as f64;
            let error = (estimate - n as f64).abs() / n as f64;
            assert!(error <= 0.02, "{n} devices: estimated {estimate} ({error:.4})");
        }
    }

    #[test]
    fn merging_counts_the_union() {
        // Overlapping halves, exact + exact crossing into an estimate, and mixed kinds.
        let (a, b) = (sketch_of(0, 1_500), sketch_of(1_000, 2_500));
        let mut union = a.clone();
        union.merge(&b);
        assert!(matches!(union, DeviceSketch::Estimated(_)));
        let error = (union.estimate() as f64 - 2_500.0).abs() / 2_500.0;
        assert!(error <= 0.02, "{}", union.estimate());
        let mut exact_into_dense = sketch_of(0, 1_500);
        exact_into_dense.merge(&sketch_of(1_000, 40_000));
        let mut dense_with_exact = sketch_of(1_000, 40_000);
        dense_with_exact.merge(&sketch_of(0, 1_500));
        assert_eq!(exact_into_dense, dense_with_exact, "order does not matter");
        assert_eq!(exact_into_dense, sketch_of(0, 40_000));
        let mut small = sketch_of(0, 10);
        small.merge(&sketch_of(5, 20));
        assert_eq!(small, sketch_of(0, 20));
    }

    #[test]
    fn bytes_round_trip_and_malformed_bytes_are_refused() {
        for sketch in [sketch_of(0, 0), sketch_of(0, 700), sketch_of(0, 5_000)] {
            assert_eq!(DeviceSketch::from_bytes(&sketch.to_bytes()), Ok(sketch));
        }
        assert_eq!(sketch_of(0, 5_000).to_bytes().len(), 1 + REGISTERS);
        assert_eq!(DeviceSketch::from_bytes(&[]), Ok(DeviceSketch::default()));
        assert!(DeviceSketch::from_bytes(&[DENSE, 1, 2]).is_err());
        assert!(DeviceSketch::from_bytes(&[SPARSE, 2, 5, 0]).is_err(), "repeated");
        assert!(DeviceSketch::from_bytes(&[7]).is_err());
        let mut huge = vec![SPARSE];
        put_varint(&mut huge, u64::MAX);
        assert!(DeviceSketch::from_bytes(&huge).is_err());
    }
}
