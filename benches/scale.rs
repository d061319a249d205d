//! The scale sweep: the pool's costs as the worker count grows, replicore against rayon at the
//! same thread counts, on synthetic topologies from `numa:1` to `numa:8` (see
//! `benches/common/scale_topology.rs`; on a 2-CPU box every size above 2 is oversubscribed).
//!
//! `cargo bench --bench scale -- --noplot` (about 5 minutes on 2 CPUs); one case or size:
//! `cargo bench --bench scale -- --noplot "scale_outside/.*/256"`.
//!
//! Groups `scale_<case>` (cases `outside`, `inside`, `broadcast`, `fib`, as in
//! `examples/spawn_scale`), ids `replicore/<workers>` and `rayon/<workers>`. Each timed round
//! starts after 20 ms idle, so that every worker has parked: what is measured includes waking
//! them. The sleep is not timed.
//!
//! Group `scale_nr`: the node-replication map (`benches/common/nr_scale.rs`) on `numa:N core:C`
//! for N = 1, 2, 4, 8 nodes and C = 1, 2 threads per node, at 0% writes and at 10% writes
//! chosen at random or in lockstep; ids `<contender>/w<write %>-<random|lockstep>/<N>x<C>`,
//! contenders `replicore`, `node-replication-0.1.1` (one thread per node only: see
//! `benches/common/nr_scale.rs`) and `parking_lot-rwlock`. One filter for one
//! cell: `cargo bench --bench scale -- --noplot "scale_nr/.*/w10-random/4x2"`.

use std::time::Duration;

use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};

#[path = "common/contender.rs"]
mod contender;
#[path = "common/nr_scale.rs"]
#[allow(dead_code)] // `Cell::label` is for bench_report's tables
mod nr_scale;
#[path = "common/scale_topology.rs"]
mod scale_topology;
#[path = "common/scale_workloads.rs"]
mod scale_workloads;
use contender::Contender;
use scale_workloads::{CASES, pools, round};

const SIZES: [usize; 6] = [2, 8, 32, 64, 128, 256];
const IDLE: Duration = Duration::from_millis(20);

/// `iters` rounds, each after [`IDLE`]; only the rounds are timed.
fn idle_rounds<P: Contender>(pool: &P, case: &str, iters: u64) -> Duration {
    (0..iters)
        .map(|_| {
            std::thread::sleep(IDLE);
            round(pool, case)
        })
        .sum()
}

fn scale(c: &mut Criterion) {
    for case in CASES {
        let mut g = c.benchmark_group(format!("scale_{case}"));
        g.sampling_mode(SamplingMode::Flat)
            .sample_size(10)
            .warm_up_time(Duration::from_millis(200))
            .measurement_time(Duration::from_secs(1));
        for n in SIZES {
            let (rp, ry, _) = pools(n);
            g.bench_with_input(BenchmarkId::new("replicore", n), &n, |b, _| {
                b.iter_custom(|iters| idle_rounds(&rp, case, iters))
            });
            g.bench_with_input(BenchmarkId::new("rayon", n), &n, |b, _| {
                b.iter_custom(|iters| idle_rounds(&ry, case, iters))
            });
        }
        g.finish();
    }
}

/// Map operations per thread per iteration of a `scale_nr` benchmark.
const NR_OPS: u64 = 10_000;

fn scale_nr(c: &mut Criterion) {
    use nr_scale::{Cell, Maps, Writes};
    let mut g = c.benchmark_group("scale_nr");
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_secs(1));
    for nodes in [1, 2, 4, 8] {
        for threads_per_node in [1, 2] {
            for (write_pct, writes) in [
                (0, Writes::Random),
                (10, Writes::Random),
                (10, Writes::Lockstep),
            ] {
                let cell = Cell {
                    nodes,
                    threads_per_node,
                    write_pct,
                    writes,
                };
                let maps = Maps::new(cell);
                let mode = if writes == Writes::Random {
                    "random"
                } else {
                    "lockstep"
                };
                g.throughput(Throughput::Elements(NR_OPS * cell.threads() as u64));
                for &which in cell.contenders() {
                    let id = BenchmarkId::new(
                        format!("{which}/w{write_pct}-{mode}"),
                        format!("{nodes}x{threads_per_node}"),
                    );
                    g.bench_function(id, |b| {
                        b.iter_custom(|iters| maps.round(which, iters * NR_OPS))
                    });
                }
            }
        }
    }
    g.finish();
}

criterion_group!(benches, scale, scale_nr);
criterion_main!(benches);
