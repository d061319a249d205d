//! A loopback TCP server that hands CPU-heavy requests to a `replicore::ThreadPool`, driven by an in-process client; prints latency percentiles and pool stats.
//!
//! Run: `cargo run --release --example compute_server [-- --clients N --requests N]`.
//!
//! The shape is a common one: I/O threads (one per connection) only parse frames, and the
//! CPU-heavy part of each request (sorting, hashing or compressing its payload) runs on the pool,
//! so a slow request never blocks the socket loop. Each pool task answers through the
//! connection's channel; a writer thread per connection turns answers into response frames.
//! Everything listens on 127.0.0.1 with an ephemeral port, the client sends a bounded number of
//! requests, and every socket has a timeout, so the program ends on its own.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// No socket operation may block longer than this; a stuck peer ends the run with an error.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Payload of every request: 64 Ki `u32`s.
const PAYLOAD_WORDS: usize = 1 << 16;

/// What a request asks the server to compute over its payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Sort the words (two halves in parallel with `join`, then merge) and hash the result.
    Sort = 0,
    /// Hash the payload in 8 rounds.
    Hash = 1,
    /// Run-length encode the bytes and return the encoded length.
    Compress = 2,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::Sort, Kind::Hash, Kind::Compress];

    fn from_byte(b: u8) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| *k as u8 == b)
    }
}

/// Command-line settings.
struct Args {
    clients: usize,
    requests: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        clients: 4,
        requests: 150,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let slot = match flag.as_str() {
            "--clients" => &mut args.clients,
            "--requests" => &mut args.requests,
            other => {
                return Err(format!(
                    "unknown argument `{other}`; allowed: --clients N (1..=64), --requests N (1..=10000, per client)"
                ));
            }
        };
        let value = it.next().ok_or(format!("{flag} needs a number"))?;
        *slot = value
            .parse()
            .map_err(|_| format!("{flag} takes a whole number, got `{value}`"))?;
    }
    if !(1..=64).contains(&args.clients) {
        return Err(format!("--clients must be 1..=64, got {}", args.clients));
    }
    if !(1..=10_000).contains(&args.requests) {
        return Err(format!(
            "--requests must be 1..=10000, got {}",
            args.requests
        ));
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let pool = replicore::ThreadPool::builder().build()?;
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    let addr = listener.local_addr()?;
    println!(
        "compute server on {addr} with a {}-worker pool; {} client(s) x {} request(s), {} KiB each",
        pool.current_num_threads(),
        args.clients,
        args.requests,
        PAYLOAD_WORDS * 4 / 1024
    );

    let started = Instant::now();
    let latencies = thread::scope(|s| -> Result<Vec<Duration>, Box<dyn std::error::Error>> {
        let pool = &pool;
        let server = s.spawn(move || serve(listener, args.clients, pool));
        let clients: Vec<_> = (0..args.clients)
            .map(|c| s.spawn(move || client(addr, c, args.requests)))
            .collect();
        let mut all = Vec::new();
        for c in clients {
            all.extend(c.join().map_err(|_| "a client thread panicked")??);
        }
        server.join().map_err(|_| "the server thread panicked")??;
        Ok(all)
    })?;
    let wall = started.elapsed();

    report(&latencies, wall);
    let st = pool.stats();
    println!("\npool stats:");
    println!("  {} tasks executed", st.scheduler.tasks_executed);
    println!(
        "  {} taken from a node injector, where tasks submitted from outside the pool land",
        st.scheduler.injector_pops
    );
    println!(
        "  {} popped from a worker's own deque (mostly join halves of the sorts)",
        st.scheduler.local_pops
    );
    println!(
        "  {} stolen on the same node, {} steal batches from other nodes",
        st.scheduler.steals_same_node, st.scheduler.steals_remote_node
    );
    println!(
        "  workers parked {} times and were woken {} times",
        st.scheduler.parks, st.scheduler.unparks
    );
    Ok(())
}

/// Accepts exactly `clients` connections (or gives up after `IO_TIMEOUT`) and serves each on its
/// own thread until the client closes it.
fn serve(listener: TcpListener, clients: usize, pool: &replicore::ThreadPool) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    let deadline = Instant::now() + IO_TIMEOUT;
    thread::scope(|s| {
        let mut handlers = Vec::new();
        while handlers.len() < clients {
            match listener.accept() {
                Ok((stream, _)) => handlers.push(s.spawn(move || handle_connection(stream, pool))),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if Instant::now() > deadline {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "clients did not connect in time",
                        ));
                    }
                    thread::sleep(Duration::from_millis(1));
                }
                Err(e) => return Err(e),
            }
        }
        for h in handlers {
            h.join()
                .map_err(|_| io::Error::other("a connection handler panicked"))??;
        }
        Ok(())
    })
}

/// One request as it travels from the connection thread to the pool.
struct Request {
    id: u32,
    kind: u8,
    payload: Vec<u32>,
}

/// Reads request frames and spawns each onto the pool; a writer thread sends the answers back.
fn handle_connection(stream: TcpStream, pool: &replicore::ThreadPool) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut reader = stream.try_clone()?;
    let mut writer = stream;
    let (answers, answered) = mpsc::channel::<(u32, Result<u64, String>)>();
    thread::scope(|s| {
        let write_side = s.spawn(move || -> io::Result<()> {
            // Ends when every sender is gone: the reader below and all of its pool tasks.
            for (id, result) in answered {
                write_response(&mut writer, id, &result)?;
            }
            Ok(())
        });
        let read_result = loop {
            match read_request(&mut reader) {
                Ok(Some(req)) => {
                    let answers = answers.clone();
                    pool.spawn(move || {
                        let result = compute(req.kind, req.payload);
                        // The writer only goes away on a socket error; then the answer has no
                        // one to go to.
                        let _ = answers.send((req.id, result));
                    });
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        drop(answers);
        let write_result = write_side
            .join()
            .map_err(|_| io::Error::other("the writer thread panicked"))?;
        read_result.and(write_result)
    })
}

/// The CPU-heavy part, run on a pool worker. An unknown kind is an error answer, not a panic.
fn compute(kind: u8, mut payload: Vec<u32>) -> Result<u64, String> {
    match Kind::from_byte(kind) {
        Some(Kind::Sort) => {
            parallel_sort(&mut payload);
            Ok(hash_words(&payload, 1))
        }
        Some(Kind::Hash) => Ok(hash_words(&payload, 8)),
        Some(Kind::Compress) => Ok(rle_len(&payload) as u64),
        None => Err(format!(
            "unknown request kind {kind}; allowed: 0 (sort), 1 (hash), 2 (compress)"
        )),
    }
}

/// Sorts both halves in parallel on the current pool (`replicore::join`), then merges them.
fn parallel_sort(words: &mut [u32]) {
    if words.len() < 4096 {
        words.sort_unstable();
        return;
    }
    let mid = words.len() / 2;
    let (lo, hi) = words.split_at_mut(mid);
    replicore::join(|| parallel_sort(lo), || parallel_sort(hi));
    let mut merged = Vec::with_capacity(words.len());
    let (mut i, mut j) = (0, mid);
    while i < mid && j < words.len() {
        if words[i] <= words[j] {
            merged.push(words[i]);
            i += 1;
        } else {
            merged.push(words[j]);
            j += 1;
        }
    }
    merged.extend_from_slice(&words[i..mid]);
    merged.extend_from_slice(&words[j..]);
    words.copy_from_slice(&merged);
}

/// FNV-1a over the words' bytes, `rounds` times (each round seeded by the previous one).
fn hash_words(words: &[u32], rounds: u32) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for _ in 0..rounds {
        for w in words {
            for b in w.to_le_bytes() {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
    }
    h
}

/// Length of a byte-level run-length encoding (`(count, byte)` pairs, runs capped at 255).
fn rle_len(words: &[u32]) -> usize {
    let mut out = 0;
    let mut run: Option<(u8, u8)> = None;
    for b in words.iter().flat_map(|w| w.to_le_bytes()) {
        run = match run {
            Some((byte, n)) if byte == b && n < u8::MAX => Some((byte, n + 1)),
            Some(_) => {
                out += 2;
                Some((b, 1))
            }
            None => Some((b, 1)),
        };
    }
    out + if run.is_some() { 2 } else { 0 }
}

/// Request frame: kind `u8`, id `u32`, word count `u32`, then the words (all little-endian).
/// `Ok(None)` when the client closed the connection between frames.
fn read_request(r: &mut impl Read) -> io::Result<Option<Request>> {
    let mut head = [0u8; 9];
    match r.read_exact(&mut head) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let kind = head[0];
    let id = u32::from_le_bytes([head[1], head[2], head[3], head[4]]);
    let words = u32::from_le_bytes([head[5], head[6], head[7], head[8]]) as usize;
    if words > 4 * PAYLOAD_WORDS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "request {id} has {words} words; at most {} allowed",
                4 * PAYLOAD_WORDS
            ),
        ));
    }
    let mut bytes = vec![0u8; words * 4];
    r.read_exact(&mut bytes)?;
    let payload = bytes
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok(Some(Request { id, kind, payload }))
}

fn write_request(w: &mut impl Write, kind: Kind, id: u32, payload: &[u32]) -> io::Result<()> {
    let mut frame = Vec::with_capacity(9 + payload.len() * 4);
    frame.push(kind as u8);
    frame.extend_from_slice(&id.to_le_bytes());
    frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    for word in payload {
        frame.extend_from_slice(&word.to_le_bytes());
    }
    w.write_all(&frame)
}

/// Response frame: id `u32`, status `u8` (0 ok, 1 error), value `u64` (0 on error).
fn write_response(w: &mut impl Write, id: u32, result: &Result<u64, String>) -> io::Result<()> {
    let (status, value) = match result {
        Ok(v) => (0u8, *v),
        Err(_) => (1u8, 0),
    };
    let mut frame = [0u8; 13];
    frame[..4].copy_from_slice(&id.to_le_bytes());
    frame[4] = status;
    frame[5..].copy_from_slice(&value.to_le_bytes());
    w.write_all(&frame)
}

fn read_response(r: &mut impl Read) -> io::Result<(u32, Result<u64, ()>)> {
    let mut frame = [0u8; 13];
    r.read_exact(&mut frame)?;
    let id = u32::from_le_bytes([frame[0], frame[1], frame[2], frame[3]]);
    let mut value = [0u8; 8];
    value.copy_from_slice(&frame[5..]);
    let value = u64::from_le_bytes(value);
    Ok((id, if frame[4] == 0 { Ok(value) } else { Err(()) }))
}

/// Sends `requests` requests one after another, cycling through the kinds, and times each
/// round trip. The first answer of each kind is checked against a local computation.
fn client(addr: SocketAddr, client: usize, requests: usize) -> io::Result<Vec<Duration>> {
    let mut stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    stream.set_nodelay(true)?;
    let mut x = 0x9E37_79B9u32 ^ (client as u32).wrapping_mul(0x85EB_CA6B);
    let mut latencies = Vec::with_capacity(requests);
    let mut payload = vec![0u32; PAYLOAD_WORDS];
    for i in 0..requests {
        let kind = Kind::ALL[i % Kind::ALL.len()];
        for w in payload.iter_mut() {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            // Small values so the run-length encoder finds runs in the high bytes.
            *w = x % 1000;
        }
        let id = i as u32;
        let start = Instant::now();
        write_request(&mut stream, kind, id, &payload)?;
        let (got_id, result) = read_response(&mut stream)?;
        latencies.push(start.elapsed());
        let value = result.map_err(|()| io::Error::other(format!("request {id} was refused")))?;
        if got_id != id {
            return Err(io::Error::other(format!(
                "answer for request {got_id} arrived while waiting for {id}"
            )));
        }
        if i < Kind::ALL.len() {
            let expected = compute_locally(kind, payload.clone());
            if value != expected {
                return Err(io::Error::other(format!(
                    "{kind:?} request {id}: server answered {value}, expected {expected}"
                )));
            }
        }
    }
    Ok(latencies)
}

/// The same computation done sequentially, to check the server's answers.
fn compute_locally(kind: Kind, mut payload: Vec<u32>) -> u64 {
    match kind {
        Kind::Sort => {
            payload.sort_unstable();
            hash_words(&payload, 1)
        }
        Kind::Hash => hash_words(&payload, 8),
        Kind::Compress => rle_len(&payload) as u64,
    }
}

fn report(latencies: &[Duration], wall: Duration) {
    let mut sorted = latencies.to_vec();
    sorted.sort_unstable();
    let pct = |p: f64| {
        let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
        sorted[i].as_secs_f64() * 1e3
    };
    println!(
        "\n{} requests answered in {:.2} s ({:.0} requests/s), every checked answer correct",
        sorted.len(),
        wall.as_secs_f64(),
        sorted.len() as f64 / wall.as_secs_f64()
    );
    if sorted.is_empty() {
        return;
    }
    println!("round-trip latency (ms, including queueing behind other clients):");
    println!(
        "  p50 {:.2}   p90 {:.2}   p99 {:.2}   max {:.2}",
        pct(0.50),
        pct(0.90),
        pct(0.99),
        pct(1.0)
    );
}
