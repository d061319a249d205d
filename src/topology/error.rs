use std::fmt;

/// Why a topology could not be built or parsed. Every message names the problem and what is
/// accepted instead.
///
/// ```
/// let err = "numa:two".parse::<replicore::Topology>().unwrap_err();
/// assert!(err.to_string().contains("numa:two"));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum TopologyError {
    /// A synthetic spec string could not be parsed.
    Parse {
        /// The whole spec.
        spec: String,
        /// What was wrong with it.
        reason: String,
    },
    /// Something that must be at least one was zero or missing.
    Empty {
        /// What was empty ("nodes", "CPUs", ...).
        what: &'static str,
        /// What is accepted.
        hint: &'static str,
    },
    /// A count is too large to describe a real machine.
    TooLarge {
        /// What was counted.
        what: &'static str,
        /// The value given.
        value: usize,
        /// The largest value accepted.
        max: usize,
    },
    /// The same CPU id was described twice.
    DuplicateCpu {
        /// The repeated id.
        cpu: usize,
    },
    /// A CPU id outside the range the description allows.
    CpuOutOfRange {
        /// The offending id.
        cpu: usize,
        /// One past the largest id accepted.
        limit: usize,
    },
    /// The distance matrix is not `nodes × nodes`.
    DistanceShape {
        /// Number of nodes.
        nodes: usize,
        /// Rows given.
        rows: usize,
        /// Length of each row given.
        cols: Vec<usize>,
    },
    /// `d[i][j] != d[j][i]`.
    AsymmetricDistances {
        /// Row.
        i: usize,
        /// Column.
        j: usize,
        /// `d[i][j]`.
        ij: u32,
        /// `d[j][i]`.
        ji: u32,
    },
    /// A zero distance, or a remote distance smaller than the local one.
    BadDistance {
        /// Row.
        i: usize,
        /// Column.
        j: usize,
        /// The value.
        value: u32,
    },
    /// A sysfs file was missing or malformed.
    Sysfs {
        /// The file.
        path: std::path::PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// hwloc failed (the `hwloc` feature).
    Hwloc(String),
    /// An environment variable held an invalid topology.
    Env {
        /// The variable's name.
        var: &'static str,
        /// Why its value was rejected.
        source: Box<TopologyError>,
    },
}

/// The accepted spec grammar, quoted in parse errors.
pub(crate) const SPEC_GRAMMAR: &str = "expected space-separated `key:value` pairs from \
`numa:N` (or `node:N`), `core:N` (cores per node), `pu:N` (threads per core, default 1) and \
optionally `distances:ROW/ROW/...` with comma-separated rows, e.g. \
\"numa:2 core:4 pu:2\" or \"numa:2 core:1 distances:10,21/21,10\"";

impl fmt::Display for TopologyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Parse { spec, reason } => {
                write!(
                    f,
                    "invalid topology spec {spec:?}: {reason}; {SPEC_GRAMMAR}"
                )
            }
            Self::Empty { what, hint } => write!(f, "topology has no {what}: {hint}"),
            Self::TooLarge { what, value, max } => {
                write!(f, "topology has {value} {what}; at most {max} are allowed")
            }
            Self::DuplicateCpu { cpu } => {
                write!(f, "cpu{cpu} is described twice; each CPU id must be unique")
            }
            Self::CpuOutOfRange { cpu, limit } => {
                write!(f, "cpu{cpu} is out of range; ids must be below {limit}")
            }
            Self::DistanceShape { nodes, rows, cols } => write!(
                f,
                "distance matrix must be {nodes}×{nodes} (one row per node), got {rows} row(s) of lengths {cols:?}"
            ),
            Self::AsymmetricDistances { i, j, ij, ji } => write!(
                f,
                "distance matrix is asymmetric: d[{i}][{j}] = {ij} but d[{j}][{i}] = {ji}; distances must be symmetric"
            ),
            Self::BadDistance { i, j, value } => write!(
                f,
                "distance d[{i}][{j}] = {value} is invalid: distances must be positive and no remote distance may be below the local one"
            ),
            Self::Sysfs { path, reason } => {
                write!(f, "cannot read topology from {}: {reason}", path.display())
            }
            Self::Hwloc(msg) => write!(f, "hwloc topology detection failed: {msg}"),
            Self::Env { var, source } => write!(f, "environment variable {var}: {source}"),
        }
    }
}

impl std::error::Error for TopologyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Env { source, .. } => Some(source.as_ref()),
            _ => None,
        }
    }
}
