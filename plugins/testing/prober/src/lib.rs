//! Test plugin: tries to leave the sandbox, as the `probe` header says, and dead-letters the
//! message with what happened (`denied: …` or `allowed: …`), so a test can read the outcome:
//! - `file`: reads the file named by the `path` header;
//! - `dir`: lists the directory named by the `path` header;
//! - `write`: creates a file at the `path` header;
//! - `connect`: opens a TCP connection to the `addr` header;
//! - `env`: counts the environment variables it can see;
//! - `args`: counts its command-line arguments.
wit_bindgen::generate!({ world: "router", path: "../../../wit" });

use switchyard::plugin::types::HeaderValue;

struct Prober;

fn header<'a>(msg: &'a Message, name: &str) -> &'a str {
    msg.headers
        .iter()
        .find_map(|(n, value)| match value {
            HeaderValue::Text(text) if n == name => Some(text.as_str()),
            _ => None,
        })
        .unwrap_or("")
}

fn outcome<T: std::fmt::Debug>(result: std::io::Result<T>) -> String {
    match result {
        Ok(v) => format!("allowed: {v:?}"),
        Err(e) => format!("denied: {e}"),
    }
}

impl Guest for Prober {
    fn route(msg: Message, _ctx: RouteContext) -> Result<Verdict, PluginError> {
        let path = header(&msg, "path");
        let reason = match header(&msg, "probe") {
            "file" => outcome(std::fs::read(path).map(|b| b.len())),
            "dir" => outcome(std::fs::read_dir(path).map(|d| d.count())),
            "write" => outcome(std::fs::write(path, b"escaped")),
            "connect" => outcome(std::net::TcpStream::connect(header(&msg, "addr")).map(|_| ())),
            "env" => {
                let n = std::env::vars_os().count();
                if n == 0 {
                    "denied: no environment".to_owned()
                } else {
                    format!("allowed: {n} variables")
                }
            }
            "args" => format!("args: {}", std::env::args_os().count()),
            other => format!("unknown probe {other:?}"),
        };
        Ok(Verdict::DeadLetter(reason))
    }
}

export!(Prober);
