//! SIGKILL during plugin hot swaps: a router plugin is redeployed through the admin API, with
//! its destination switching between two queues, as fast as the broker compiles, while a
//! publisher with confirms routes through the `x-wasm` exchange that uses it. After every
//! restart the registry is consistent (the plugin is served, at a version that was deployed)
//! and routing works; at the end every confirmed publish is in exactly one of the two queues.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Confirmation};
use rand::Rng;

use super::clients::drain;
use super::ledger::Ledger;
use super::process::{self, http, put_bytes, Serve};
use crate::support::plugins::rust_plugin_bytes;

const KILLS: usize = 8;
const QUEUES: [&str; 2] = ["swap-a", "swap-b"];

async fn declare(ch: &Channel) {
    for q in QUEUES {
        ch.queue_declare(
            q.into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    }
    let mut args = FieldTable::default();
    args.insert(
        "x-plugin".into(),
        AMQPValue::LongString(LongString::from("router")),
    );
    ch.exchange_declare(
        "swap".into(),
        lapin::ExchangeKind::Custom("x-wasm".into()),
        ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        },
        args,
    )
    .await
    .unwrap();
}

/// Deploy `router` routing to `queue`; the HTTP status.
fn deploy(serve_http: &str, wasm: &[u8], queue: &str) -> u16 {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    agent
        .put(&format!(
            "{serve_http}/api/plugins/router?config.version={queue}"
        ))
        .send(wasm)
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

async fn publish_loop(
    uri: String,
    prefix: String,
    ledger: Arc<Mutex<Ledger>>,
) -> lapin::Result<()> {
    let conn = process::connect(&uri).await;
    let ch = conn.create_channel().await?;
    ch.confirm_select(ConfirmSelectOptions::default()).await?;
    for n in 0.. {
        let id = format!("{prefix}-{n}");
        let c = ch
            .basic_publish(
                "swap".into(),
                "".into(),
                BasicPublishOptions::default(),
                &super::body::make(&id),
                BasicProperties::default().with_message_id(id.clone().into()),
            )
            .await?;
        if let Confirmation::Ack(_) = c.await? {
            ledger.lock().unwrap().confirm(id);
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_plugin_hot_swaps_keeps_the_registry_and_every_confirmed_publish() {
    let wasm = Arc::new(rust_plugin_bytes("test_echo_version"));
    let (_work, data) = process::data_dir();
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let deploys = Arc::new(AtomicUsize::new(0));
    let mut rng = rand::rng();
    let started = Instant::now();
    for cycle in 0..=KILLS {
        let serve = Serve::start(&data, &[]);
        if cycle == 0 {
            let (status, body) =
                put_bytes(&serve, "/api/plugins/router?config.version=swap-a", &wasm);
            assert_eq!(status, 201, "{body}");
        }
        // The registry after the kill: the plugin is there, at a deployed configuration.
        let (status, shown) = http(&serve, "GET", "/api/plugins/router", None);
        assert_eq!(
            status, 200,
            "cycle {cycle}: plugin registry after the kill: {shown}"
        );
        let conn = serve.connect().await;
        let ch = conn.create_channel().await.unwrap();
        declare(&ch).await;
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        let probe = format!("probe-{cycle}");
        let c = ch
            .basic_publish(
                "swap".into(),
                "".into(),
                BasicPublishOptions::default(),
                &super::body::make(&probe),
                BasicProperties::default().with_message_id(probe.clone().into()),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        assert!(
            matches!(c, Confirmation::Ack(_)),
            "cycle {cycle}: routing through the plugin after the kill: {c:?}"
        );
        ledger.lock().unwrap().confirm(probe);
        if cycle == KILLS {
            let _ = conn.close(200, "bye".into()).await;
            serve.stop();
            break;
        }
        let publisher = tokio::spawn(publish_loop(
            serve.amqp.clone(),
            format!("s{cycle}"),
            ledger.clone(),
        ));
        let stop = Arc::new(AtomicBool::new(false));
        let deployer = {
            let (http, wasm, stop, deploys) = (
                serve.http.clone(),
                wasm.clone(),
                stop.clone(),
                deploys.clone(),
            );
            std::thread::spawn(move || {
                let mut i = cycle;
                while !stop.load(Ordering::SeqCst) {
                    i += 1;
                    if deploy(&http, &wasm, QUEUES[i % 2]) == 201 {
                        deploys.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
        };
        tokio::time::sleep(Duration::from_millis(rng.random_range(300..1500))).await;
        serve.kill();
        stop.store(true, Ordering::SeqCst);
        let _ = tokio::time::timeout(Duration::from_secs(20), publisher)
            .await
            .expect("publisher hangs");
        tokio::task::spawn_blocking(move || deployer.join().unwrap())
            .await
            .unwrap();
        drop(conn);
    }

    let serve = Serve::start(&data, &[]);
    let conn = serve.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let mut seen = HashSet::new();
    for q in QUEUES {
        for (id, intact) in drain(&ch, q).await {
            intact.unwrap();
            assert!(seen.insert(id.clone()), "{id} in both queues or twice");
        }
    }
    let confirmed = ledger.lock().unwrap().confirmed.clone();
    let lost: Vec<_> = confirmed.difference(&seen).take(5).collect();
    assert!(lost.is_empty(), "confirmed publishes lost: {lost:?}");
    let _ = conn.close(200, "bye".into()).await;
    serve.stop();
    let deploys = deploys.load(Ordering::SeqCst);
    assert!(deploys >= KILLS, "too few hot swaps: {deploys}");
    eprintln!(
        "hot swap: {KILLS} SIGKILLs during {deploys} completed redeploys in {:.0?}; the registry \
         served the plugin after every restart; {} confirmed publishes, each in exactly one of \
         the two queues",
        started.elapsed(),
        confirmed.len()
    );
}
