//! Compare single-stream gzip with the parallel (pigz-style) BlobWriter:
//! `cargo run -r --example gzip TAR`.
use std::io::Write;
use std::time::Instant;

use dockyard_core::compress::{BlobWriter, Compression, Compressor};

fn main() {
    let path = std::env::args().nth(1).expect("tar path");
    let data = std::fs::read(&path).unwrap();
    let out = std::env::temp_dir().join("dockyard-gzip-example.gz");
    for round in 0..3 {
        let t = Instant::now();
        let mut c = Compressor::create(&out, Compression::Gzip, None).unwrap();
        for chunk in data.chunks(1 << 20) {
            c.write_all(chunk).unwrap();
        }
        let (_, single) = c.finish().unwrap();
        let single_t = t.elapsed();
        let mut times = Vec::new();
        for threads in [1, 2] {
            let cpu0 = cpu();
            let t = Instant::now();
            let mut w = BlobWriter::with_threads(&out, Compression::Gzip, None, threads).unwrap();
            w.write_all(&data).unwrap();
            let info = w.finish().unwrap();
            times.push((threads, t.elapsed(), cpu() - cpu0, info.compressed_size));
        }
        println!("round {round}: single-stream {single_t:?} ({single} B); parallel {times:?}");
    }
    let _ = std::fs::remove_file(out);
}

/// CPU seconds used by this process so far.
fn cpu() -> f64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}
