//! Key-value buckets of a namespace (declarations here; plugin heads and topology in
//! [`crate::cluster`]).

use async_nats::jetstream::kv;
use async_nats::jetstream::stream::{self, DiscardPolicy, StorageType};
use async_nats::jetstream::Context;

use super::JetStreamError;

/// Opens the key-value bucket `bucket`, creating its stream first if needed.
///
/// Why not `create_key_value`: the client asks the server for its account limits first, and
/// it cannot read NATS 2.9's answer. The stream is laid out as that call would (`KV_<bucket>`,
/// `$KV.<bucket>.>`, one value per key, direct get), so any KV client reads the bucket.
pub(crate) async fn open_bucket(
    js: &Context,
    bucket: &str,
    history: i64,
    replicas: usize,
) -> Result<kv::Store, JetStreamError> {
    let failed = |e: &dyn std::fmt::Display| {
        JetStreamError::nats(format!("opening key-value bucket {bucket}"), e)
    };
    js.get_or_create_stream(stream::Config {
        name: format!("KV_{bucket}"),
        description: Some(format!("Switchyard bucket {bucket}")),
        subjects: vec![format!("$KV.{bucket}.>")],
        max_messages_per_subject: history,
        storage: StorageType::File,
        num_replicas: replicas,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: DiscardPolicy::New,
        ..Default::default()
    })
    .await
    .map_err(|e| failed(&e))?;
    js.get_key_value(bucket).await.map_err(|e| failed(&e))
}
