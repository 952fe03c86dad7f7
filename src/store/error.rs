//! Errors of the storage layer.

use std::path::PathBuf;

/// Why the store could not be opened or could not take a write.
///
/// Every variant that concerns the data directory names it, so an operator can act on the
/// message alone.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("data directory {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("data directory {path} is not empty and holds no Switchyard format marker ({marker}); refusing to use or reset a directory this build did not create")]
    Foreign { path: PathBuf, marker: &'static str },
    #[error("data directory {path} has format marker {found:?}, this build reads {expected:?}; was it written by a different Switchyard version?")]
    UnknownFormat {
        path: PathBuf,
        found: String,
        expected: &'static str,
    },
    #[error("data directory {path} is damaged: {detail}")]
    Corrupt { path: PathBuf, detail: String },
    #[error("data directory {path} is in use by another process or store handle: {detail}")]
    Locked { path: PathBuf, detail: String },
    #[error("storage engine error: {0}")]
    Sled(sled::Error),
    #[error("a previous write or flush failed ({0}); the store refuses further writes until it is reopened")]
    Poisoned(String),
    #[error("no space left for the message log in {path} ({source}); writes are refused until space is freed, and nothing that was not written has been acknowledged")]
    NoSpace {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The catalog (sled: queue declarations) could not be written: the disk is full. Nothing
    /// was declared. Made by the `From<sled::Error>` conversion, so every catalog operation
    /// reports a full disk the same way.
    #[error("no space left for the catalog in the data directory ({source}); the write (a queue declaration, say) was not made. Free space; if catalog writes still fail once space is back, restart the broker (sled keeps a failed write's error), which keeps every acknowledged message and declaration")]
    CatalogFull {
        #[source]
        source: std::io::Error,
    },
    #[error("the store is shut down")]
    Closed,
    #[error("a single write of {bytes} bytes is larger than the message log accepts (1 GiB); publish smaller messages or fan out to fewer queues")]
    TooLarge { bytes: u64 },
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        match e {
            sled::Error::Io(source) if source.kind() == std::io::ErrorKind::StorageFull => {
                StoreError::CatalogFull { source }
            }
            other => StoreError::Sled(other),
        }
    }
}
