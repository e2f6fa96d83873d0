//! Mergeable summaries of a day's syncs: a quantile sketch of internet speeds and a
//! distinct-device estimate. Both add up in any order and any grouping (a stream
//! batch's, a roll-up's, a school's or the fleet's), so a day's summary is kept as
//! events arrive and a query never reads events. Each has a compact byte form for the
//! stores.

mod devices;
mod speeds;

pub use devices::DeviceSketch;
pub use speeds::SpeedSketch;

/// Why stored sketch bytes could not be read.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed sketch bytes: {0}")]
pub struct SketchBytesError(&'static str);

/// LEB128: small numbers in few bytes.
fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Reads bytes front to back.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn varint(&mut self) -> Result<u64, SketchBytesError> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = self.0.split_first().ok_or(SketchBytesError("truncated number"))?;
            self.0 = rest;
            n |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(n);
            }
        }
        Err(SketchBytesError("number too long"))
    }

    fn byte(&mut self) -> Result<u8, SketchBytesError> {
        let (&byte, rest) = self.0.split_first().ok_or(SketchBytesError("truncated"))?;
        self.0 = rest;
        Ok(byte)
    }

    fn take(&mut self, len: usize) -> Result<&[u8], SketchBytesError> {
        if self.0.len() < len {
            return Err(SketchBytesError("truncated"));
        }
        let (taken, rest) = self.0.split_at(len);
        self.0 = rest;
        Ok(taken)
    }

    fn finish(&self) -> Result<(), SketchBytesError> {
        match self.0.is_empty() {
            true => Ok(()),
            false => Err(SketchBytesError("trailing bytes")),
        }
    }
}

fn zigzag(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)) as u64
}

fn unzigzag(n: u64) -> i64 {
    ((n >> 1) as i64) ^ -((n & 1) as i64)
}

/// A small deterministic generator for the sketches' accuracy tests and benchmarks
/// (xorshift64*): the same numbers on every run.
#[cfg(any(test, feature = "test-util"))]
pub struct TestRandom(u64);

#[cfg(any(test, feature = "test-util"))]
impl TestRandom {
    pub fn seeded(seed: u64) -> Self {
        Self(seed.max(1))
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Log-normal around `median` (a link speed's usual shape: a long slow tail and a
    /// few fast links).
    pub fn log_normal(&mut self, median: f64, sigma: f64) -> f64 {
        // Box–Muller.
        let (u, v) = (self.unit().max(f64::MIN_POSITIVE), self.unit());
        let normal = (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos();
        median * (sigma * normal).exp()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_zigzag_round_trip() {
        let mut out = Vec::new();
        for n in [0, 1, 127, 128, 300, u64::MAX] {
            put_varint(&mut out, n);
        }
        let mut r = Reader(&out);
        for n in [0, 1, 127, 128, 300, u64::MAX] {
            assert_eq!(r.varint(), Ok(n));
        }
        assert!(r.finish().is_ok());
        assert!(Reader(&[0x80]).varint().is_err(), "truncated");
        assert!(Reader(&[0xff; 11]).varint().is_err(), "too long");
        for n in [0, -1, 1, i64::MIN, i64::MAX, -700, 1400] {
            assert_eq!(unzigzag(zigzag(n)), n);
        }
    }
}
