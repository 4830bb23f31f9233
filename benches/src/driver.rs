//! A plain throughput driver: some threads call an operation in a loop for a fixed time;
//! the result is completed operations per second of wall time.
//!
//! Contenders of one scenario are measured in alternating rounds ([`compare`]), so a
//! noisy neighbour or a slow patch of the disk hits all of them alike.

use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// Operations completed in some wall time.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Throughput {
    /// Completed operations.
    pub ops: u64,
    /// Wall time from the start signal until the last thread stopped.
    pub elapsed: Duration,
}

impl Throughput {
    /// Operations per second.
    pub fn per_sec(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.ops as f64 / secs
        } else {
            0.0
        }
    }

    /// Both runs added up.
    pub fn plus(self, other: Throughput) -> Throughput {
        Throughput {
            ops: self.ops + other.ops,
            elapsed: self.elapsed + other.elapsed,
        }
    }
}

/// Runs `threads` threads for about `duration`. Each thread `t` first calls `setup(t)` to
/// get its operation (so it can own per-thread state), waits for the others, then calls
/// the operation until told to stop. An operation that fails ends the run with its error.
pub fn run_for<Op, E>(
    threads: usize,
    duration: Duration,
    setup: impl Fn(usize) -> Op + Sync,
) -> Result<Throughput, E>
where
    Op: FnMut() -> Result<(), E>,
    E: Send,
{
    let stop = AtomicBool::new(false);
    let ready = Barrier::new(threads + 1);
    thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let (stop, ready, setup) = (&stop, &ready, &setup);
                scope.spawn(move || {
                    let mut op = setup(t);
                    ready.wait();
                    let mut ops = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        if let Err(e) = op() {
                            stop.store(true, Ordering::Relaxed);
                            return Err(e);
                        }
                        ops += 1;
                    }
                    Ok(ops)
                })
            })
            .collect();
        ready.wait();
        let started = Instant::now();
        while started.elapsed() < duration && !stop.load(Ordering::Relaxed) {
            thread::sleep(Duration::from_millis(10).min(duration));
        }
        stop.store(true, Ordering::Relaxed);
        let mut total = 0;
        let mut failed = None;
        for worker in workers {
            match worker.join() {
                Ok(Ok(ops)) => total += ops,
                Ok(Err(e)) => failed = failed.or(Some(e)),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        let elapsed = started.elapsed();
        match failed {
            Some(e) => Err(e),
            None => Ok(Throughput {
                ops: total,
                elapsed,
            }),
        }
    })
}

/// Measures several contenders in `rounds` alternating rounds of `each` apiece and
/// returns their summed throughput, in the order given.
pub fn compare<E>(
    rounds: usize,
    each: Duration,
    contenders: &mut [&mut dyn FnMut(Duration) -> Result<Throughput, E>],
) -> Result<Vec<Throughput>, E> {
    let mut totals = vec![Throughput::default(); contenders.len()];
    for _ in 0..rounds {
        for (total, contender) in totals.iter_mut().zip(contenders.iter_mut()) {
            *total = total.plus(contender(each)?);
        }
    }
    Ok(totals)
}
