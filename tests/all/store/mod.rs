//! The message log's on-disk frames, beyond their unit tests: saved fuzz inputs.

mod fuzz;
