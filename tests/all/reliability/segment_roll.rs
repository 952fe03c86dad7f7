//! A full file system exactly when the message log must start a new segment. The data
//! directory is on a tmpfs whose inodes the test uses up, so creating the next segment file
//! fails with `ENOSPC` while data blocks are still free. The roll is put off (a segment's size
//! limit is soft), publishes go on being confirmed, the store is not poisoned, the next roll
//! succeeds once inodes are freed, and a reopen reads every confirmed message back in order.

use std::path::Path;

use switchyard::message::Message;
use switchyard::queue::{EnqueueOptions, QueueConfig, QueueName, Queues, QueuesOptions};
use switchyard::store::{Durability, StoreConfig};

use super::tmpfs::Tmpfs;

const SEGMENT: u64 = 64 << 10;

fn open(dir: &Path) -> Queues {
    let options = QueuesOptions {
        store: StoreConfig {
            durability: Durability::Fsync,
            segment_bytes: SEGMENT,
            cache_capacity: 4 << 20,
            ..StoreConfig::default()
        },
        tick: None,
        ..QueuesOptions::default()
    };
    Queues::open(dir, options).expect("open the queues")
}

fn segments(dir: &Path) -> usize {
    walk(dir)
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .count()
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Create empty files in `dir` until the file system has no inode left; returns them.
fn use_up_inodes(dir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::create_dir(dir).unwrap();
    let mut files = Vec::new();
    for i in 0.. {
        let path = dir.join(format!("f{i}"));
        match std::fs::File::create(&path) {
            Ok(_) => files.push(path),
            Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
            Err(e) => panic!("creating {}: {e}", path.display()),
        }
        assert!(i < 100_000, "the tmpfs has no inode limit");
    }
    files
}

async fn publish(queues: &Queues, queue: &QueueName, i: usize) {
    let body = format!("{i:06}").repeat(1000); // 6 KB
    queues
        .publish(
            queue,
            Message::new(body.into_bytes()),
            EnqueueOptions::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("publish {i} with no inode left: {e}"));
}

#[tokio::test]
async fn a_segment_roll_on_a_full_file_system_is_put_off() {
    let fs = match Tmpfs::mount("64m,nr_inodes=400") {
        Ok(fs) => fs,
        Err(why) => {
            eprintln!("skipped: the test needs a tmpfs mount: {why}");
            return;
        }
    };
    let data = fs.path().join("data");
    let queue = QueueName::new("rolling").unwrap();
    let queues = open(&data);
    queues.declare(&queue, QueueConfig::default()).unwrap();
    let before = segments(&data);
    assert!(
        before >= 1,
        "no segment file found under {}",
        data.display()
    );

    let filler = use_up_inodes(&fs.path().join("filler"));
    // 40 × 6 KB: several segments' worth, none of which can be created.
    for i in 0..40 {
        publish(&queues, &queue, i).await;
    }
    assert_eq!(
        segments(&data),
        before,
        "a segment file was created without an inode"
    );
    queues.health().expect("the store is healthy, not poisoned");

    for f in filler {
        std::fs::remove_file(f).unwrap();
    }
    for i in 40..60 {
        publish(&queues, &queue, i).await;
    }
    assert!(
        segments(&data) > before,
        "the put-off roll happened once inodes were free"
    );

    drop(queues);
    let queues = open(&data);
    let bodies: Vec<String> = queues
        .browse(&queue, usize::MAX)
        .unwrap()
        .iter()
        .map(|m| String::from_utf8(m.body[..6].to_vec()).unwrap())
        .collect();
    let want: Vec<String> = (0..60).map(|i| format!("{i:06}")).collect();
    assert_eq!(
        bodies, want,
        "every confirmed message, in order, after a reopen"
    );
}
