//! `cargo bench --bench servicing`: the side-by-side comparison of `ois bench run` on generated
//! input. Sized by OIS_BENCH_SIZE (default 1GiB per index), OIS_BENCH_REPS (3),
//! OIS_BENCH_IMAGES (4) and OIS_BENCH_INDEXES (4); the report goes to target/bench/.

use std::path::PathBuf;

use ois::bench::{self, BenchOptions, GenerateOptions};
use ois::wim::Compression;

fn var<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // `cargo test --all-targets` runs bench targets too; only `cargo bench` passes --bench.
    if !std::env::args().any(|a| a == "--bench") {
        println!("servicing bench: skipped (run it with `cargo bench --bench servicing`)");
        return;
    }
    let size = std::env::var("OIS_BENCH_SIZE")
        .ok()
        .and_then(|s| bench::parse_size(&s).ok())
        .unwrap_or(1 << 30);
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    let generated = bench::generate(
        &out.join("input"),
        &GenerateOptions {
            seed: var("OIS_BENCH_SEED", 1),
            size,
            indexes: var("OIS_BENCH_INDEXES", 4),
            compression: Compression::Lzx,
        },
    );
    let generated = match generated {
        Ok(g) => g,
        Err(e) => {
            eprintln!("generating the input failed: {e}");
            std::process::exit(1);
        }
    };
    let report = bench::run(&BenchOptions {
        wim: generated.wim,
        packages: generated.packages,
        out: out.clone(),
        repetitions: var("OIS_BENCH_REPS", 3),
        images: var("OIS_BENCH_IMAGES", 4),
        ois: PathBuf::from(env!("CARGO_BIN_EXE_ois")),
        wimlib_imagex: bench::harness::which("wimlib-imagex"),
    });
    match report {
        Ok(r) => print!("{}", r.markdown()),
        Err(e) => {
            eprintln!("the benchmark failed: {e}");
            std::process::exit(1);
        }
    }
}
