//! Run-queue replication, leases, fencing and takeover (issue 4).

pub(crate) mod claim;
