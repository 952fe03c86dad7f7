//! The message record codec, beyond its unit tests: saved fuzz inputs.

mod fuzz;
