//! A full disk under the catalog (sled: queue declarations), not only under the message log:
//! the data directory on a 16 MiB tmpfs, filled to the last byte after one queue is declared.
//! Declarations then fail with a clear error (507, saying what to do) or succeed, and none that
//! was acknowledged is lost: after a SIGKILL and a restart with space back, every acknowledged
//! declaration is there, no refused one is, and declares work. Whether the same process
//! declares again once space returns is reported (sled keeps a failed write's error).

use std::io::Write;
use std::time::{Duration, Instant};

use super::process::{http, Serve};
use super::tmpfs::Tmpfs;

/// Writes zeros to `path` until the file system refuses: the disk is then full.
fn fill(path: &std::path::Path) -> u64 {
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 64 << 10];
    let mut written = 0u64;
    loop {
        match file.write(&chunk) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
            Err(e) => panic!("filling the disk: {e}"),
        }
    }
    // Also the last partial block.
    while let Ok(n) = file.write(&chunk[..512]) {
        if n == 0 {
            break;
        }
        written += n as u64;
    }
    written
}

fn declare(serve: &Serve, name: &str) -> (u16, serde_json::Value) {
    http(
        serve,
        "PUT",
        &format!("/api/queues/{name}"),
        Some(&serde_json::json!({})),
    )
}

#[test]
fn a_full_disk_under_the_catalog_refuses_declares_clearly_and_loses_nothing() {
    let fs = match Tmpfs::mount("16m") {
        Ok(fs) => fs,
        Err(why) => {
            eprintln!("SKIP a_full_disk_under_the_catalog_refuses_declares_clearly_and_loses_nothing: {why} (needs root or CAP_SYS_ADMIN)");
            return;
        }
    };
    let data = fs.path().join("data");
    let env = [("SWITCHYARD_DISK_FREE_LIMIT", "0")];
    let serve = Serve::start(&data, &env);
    let (status, body) = declare(&serve, "before");
    assert!((200..300).contains(&status), "{status} {body}");

    let ballast = fs.path().join("ballast");
    let filled = fill(&ballast);
    let mut acknowledged = vec!["before".to_string()];
    let mut refused = Vec::new();
    // sled writes into segment space it already holds, so the first declares may still fit;
    // declare until a few are refused.
    for i in 0..5_000 {
        if refused.len() >= 5 {
            break;
        }
        let name = format!("during-{i}");
        let (status, body) = declare(&serve, &name);
        if (200..300).contains(&status) {
            acknowledged.push(name);
        } else {
            let text = body.to_string();
            assert!(
                status == 507 && text.contains("no space"),
                "a declare on a full disk must fail with 507 and say why: {status} {text}"
            );
            refused.push(name);
        }
    }
    assert!(
        !refused.is_empty(),
        "5,000 declares all fit on a full disk (ballast {filled} bytes): the test did not fill it"
    );
    // The broker still answers everything that needs no disk.
    let (status, _) = http(&serve, "GET", "/api/queues", None);
    assert_eq!(status, 200);

    // Space returns. Declares may work again in this process, or keep failing with the same
    // clear 507 (sled keeps a failed write's error until it is reopened): either is reported,
    // nothing else is acceptable.
    std::fs::remove_file(&ballast).unwrap();
    let freed = Instant::now();
    let mut recovered_in = None;
    while freed.elapsed() < Duration::from_secs(3) {
        let (status, body) = declare(&serve, "after");
        if (200..300).contains(&status) {
            acknowledged.push("after".into());
            recovered_in = Some(freed.elapsed());
            break;
        }
        assert_eq!(status, 507, "{body}");
        assert!(body.to_string().contains("restart the broker"), "{body}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // A SIGKILL and a restart with space back: every acknowledged declaration is there, none
    // that was refused is, and declares work.
    serve.kill();
    let serve = Serve::start(&data, &env);
    for name in &acknowledged {
        let (status, body) = http(&serve, "GET", &format!("/api/queues/{name}"), None);
        assert_eq!(status, 200, "{name} was acknowledged and is gone: {body}");
    }
    for name in &refused {
        let (status, _) = http(&serve, "GET", &format!("/api/queues/{name}"), None);
        assert_eq!(
            status, 404,
            "{name} was refused and exists after the restart"
        );
    }
    let (status, body) = declare(&serve, "after-restart");
    assert!((200..300).contains(&status), "{status} {body}");
    serve.stop();
    eprintln!(
        "full catalog: {} declares acknowledged and {} refused with 507 on the full disk; \
         after space returned: {}; after a SIGKILL and restart every acknowledged declaration \
         was back, no refused one, and declares worked",
        acknowledged.len() - 1,
        refused.len(),
        match recovered_in {
            Some(t) => format!("declares worked again in the same process after {t:.2?}"),
            None => "declares still refused (507, restart hint) for 3 s in the same process".into(),
        }
    );
}
