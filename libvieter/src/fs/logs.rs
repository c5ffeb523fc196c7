//! [`LogDir`]: build logs as files, `{dir}/{id}.log` (the build service's [`LogStore`]).

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::builds::LogStore;
use crate::job::JobId;

/// A directory of build logs, one file per job, read while they grow.
#[derive(Debug, Clone)]
pub struct LogDir {
    dir: PathBuf,
}

impl LogDir {
    /// The directory `dir` (created).
    pub fn open(dir: impl Into<PathBuf>) -> io::Result<LogDir> {
        let dir = dir.into();
        fs::create_dir_all(&dir)
            .map_err(|e| io::Error::new(e.kind(), format!("creating {}: {e}", dir.display())))?;
        Ok(LogDir { dir })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The log file of job `id` (it may not exist yet).
    pub fn path(&self, id: JobId) -> PathBuf {
        self.dir.join(format!("{}.log", id.0))
    }
}

impl LogStore for LogDir {
    fn append(&self, id: JobId, what: &mut dyn FnMut(u64) -> Vec<u8>) -> io::Result<()> {
        let mut f = OpenOptions::new().create(true).append(true).open(self.path(id))?;
        let out = what(f.metadata()?.len());
        if !out.is_empty() {
            f.write_all(&out)?;
        }
        Ok(())
    }

    fn written(&self) -> io::Result<Vec<(JobId, DateTime<Utc>)>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir)?.flatten() {
            let name = entry.file_name();
            let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".log")).and_then(|n| n.parse().ok())
            else {
                continue;
            };
            // A file that vanished or cannot be read is left for the next look.
            if let Ok(modified) = entry.metadata().and_then(|m| m.modified()) {
                out.push((JobId(id), DateTime::<Utc>::from(modified)));
            }
        }
        Ok(out)
    }

    fn remove(&self, id: JobId) -> io::Result<()> {
        match fs::remove_file(self.path(id)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    fn read_at(&self, id: JobId, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        use std::os::unix::fs::FileExt;
        match fs::File::open(self.path(id)) {
            Ok(file) => file.read_at(buf, offset),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(e),
        }
    }

    fn size(&self, id: JobId) -> io::Result<u64> {
        match fs::metadata(self.path(id)) {
            Ok(meta) => Ok(meta.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(e),
        }
    }

    fn exists(&self, id: JobId) -> io::Result<bool> {
        self.path(id).try_exists()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_see_the_size_and_written_lists_only_log_files() {
        let dir = tempfile::tempdir().unwrap();
        let logs = LogDir::open(dir.path().join("logs")).unwrap();
        let mut sizes = Vec::new();
        for chunk in [&b"abc"[..], b"", b"de"] {
            logs.append(JobId(7), &mut |size| {
                sizes.push(size);
                chunk.to_vec()
            })
            .unwrap();
        }
        assert_eq!(sizes, [0, 3, 3]);
        assert_eq!(fs::read(logs.path(JobId(7))).unwrap(), b"abcde");
        fs::write(logs.dir().join("notes.txt"), "x").unwrap();
        fs::write(logs.dir().join("x.log"), "x").unwrap();
        let ids: Vec<JobId> = logs.written().unwrap().into_iter().map(|(id, _)| id).collect();
        assert_eq!(ids, [JobId(7)]);
        assert_eq!(logs.size(JobId(7)).unwrap(), 5);
        let mut buf = [0; 4];
        assert_eq!(logs.read_at(JobId(7), 2, &mut buf).unwrap(), 3);
        assert_eq!(&buf[..3], b"cde");
        assert_eq!(logs.read_at(JobId(7), 5, &mut buf).unwrap(), 0, "at the end");
        assert_eq!((logs.size(JobId(8)).unwrap(), logs.read_at(JobId(8), 0, &mut buf).unwrap()), (0, 0));
        logs.remove(JobId(7)).unwrap();
        logs.remove(JobId(7)).unwrap();
        assert!(!logs.path(JobId(7)).exists());
    }
}
