//! What the helper does for one D-Bus call (`assign::move_group`), timed in
//! one long-running process (no program start per move): the lock, the
//! recovery check, reading the group, the plan, the safety checks and the
//! sysfs sequence with verification. Runs ADDRESS to vfio-pci and back RUNS
//! times (after 2 warm-ups) and prints the mean and standard deviation of a
//! round trip in ms, as JSON. Root, on a real kernel (the lab).
//! usage: move_bench ADDRESS [RUNS]

use std::time::Instant;

use traspaso::assign::{move_group, Direction};
use traspaso::host::HostRoot;
use traspaso::pci::PciAddress;

fn main() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let address: PciAddress = args
        .next()
        .ok_or("usage: move_bench ADDRESS [RUNS]")?
        .parse()
        .map_err(|e: traspaso::pci::AddressError| e.to_string())?;
    let runs: usize = args
        .next()
        .map_or(Ok(20), |r| r.parse())
        .map_err(|_| "RUNS")?;
    let host = HostRoot::live();
    let mut times = Vec::new();
    for i in 0..runs + 2 {
        let start = Instant::now();
        for direction in [Direction::ToGuest, Direction::ToHost] {
            move_group(&host, &address, direction).map_err(|e| e.to_string())?;
        }
        if i >= 2 {
            times.push(start.elapsed().as_secs_f64() * 1000.0);
        }
    }
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    let var = times.iter().map(|t| (t - mean).powi(2)).sum::<f64>() / times.len() as f64;
    println!(
        "{{\"mean_ms\": {mean:.3}, \"stddev_ms\": {:.3}, \"runs\": {runs}}}",
        var.sqrt()
    );
    Ok(())
}
