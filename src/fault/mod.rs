//! Fault injection for the scheduler (issue 4): named points where a worker can be made to stall
//! or crash. Compiled only with the `fault-injection` feature.
