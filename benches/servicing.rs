//! `cargo bench --bench servicing`: the side-by-side comparison of `ois bench run` on generated
//! input. Sized by OIS_BENCH_SIZE (default 1GiB per index), OIS_BENCH_REPS (3),
//! OIS_BENCH_IMAGES (4) and OIS_BENCH_INDEXES (4); the report goes to target/bench/.

use std::path::PathBuf;

use ois::bench::{self, BenchOptions};

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
    // In a child: a child's peak RSS starts from its parent's (Linux keeps the high-water
    // mark across exec), so this process must stay small for the RSS column to be true.
    let input = out.join("input");
    let generated = std::process::Command::new(env!("CARGO_BIN_EXE_ois"))
        .args(["--quiet", "bench", "generate", "--json", "--out"])
        .arg(&input)
        .args(["--size", &size.to_string()])
        .args(["--seed", &var("OIS_BENCH_SEED", 1u64).to_string()])
        .args(["--indexes", &var("OIS_BENCH_INDEXES", 4u32).to_string()])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| serde_json::from_slice::<bench::Generated>(&o.stdout).ok());
    let Some(generated) = generated else {
        eprintln!("generating the input failed");
        std::process::exit(1);
    };
    let report = bench::run(&BenchOptions {
        wim: generated.wim,
        packages: generated.packages,
        out: out.clone(),
        repetitions: var("OIS_BENCH_REPS", 3),
        images: var("OIS_BENCH_IMAGES", 4),
        only: Vec::new(),
        ois: PathBuf::from(env!("CARGO_BIN_EXE_ois")),
        wimlib_imagex: bench::harness::which("wimlib-imagex"),
        cold: std::env::var_os("OIS_BENCH_COLD").is_some(),
    });
    match report {
        Ok(r) => print!("{}", r.markdown()),
        Err(e) => {
            eprintln!("the benchmark failed: {e}");
            std::process::exit(1);
        }
    }
}
