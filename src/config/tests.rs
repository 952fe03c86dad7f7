//! Settings precedence, errors, validation and round trips.

use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn flag_beats_env_beats_file_beats_default() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("switchyard.toml");
    std::fs::write(
        &file,
        "data_dir = \"/from/file\"\namqp_listen = \"127.0.0.1:1001\"\nhttp_listen = \"127.0.0.1:1002\"\n",
    )
    .unwrap();
    let env = env(&[
        ("SWITCHYARD_AMQP_LISTEN", "127.0.0.1:2001"),
        ("SWITCHYARD_HTTP_LISTEN", "127.0.0.1:2002"),
        ("SWITCHYARD_CONFIG", "ignored"),
        ("PATH", "/bin"),
    ]);
    let flags = [("http_listen", "127.0.0.1:3002".to_string())];
    let c = Config::resolve(Some(&file), env, &flags).unwrap();
    assert_eq!(c.data_dir, PathBuf::from("/from/file"));
    assert_eq!(c.amqp_listen.port(), 2001);
    assert_eq!(c.http_listen.port(), 3002);
    assert_eq!(c.plugins_dir, PathBuf::from("./plugins"));
}

#[test]
fn errors_name_the_source_and_setting() {
    let e = Config::resolve(None, env(&[("SWITCHYARD_AMQP_LISTEN", "nope")]), &[])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("environment") && e.contains("amqp_listen"),
        "{e}"
    );
    let e = Config::resolve(None, env(&[("SWITCHYARD_COLOUR", "red")]), &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown setting \"colour\""), "{e}");
}

#[test]
fn remote_admin_needs_a_token() {
    let mut c = Config::default();
    c.set("http_listen", "0.0.0.0:15673", Source::Flag).unwrap();
    let e = c.validate().unwrap_err().to_string();
    assert!(e.contains("admin_token"), "{e}");
    c.set("admin_token", "s3cret", Source::Env).unwrap();
    c.validate().unwrap();
    assert!(!c.to_toml().contains("s3cret"));
}

#[test]
fn limits_reach_the_listener_and_the_broker() {
    let c = Config::default();
    assert_eq!(c.amqp_config().max_body, 16 << 20);
    let c = Config::resolve(
        None,
        env(&[
            ("SWITCHYARD_MAX_MESSAGE_BYTES", "1000"),
            ("SWITCHYARD_MAX_HEADER_COUNT", "7"),
            ("SWITCHYARD_MAX_CONNECTIONS", "3"),
            ("SWITCHYARD_WORKER_THREADS", "4"),
            ("SWITCHYARD_CHANNEL_MAX", "9"),
            ("SWITCHYARD_MAX_QUEUES", "5"),
            ("SWITCHYARD_DISK_FREE_LIMIT", "0"),
        ]),
        &[],
    )
    .unwrap();
    let amqp = c.amqp_config();
    assert_eq!(
        (
            amqp.max_body,
            amqp.max_header_count,
            amqp.max_connections,
            amqp.channel_max
        ),
        (1000, 7, 3, 9)
    );
    assert_eq!(c.worker_threads, 4);
    let broker = c.broker_config();
    assert_eq!((broker.queues.max_queues, broker.disk_free_limit), (5, 0));
    for (key, bad) in [
        ("channel_max", "0"),
        ("channel_max", "70000"),
        ("max_connections", "0"),
        ("worker_threads", "0"),
    ] {
        let e = Config::default()
            .set(key, bad, Source::Flag)
            .unwrap_err()
            .to_string();
        assert!(e.contains(key), "{e}");
    }
}

#[test]
fn tls_needs_cert_and_key_and_brings_amqps() {
    let c = Config::default();
    assert_eq!((c.tls_files(), c.amqps_addr()), (None, None));
    for (key, missing) in [("tls_cert", "tls_key"), ("tls_key", "tls_cert")] {
        let c = Config::resolve(None, env(&[]), &[(key, "/etc/x.pem".into())]).unwrap();
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains(&format!("set {missing}")), "{e}");
    }
    let c = Config::resolve(None, env(&[]), &[("amqps_listen", "127.0.0.1:5999".into())]).unwrap();
    let e = c.validate().unwrap_err().to_string();
    assert!(e.contains("amqps_listen") && e.contains("tls_cert"), "{e}");

    let both = env(&[
        ("SWITCHYARD_TLS_CERT", "/etc/cert.pem"),
        ("SWITCHYARD_TLS_KEY", "/etc/key.pem"),
    ]);
    let c = Config::resolve(None, both.clone(), &[]).unwrap();
    c.validate().unwrap();
    assert_eq!(c.amqps_addr(), Some(DEFAULT_AMQPS_LISTEN));
    let c = Config::resolve(None, both, &[("amqps_listen", "0.0.0.0:5671".into())]).unwrap();
    assert_eq!(c.amqps_addr().unwrap().port(), 5671);
    let back: Config = toml::from_str(&c.to_toml()).unwrap();
    assert_eq!(back, c);
}

#[test]
fn printed_config_reads_back() {
    let c = Config::default();
    let back: Config = toml::from_str(&c.to_toml()).unwrap();
    assert_eq!(back, c);
}
