//! A read-mostly `ReplicatedHashMap`: one replica per node, a write on one node read on another, and the counters in words.
//!
//! Run: `cargo run --release --example replicated_map`. It uses the detected topology, or the
//! one `REPLICORE_TOPOLOGY` describes (try `REPLICORE_TOPOLOGY="numa:2 core:1 pu:1"` to see two
//! replicas on any machine).

use replicore::Topology;
use replicore::nr::{NrConfig, ReplicatedHashMap};
use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Barrier;
use std::time::Instant;

/// Keys in the map; readers and writers pick among them uniformly.
const KEYS: u64 = 10_000;
/// Operations per thread in the read-mostly phase.
const OPS_PER_THREAD: u64 = 400_000;
/// One write in this many operations (about 2%).
const WRITE_EVERY: u64 = 50;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let topo = Topology::detect()?;
    println!(
        "Topology ({:?}): {} node(s), {} CPU(s); one replica of the map per node.",
        topo.source(),
        topo.num_nodes(),
        topo.num_cpus()
    );

    let init: HashMap<u64, u64> = (0..KEYS).map(|k| (k, k)).collect();
    let map = ReplicatedHashMap::with_contents(&topo, NrConfig::default(), &init)?;

    show_linearizability(&map, &topo)?;
    read_mostly_mix(&map, &topo)?;
    Ok(())
}

/// A write through the first node's replica, then a read through the last node's: the read
/// returns the new value because it first replays the shared log up to the tail it saw.
fn show_linearizability(
    map: &ReplicatedHashMap<u64, u64>,
    topo: &Topology,
) -> Result<(), Box<dyn std::error::Error>> {
    let first = *topo.nodes().first().ok_or("topology has no nodes")?;
    let last = *topo.nodes().last().ok_or("topology has no nodes")?;
    let writer = map.register(first)?;
    let reader = map.register(last)?;

    println!("\n1. A write on one node, read on another");
    let before = reader.get(&42);
    let previous = writer.insert(42, 4242);
    let after = reader.get(&42);
    println!("   {last} reads key 42      -> {before:?}");
    println!("   {first} writes 42 = 4242  -> previous value {previous:?}");
    println!("   {last} reads key 42      -> {after:?}");
    if after != Some(4242) {
        return Err(format!("linearizability violated: read {after:?} after the write").into());
    }
    if first == last {
        println!(
            "   (one node here, so both handles share a replica; set REPLICORE_TOPOLOGY=\"numa:2 core:1 pu:1\" for two)"
        );
    } else {
        println!(
            "   The read on {last} saw the write made on {first}: its replica replayed the log first."
        );
    }
    Ok(())
}

/// One thread per CPU, each registered with its CPU's node, doing ~98% reads and ~2% writes.
fn read_mostly_mix(
    map: &ReplicatedHashMap<u64, u64>,
    topo: &Topology,
) -> Result<(), Box<dyn std::error::Error>> {
    let threads = topo.num_cpus();
    println!(
        "\n2. Read-mostly mix: {threads} thread(s) x {OPS_PER_THREAD} ops, one write in {WRITE_EVERY}"
    );
    let barrier = Barrier::new(threads);
    let start = Instant::now();
    let results: Vec<Result<(u64, u64), String>> = std::thread::scope(|s| {
        let workers: Vec<_> = topo
            .cpus()
            .iter()
            .enumerate()
            .map(|(t, &cpu)| {
                let node = topo.node_of(cpu);
                let barrier = &barrier;
                s.spawn(move || {
                    // Registration is per thread: the handle owns this thread's mailbox.
                    let h = map.register(node).map_err(|e| e.to_string())?;
                    barrier.wait();
                    let (mut hits, mut writes) = (0u64, 0u64);
                    let mut x = 0x2545_F491_4F6C_DD1Du64 ^ (t as u64 + 1);
                    for i in 0..OPS_PER_THREAD {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        let key = x % KEYS;
                        if i % WRITE_EVERY == 0 {
                            h.insert(key, i);
                            writes += 1;
                        } else if h.get(&key).is_some() {
                            hits += 1;
                        }
                    }
                    Ok((hits, writes))
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_else(|_| Err("worker panicked".into())))
            .collect()
    });
    let elapsed = start.elapsed();
    let (mut hits, mut writes) = (0, 0);
    for r in results {
        let (h, w) = r?;
        hits += h;
        writes += w;
    }
    let total = OPS_PER_THREAD * threads as u64;
    println!(
        "   {total} operations in {:.1} ms: {:.1} M ops/s ({hits} reads found their key, {writes} writes)",
        elapsed.as_secs_f64() * 1e3,
        total as f64 / elapsed.as_secs_f64() / 1e6
    );

    // Every replica must now hold the same contents: read the length through each node.
    for &node in topo.nodes() {
        let len = map.register(node)?.len();
        println!("   replica on {node} holds {len} keys");
        if len != KEYS as usize {
            return Err(format!("replica on {node} has {len} keys, expected {KEYS}").into());
        }
    }

    let st = map.stats();
    println!("\n3. What the replication machinery did");
    println!(
        "   {} write(s) reached the shared log in {} combined batch(es), {:.1} writes per batch on average.",
        st.operations, st.combiner_batches, st.average_batch_size
    );
    println!(
        "   The circular log wrapped around {} time(s); writers replayed it into a lagging replica {} time(s).",
        st.log_wraps, st.helping_events
    );
    println!(
        "   The furthest a replica fell behind, as seen by a writer, was {} log entries.",
        st.max_replica_lag
    );
    Ok(())
}
