//! dockyard-core: the native mechanisms of dockyard, with no Python.
//!
//! Layers: [`extract`](extract::extract) applies a layer tar beneath a directory without ever
//! leaving it, [`pack`](pack::pack) writes a deterministic layer tar of a directory,
//! [`diff`](diff::diff) and [`changes`](diff::changes) compute Docker-style change lists, and
//! [`compress`] and [`digest`] stream blobs while hashing them.

pub mod beneath;
pub mod compress;
pub mod diff;
pub mod digest;
pub mod error;
pub mod extract;
#[cfg(dockyard_isal)]
pub mod gunzip;
pub mod inroot;
pub mod mount;
pub mod pack;
pub mod source;
pub mod split;
pub mod sys;
pub mod tar;
mod writers;

#[cfg(test)]
pub(crate) mod testutil;

pub use compress::{compress, decompress, gzip_decoder, Compression, StreamInfo};
pub use digest::sha256_file;
pub use error::{Error, Result};
pub use extract::{extract, extract_at, ExtractOptions, LayerInfo, Whiteouts};
pub use pack::{pack, ChangeKind, PackOptions};
