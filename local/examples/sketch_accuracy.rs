//! How close the day summaries' sketches come to exact answers: the speed sketch's
//! percentiles against exact ones over 10⁶ random speeds (three shapes), and the
//! distinct-device count against the truth from 10³ to 10⁶ devices. Prints Markdown
//! tables (docs/performance.md, "Analytics").
//!
//!   cargo run --release -p pisync-local --example sketch_accuracy

use pisync_shared::domain::sketch::{DeviceSketch, SpeedSketch, TestRandom};
use pisync_shared::DeviceId;

const QUANTILES: [f64; 5] = [0.5, 0.9, 0.95, 0.99, 0.999];

/// A named way of drawing one speed.
type Shape = (&'static str, Box<dyn FnMut(&mut TestRandom) -> f64>);

fn main() {
    let mut random = TestRandom::seeded(42);
    let shapes: [Shape; 3] = [
        (
            "log-normal, median 30 Mbit/s, σ 1.2",
            Box::new(|r: &mut TestRandom| r.log_normal(30.0, 1.2)),
        ),
        (
            "uniform 0–1,000 Mbit/s",
            Box::new(|r: &mut TestRandom| r.unit() * 1000.0),
        ),
        (
            "a third failing at 0, the rest log-normal (median 5, σ 2)",
            Box::new(|r: &mut TestRandom| {
                if r.unit() < 1.0 / 3.0 {
                    0.0
                } else {
                    r.log_normal(5.0, 2.0)
                }
            }),
        ),
    ];
    println!("| 10⁶ speeds | p50 | p90 | p95 | p99 | p99.9 | worst | sketch bytes |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (name, mut draw) in shapes {
        let speeds: Vec<f64> = (0..1_000_000).map(|_| draw(&mut random)).collect();
        let mut sketch = SpeedSketch::default();
        speeds.iter().for_each(|s| sketch.add(*s));
        let mut sorted = speeds.clone();
        sorted.sort_by(f64::total_cmp);
        let errors: Vec<f64> = QUANTILES
            .iter()
            .map(|q| {
                let exact = sorted[(q * (sorted.len() - 1) as f64).floor() as usize];
                let got = sketch.quantile(*q).unwrap_or(f64::NAN);
                if exact == 0.0 {
                    got
                } else {
                    (got - exact).abs() / exact
                }
            })
            .collect();
        let worst = errors.iter().copied().fold(0.0, f64::max);
        let cells: Vec<String> = errors.iter().map(|e| format!("{:.3} %", e * 100.0)).collect();
        println!(
            "| {name} | {} | {:.3} % | {} |",
            cells.join(" | "),
            worst * 100.0,
            sketch.to_bytes().len()
        );
    }
    println!();
    println!("| distinct devices | estimate | error | sketch bytes |");
    println!("| ---: | ---: | ---: | ---: |");
    for n in [1_000, 2_048, 2_049, 10_000, 100_000, 1_000_000] {
        let mut sketch = DeviceSketch::default();
        for i in 0..n {
            sketch.add(&DeviceId::parse(&format!("device-{i:08}")).expect("a device id"));
        }
        let estimate = sketch.estimate();
        let error = (estimate as f64 - n as f64).abs() / n as f64;
        println!(
            "| {n} | {estimate} | {:.2} % | {} |",
            error * 100.0,
            sketch.to_bytes().len()
        );
    }
}
