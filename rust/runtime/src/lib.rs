//! dockyard-runtime: an OCI runtime with runc's command line, and a light per-container
//! supervisor (`shim`). No Python, no async runtime, no threads: the process forks while
//! single-threaded, and the shim is one poll loop.
//!
//! Map: [`spec`] reads config.json; [`container`] holds the lifecycle verbs and the
//! parent → intermediate → init structure; [`process`] the init and the last steps before
//! exec; [`init`] the optional PID 1 (`--init`); [`mounts`] the rootfs (through the [`sys`] seam); [`cgroups`] v1/v2 behind one trait;
//! [`caps`] and [`seccomp`] (our own BPF compiler); [`exec`] joins a running container;
//! [`shim`] supervises one; [`state`] is the on-disk state; [`selfexe`] keeps the runtime's
//! own binary out of the containers' reach.

// c_ulong/c_long casts are no-ops on x86_64 but not on 32-bit targets; keep them.
#![allow(clippy::unnecessary_cast)]

pub mod caps;
pub mod cgroups;
pub mod channel;
pub mod cli;
pub mod container;
pub mod error;
pub mod exec;
pub mod hooks;
pub mod init;
pub mod mounts;
pub mod overlay;
pub mod process;
pub mod seccomp;
pub mod selfexe;
pub mod shim;
pub mod spec;
pub mod state;
mod syscall_table;
pub mod sys;
pub mod tty;
pub mod util;

pub use error::{Error, Result};
