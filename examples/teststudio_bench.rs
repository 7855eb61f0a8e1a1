//! Times the secrets inventory, the dry run and the upgrade on a synthetic
//! project shaped like the large Test Studio suite (issue 14): 880 JSON
//! `.tstest` files (every 20th with an embedded-image line of 260 to 530
//! KB), 860 `.resx` with a byte-order mark, 400 `.imgstore` zips, 10 `.xlsx`
//! data sources and a `Settings.aiis`: 2,151 files holding 10^4 keyturn
//! tokens. Run it through `scripts/bench-teststudio.sh` or directly:
//!
//! ```sh
//! cargo run --release --example teststudio_bench -- 5
//! ```
//!
//! Each of the given number of rounds (default 5) writes a fresh project,
//! then times, in this order: the inventory (`projects secrets`), the dry
//! run, the upgrade (every rewritten file flushed to disk) and a second
//! upgrade (nothing to write). It prints the median of each and the ratio
//! of the upgrade to the dry run, as one JSON line.

use std::fmt::Write as _;
use std::io::{Cursor, Write as _};
use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine as _;
use keyturn::keys::{Key, KeyKind};
use keyturn::project::{self, inventory};
use keyturn::token::Keyring;

const TESTS: usize = 880;
const RESX: usize = 860;
const IMAGE_STORES: usize = 400;
const WORKBOOKS: usize = 10;
/// Tokens: 880 tests x 8 + 860 resx x 3 + 10 workbooks x 38 = 10,000.
const PER_TEST: usize = 8;
const PER_RESX: usize = 3;
const PER_WORKBOOK: usize = 38;

fn key(seed: u8) -> Key {
    Key::from_bytes(KeyKind::Encryption, [seed; 32].map(|b| b ^ 0x5A).map(|b| b.wrapping_add(seed)))
}

fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 32) as u8
        })
        .collect()
}

fn step(i: usize, raw: &str, encrypt: bool, cipher: &str) -> String {
    format!(
        "        {{\r\n          \"__type\": \"ArtOfTest.WebAii.Design.ProjectModel.AutomationStep\",\r\n          \"__value\": {{\r\n            \"Description\": \"Enter text '*****' in 'Field{i}'\",\r\n            \"CustomDescription\": \"\",\r\n            \"Step\": {{\r\n              \"__type\": \"ArtOfTest.WebAii.Design.IntrinsicTranslators.Descriptors.SetTextActionDescriptor\",\r\n              \"__value\": {{ \"RawText\": \"{raw}\", \"IsPassword\": true, \"Encrypt\": {encrypt}, \"_canEncrypt\": true, \"_cipher\": \"{cipher}\" }}\r\n            }}\r\n          }}\r\n        }}"
    )
}

fn zip_of(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, content) in entries {
        writer.start_file(name.as_str(), zip::write::SimpleFileOptions::default()).expect("entry");
        writer.write_all(content).expect("write");
    }
    writer.finish().expect("zip").into_inner()
}

fn generate(root: &Path) -> usize {
    let old = Keyring::new(&key(1), &[]);
    let seal = |i: usize| old.seal(format!("Password-{i}").as_bytes());
    let mut tokens = 0;
    let put = |rel: String, bytes: &[u8]| {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, bytes).expect("write");
    };
    put("Settings.aiis".into(), b"{\r\n  \"__type\": \"ProjectSettings\",\r\n  \"__value\": { \"QcPassword\": \"\", \"TfsPassword\": \"\", \"TpPassword\": \"\" }\r\n}\r\n");
    for t in 0..TESTS {
        let mut steps = Vec::new();
        // Seven password steps hold tokens, one is encrypted by Test Studio
        // itself; the connection string holds the eighth token.
        for s in 0..PER_TEST - 1 {
            steps.push(step(s, &seal(tokens), false, ""));
            tokens += 1;
        }
        steps.push(step(PER_TEST, "", true, "Zm9vYmFyYmF6cXV4MTIzNA=="));
        let image = if t % 20 == 0 {
            let len = 260_000 + (t * 7919) % 270_000;
            format!(
                ",\r\n        {{ \"__value\": {{ \"Description\": \"Verify image\", \"Step\": {{ \"__value\": {{ \"ImageData\": \"{}\" }} }} }} }}",
                base64::engine::general_purpose::STANDARD.encode(noise(len / 4 * 3, t as u64))
            )
        } else {
            String::new()
        };
        let text = format!(
            "{{\r\n  \"__type\": \"ArtOfTest.WebAii.Design.ProjectModel.Test\",\r\n  \"__value\": {{\r\n    \"Title\": \"Test {t}\",\r\n    \"DataInfo\": {{ \"__value\": {{ \"ConnectionString\": \"Server=db;Password={};\", \"DataProvider\": \"\" }} }},\r\n    \"Steps\": {{ \"__value\": [\r\n{}{image}\r\n    ] }}\r\n  }}\r\n}}\r\n",
            seal(tokens),
            steps.join(",\r\n")
        );
        tokens += 1;
        put(format!("Tests/Area{}/Test{t}.tstest", t % 40), text.as_bytes());
    }
    for r in 0..RESX {
        let mut text = String::from("\u{FEFF}<?xml version=\"1.0\" encoding=\"utf-8\"?>\r\n<root>\r\n");
        for v in 0..PER_RESX {
            let _ = write!(
                text,
                "  <data name=\"Secret{v}\" xml:space=\"preserve\">\r\n    <value>{}</value>\r\n  </data>\r\n",
                seal(tokens)
            );
            tokens += 1;
        }
        text.push_str("  <data name=\"Label\"><value>Überprüfung</value></data>\r\n</root>\r\n");
        put(format!("Pages/Area{}/Page{r}.resx", r % 40), text.as_bytes());
    }
    for i in 0..IMAGE_STORES {
        let bytes = zip_of(&[
            ("index.json".into(), b"{\"Images\":[\"a.png\",\"b.png\"]}".to_vec()),
            ("a.png".into(), noise(12_000, i as u64 + 7)),
            ("b.png".into(), noise(9_000, i as u64 + 11)),
        ]);
        put(format!("Elements/Area{}/Page{i}.imgstore", i % 40), &bytes);
    }
    for w in 0..WORKBOOKS {
        let mut shared = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<sst>");
        for _ in 0..PER_WORKBOOK {
            let _ = write!(shared, "<si><t>{}</t></si>", seal(tokens));
            tokens += 1;
        }
        shared.push_str("</sst>");
        let bytes = zip_of(&[
            ("[Content_Types].xml".into(), b"<Types/>".to_vec()),
            ("xl/workbook.xml".into(), b"<workbook/>".to_vec()),
            ("xl/worksheets/sheet1.xml".into(), b"<worksheet><sheetData/></worksheet>".to_vec()),
            ("xl/sharedStrings.xml".into(), shared.into_bytes()),
        ]);
        put(format!("Data/Data{w}.xlsx"), &bytes);
    }
    tokens
}

fn median(mut times: Vec<Duration>) -> f64 {
    times.sort();
    times[times.len() / 2].as_secs_f64()
}

fn main() {
    let rounds: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(5);
    let base = std::env::var_os("BENCH_DIR").map(std::path::PathBuf::from).unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&base).expect("bench dir");
    let ring = Keyring::new(&key(2), &[key(1)]);
    let (mut scan, mut dry, mut up, mut again) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut files, mut bytes, mut tokens, mut items) = (0, 0u64, 0, 0);
    for _ in 0..rounds {
        let dir = tempfile::tempdir_in(&base).expect("tempdir");
        let root = dir.path().join("Suite");
        tokens = generate(&root);
        let roots = vec![root.clone()];
        let listed: Vec<_> =
            walkdir::WalkDir::new(&root).into_iter().flatten().filter(|e| e.file_type().is_file()).collect();
        files = listed.len();
        bytes = listed.iter().map(|e| e.metadata().map(|m| m.len()).unwrap_or(0)).sum();

        let start = Instant::now();
        let found = inventory::inventory(&roots, &ring).expect("inventory");
        scan.push(start.elapsed());
        items = found.items.len();

        let start = Instant::now();
        let report = project::upgrade(&roots, &ring, true, &mut |_| {}).expect("dry run");
        dry.push(start.elapsed());
        assert_eq!(report[0].upgraded, tokens, "every token is to upgrade");

        let start = Instant::now();
        let report = project::upgrade(&roots, &ring, false, &mut |_| {}).expect("upgrade");
        up.push(start.elapsed());
        assert_eq!(report[0].upgraded, tokens, "every token upgraded");

        let start = Instant::now();
        let report = project::upgrade(&roots, &ring, false, &mut |_| {}).expect("second upgrade");
        again.push(start.elapsed());
        assert_eq!((report[0].upgraded, report[0].current), (0, tokens), "the second run writes nothing");
    }
    let (scan, dry, up, again) = (median(scan), median(dry), median(up), median(again));
    println!(
        "{{\"files\": {files}, \"megabytes\": {:.1}, \"tokens\": {tokens}, \"inventory_items\": {items}, \"rounds\": {rounds}, \"inventory_s\": {scan:.3}, \"dry_run_s\": {dry:.3}, \"upgrade_s\": {up:.3}, \"second_upgrade_s\": {again:.3}, \"upgrade_tokens_per_s\": {:.0}, \"upgrade_over_dry_run\": {:.2}}}",
        bytes as f64 / 1e6,
        tokens as f64 / up,
        up / dry
    );
}
