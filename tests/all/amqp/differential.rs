//! Differential test: one pika script runs against RabbitMQ (127.0.0.1:5672, guest/guest, when
//! it is reachable) and against Switchyard; what is observable must match.
//!
//! Compared: messages per queue and their order, redelivered flags, the exchange and routing
//! key of each `basic.get-ok` and `basic.deliver` (dead letters included, with and without
//! `x-dead-letter-routing-key`), `x-death` reason/queue/count, and the reply codes of bad
//! declares and misuse. Not compared, on purpose: `message_count` of declare-ok while
//! consumers hold messages (not exercised).

use super::pika::{pika_available, run_python};
use super::Server;

const SCRIPT: &str = r#"
import sys, json, time, uuid, pika
port = int(sys.argv[1])
p = "diff-" + uuid.uuid4().hex[:8] + "-"
params = pika.ConnectionParameters("127.0.0.1", port, "/", pika.PlainCredentials("guest", "guest"))
conn = pika.BlockingConnection(params)
ch = conn.channel()
ch.confirm_delivery()
out = {}
def drain(q):
    seen = []
    while True:
        m, props, body = ch.basic_get(q)
        if m is None:
            return seen
        seen.append([body.decode(), m.redelivered, m.exchange.replace(p, ""), m.routing_key.replace(p, "")])
        ch.basic_ack(m.delivery_tag)

def code_of(f):
    global ch
    try:
        f(ch)
        return 200
    except pika.exceptions.ChannelClosedByBroker as e:
        ch = conn.channel()
        ch.confirm_delivery()
        return e.reply_code

# order, requeue and redelivered flags
ch.queue_declare(p + "q")
for i in range(5):
    ch.basic_publish("", p + "q", ("m%d" % i).encode())
m1, _, _ = ch.basic_get(p + "q")
m2, _, _ = ch.basic_get(p + "q")
ch.basic_nack(m2.delivery_tag, multiple=True, requeue=True)
out["order"] = drain(p + "q")

# fan-out and direct routing
ch.exchange_declare(p + "fan", "fanout")
ch.exchange_declare(p + "dir", "direct")
for q in ["a", "b"]:
    ch.queue_declare(p + q)
    ch.queue_bind(p + q, p + "fan")
ch.queue_bind(p + "a", p + "dir", "ka")
ch.basic_publish(p + "fan", "x", b"f1")
ch.basic_publish(p + "dir", "ka", b"d1")
ch.basic_publish(p + "dir", "kb", b"d2")
out["a"] = drain(p + "a")
out["b"] = drain(p + "b")

# basic.deliver reports the publish's exchange and routing key too
ch.basic_publish(p + "dir", "ka", b"c1")
for m, props, body in ch.consume(p + "a", inactivity_timeout=5):
    out["deliver"] = [body.decode(), m.exchange.replace(p, ""), m.routing_key.replace(p, "")]
    ch.basic_ack(m.delivery_tag)
    break
ch.cancel()

# dead-lettering
ch.exchange_declare(p + "dlx", "fanout")
ch.queue_declare(p + "dlq")
ch.queue_bind(p + "dlq", p + "dlx")
ch.queue_declare(p + "main", arguments={"x-dead-letter-exchange": p + "dlx"})
ch.basic_publish("", p + "main", b"dead")
m, _, _ = ch.basic_get(p + "main")
ch.basic_reject(m.delivery_tag, requeue=False)
# Dead-lettering is asynchronous in RabbitMQ (and may take a timer tick here): poll.
for _ in range(100):
    m, props, body = ch.basic_get(p + "dlq", auto_ack=True)
    if m is not None:
        break
    time.sleep(0.02)
d = props.headers["x-death"][0]
out["x-death"] = [body.decode(), d["reason"], d["queue"].replace(p, ""), d["count"],
                  d["exchange"].replace(p, ""), [k.replace(p, "") for k in d["routing-keys"]],
                  m.exchange.replace(p, ""), m.routing_key.replace(p, "")]

# dead-lettering with x-dead-letter-routing-key: delivered with the DLX and that key
ch.exchange_declare(p + "dlx2", "direct")
ch.queue_declare(p + "dlq2")
ch.queue_bind(p + "dlq2", p + "dlx2", "dk")
ch.queue_declare(p + "main2", arguments={"x-dead-letter-exchange": p + "dlx2",
                                          "x-dead-letter-routing-key": "dk"})
ch.queue_bind(p + "main2", p + "dir", "k2")
ch.basic_publish(p + "dir", "k2", b"dead2")
m, _, _ = ch.basic_get(p + "main2")
ch.basic_reject(m.delivery_tag, requeue=False)
for _ in range(100):
    m, props, body = ch.basic_get(p + "dlq2", auto_ack=True)
    if m is not None:
        break
    time.sleep(0.02)
d = props.headers["x-death"][0]
out["x-death-rk"] = [body.decode(), d["exchange"].replace(p, ""),
                     [k.replace(p, "") for k in d["routing-keys"]],
                     m.exchange.replace(p, ""), m.routing_key]

# max-length (default overflow drop-head)
ch.queue_declare(p + "len", arguments={"x-max-length": 2})
for b in ["1", "2", "3"]:
    ch.basic_publish("", p + "len", b.encode())
out["len"] = drain(p + "len")

# reply codes
out["codes"] = {
    "passive-missing": code_of(lambda c: c.queue_declare(p + "none", passive=True)),
    "inequivalent": code_of(lambda c: c.queue_declare(p + "q", arguments={"x-max-length": 9})),
    "amq-prefix": code_of(lambda c: c.queue_declare("amq.mine")),
    "bind-missing-exchange": code_of(lambda c: c.queue_bind(p + "q", p + "nope")),
    "ack-unknown-tag": code_of(lambda c: (c.basic_ack(999), c.queue_declare(p + "q", passive=True))),
    "publish-missing-exchange": code_of(lambda c: c.basic_publish(p + "nope", "k", b"x")),
}
for q in ["q", "a", "b", "dlq", "main", "len", "dlq2", "main2"]:
    ch.queue_delete(p + q)
for e in ["fan", "dir", "dlx", "dlx2"]:
    ch.exchange_delete(p + e)
conn.close()
print(json.dumps(out, sort_keys=True))
"#;

fn rabbitmq_reachable() -> bool {
    std::net::TcpStream::connect_timeout(
        &"127.0.0.1:5672".parse().unwrap(),
        std::time::Duration::from_millis(300),
    )
    .is_ok()
}

#[tokio::test]
async fn same_observable_behaviour_as_rabbitmq() {
    if !pika_available() {
        println!("skipped: python3 with pika is not installed");
        return;
    }
    let server = Server::start().await;
    let ours: serde_json::Value =
        serde_json::from_str(run_python(SCRIPT, server.addr.port()).await.trim()).unwrap();
    // What we expect, independently of RabbitMQ: requeued messages go back to their original
    // position, flagged redelivered.
    assert_eq!(
        ours["order"],
        serde_json::json!([
            ["m0", true, "", "q"],
            ["m1", true, "", "q"],
            ["m2", false, "", "q"],
            ["m3", false, "", "q"],
            ["m4", false, "", "q"]
        ])
    );
    // Deliveries report the exchange and routing key of the publish.
    assert_eq!(
        ours["a"],
        serde_json::json!([["f1", false, "fan", "x"], ["d1", false, "dir", "ka"]])
    );
    assert_eq!(ours["b"], serde_json::json!([["f1", false, "fan", "x"]]));
    assert_eq!(ours["deliver"], serde_json::json!(["c1", "dir", "ka"]));
    // A dead letter: x-death keeps the original; the delivery reports the DLX and the
    // dead-letter routing key (the original key when none is set).
    assert_eq!(
        ours["x-death"],
        serde_json::json!(["dead", "rejected", "main", 1, "", ["main"], "dlx", "main"])
    );
    assert_eq!(
        ours["x-death-rk"],
        serde_json::json!(["dead2", "dir", ["k2"], "dlx2", "dk"])
    );
    assert_eq!(
        ours["len"],
        serde_json::json!([["2", false, "", "len"], ["3", false, "", "len"]])
    );
    let codes = &ours["codes"];
    assert_eq!(codes["passive-missing"], 404);
    assert_eq!(codes["inequivalent"], 406);
    assert_eq!(codes["amq-prefix"], 403);
    assert_eq!(codes["bind-missing-exchange"], 404);
    assert_eq!(codes["ack-unknown-tag"], 406);
    assert_eq!(codes["publish-missing-exchange"], 404);
    if !rabbitmq_reachable() {
        println!("skipped: RabbitMQ not reachable at 127.0.0.1:5672 (compared against expectations only)");
        return;
    }
    let theirs: serde_json::Value =
        serde_json::from_str(run_python(SCRIPT, 5672).await.trim()).unwrap();
    assert_eq!(ours, theirs, "Switchyard and RabbitMQ differ");
}
