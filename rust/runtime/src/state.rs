//! The per-container state directory, `<root>/<id>/`:
//! - `state.json`: [`State`], written atomically (tmp + rename);
//! - `config.json`: the config the container was created from (exec reads it, so the bundle
//!   may go away);
//! - `exec.fifo`: present between `create` and `start`; the init blocks reading it.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::cgroups::{self, CgroupManager};
use crate::error::{Error, Result};
use crate::util::{alive, atomic_write};

pub const DEFAULT_ROOT: &str = "/run/dockyard-runtime";
pub const OCI_VERSION: &str = "1.0.2";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    pub id: String,
    pub pid: i32,
    pub bundle: String,
    pub rootfs: String,
    pub created: String,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Start time of the init (clock ticks, /proc/PID/stat field 22): tells a reused pid apart.
    pub init_start_time: u64,
    pub cgroup_version: u8,
    pub cgroup_path: String,
    /// The container has its own pid namespace (its processes die with its init).
    pub own_pidns: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

pub fn valid_id(id: &str) -> Result<()> {
    if id.is_empty() || id.len() > 1024 || id == "." || id == ".." || !id.bytes().all(|c| c.is_ascii_alphanumeric() || b"_.-+".contains(&c)) {
        return Err(Error::msg(format!("invalid container id {id:?} (letters, digits, _ . - + only)")));
    }
    Ok(())
}

pub struct Container {
    pub dir: PathBuf,
    pub state: State,
}

impl Container {
    pub fn dir_of(root: &Path, id: &str) -> PathBuf {
        root.join(id)
    }

    pub fn load(root: &Path, id: &str) -> Result<Container> {
        valid_id(id)?;
        let dir = Self::dir_of(root, id);
        let p = dir.join("state.json");
        let data = match std::fs::read(&p) {
            Ok(d) => d,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Err(Error::msg(format!("container {id:?} does not exist"))),
            Err(e) => return Err(Error::io("read", Some(&p), e)),
        };
        let state = serde_json::from_slice(&data).map_err(|e| Error::msg(format!("parse {}: {e}", p.display())))?;
        Ok(Container { dir, state })
    }

    pub fn save(&self) -> Result<()> {
        let data = serde_json::to_vec(&self.state).map_err(|e| Error::msg(format!("encode state: {e}")))?;
        atomic_write(&self.dir.join("state.json"), &data, 0o600)
    }

    pub fn fifo(&self) -> PathBuf {
        self.dir.join("exec.fifo")
    }

    pub fn cgroup(&self) -> Result<Box<dyn CgroupManager>> {
        cgroups::reopen(self.state.cgroup_version, &self.state.cgroup_path)
    }

    pub fn status(&self) -> Status {
        if !alive(self.state.pid, self.state.init_start_time) {
            return Status::Stopped;
        }
        if self.fifo().exists() {
            return Status::Created;
        }
        if self.cgroup().map(|c| c.is_frozen()).unwrap_or(false) {
            return Status::Paused;
        }
        Status::Running
    }

    /// The OCI state document (plus runc's extra `rootfs`, `created`, `owner`).
    pub fn oci_state(&self) -> serde_json::Value {
        let status = self.status();
        serde_json::json!({
            "ociVersion": OCI_VERSION,
            "id": self.state.id,
            "status": status.as_str(),
            "pid": if status == Status::Stopped { 0 } else { self.state.pid },
            "bundle": self.state.bundle,
            "rootfs": self.state.rootfs,
            "created": self.state.created,
            "annotations": self.state.annotations,
            "owner": "",
        })
    }
}

/// Every container id under the root, sorted.
pub fn list_ids(root: &Path) -> Vec<String> {
    let mut ids: Vec<String> = std::fs::read_dir(root)
        .map(|rd| rd.filter_map(|e| e.ok()).filter(|e| e.path().join("state.json").exists()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    ids.sort();
    ids
}
