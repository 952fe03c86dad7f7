//! Segment files: `<log dir>/<id, 10 digits>.log`, appended in id order, never rewritten.
//!
//! A segment is written only at its end (positional writes at increasing offsets), sealed when
//! it reaches the size limit, and deleted whole once nothing in it is live (see `compact.rs`).

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

pub fn path(dir: &Path, id: u32) -> PathBuf {
    dir.join(format!("{id:010}.log"))
}

/// Ids of the segment files in `dir`, ascending. Other files are ignored.
pub fn list(dir: &Path) -> io::Result<Vec<u32>> {
    let mut ids: Vec<u32> = fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name();
            let stem = name.to_str()?.strip_suffix(".log")?;
            (stem.len() == 10).then(|| stem.parse().ok())?
        })
        .collect();
    ids.sort_unstable();
    Ok(ids)
}

pub fn open(dir: &Path, id: u32) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path(dir, id))
}

/// Creates segment `id`; the caller syncs the directory before relying on it.
pub fn create(dir: &Path, id: u32) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path(dir, id))
}

pub fn read_at(file: &File, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0; len];
    file.read_exact_at(&mut buf, offset)?;
    Ok(buf)
}

pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}
