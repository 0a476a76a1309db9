//! Writing regular file contents and their metadata, inline or on a small thread pool.
//!
//! The extracting thread creates every name itself, in archive order (so replacement,
//! hardlinks and whiteouts see a consistent tree); only the *content* of a regular file and
//! its final metadata (owner, mode, xattrs, times, all applied through the open descriptor)
//! are handed to a writer. Hardlinks work on an inode whose content may still be in flight,
//! which is fine: the content lands in the same inode. Directory times are set after
//! [`Writers::finish`], so no write can touch them afterwards.

use std::fs::File;
use std::io::{BufRead, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::error::{Error, Result};
use crate::sys;
use crate::tar::Reader;

/// Metadata applied to a regular file once its content is written. Order matters: chown
/// clears setuid/setgid and `security.capability`, and writing clears the capability too, so
/// content, then owner, then mode, then xattrs, then times.
pub struct FileMeta {
    /// `None` when the file already has the right owner (or we may not chown).
    pub uid: Option<(u32, u32)>,
    /// `None` when the file was created with its final mode.
    pub mode: Option<u32>,
    pub mtime: i64,
    pub nsec: u32,
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl FileMeta {
    pub fn apply(&self, fd: &OwnedFd, host: &Path) -> Result<()> {
        let fd = fd.as_raw_fd();
        let io = |e| Error::io(host, e);
        if let Some((u, g)) = self.uid {
            sys::fchown(fd, u, g).map_err(io)?;
        }
        // After a chown the mode must be set again (it cleared setuid/setgid).
        if let Some(mode) = self.mode {
            sys::fchmod(fd, mode).map_err(io)?;
        }
        for (k, v) in &self.xattrs {
            let k = sys::cstring(k)
                .ok_or_else(|| Error::corrupt(Some(&host.display().to_string()), "NUL in xattr name"))?;
            crate::extract::ignore_unsupported(sys::fsetxattr(fd, &k, v)).map_err(io)?;
        }
        sys::futimens(fd, self.mtime, self.nsec).map_err(io)
    }
}

/// Files up to this size travel as one job; bigger ones in chunks of this size, written with
/// `pwrite` so chunks of one file may land in any order.
const JOB: usize = 1 << 20;
/// Files smaller than this are written on the extracting thread even with a pool: most files
/// of a layer are small but most bytes are in big ones, and a hand-off costs more than a
/// small write.
const INLINE: u64 = 64 << 10;
/// Jobs in flight: bounds the memory held by copies of file contents.
const QUEUE: usize = 64;

/// A file being written in chunks; the last chunk to finish applies the metadata.
struct Pending {
    fd: OwnedFd,
    meta: FileMeta,
    host: PathBuf,
}

impl Pending {
    fn finish(self) -> Result<()> {
        self.meta.apply(&self.fd, &self.host)
    }
}

enum Job {
    Whole { fd: OwnedFd, data: Vec<u8>, meta: FileMeta, host: PathBuf },
    Chunk { file: Arc<Pending>, off: u64, data: Vec<u8> },
    Done(Arc<Pending>),
}

fn write_at(fd: &OwnedFd, data: &[u8], off: u64, host: &Path) -> Result<()> {
    // Borrow the descriptor as a File without taking ownership.
    let f = std::mem::ManuallyDrop::new(unsafe {
        <File as std::os::fd::FromRawFd>::from_raw_fd(fd.as_raw_fd())
    });
    f.write_all_at(data, off).map_err(|e| Error::io(host, e))
}

fn finish_if_last(file: Arc<Pending>) -> Result<()> {
    match Arc::into_inner(file) {
        Some(p) => p.finish(),
        None => Ok(()),
    }
}

impl Job {
    /// Run the job; hand its buffer to `spare` for reuse (fresh heap pages cost more than
    /// reused ones, and every byte of a layer passes through one of these buffers).
    fn run(self, spare: &Sender<Vec<u8>>) -> Result<()> {
        let recycle = |mut data: Vec<u8>| {
            if data.capacity() == JOB {
                data.clear();
                let _ = spare.send(data);
            }
        };
        match self {
            Job::Whole { fd, data, meta, host } => {
                write_at(&fd, &data, 0, &host)?;
                recycle(data);
                meta.apply(&fd, &host)
            }
            Job::Chunk { file, off, data } => {
                write_at(&file.fd, &data, off, &file.host)?;
                recycle(data);
                finish_if_last(file)
            }
            Job::Done(file) => finish_if_last(file),
        }
    }
}

struct Shared {
    error: Mutex<Option<Error>>,
    failed: AtomicBool,
}

impl Shared {
    fn fail(&self, e: Error) {
        let mut slot = self.error.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(e);
        }
        self.failed.store(true, Ordering::Release);
    }
}

pub struct Writers {
    tx: Option<SyncSender<Job>>,
    /// Emptied job buffers (capacity `JOB`) coming back from the writers.
    spare: Option<Receiver<Vec<u8>>>,
    threads: Vec<JoinHandle<()>>,
    shared: Arc<Shared>,
}

/// Writer threads to use when the caller does not say, for extracting into the directory `dest`
/// (an open descriptor). Into tmpfs a write is little more than a copy into memory, and the
/// extracting and decoding threads already keep two cores busy, so only cores beyond those get
/// a writer (at most 4). A disk file system does more per write (block reservations, extents),
/// which writers do while the extracting thread reads on, so there at least two are used.
/// Measured on a 2-core VM with the Debian layer, in-process, inline against two writers:
/// ext4 0.476 s against 0.492 s, and 1.045 s against 0.845 s while the host had reclaimed the
/// guest's free memory (every new page cost a fault on the host); tmpfs 0.461 s against 0.504 s.
/// `DOCKYARD_EXTRACT_WRITERS` overrides (for benchmarks and tests).
pub fn default_threads(dest: std::os::fd::RawFd) -> usize {
    if let Some(n) = std::env::var("DOCKYARD_EXTRACT_WRITERS").ok().and_then(|v| v.parse().ok()) {
        return n;
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let spare = cpus.saturating_sub(2).min(4);
    if crate::sys::in_memory_fs(dest) {
        spare
    } else {
        spare.max(2)
    }
}

impl Writers {
    /// `threads` writer threads; 0 writes inline on the calling thread.
    pub fn new(threads: usize) -> Result<Self> {
        let shared = Arc::new(Shared { error: Mutex::new(None), failed: AtomicBool::new(false) });
        if threads == 0 {
            return Ok(Self { tx: None, spare: None, threads: Vec::new(), shared });
        }
        let (tx, rx) = sync_channel::<Job>(QUEUE);
        let (back, spare) = channel::<Vec<u8>>();
        let rx = Arc::new(Mutex::new(rx));
        let mut handles = Vec::with_capacity(threads);
        for i in 0..threads {
            let rx: Arc<Mutex<Receiver<Job>>> = Arc::clone(&rx);
            let sh = Arc::clone(&shared);
            let back = back.clone();
            let h = std::thread::Builder::new()
                .name(format!("dockyard-write-{i}"))
                .spawn(move || loop {
                    let job = { rx.lock().unwrap_or_else(|p| p.into_inner()).recv() };
                    let Ok(job) = job else { return };
                    // After a failure, drain without writing: the layer is lost anyway.
                    if sh.failed.load(Ordering::Acquire) {
                        continue;
                    }
                    if let Err(e) = job.run(&back) {
                        sh.fail(e);
                    }
                });
            match h {
                Ok(h) => handles.push(h),
                Err(e) => {
                    let mut w = Self { tx: Some(tx), spare: Some(spare), threads: handles, shared };
                    let _ = w.finish();
                    return Err(Error::io("<writer thread>", e));
                }
            }
        }
        Ok(Self { tx: Some(tx), spare: Some(spare), threads: handles, shared })
    }

    fn send(&mut self, job: Job) -> Result<()> {
        let tx = self.tx.as_ref().expect("pool running");
        if tx.send(job).is_err() {
            // All writers gone: only possible after a panic.
            return Err(Error::corrupt(None, "writer threads stopped"));
        }
        Ok(())
    }

    /// Write the current member's `size` bytes from `reader` into `fd`, then its metadata.
    pub fn file<R: BufRead>(
        &mut self,
        fd: OwnedFd,
        meta: FileMeta,
        host: PathBuf,
        size: u64,
        reader: &mut Reader<R>,
    ) -> Result<()> {
        if self.tx.is_none() || size < INLINE {
            let mut f = File::from(fd);
            reader.read_data(|b| f.write_all(b).map_err(|e| Error::io(&host, e)))?;
            return meta.apply(&OwnedFd::from(f), &host);
        }
        let spare = self.spare.as_ref().expect("pool running");
        let buffer = || spare.try_recv().unwrap_or_else(|_| Vec::with_capacity(JOB));
        if size as usize <= JOB {
            let mut data = buffer();
            reader.read_data(|b| {
                data.extend_from_slice(b);
                Ok(())
            })?;
            return self.send(Job::Whole { fd, data, meta, host });
        }
        let file = Arc::new(Pending { fd, meta, host });
        let tx = self.tx.clone().expect("pool running");
        let stopped = || Error::corrupt(None, "writer threads stopped");
        let mut off = 0u64;
        let mut data = buffer();
        reader.read_data(|mut b| {
            while !b.is_empty() {
                let k = b.len().min(JOB - data.len());
                data.extend_from_slice(&b[..k]);
                b = &b[k..];
                if data.len() == JOB {
                    let full = std::mem::replace(&mut data, buffer());
                    tx.send(Job::Chunk { file: Arc::clone(&file), off, data: full }).map_err(|_| stopped())?;
                    off += JOB as u64;
                }
            }
            Ok(())
        })?;
        if !data.is_empty() {
            tx.send(Job::Chunk { file: Arc::clone(&file), off, data }).map_err(|_| stopped())?;
        }
        self.send(Job::Done(file))
    }

    /// The first writer error so far, if any.
    pub fn check(&mut self) -> Result<()> {
        if self.shared.failed.load(Ordering::Acquire) {
            if let Some(e) = self.shared.error.lock().unwrap_or_else(|p| p.into_inner()).take() {
                return Err(e);
            }
        }
        Ok(())
    }

    /// Wait for every job and every thread; the first error, if any.
    pub fn finish(&mut self) -> Result<()> {
        self.tx = None;
        for h in self.threads.drain(..) {
            if h.join().is_err() {
                self.shared.fail(Error::corrupt(None, "writer thread panicked"));
            }
        }
        match self.shared.error.lock().unwrap_or_else(|p| p.into_inner()).take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl Drop for Writers {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}
