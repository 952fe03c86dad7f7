//! Opening and validating the data directory.
//!
//! Layout: `<dir>/FORMAT` (a one-line marker, written before anything else), `<dir>/sled/`
//! (the sled catalog) and `<dir>/log/` (the message log's segments). Why a marker file and not only a key inside sled: a directory with files
//! but no marker is foreign (someone else's data, a typo'd path) and must be refused *before*
//! sled opens it, because sled happily creates its files in any directory and would mix them in.
//!
//! Invariant: this module never deletes or rewrites anything in a directory that already has
//! content. A fresh (missing or empty) directory is initialised; anything else is validated and
//! either opened as is or refused with a [`StoreError`] naming the directory.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::StoreError;

/// Marker file name.
pub const MARKER: &str = "FORMAT";
/// Marker contents (and the `meta/format` key's value) this build writes and reads.
pub const FORMAT: &str = "switchyard-store/2";
/// Sub-directory that holds sled's files.
pub const SLED_DIR: &str = "sled";
/// Sub-directory of the message log.
pub const LOG_DIR: &str = "log";
/// Where a new database is built before it is renamed to [`SLED_DIR`], so that `sled/` exists
/// only complete (with its format key): a crash during creation leaves `sled.init/`, which is
/// ours, holds nothing and is rebuilt.
pub const INIT_DIR: &str = "sled.init";

/// Create the database under `INIT_DIR` with its format key, and the message log directory,
/// then rename the database into place (so `sled/` existing means everything exists).
pub fn create_database(dir: &Path, cache_capacity: u64) -> Result<(), StoreError> {
    let init = dir.join(INIT_DIR);
    if init.exists() {
        fs::remove_dir_all(&init).map_err(io(dir))?;
    }
    let log = dir.join(LOG_DIR);
    if log.exists() {
        fs::remove_dir_all(&log).map_err(io(dir))?;
    }
    fs::create_dir(&log).map_err(io(dir))?;
    {
        let db = sled::Config::new()
            .path(&init)
            .cache_capacity(cache_capacity)
            .open()
            .map_err(|e| open_error(dir, e))?;
        db.open_tree("meta")?.insert("format", FORMAT.as_bytes())?;
        db.flush()?;
    }
    fs::rename(&init, dir.join(SLED_DIR)).map_err(io(dir))?;
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))?;
    Ok(())
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Make sure `dir` is a Switchyard data directory, creating it when missing or empty.
/// Returns the sled path and whether the directory was freshly initialised.
pub fn prepare(dir: &Path) -> Result<(PathBuf, bool), StoreError> {
    fs::create_dir_all(dir).map_err(io(dir))?;
    // A lone `FORMAT.tmp` is our own interrupted creation: the directory counts as empty.
    let tmp_name = format!("{MARKER}.tmp");
    let empty = fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(Result::ok)
        .all(|e| e.file_name().to_str() == Some(tmp_name.as_str()));
    let marker = dir.join(MARKER);
    if empty {
        // Write the marker atomically: temp file, fsync, rename, fsync the directory.
        let tmp = dir.join(&tmp_name);
        let mut f = fs::File::create(&tmp).map_err(io(dir))?;
        f.write_all(format!("{FORMAT}\n").as_bytes())
            .map_err(io(dir))?;
        f.sync_all().map_err(io(dir))?;
        fs::rename(&tmp, &marker).map_err(io(dir))?;
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io(dir))?;
        return Ok((dir.join(SLED_DIR), true));
    }
    let found = match fs::read(&marker) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(StoreError::Foreign {
                path: dir.to_owned(),
                marker: MARKER,
            })
        }
        Err(e) => return Err(io(dir)(e)),
    };
    let found = String::from_utf8_lossy(&found).trim().to_owned();
    if found != FORMAT {
        return Err(StoreError::UnknownFormat {
            path: dir.to_owned(),
            found,
            expected: FORMAT,
        });
    }
    let sled_dir = dir.join(SLED_DIR);
    // A marker without a database is a crash during creation only if nothing else is there.
    let fresh = !sled_dir.exists();
    if fresh {
        let others = fs::read_dir(dir)
            .map_err(io(dir))?
            .filter_map(Result::ok)
            .any(|e| {
                let n = e.file_name();
                n != MARKER && n != INIT_DIR && n != LOG_DIR
            });
        if others {
            return Err(StoreError::Corrupt {
                path: dir.to_owned(),
                detail: format!("the {SLED_DIR}/ database directory is missing"),
            });
        }
    }
    Ok((sled_dir, fresh))
}

/// Map a sled open error to a clear store error.
pub fn open_error(dir: &Path, e: sled::Error) -> StoreError {
    match e {
        sled::Error::Io(ref io) if io.to_string().contains("lock") => StoreError::Locked {
            path: dir.to_owned(),
            detail: io.to_string(),
        },
        sled::Error::Io(source) => StoreError::Io {
            path: dir.to_owned(),
            source,
        },
        other => StoreError::Corrupt {
            path: dir.to_owned(),
            detail: other.to_string(),
        },
    }
}
