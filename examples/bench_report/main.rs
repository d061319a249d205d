//! Scaling sweeps of the pool and of node replication against rayon, tokio, a lock and dashmap, written as SVG plots and a markdown summary;
//! and the scale sweep (the pool against rayon up to 256 workers, the replicated map against
//! node-replication 0.1.1 and a RwLock up to 8 synthetic nodes), as ratio plots.
//!
//! Run: `cargo run --release --example bench_report [-- --quick] [-- --scale] [-- --out DIR]`;
//! `--scale` runs the scale sweep only.
//!
//! This is a report, not criterion: each point is the median throughput of a few wall-clock
//! repetitions, after one untimed warm-up. `--quick` (for CI) uses fewer and shorter
//! repetitions. Output goes to `target/replicore-report/` (or `--out DIR`): one SVG per sweep
//! and `summary.md` with every number, the replicore/other ratios and the machine it ran on.

mod nr;
mod plot;
mod pool;
mod scale;

// The scale sweep runs the `scale` bench's rounds, defined once under `benches/common/`.
#[path = "../../benches/common/contender.rs"]
mod contender;
#[path = "../../benches/common/nr_scale.rs"]
mod nr_scale;
#[path = "../../benches/common/scale_topology.rs"]
mod scale_topology;
#[path = "../../benches/common/scale_workloads.rs"]
mod scale_workloads;

use replicore::Topology;
use std::error::Error;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

/// How long and how often every point is measured.
pub struct Settings {
    quick: bool,
    /// Only the scale sweep (`--scale`).
    scale_only: bool,
    /// Timed repetitions per point (the median is reported).
    reps: usize,
    /// fib runs per repetition.
    fib_runs: usize,
    /// Tasks per spawn repetition.
    spawns: usize,
    /// Map operations per thread per repetition.
    nr_ops: u64,
    out: PathBuf,
}

fn parse_args() -> Result<Settings, String> {
    let mut quick = false;
    let mut scale_only = false;
    let mut out = None;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => quick = true,
            "--scale" => scale_only = true,
            "--out" => out = Some(PathBuf::from(it.next().ok_or("--out needs a directory")?)),
            other => {
                return Err(format!(
                    "unknown argument `{other}`; allowed: --quick (short CI run), --scale (the scale sweep only), --out DIR (default target/replicore-report)"
                ));
            }
        }
    }
    let out = out.unwrap_or_else(|| {
        std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
            .join("replicore-report")
    });
    Ok(if quick {
        Settings {
            quick,
            scale_only,
            reps: 3,
            fib_runs: 3,
            spawns: 10_000,
            nr_ops: 100_000,
            out,
        }
    } else {
        Settings {
            quick,
            scale_only,
            reps: 5,
            fib_runs: 10,
            spawns: 10_000,
            nr_ops: 500_000,
            out,
        }
    })
}

/// Median of `reps` timed repetitions (after one warm-up) of `f`, which returns the work done
/// and the seconds it took; the result is work per second.
pub fn rate_median(
    reps: usize,
    mut f: impl FnMut() -> Result<(f64, f64), Box<dyn Error>>,
) -> Result<f64, Box<dyn Error>> {
    f()?;
    let rates: Vec<f64> = (0..reps)
        .map(|_| f().map(|(work, secs)| work / secs.max(1e-9)))
        .collect::<Result<_, _>>()?;
    Ok(median(rates))
}

/// The median of `v` (the upper one of an even count).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Times `f`, which returns the work it did.
pub fn timed(
    f: impl FnOnce() -> Result<f64, Box<dyn Error>>,
) -> Result<(f64, f64), Box<dyn Error>> {
    let start = Instant::now();
    let work = f()?;
    Ok((work, start.elapsed().as_secs_f64()))
}

/// One swept measurement: every contender's throughput at every x value.
pub struct Sweep {
    title: String,
    x_desc: String,
    y_desc: String,
    xs: Vec<usize>,
    series: Vec<plot::Series>,
}

impl Sweep {
    fn new(title: &str, x_desc: &str, y_desc: &str, xs: Vec<usize>, names: &[&str]) -> Self {
        let series = names
            .iter()
            .map(|n| plot::Series {
                name: n.to_string(),
                values: Vec::new(),
            })
            .collect();
        Sweep {
            title: title.into(),
            x_desc: x_desc.into(),
            y_desc: y_desc.into(),
            xs,
            series,
        }
    }

    /// The chart of this sweep, with `marker` drawn where a line chart has one.
    fn chart(&self, marker: Option<(usize, String)>) -> plot::Chart<'_> {
        plot::Chart {
            title: &self.title,
            x_desc: &self.x_desc,
            y_desc: &self.y_desc,
            xs: &self.xs,
            series: &self.series,
            marker,
        }
    }

    /// Appends the next value of contender `i`.
    fn push(&mut self, i: usize, v: f64) {
        self.series[i].values.push(v);
    }

    /// `replicore / other` ratios at swept value `x` (or the nearest swept value below it), as
    /// `name ratio` pairs.
    fn ratios_at(&self, x: usize) -> (usize, String) {
        let row = self.xs.iter().rposition(|&v| v <= x).unwrap_or(0);
        let ours = self.series[0].values[row];
        let pairs: Vec<String> = self.series[1..]
            .iter()
            .map(|s| format!("{:.2}× `{}`", ours / s.values[row], s.name))
            .collect();
        (self.xs[row], pairs.join(", "))
    }

    /// A markdown table: one row per x, one column per contender, then replicore/other ratios
    /// (replicore is always the first contender; > 1 means replicore is faster).
    fn table(&self) -> String {
        let mut t = format!("| {} |", self.x_desc);
        for s in &self.series {
            let _ = write!(t, " `{}` |", s.name);
        }
        for s in &self.series[1..] {
            let _ = write!(t, " replicore / `{}` |", s.name);
        }
        t.push('\n');
        t.push_str(&"|---".repeat(2 * self.series.len()));
        t.push_str("|\n");
        for (row, x) in self.xs.iter().enumerate() {
            let _ = write!(t, "| {x} |");
            for s in &self.series {
                let _ = write!(t, " {:.3} |", s.values[row]);
            }
            for s in &self.series[1..] {
                let _ = write!(t, " {:.2} |", self.series[0].values[row] / s.values[row]);
            }
            t.push('\n');
        }
        t
    }
}

/// Thread counts to sweep up to `max`: every count up to 8, else powers of two plus the CPU
/// count and `max`, so a big machine does not take hours.
fn sweep_values(max: usize, cpus: usize) -> Vec<usize> {
    if max <= 8 {
        return (1..=max).collect();
    }
    let mut v: Vec<usize> = std::iter::successors(Some(1usize), |x| Some(x * 2))
        .take_while(|&x| x <= max)
        .chain([cpus, max])
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}

fn main() -> ExitCode {
    let settings = match parse_args() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&settings) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(s: &Settings) -> Result<(), Box<dyn Error>> {
    let started = Instant::now();
    let machine = Topology::detect_machine()?;
    let topo = Topology::detect()?;
    let cpus = machine.num_cpus();
    let load_before = load_average();
    std::fs::create_dir_all(&s.out)
        .map_err(|e| format!("cannot create {}: {e}", s.out.display()))?;

    let max_threads = 2 * cpus;
    let threads = sweep_values(max_threads, cpus);
    eprintln!(
        "bench_report{}: {cpus} CPU(s), {} node(s); threads {threads:?}",
        if s.quick { " --quick" } else { "" },
        machine.num_nodes()
    );
    let node_counts = [1, 2, 4];
    let node_threads = cpus.max(4);
    let mut sweeps = Vec::new();
    if !s.scale_only {
        let (fib, spawn) = pool::sweeps(s, &threads)?;
        sweeps.push(("pool_fib.svg", fib, true));
        sweeps.push(("pool_spawn.svg", spawn, true));
        let by_threads = nr::thread_sweeps(s, &topo, &threads)?;
        for (name, sw) in ["nr_threads_w0.svg", "nr_threads_w10.svg"]
            .into_iter()
            .zip(by_threads)
        {
            sweeps.push((name, sw, true));
        }
        let by_nodes = nr::node_sweeps(s, &node_counts, node_threads)?;
        for (name, sw) in ["nr_nodes_w0.svg", "nr_nodes_w10.svg"]
            .into_iter()
            .zip(by_nodes)
        {
            sweeps.push((name, sw, false));
        }
    }
    let pool_scale = scale::pool_sweep(s)?;
    let [nr_scale_vs_nr, nr_scale_vs_rw] = scale::nr_sweeps(s)?;
    let ratio_charts = [
        ("scale_pool.svg", &pool_scale),
        ("scale_nr_vs_node_replication.svg", &nr_scale_vs_nr),
        ("scale_nr_vs_rwlock.svg", &nr_scale_vs_rw),
    ];
    for (name, sweep) in &ratio_charts {
        plot::draw_ratios(&s.out.join(name), &sweep.sweep.chart(None))?;
    }

    let cpu_marker = Some((cpus, format!("{cpus} CPUs on this machine")));
    let mut files = Vec::new();
    for (name, sweep, mark_cpus) in &sweeps {
        let path = s.out.join(name);
        let marker = if *mark_cpus && cpus < *sweep.xs.last().unwrap_or(&0) {
            cpu_marker.clone()
        } else {
            None
        };
        plot::draw(&path, &sweep.chart(marker))?;
        files.push((name.to_string(), sweep));
    }

    let mut md = String::new();
    let _ = writeln!(md, "# replicore benchmark report\n");
    let _ = writeln!(
        md,
        "Command: `cargo run --release --example bench_report{}`. Every value is the median of {} \
         wall-clock repetitions after one warm-up; the run took {:.0} s. Load average (1 min) \
         {load_before} before and {} after: other processes share this machine, so treat \
         differences under ~20% as noise.\n",
        match (s.quick, s.scale_only) {
            (false, false) => "",
            (true, false) => " -- --quick",
            (false, true) => " -- --scale",
            (true, true) => " -- --quick --scale",
        },
        s.reps,
        started.elapsed().as_secs_f64(),
        load_average()
    );
    let _ = writeln!(
        md,
        "**The machine.** {cpus} CPU(s) and {} NUMA node(s), detected from {:?}. Thread counts \
         above {cpus} oversubscribe the CPUs. The node sweep runs on synthetic topologies \
         (`numa:N core:1`) with {node_threads} threads, thread `t` on node `t % N`; {}\n",
        machine.num_nodes(),
        machine.source(),
        if machine.num_nodes() == 1 {
            "on this 1-node machine all replicas share the same caches and memory, so these \
             plots show the cost of keeping more replicas, never the cross-socket traffic that \
             node replication saves on a real multi-socket machine."
        } else {
            "synthetic nodes are not mapped to the physical ones, so replicas are not placed on \
             distinct sockets here."
        }
    );
    let _ = writeln!(
        md,
        "Map workloads: {} `u64` keys, pre-filled, uniform random keys, {} operations per \
         thread per repetition. Ratios are replicore / other throughput (> 1: replicore is \
         faster).\n",
        100_000, s.nr_ops
    );
    if !files.is_empty() {
        let _ = writeln!(
            md,
            "## At a glance\n\nreplicore's throughput as a multiple of each baseline's (> 1: replicore \
             is faster), at as many threads as CPUs for the thread sweeps and at 2 nodes for the node \
             sweeps:\n"
        );
        let _ = writeln!(md, "| sweep | at | replicore / baseline |\n|---|---|---|");
        for (_, sweep) in &files {
            let (at, what) = if sweep.x_desc.contains("node") {
                (2, "nodes")
            } else {
                (cpus, "threads")
            };
            let (x, ratios) = sweep.ratios_at(at);
            let _ = writeln!(md, "| {} | {x} {what} | {ratios} |", sweep.title);
        }
        md.push('\n');
    }
    for (file, sweep) in &files {
        let _ = writeln!(
            md,
            "## {}\n\n![{}]({file})\n\n{}",
            sweep.title,
            sweep.title,
            sweep.table()
        );
        let _ = writeln!(md, "Unit: {}.\n", sweep.y_desc);
    }
    let _ = writeln!(
        md,
        "## Scale\n\nThe `scale` bench's rounds (`cargo bench --bench scale`), as ratios of \
         medians over alternating rounds. Every pool round starts after {} ms idle, so it \
         includes waking parked workers. With more workers (or map threads) than CPUs the \
         threads take turns on the CPUs: these ratios show what a wake-up, a search, a park or \
         a combiner hand-off costs when threads wait for a CPU, not how a machine with that many \
         hardware threads scales; synthetic nodes share one memory and one cache.\n",
        scale::IDLE.as_millis()
    );
    for (name, sweep) in &ratio_charts {
        let _ = writeln!(
            md,
            "### {}\n\n![{}]({name})\n\n{}\n",
            sweep.sweep.title, sweep.sweep.title, sweep.table
        );
    }
    let summary = s.out.join("summary.md");
    std::fs::write(&summary, &md)
        .map_err(|e| format!("cannot write {}: {e}", summary.display()))?;
    println!("{md}");
    println!(
        "wrote {} and {} SVG plot(s) in {:.1} s",
        summary.display(),
        files.len() + ratio_charts.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
