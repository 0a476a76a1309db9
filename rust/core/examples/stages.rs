//! Time the stages of layer extraction separately: `cargo run -r --example stages LAYER`.
use std::io::Read;
use std::time::Instant;

fn main() {
    let path = std::env::args().nth(1).expect("layer path");
    let data = std::fs::read(&path).unwrap();
    for _ in 0..3 {
        let t = Instant::now();
        let mut h = dockyard_core::digest::Hasher::new();
        h.update(&data);
        let raw_hash = t.elapsed();

        let t = Instant::now();
        let mut d = flate2::bufread::MultiGzDecoder::new(&data[..]);
        let mut buf = vec![0u8; 256 << 10];
        let mut tar = Vec::with_capacity(data.len() * 3);
        loop {
            let n = d.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            tar.extend_from_slice(&buf[..n]);
        }
        let inflate = t.elapsed();

        let t = Instant::now();
        let mut h = dockyard_core::digest::Hasher::new();
        h.update(&tar);
        let tar_hash = t.elapsed();
        println!(
            "raw {} MB hash {:?} | inflate to {} MB {:?} | tar hash {:?}",
            data.len() >> 20,
            raw_hash,
            tar.len() >> 20,
            inflate,
            tar_hash
        );
    }
}
