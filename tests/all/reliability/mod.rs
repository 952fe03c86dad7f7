//! The reliability campaign (issue 8): crashes, dying and stalled clients, a full disk and
//! limits, through the real `switchyard serve` binary and real clients. See
//! `docs/reliability.md` for what each test shows and its figures.

mod body;
mod clients;
mod cluster_nodes;
mod crash_hot_swap;
mod crash_loop;
mod crash_redrive;
mod dead_client;
mod full_catalog;
mod full_disk;
mod ledger;
mod limits;
mod names;
mod process;
mod proxy;
mod segment_roll;
mod slow_reader;
mod tmpfs;
