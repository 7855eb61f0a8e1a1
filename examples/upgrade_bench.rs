//! Times `upgrade` on generated projects: tokens per second, the ratio to raw
//! AES-256-GCM open+seal of the same values in the same run, peak memory, and
//! per-token time at several sizes. Run it through `scripts/bench-upgrade.sh`
//! or directly:
//!
//! ```sh
//! cargo run --release --example upgrade_bench -- 10000 100000 1000000
//! ```
//!
//! Each size is measured in a child process of its own, so the peak memory
//! (VmHWM) is the upgrade's alone. Every rewritten file is flushed to disk.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use keyturn::keys::{Key, KeyKind};
use keyturn::project;
use keyturn::token::Keyring;

/// Tokens per file: 10^5 tokens make the 1,000-file project of issue 3, and
/// every size keeps the same density, so per-token times compare.
const PER_FILE: usize = 100;
const SECRET: &[u8; 40] = b"Server=db01;User=qa;Password=Tr0ub4dor&3";

fn key(seed: u8) -> Key {
    Key::from_bytes(KeyKind::Encryption, [seed; 32].map(|b| b ^ 0x5A).map(|b| b.wrapping_add(seed)))
}

fn generate(dir: &Path, tokens: usize) {
    let old = Keyring::new(&key(1), &[]);
    for f in 0..tokens.div_ceil(PER_FILE) {
        let mut text = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>\r\n<Test name=\"Ünïcödé\">\r\n");
        for t in 0..PER_FILE.min(tokens - f * PER_FILE) {
            let _ = write!(text, "  <Step id=\"{t}\" Encrypt=\"True\" Value=\"{}\"/>\r\n", old.seal(SECRET));
        }
        text.push_str("</Test>\r\n");
        std::fs::write(dir.join(format!("test-{f:05}.tstest")), text).expect("write fixture");
    }
}

fn peak_memory_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Raw AES-256-GCM open then seal of one 40-byte value, per token, in ns.
fn raw_ns(n: usize) -> f64 {
    let cipher = Aes256Gcm::new_from_slice(key(2).expose_secret()).expect("32 bytes");
    let nonce = [9u8; 12];
    let mut buf = SECRET.to_vec();
    let tag = cipher.encrypt_in_place_detached(Nonce::from_slice(&nonce), b"", &mut buf).expect("seal");
    let start = Instant::now();
    for _ in 0..n {
        let mut work = buf.clone();
        cipher.decrypt_in_place_detached(Nonce::from_slice(&nonce), b"", &mut work, &tag).expect("open");
        let tag2 = cipher.encrypt_in_place_detached(Nonce::from_slice(&nonce), b"", &mut work).expect("seal");
        std::hint::black_box((&work, tag2));
    }
    start.elapsed().as_nanos() as f64 / n as f64
}

/// Child: upgrade the project in `dir` and print one JSON line.
fn measure(dir: &Path, tokens: usize) {
    let ring = Keyring::new(&key(2), &[key(1)]);
    let start = Instant::now();
    let reports = project::upgrade(&[dir.to_path_buf()], &ring, false, &mut |_| {}).expect("upgrade");
    let seconds = start.elapsed().as_secs_f64();
    let upgraded: usize = reports.iter().map(|r| r.upgraded).sum();
    assert_eq!(upgraded, tokens, "every token upgraded");
    let raw = raw_ns(tokens.min(200_000));
    let per_token_ns = seconds * 1e9 / tokens as f64;
    println!(
        "{{\"tokens\":{tokens},\"files\":{},\"seconds\":{seconds:.3},\"tokens_per_second\":{:.0},\"per_token_us\":{:.3},\"raw_open_seal_us\":{:.3},\"ratio_raw_to_upgrade\":{:.3},\"peak_memory_mib\":{:.1}}}",
        tokens.div_ceil(PER_FILE),
        tokens as f64 / seconds,
        per_token_ns / 1e3,
        raw / 1e3,
        raw / per_token_ns,
        peak_memory_kib() as f64 / 1024.0
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--child") {
        measure(Path::new(&args[1]), args[2].parse().expect("token count"));
        return;
    }
    let sizes: Vec<usize> = if args.is_empty() {
        vec![10_000, 100_000, 1_000_000]
    } else {
        args.iter().map(|a| a.parse().expect("a token count")).collect()
    };
    for tokens in sizes {
        let dir = tempfile::tempdir_in(std::env::var_os("BENCH_DIR").unwrap_or_else(|| ".".into())).expect("tempdir");
        generate(dir.path(), tokens);
        let status = Command::new(std::env::current_exe().expect("own path"))
            .arg("--child")
            .arg(dir.path())
            .arg(tokens.to_string())
            .status()
            .expect("child");
        assert!(status.success());
    }
}
