//! Node replication: NUMA-local replicas of a sequential data structure (issue 5).
