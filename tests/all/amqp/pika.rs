//! Python's `pika` against Switchyard: the same scenarios a Python service would run.
//! Prints "skipped: ..." when python3 or pika is missing (`scripts/test.sh` installs pika).

use std::process::Command;

use super::Server;

pub fn pika_available() -> bool {
    Command::new("python3")
        .args(["-c", "import pika"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Run `script` with the broker's port as argv[1]; it prints "ok" on success.
pub async fn run_python(script: &str, port: u16) -> String {
    let script = script.to_owned();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .args(["-c", &script, &port.to_string()])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "python failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

const SCENARIOS: &str = r#"
import sys, time, pika
port = int(sys.argv[1])
conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port, "/", pika.PlainCredentials("guest", "guest")))
ch = conn.channel()
ch.confirm_delivery()
# publish/consume
ch.queue_declare("py-work", durable=True)
for i in range(50):
    ch.basic_publish("", "py-work", ("m%d" % i).encode(), pika.BasicProperties(delivery_mode=2, headers={"n": i}))
got = []
for i in range(50):
    m, props, body = ch.basic_get("py-work")
    assert props.headers["n"] == i, props.headers
    got.append(body.decode())
    ch.basic_ack(m.delivery_tag)
assert got == ["m%d" % i for i in range(50)], got
# pub/sub over topic
ch.exchange_declare("events", "topic")
ch.queue_declare("audit")
ch.queue_bind("audit", "events", "order.*")
ch.basic_publish("events", "order.created", b"e1")
ch.basic_publish("events", "user.created", b"e2")
m, _, body = ch.basic_get("audit", auto_ack=True)
assert body == b"e1", body
assert ch.basic_get("audit", auto_ack=True)[0] is None
# mandatory unroutable raises with confirms
try:
    ch.basic_publish("", "nowhere", b"x", mandatory=True)
    raise SystemExit("expected UnroutableError")
except pika.exceptions.UnroutableError:
    pass
# dead-lettering with x-death
ch.exchange_declare("py-dlx", "fanout")
ch.queue_declare("py-dlq")
ch.queue_bind("py-dlq", "py-dlx")
ch.queue_declare("py-main", arguments={"x-dead-letter-exchange": "py-dlx"})
ch.basic_publish("", "py-main", b"doomed")
m, _, _ = ch.basic_get("py-main")
ch.basic_nack(m.delivery_tag, requeue=False)
for _ in range(100):
    m, props, body = ch.basic_get("py-dlq", auto_ack=True)
    if m is not None:
        break
    time.sleep(0.02)
death = props.headers["x-death"][0]
assert body == b"doomed" and death["reason"] == "rejected" and death["queue"] == "py-main", props.headers
# errors: passive declare of a missing queue is a 404 channel close
try:
    ch.queue_declare("does-not-exist", passive=True)
    raise SystemExit("expected 404")
except pika.exceptions.ChannelClosedByBroker as e:
    assert e.reply_code == 404, e
conn.close()
print("ok")
"#;

#[tokio::test]
async fn pika_scenarios() {
    if !pika_available() {
        println!("skipped: python3 with pika is not installed (scripts/test.sh installs it)");
        return;
    }
    let server = Server::start().await;
    let out = run_python(SCENARIOS, server.addr.port()).await;
    assert!(out.contains("ok"), "{out}");
}
