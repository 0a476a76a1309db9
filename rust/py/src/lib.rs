//! `dockyard._native`: a thin binding over `dockyard-core`. It converts arguments and results
//! and maps errors in one place ([`NativeError`]); every call that touches the disk runs with
//! the interpreter detached, through [`detached`].

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

use dockyard_core as core;
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

pyo3::import_exception!(dockyard.errors, LayerError);

/// A core error on its way to Python. (The orphan rule forbids `From<core::Error> for PyErr`
/// directly; this newtype is that one mapping.)
struct NativeError(core::Error);

impl From<NativeError> for PyErr {
    fn from(NativeError(e): NativeError) -> PyErr {
        match e {
            core::Error::Io { path, source } => {
                let msg = source.to_string();
                match source.raw_os_error() {
                    // OSError(errno, strerror, filename) picks the subclass (FileNotFoundError...).
                    Some(errno) => {
                        let strerror = msg
                            .strip_suffix(&format!(" (os error {errno})"))
                            .unwrap_or(&msg)
                            .to_owned();
                        PyOSError::new_err((errno, strerror, path.into_os_string()))
                    }
                    None => PyOSError::new_err(format!("{}: {msg}", path.display())),
                }
            }
            core::Error::InvalidArgument(msg) => PyValueError::new_err(msg),
            e @ (core::Error::Hostile { .. } | core::Error::Corrupt { .. } | core::Error::Unsupported { .. }) => {
                let member = e.member().map(str::to_owned);
                LayerError::new_err((e.to_string(), member))
            }
        }
    }
}

/// Run `f` with the interpreter detached (other Python threads keep running) and map its error.
fn detached<T, F>(py: Python<'_>, f: F) -> PyResult<T>
where
    F: FnOnce() -> core::Result<T> + Send,
    T: Send,
{
    py.detach(f).map_err(|e| NativeError(e).into())
}

fn stream_dict<'py>(py: Python<'py>, s: &core::StreamInfo) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("digest", &s.digest)?;
    d.set_item("diff_id", &s.diff_id)?;
    d.set_item("compressed_size", s.compressed_size)?;
    d.set_item("size", s.size)?;
    d.set_item("compression", s.compression.map(|c| c.name()))?;
    Ok(d)
}

fn layer_dict<'py>(py: Python<'py>, l: &core::LayerInfo) -> PyResult<Bound<'py, PyDict>> {
    let d = stream_dict(py, &l.stream)?;
    d.set_item("entries", l.entries)?;
    d.set_item("content_size", l.content_size)?;
    match &l.split {
        Some((digest, size)) => {
            let s = PyDict::new(py);
            s.set_item("digest", digest)?;
            s.set_item("size", size)?;
            d.set_item("split", s)?;
        }
        None => d.set_item("split", py.None())?,
    }
    Ok(d)
}

fn changes_list(v: Vec<core::diff::Change>) -> Vec<(&'static str, OsString)> {
    v.into_iter().map(|c| (c.kind.letter(), OsString::from_vec(c.path))).collect()
}

#[pyfunction]
#[pyo3(signature = (src, dest, *, offset = 0, length = None, whiteouts = "overlay", tee = None, split = None))]
fn extract<'py>(
    py: Python<'py>,
    src: PathBuf,
    dest: PathBuf,
    offset: u64,
    length: Option<u64>,
    whiteouts: &str,
    tee: Option<PathBuf>,
    split: Option<PathBuf>,
) -> PyResult<Bound<'py, PyDict>> {
    let whiteouts = core::Whiteouts::parse(whiteouts).map_err(NativeError)?;
    let info = detached(py, || {
        let opts = core::ExtractOptions {
            offset,
            length,
            whiteouts,
            tee: tee.as_deref(),
            split: split.as_deref(),
            ..Default::default()
        };
        core::extract(&src, &dest, &opts)
    })?;
    layer_dict(py, &info)
}

/// Extract the tar `src` into the directory open as descriptor `dest` (the caller keeps its
/// descriptor: a duplicate is used); `name` names it in errors; `devices`, when given, are the
/// only file systems (`st_dev`) the extraction may enter beneath it.
#[pyfunction]
#[pyo3(signature = (src, dest, name, *, whiteouts = "apply", devices = None))]
fn extract_at<'py>(
    py: Python<'py>,
    src: PathBuf,
    dest: i32,
    name: PathBuf,
    whiteouts: &str,
    devices: Option<Vec<u64>>,
) -> PyResult<Bound<'py, PyDict>> {
    let whiteouts = core::Whiteouts::parse(whiteouts).map_err(NativeError)?;
    let info = detached(py, || {
        let fd = dup_fd(dest).map_err(|e| core::Error::io(&name, e))?;
        let opts = core::ExtractOptions { whiteouts, ..Default::default() };
        core::extract_at(&src, fd, &name, devices, &opts)
    })?;
    layer_dict(py, &info)
}

fn dup_fd(fd: i32) -> std::io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::BorrowedFd;
    if fd < 0 {
        return Err(std::io::Error::from(std::io::ErrorKind::InvalidInput));
    }
    // SAFETY: the caller passes a descriptor it holds open for the duration of the call.
    unsafe { BorrowedFd::borrow_raw(fd) }.try_clone_to_owned()
}

/// Open `path` inside the root open as descriptor `root` the way `docker cp` resolves it
/// (symlinks followed but scoped to the root, the last one only if `follow`), once; returns a
/// new descriptor the caller owns. `directory` opens it `O_RDONLY | O_DIRECTORY`, otherwise
/// `O_PATH`. Errors are `OSError`s naming `path`.
#[pyfunction]
#[pyo3(signature = (root, path, *, follow = true, directory = false))]
fn open_in_root(py: Python<'_>, root: i32, path: PathBuf, follow: bool, directory: bool) -> PyResult<i32> {
    use std::os::fd::IntoRawFd;
    detached(py, || {
        core::inroot::open_in_root(root, path.as_os_str().as_bytes(), follow, directory)
            .map(IntoRawFd::into_raw_fd)
            .map_err(|e| core::Error::io(&path, e))
    })
}

#[pyfunction]
#[pyo3(signature = (src, dest, *, compression = "gzip", level = None, upper = false, changes = None))]
fn pack<'py>(
    py: Python<'py>,
    src: PathBuf,
    dest: PathBuf,
    compression: &str,
    level: Option<i32>,
    upper: bool,
    changes: Option<Vec<(String, PathBuf)>>,
) -> PyResult<Bound<'py, PyDict>> {
    let compression = core::Compression::parse(compression).map_err(NativeError)?;
    let changes = changes
        .map(|v| {
            v.into_iter()
                .map(|(k, p)| Ok((core::ChangeKind::parse(&k)?, p.as_os_str().as_bytes().to_vec())))
                .collect::<core::Result<Vec<_>>>()
        })
        .transpose()
        .map_err(NativeError)?;
    let info = detached(py, || {
        let opts = core::PackOptions { compression, level, upper, changes };
        core::pack(&src, &dest, &opts)
    })?;
    layer_dict(py, &info)
}

#[pyfunction]
fn gzip_decoder() -> &'static str {
    core::gzip_decoder()
}

#[pyfunction]
fn diff(py: Python<'_>, old: PathBuf, new: PathBuf) -> PyResult<Vec<(&'static str, OsString)>> {
    detached(py, || core::diff::diff(&old, &new)).map(changes_list)
}

#[pyfunction]
#[pyo3(signature = (upper, lowers = Vec::new()))]
fn changes(py: Python<'_>, upper: PathBuf, lowers: Vec<PathBuf>) -> PyResult<Vec<(&'static str, OsString)>> {
    detached(py, || core::diff::changes(&upper, &lowers)).map(changes_list)
}

#[pyfunction]
#[pyo3(signature = (src, dest, *, offset = 0, length = None))]
fn decompress<'py>(
    py: Python<'py>,
    src: PathBuf,
    dest: PathBuf,
    offset: u64,
    length: Option<u64>,
) -> PyResult<Bound<'py, PyDict>> {
    let info = detached(py, || core::decompress(&src, &dest, offset, length))?;
    stream_dict(py, &info)
}

#[pyfunction]
#[pyo3(signature = (split, layer, dest, compression = "none", level = None))]
fn assemble<'py>(
    py: Python<'py>,
    split: PathBuf,
    layer: PathBuf,
    dest: PathBuf,
    compression: &str,
    level: Option<i32>,
) -> PyResult<Bound<'py, PyDict>> {
    let c = core::Compression::parse(compression).map_err(NativeError)?;
    let info = detached(py, || core::split::assemble(&split, &layer, &dest, c, level))?;
    stream_dict(py, &info)
}

#[pyfunction]
#[pyo3(signature = (src, dest, compression = "gzip", level = None, *, offset = 0, length = None))]
fn compress<'py>(
    py: Python<'py>,
    src: PathBuf,
    dest: PathBuf,
    compression: &str,
    level: Option<i32>,
    offset: u64,
    length: Option<u64>,
) -> PyResult<Bound<'py, PyDict>> {
    let c = core::Compression::parse(compression).map_err(NativeError)?;
    let info = detached(py, || core::compress(&src, &dest, c, level, offset, length))?;
    stream_dict(py, &info)
}

#[pyfunction]
#[pyo3(signature = (path, offset = 0, length = None))]
fn sha256_file(py: Python<'_>, path: PathBuf, offset: u64, length: Option<u64>) -> PyResult<String> {
    detached(py, || core::sha256_file(&path, offset, length))
}

/// Mount an overlay of `lowers` (top layer first) with `upper`/`work` at `target`.
#[pyfunction]
fn mount_overlay(py: Python<'_>, lowers: Vec<PathBuf>, upper: PathBuf, work: PathBuf, target: PathBuf) -> PyResult<()> {
    detached(py, || core::mount::mount_overlay(&lowers, &upper, &work, &target))
}

/// A new user namespace with these (inside, outside, count) uid and gid mappings, as a file
/// descriptor the caller owns (for `idmap_mount`).
#[pyfunction]
fn userns_fd(py: Python<'_>, uids: Vec<(u32, u32, u32)>, gids: Vec<(u32, u32, u32)>) -> PyResult<i32> {
    use std::os::fd::IntoRawFd;
    let conv = |v: Vec<(u32, u32, u32)>| -> Vec<core::mount::IdMap> {
        v.into_iter().map(|(inside, outside, count)| core::mount::IdMap { inside, outside, count }).collect()
    };
    let (uids, gids) = (conv(uids), conv(gids));
    detached(py, || core::mount::userns_fd(&uids, &gids).map(IntoRawFd::into_raw_fd))
}

/// Attach at `target` a copy of the mount at `source` idmapped with the user namespace `userns`
/// (a file descriptor from `userns_fd`).
#[pyfunction]
fn idmap_mount(py: Python<'_>, source: PathBuf, target: PathBuf, userns: i32) -> PyResult<()> {
    // SAFETY: the caller keeps the descriptor open for the call.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(userns) };
    detached(py, || core::mount::idmap_mount(&source, &target, fd))
}

/// Mount a tmpfs at `target` (nosuid, nodev, noexec) named `source` with `options`.
#[pyfunction]
fn mount_tmpfs(py: Python<'_>, target: PathBuf, source: String, options: String) -> PyResult<()> {
    detached(py, || core::mount::mount_tmpfs(&target, &source, &options))
}

/// Unmount `target` (lazily by default); a target that is not mounted is not an error.
#[pyfunction]
#[pyo3(signature = (target, detach = true))]
fn umount(py: Python<'_>, target: PathBuf, detach: bool) -> PyResult<()> {
    detached(py, || core::mount::umount(&target, detach))
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(extract, m)?)?;
    m.add_function(wrap_pyfunction!(extract_at, m)?)?;
    m.add_function(wrap_pyfunction!(open_in_root, m)?)?;
    m.add_function(wrap_pyfunction!(pack, m)?)?;
    m.add_function(wrap_pyfunction!(diff, m)?)?;
    m.add_function(wrap_pyfunction!(gzip_decoder, m)?)?;
    m.add_function(wrap_pyfunction!(changes, m)?)?;
    m.add_function(wrap_pyfunction!(decompress, m)?)?;
    m.add_function(wrap_pyfunction!(compress, m)?)?;
    m.add_function(wrap_pyfunction!(assemble, m)?)?;
    m.add_function(wrap_pyfunction!(sha256_file, m)?)?;
    m.add_function(wrap_pyfunction!(mount_overlay, m)?)?;
    m.add_function(wrap_pyfunction!(umount, m)?)?;
    m.add_function(wrap_pyfunction!(mount_tmpfs, m)?)?;
    m.add_function(wrap_pyfunction!(userns_fd, m)?)?;
    m.add_function(wrap_pyfunction!(idmap_mount, m)?)?;
    Ok(())
}
