//! A small tar reader and writer: ustar, GNU long names/links, PAX extended headers.
//!
//! Written here rather than taken from the `tar` crate because extraction safety and speed both
//! hinge on owning every step: the reader only decodes headers (it never touches the
//! filesystem), and the writer emits exactly the deterministic subset `pack` needs.

mod header;
mod reader;
mod writer;

pub use header::{Kind, Member, BLOCK};
pub use reader::Reader;
pub use writer::Writer;
