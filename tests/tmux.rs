//! End-to-end tests of the real binary in tmux at 80x24 (issue 5, DESIGN.md
//! section 7): generate, paste a key with bracketed paste, import, confirm,
//! walk the rotation, quit; the terminal is given back (alternate screen
//! left, cooked mode, cursor visible); no mouse-reporting mode is ever
//! switched on; a terminal too small shows the size it needs and a resize
//! redraws the whole screen; `--ascii` writes nothing outside ASCII; the
//! Rotation tab agrees with `keyturn rotation status --json`.
//!
//! Each test runs its own tmux server (`tmux -L kt-test-<pid>-<n>`, killed
//! by a guard), so the tests run in parallel. The pane runs a small shell
//! script that waits for a go, runs keyturn, then records its exit code and
//! the terminal modes (`stty -a`) and stays alive, so tmux can still be asked
//! about the pane afterwards. The raw bytes keyturn writes are recorded with
//! `pipe-pane`, set up before the go. The screen is polled with
//! `capture-pane` until the expected text shows, never read after a fixed
//! sleep. Without tmux the tests print a notice and pass (`.ci/run` installs
//! it, so CI runs them).
#![cfg_attr(not(unix), allow(dead_code, unused_imports, unused_variables, unused_mut))] // helpers of unix-only tests
#![cfg(unix)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const KEYTURN: &str = env!("CARGO_BIN_EXE_keyturn");
/// How long to wait for the screen: generous, for a loaded 2-core machine.
const TIMEOUT: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(20);
/// The key-hint line of the tabs: the last line of every complete frame.
const HINTS: &str = "Tab/S-Tab move  Enter press  <-/-> or 1-4 tabs  ? keys  q quit";
/// The key-hint line of the Rotation tab (its detail box scrolls).
const ROTATION_HINTS: &str = "Tab/S-Tab move  Enter press  <-/-> tabs  PgUp/PgDn detail  ? keys  q quit";
/// The key-hint line's row at 80x24; the status line is just above it (it
/// may wrap over the two rows above).
const HINT_ROW: usize = 23;

/// Variables that would change what keyturn does (the test hooks, the home).
const CLEARED_ENV: [&str; 8] = [
    "KEYTURN_HOME",
    "KEYTURN_TEST_PANIC",
    "KEYTURN_CRASH_AT",
    "KEYTURN_TEST_HOLD_LOCK_MS",
    "KEYTURN_LOCK_WAIT_MS",
    "NO_COLOR",
    "TMUX",
    "TMUX_PANE",
];

static SERVERS: AtomicUsize = AtomicUsize::new(0);

fn tmux_available() -> bool {
    let found = Command::new("tmux").arg("-V").output().is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("tmux is not installed: skipping the end-to-end terminal tests (.ci/run installs it)");
    }
    found
}

/// Single quotes for `sh`.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// keyturn on the command line (not in tmux), with a clean environment.
fn keyturn_cli(home: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    use std::io::Write;
    let mut cmd = Command::new(KEYTURN);
    for var in CLEARED_ENV {
        cmd.env_remove(var);
    }
    cmd.arg("--home").arg(home).args(args);
    cmd.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("keyturn runs");
    if let Some(mut pipe) = child.stdin.take() {
        pipe.write_all(stdin.unwrap_or_default().as_bytes()).expect("stdin is written");
    }
    child.wait_with_output().expect("keyturn ends")
}

fn stdout_ok(home: &Path, args: &[&str]) -> String {
    let out = keyturn_cli(home, args, None);
    assert!(out.status.success(), "keyturn {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("stdout is UTF-8")
}

/// `keyturn rotation status --json` on `home`.
fn rotation_json(home: &Path) -> serde_json::Value {
    serde_json::from_str(&stdout_ok(home, &["rotation", "status", "--json"])).expect("rotation status is JSON")
}

/// One tmux server with one 80x24 (or other size) window running keyturn.
struct Tmux {
    socket: String,
    /// The server's socket file, removed with the server (tmux leaves it).
    socket_path: Option<PathBuf>,
    dir: tempfile::TempDir,
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.command(&["kill-server"]);
        if let Some(path) = &self.socket_path {
            let _ = fs::remove_file(path);
        }
    }
}

impl Tmux {
    /// Starts keyturn with `args` in a `width`x`height` pane on `home`, and
    /// waits until it has drawn (`ready` shows on the screen).
    fn start(home: &Path, args: &[&str], width: u16, height: u16, ready: &str) -> Tmux {
        let home = path_str(home);
        let mut all = vec!["--home", home.as_str()];
        all.extend_from_slice(args);
        Tmux::start_with(&[], &all, width, height, ready)
    }

    /// Starts keyturn with `args` and the variables `env` in a pane.
    fn start_with(env: &[(&str, &str)], args: &[&str], width: u16, height: u16, ready: &str) -> Tmux {
        Tmux::start_configured(env, args, width, height, ready, &[])
    }

    /// As `start_with`, with tmux commands (`set-option ...`) run on the
    /// server before keyturn starts.
    fn start_configured(
        env: &[(&str, &str)],
        args: &[&str],
        width: u16,
        height: u16,
        ready: &str,
        setup: &[&[&str]],
    ) -> Tmux {
        let n = SERVERS.fetch_add(1, Ordering::SeqCst);
        let mut tmux = Tmux {
            socket: format!("kt-test-{}-{n}", std::process::id()),
            socket_path: None,
            dir: tempfile::tempdir().expect("temp dir"),
        };
        let mut line = String::from("env LANG=C.UTF-8 LC_ALL=C.UTF-8");
        for (name, value) in env {
            line.push_str(&format!(" {name}={}", quote(value)));
        }
        line.push(' ');
        line.push_str(&quote(KEYTURN));
        for arg in args {
            line.push(' ');
            line.push_str(&quote(arg));
        }
        let script = format!(
            "read go; {line}; echo $? > {exit}; stty -a > {stty}; exec sleep 100000",
            exit = quote(&path_str(&tmux.file("exit"))),
            stty = quote(&path_str(&tmux.file("stty"))),
        );
        let (w, h) = (width.to_string(), height.to_string());
        tmux.ok(&["new-session", "-d", "-s", "kt", "-x", &w, "-y", &h, &script]);
        tmux.socket_path = Some(PathBuf::from(tmux.display("#{socket_path}")));
        let pipe = format!("cat >> {}", quote(&path_str(&tmux.file("raw"))));
        tmux.ok(&["pipe-pane", "-t", "kt", "-o", &pipe]);
        for command in setup {
            tmux.ok(command);
        }
        tmux.keys(&["Enter"]);
        tmux.wait_for(ready, |screen| screen.contains(ready));
        tmux
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn command(&self, args: &[&str]) -> std::io::Result<Output> {
        let mut cmd = Command::new("tmux");
        for var in CLEARED_ENV {
            cmd.env_remove(var);
        }
        cmd.env("SHELL", "/bin/sh").env("TERM", "xterm-256color").env("LANG", "C.UTF-8").env("LC_ALL", "C.UTF-8");
        cmd.args(["-u", "-f", "/dev/null", "-L", &self.socket]).args(args).output()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.command(args).expect("tmux runs");
        assert!(out.status.success(), "tmux {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).expect("tmux prints UTF-8")
    }

    /// Sends keys by tmux name (`Enter`, `Tab`, `BTab`, `q`).
    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "kt"];
        args.extend_from_slice(keys);
        self.ok(&args);
    }

    /// The screen as text, one line a row (trailing spaces trimmed by tmux).
    fn screen(&self) -> String {
        self.ok(&["capture-pane", "-p", "-t", "kt"])
    }

    fn row(&self, row: usize) -> String {
        self.screen().lines().nth(row).unwrap_or_default().to_string()
    }

    /// A tmux format about the pane, such as `#{alternate_on}`.
    fn display(&self, format: &str) -> String {
        self.ok(&["display-message", "-p", "-t", "kt", format]).trim().to_string()
    }

    /// Waits until `done` holds for the screen, and the screen is the same
    /// on two captures in a row (tmux may show a frame half written);
    /// panics with the last screen.
    fn wait_for(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        let mut last = String::new();
        loop {
            let screen = self.screen();
            if done(&screen) && screen == last {
                return screen;
            }
            last = screen.clone();
            if start.elapsed() > TIMEOUT {
                panic!("timed out waiting for {what:?}; the screen:\n{screen}");
            }
            std::thread::sleep(POLL);
        }
    }

    /// Waits until the status line reads `status` (its beginning).
    fn wait_status(&self, status: &str) -> String {
        self.wait_for(status, |s| status_of(s).contains(status))
    }

    /// Pastes `text` as the terminal would: bracketed (`paste-buffer -p`,
    /// which tmux brackets only when the application asked for it).
    fn paste(&self, text: &str) {
        let file = self.file("paste");
        fs::write(&file, text).expect("paste file");
        self.ok(&["load-buffer", "-b", "key", &path_str(&file)]);
        self.ok(&["paste-buffer", "-p", "-d", "-b", "key", "-t", "kt"]);
    }

    /// Moves the focus with Tab until the button `label` has it. Tolerates
    /// work still running (its buttons are disabled then, so Tab skips them
    /// until it ends).
    fn focus_button(&self, label: &str) {
        let focused = format!("[>{label}<]");
        let start = Instant::now();
        let mut screen = self.screen();
        while !screen.contains(&focused) {
            assert!(start.elapsed() < TIMEOUT, "{focused} never got the focus; the screen:\n{screen}");
            self.keys(&["Tab"]);
            let moved = Instant::now();
            let before = screen;
            loop {
                screen = self.screen();
                if screen != before || moved.elapsed() > Duration::from_millis(500) {
                    break;
                }
                std::thread::sleep(POLL);
            }
        }
    }

    fn resize(&self, width: u16, height: u16) {
        self.ok(&["resize-window", "-t", "kt", "-x", &width.to_string(), "-y", &height.to_string()]);
    }

    /// Quits with `q` and waits until keyturn has ended; its exit code.
    fn quit(&self) -> i32 {
        self.keys(&["q"]);
        self.exit_code()
    }

    /// Waits until keyturn has ended; its exit code.
    fn exit_code(&self) -> i32 {
        let code = self.wait_file("exit", |t| t.ends_with('\n'));
        // stty runs after the exit code is written.
        self.wait_file("stty", |t| t.contains("icanon"));
        code.trim().parse().expect("an exit code")
    }

    /// Waits until the file `name` exists and `done` holds for its text.
    fn wait_file(&self, name: &str, done: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            if let Ok(bytes) = fs::read(self.file(name)) {
                let text = String::from_utf8_lossy(&bytes).into_owned();
                if done(&text) {
                    return text;
                }
            }
            assert!(start.elapsed() < TIMEOUT, "timed out waiting for {name}; the screen:\n{}", self.screen());
            std::thread::sleep(POLL);
        }
    }

    /// Everything keyturn wrote, once it has left the alternate screen.
    fn raw_output(&self) -> Vec<u8> {
        let start = Instant::now();
        loop {
            let raw = fs::read(self.file("raw")).unwrap_or_default();
            if find(&raw, b"\x1b[?1049l").is_some() {
                return raw;
            }
            assert!(
                start.elapsed() < TIMEOUT,
                "keyturn never left the alternate screen ({} bytes recorded)",
                raw.len()
            );
            std::thread::sleep(POLL);
        }
    }

    /// After keyturn ended: the terminal is as it was before.
    fn assert_terminal_restored(&self) {
        assert_eq!(self.display("#{alternate_on}"), "0", "the alternate screen was left");
        assert_eq!(self.display("#{cursor_flag}"), "1", "the cursor is visible");
        assert_eq!(self.display("#{mouse_any_flag}"), "0", "no mouse mode is left on");
        let stty = fs::read_to_string(self.file("stty")).expect("stty -a was recorded");
        let flags: Vec<&str> = stty.split([' ', ';', '\n']).collect();
        for flag in ["icanon", "echo", "isig", "icrnl", "opost"] {
            assert!(flags.contains(&flag), "the terminal is back in cooked mode ({flag}):\n{stty}");
        }
    }
}

/// The status line: the two rows above the key-hint line, joined, with
/// spaces collapsed (a long status wraps). Above a one-row status this takes
/// in the row above as well, so check with `contains`.
fn status_of(screen: &str) -> String {
    let rows: Vec<&str> = screen.lines().collect();
    let hint = rows.iter().rposition(|l| !l.trim().is_empty()).unwrap_or(HINT_ROW);
    rows[hint.saturating_sub(2)..hint].join(" ").split_whitespace().collect::<Vec<_>>().join(" ")
}

fn path_str(path: &Path) -> String {
    path.to_str().expect("temp paths are UTF-8").to_string()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn rfind(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).rposition(|w| w == needle)
}

/// Every DEC private mode `raw` switches on (`ESC [ ? n ; m h`), in order.
fn modes_set(raw: &[u8]) -> Vec<u32> {
    let mut modes = Vec::new();
    let mut at = 0;
    while let Some(found) = find(&raw[at..], b"\x1b[?") {
        let start = at + found + 3;
        let len = raw[start..].iter().take_while(|b| b.is_ascii_digit() || **b == b';').count();
        if raw.get(start + len) == Some(&b'h') {
            let params = String::from_utf8_lossy(&raw[start..start + len]).into_owned();
            modes.extend(params.split(';').filter_map(|p| p.parse::<u32>().ok()));
        }
        at = start;
    }
    modes
}

/// No mouse reporting was ever asked for; bracketed paste was switched on,
/// and off again after the last time it was switched on.
fn assert_modes(raw: &[u8]) {
    // X10, normal, highlight, button-event, any-event tracking; the UTF-8,
    // SGR, urxvt and SGR-pixels encodings.
    let mouse = [9, 1000, 1001, 1002, 1003, 1005, 1006, 1015, 1016];
    let set = modes_set(raw);
    assert!(!set.iter().any(|m| mouse.contains(m)), "a mouse reporting mode was switched on: {set:?}");
    let on = rfind(raw, b"\x1b[?2004h").expect("bracketed paste was switched on");
    let off = rfind(raw, b"\x1b[?2004l").expect("bracketed paste was switched off");
    assert!(off > on, "bracketed paste is switched off after it was switched on");
    let alt_on = find(raw, b"\x1b[?1049h").expect("the alternate screen was used");
    let alt_off = rfind(raw, b"\x1b[?1049l").expect("the alternate screen was left");
    assert!(alt_off > alt_on);
    assert!(rfind(raw, b"\x1b[?25h").is_some_and(|at| at > alt_off), "the cursor is shown again at the end");
}

/// The checklist's marker for a step of `rotation status --json`.
fn marker(step: &serde_json::Value, current: Option<&str>) -> &'static str {
    match step["state"].as_str() {
        Some("done") => "[x]",
        Some("skipped") => "[-]",
        Some("failed") => "[!]",
        _ if step["id"].as_str() == current => "[>]",
        _ => "[ ]",
    }
}

fn capitalised(word: &str) -> String {
    let mut chars = word.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// The Rotation tab on `screen` shows what `rotation status --json` says:
/// kind, setup, status, the fingerprints, and every step with its marker.
fn assert_screen_agrees(screen: &str, json: &serde_json::Value) {
    let lines: Vec<&str> = screen.lines().collect();
    assert!(lines[0].contains("[Rotation]"), "the Rotation tab is shown:\n{screen}");
    let setup = match json["setup"].as_str() {
        Some("single") => "single machine",
        Some("multi") => "multiple machines",
        other => panic!("unknown setup {other:?}"),
    };
    let variant = json["variant"].as_str().expect("variant").replace('-', " ");
    let variant = match variant.as_str() {
        "regenerated" => "re-generated key".to_string(),
        "reset" => "reset to default".to_string(),
        "first custom" => "first custom key".to_string(),
        v => v.to_string(),
    };
    let kind = json["kind"].as_str().expect("kind");
    let status = json["status"].as_str().expect("status");
    let heading = format!("{} key rotation, {setup}, {variant}: {status}", capitalised(kind));
    assert_eq!(lines[1].trim(), heading, "the heading agrees:\n{screen}");
    let fingerprints = format!(
        "{} → {}",
        json["old_fingerprint"].as_str().expect("old fingerprint"),
        json["new_fingerprint"].as_str().expect("new fingerprint")
    );
    assert!(lines[2].trim_start().starts_with(&fingerprints), "the fingerprints agree:\n{screen}");
    let current = json["current"].as_str();
    let steps = json["steps"].as_array().expect("steps");
    for step in steps {
        let id = step["id"].as_str().expect("step id");
        let title = step["title"].as_str().expect("step title");
        let first_word = title.split(' ').next().unwrap_or_default();
        let expected = format!("{} {id:<22} {first_word}", marker(step, current));
        let shown = lines.iter().filter(|l| l.contains(&expected)).count();
        assert_eq!(shown, 1, "step {id} shows as {expected:?}:\n{screen}");
    }
    // The current step is selected and detailed below the list, with what
    // it waits for.
    if let Some(step) = steps.iter().find(|s| s["id"].as_str() == current) {
        let id = step["id"].as_str().expect("id");
        assert!(lines.iter().any(|l| l.contains(&format!(">[>] {id} "))), "step {id} is selected:\n{screen}");
        let detailed = |l: &&str| l.starts_with(&format!("┌{id}")) || l.starts_with(&format!("+{id}"));
        assert!(lines.iter().any(detailed), "step {id} is detailed below the list:\n{screen}");
        if let Some(evidence) = step["evidence"].as_str() {
            let head: String = evidence.chars().take(40).collect();
            assert!(screen.contains(&head), "the evidence of {id} shows ({head}):\n{screen}");
        }
    }
}

/// A key text from `keyturn generate`, and its fingerprint.
fn generated_key(kind: &str) -> (String, String) {
    let scratch = tempfile::tempdir().expect("temp dir");
    let text = stdout_ok(scratch.path(), &["generate", kind]).trim().to_string();
    let file = scratch.path().join("key.txt");
    fs::write(&file, &text).expect("key file");
    let fingerprint =
        stdout_ok(scratch.path(), &["fingerprint", kind, "--file", &path_str(&file), "--encoding", "text"])
            .trim()
            .to_string();
    (text, fingerprint)
}

#[test]
fn generate_paste_import_rotate_and_quit_give_the_terminal_back() {
    if !tmux_available() {
        return;
    }
    let scratch = tempfile::tempdir().expect("temp dir");
    let home = scratch.path().join("home");
    let t = Tmux::start(&home, &[], 80, 24, HINTS);
    let screen = t.wait_for("the first frame", |s| s.contains("[!] Default Key Loaded.") && s.contains("[>Generate<]"));
    assert!(
        screen.lines().next().is_some_and(|l| l.contains("[Encryption]")),
        "Encryption is the first tab:\n{screen}"
    );
    assert_eq!(t.row(HINT_ROW).trim(), HINTS);
    assert!(screen.contains("[-Import-]"), "Import is disabled while the field is empty:\n{screen}");
    assert_eq!(t.display("#{mouse_any_flag}"), "0", "no mouse capture while running");

    // Generate: the field holds a key, Import has the focus.
    t.keys(&["Enter"]);
    let screen = t.wait_status("Key generated successfully. Ready to import.");
    assert!(status_of(&screen).starts_with("Key generated successfully. Ready to import."), "{screen}");
    assert!(screen.contains("[>Import<]"), "Import has the focus:\n{screen}");
    assert!(screen.contains("[<"), "the field shows the end of the generated key:\n{screen}");

    // Paste another key, wrapped over two lines as a console would.
    let (key, fingerprint) = generated_key("encryption");
    let split = key.len() - 20;
    t.paste(&format!("{}\n{}", &key[..split], &key[split..]));
    let screen = t.wait_status("Key pasted.");
    let tail = &key[key.len() - 40..];
    assert!(screen.contains(tail), "the field shows the pasted key without the line break ({tail}):\n{screen}");
    assert!(screen.contains("Esc leave  Ctrl-C"), "the field has the keyboard:\n{screen}");

    // Import: the confirmation says what happens, with the pasted key's fingerprint.
    t.keys(&["Tab"]);
    t.wait_for("Import focused", |s| s.contains("[>Import<]"));
    t.keys(&["Enter"]);
    let screen = t.wait_for("the import confirmation", |s| s.contains("Import the key?"));
    assert!(
        screen.contains(&format!("The encryption key becomes {fingerprint} (now BF85-76AA-883D-FC91)")),
        "the confirmation names the pasted key:\n{screen}"
    );
    assert!(screen.contains("(*) Single machine   ( ) Multiple machines"), "single machine is chosen:\n{screen}");
    assert!(screen.contains("Every other machine must import the same key."));

    // Confirm: the Rotation tab takes over and runs until a step needs a person.
    t.keys(&["Enter"]);
    let screen = t.wait_for("the rotation to stop at a step", |s| {
        status_of(s).contains("needs you") || status_of(s).contains("is finished")
    });
    let json = rotation_json(&home);
    assert_eq!(json["status"], "open", "{json:#}");
    assert_eq!(json["new_fingerprint"].as_str(), Some(fingerprint.as_str()));
    assert_screen_agrees(&screen, &json);
    let current = json["current"].as_str().expect("a step needs a person").to_string();
    assert!(
        status_of(&screen).contains(&format!("Step {current} needs you")),
        "the status names the current step:\n{screen}"
    );

    // Walk the rotation: Run checks again; the manual steps are confirmed.
    let mut revision = json["revision"].as_u64().expect("revision");
    for _ in 0..20 {
        let json = rotation_json(&home);
        let Some(current) = json["current"].as_str() else { break };
        let step = json["steps"].as_array().and_then(|s| s.iter().find(|s| s["id"] == current)).expect("the step");
        assert_eq!(step["kind"], "manual", "on a fresh home only manual steps need a person: {step:#}");
        // Run checks the step again; then Confirm checks it off.
        t.focus_button("Run");
        t.keys(&["Enter"]);
        t.wait_status(&format!("Step {current} needs you"));
        t.focus_button("Confirm");
        t.keys(&["Enter"]);
        let start = Instant::now();
        while rotation_json(&home)["revision"].as_u64() == Some(revision) {
            assert!(start.elapsed() < TIMEOUT, "Confirm changed nothing");
            std::thread::sleep(POLL);
        }
        revision = rotation_json(&home)["revision"].as_u64().expect("revision");
    }
    let screen = t.wait_status("The rotation is finished: every step is done or skipped.");
    let json = rotation_json(&home);
    assert_eq!(json["status"], "finished", "{json:#}");
    assert_screen_agrees(&screen, &json);
    assert!(screen.contains("[-Run-]"), "nothing is left to run:\n{screen}");

    // The Encryption tab shows the new key.
    t.keys(&["1"]);
    let screen = t.wait_for("the custom key", |s| s.contains("[x] Custom Key Loaded."));
    assert!(screen.contains(&format!("Fingerprint {fingerprint}")), "{screen}");

    assert_eq!(t.quit(), 0, "keyturn exits 0 on q");
    t.assert_terminal_restored();
    assert_modes(&t.raw_output());
    let raw = t.raw_output();
    assert!(find(&raw, key.as_bytes()).is_none(), "the pasted key is never written whole to the terminal");
}

#[test]
fn a_small_terminal_shows_the_size_needed_and_a_resize_redraws_everything() {
    if !tmux_available() {
        return;
    }
    let scratch = tempfile::tempdir().expect("temp dir");
    let home = scratch.path().join("home");
    // At 80x24 first: the reference screen.
    let t = Tmux::start(&home, &[], 80, 24, HINTS);
    let reference = t.wait_for("the first frame", |s| s.contains("Default Key Loaded.") && s.contains(HINTS));
    let too_small = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    for (w, h) in [(79, 24), (80, 23), (60, 20)] {
        t.resize(w, h);
        let message = format!("keyturn needs a terminal of at least 80x24; this one is {w}x{h}.");
        let screen = t.wait_for(&message, |s| too_small(s).contains(&message));
        assert!(!screen.contains("Encryption Key"), "nothing of the wizard is left at {w}x{h}:\n{screen}");
        assert!(too_small(&screen).contains("Enlarge it, or press q to quit."), "{screen}");
    }
    t.resize(80, 24);
    t.wait_for("the whole screen redrawn as it was", |s| s == reference);
    // Larger is fine too, and back again.
    t.resize(100, 30);
    t.wait_for("100x30, the hints on the last row", |s| {
        s.lines().nth(2).is_some_and(|l| l.chars().count() == 100)
            && s.lines().nth(29).is_some_and(|l| l.contains(HINTS))
    });
    t.resize(80, 24);
    t.wait_for("the whole screen redrawn as it was at 80x24", |s| s == reference);
    // q quits from the size message too.
    t.resize(60, 20);
    t.wait_for("the size message", |s| too_small(s).contains("this one is 60x20"));
    assert_eq!(t.quit(), 0);
    t.assert_terminal_restored();
}

#[test]
fn ascii_mode_writes_nothing_outside_ascii() {
    if !tmux_available() {
        return;
    }
    let scratch = tempfile::tempdir().expect("temp dir");
    let home = scratch.path().join("home");
    let t = Tmux::start(&home, &["--ascii"], 80, 24, HINTS);
    let check = |what: &str, screen: &str| {
        let odd: Vec<char> = screen.chars().filter(|c| !c.is_ascii()).collect();
        assert!(odd.is_empty(), "{what}: characters outside ASCII {odd:?}:\n{screen}");
    };
    let screen = t.wait_for("the first frame", |s| s.contains("[>Generate<]"));
    assert!(screen.contains("+Current Key---"), "ASCII borders:\n{screen}");
    check("Encryption", &screen);
    t.keys(&["?"]);
    check("help", &t.wait_for("help", |s| s.contains("+Keys---")));
    t.keys(&["Escape"]);
    t.wait_for("help closed", |s| !s.contains("+Keys---"));
    for (key, tab) in [("2", "[Communication]"), ("3", "[Rotation]"), ("4", "[Machines]"), ("1", "[Encryption]")] {
        t.keys(&[key]);
        check(tab, &t.wait_for(tab, |s| s.lines().next().is_some_and(|l| l.contains(tab))));
    }
    // Generate, import: the confirmation and the rotation in ASCII too.
    t.keys(&["Enter"]);
    t.wait_status("Key generated successfully.");
    t.keys(&["Enter"]);
    check("confirmation", &t.wait_for("confirmation", |s| s.contains("+Import the key?")));
    t.keys(&["Enter"]);
    let screen = t.wait_for("the rotation", |s| s.contains("needs you") && s.contains("+Checklist"));
    check("rotation", &screen);
    assert!(screen.lines().nth(2).is_some_and(|l| l.contains(" -> ")), "an ASCII arrow:\n{screen}");
    assert_eq!(t.quit(), 0);
    t.assert_terminal_restored();
    let raw = t.raw_output();
    let at = raw.iter().position(|b| !b.is_ascii());
    assert!(at.is_none(), "a byte outside ASCII was written: {:?}", at.map(|i| String::from_utf8_lossy(&raw[i..])));
    assert_modes(&raw);
}

#[test]
fn an_open_rotation_reopens_and_the_screen_agrees_with_rotation_status() {
    if !tmux_available() {
        return;
    }
    let scratch = tempfile::tempdir().expect("temp dir");
    let home = scratch.path().join("home");
    // A rotation started and run from the shell stops at a step for a person.
    stdout_ok(&home, &["rotation", "start", "communication", "--setup", "single", "--generate"]);
    let out = keyturn_cli(&home, &["rotation", "run", "--wait", "1"], None);
    assert_eq!(
        out.status.code(),
        Some(3),
        "run stops at a step for a person: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = rotation_json(&home);
    assert_eq!(json["status"], "open");
    let t = Tmux::start(&home, &[], 80, 24, ROTATION_HINTS);
    let screen = t.wait_status("A rotation is open: it continues where it stopped.");
    assert_screen_agrees(&screen, &json);
    // Skip the current step from the wizard, with a reason.
    let current = json["current"].as_str().expect("a current step").to_string();
    t.focus_button("Skip");
    t.keys(&["Enter"]);
    t.wait_for("the reason", |s| s.contains("Why is this step skipped?"));
    t.keys(&["-l", "not in this test"]);
    t.wait_for("the reason typed", |s| s.contains("> not in this test"));
    t.keys(&["Enter"]);
    let start = Instant::now();
    let json = loop {
        let json = rotation_json(&home);
        if json["current"].as_str() != Some(current.as_str()) {
            break json;
        }
        assert!(start.elapsed() < TIMEOUT, "the skip was not recorded");
        std::thread::sleep(POLL);
    };
    let skipped = json["steps"].as_array().and_then(|s| s.iter().find(|s| s["id"] == current.as_str())).expect("step");
    assert_eq!(skipped["state"], "skipped");
    assert_eq!(skipped["evidence"], "not in this test");
    let screen = t.wait_for("the skipped marker", |s| s.contains(&format!("[-] {current:<22}")));
    assert_screen_agrees(&screen, &json);
    assert_eq!(t.quit(), 0);
    t.assert_terminal_restored();
    assert_modes(&t.raw_output());
}

/// Processes a test must not leave behind: stopped when dropped.
struct Stop(Vec<String>);

impl Drop for Stop {
    fn drop(&mut self) {
        for pid in &self.0 {
            let _ = Command::new("kill").arg(pid).status();
        }
    }
}

/// Whether `pid` runs (a zombie does not).
fn running(pid: &str) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| stat.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z')))
}

/// `keyturn demo` in tmux with `TMPDIR` at `tmp`: the terminal, the demo's
/// directory and its stand-in services' pids.
fn demo_with_stand_ins(tmp: &Path) -> (Tmux, PathBuf, Vec<String>) {
    let t = Tmux::start_with(&[("TMPDIR", &path_str(tmp))], &["demo"], 80, 24, HINTS);
    let demo = fs::read_dir(tmp)
        .expect("TMPDIR")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("keyturn-demo-")))
        .expect("the demo's directory is in TMPDIR");
    let pids: Vec<String> = fs::read_dir(demo.join("run"))
        .expect("the stand-ins' pid files")
        .filter_map(Result::ok)
        .filter_map(|e| fs::read_to_string(e.path()).ok())
        .map(|pid| pid.trim().to_string())
        .collect();
    (t, demo, pids)
}

#[test]
fn closing_the_terminal_of_keyturn_demo_stops_its_services_and_removes_its_home() {
    if !tmux_available() {
        return;
    }
    let tmp = tempfile::tempdir().expect("temp dir");
    let (t, demo, pids) = demo_with_stand_ins(tmp.path());
    let _stop = Stop(pids.clone());
    assert!(!pids.is_empty() && pids.iter().all(|p| running(p)), "the stand-ins run: {pids:?}");
    // The terminal goes away (an SSH session drops): SIGHUP.
    t.ok(&["kill-server"]);
    let start = Instant::now();
    while (pids.iter().any(|p| running(p)) || demo.exists()) && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(POLL);
    }
    let left: Vec<&String> = pids.iter().filter(|p| running(p)).collect();
    assert!(left.is_empty(), "stand-in services still running after the terminal closed: {left:?}");
    let left: Vec<String> = walk(&demo);
    assert!(!demo.exists(), "the demo home {} is still there: {left:?}", demo.display());
}

/// Every path under `dir`.
fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        out.push(path_str(&entry.path()));
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            out.extend(walk(&entry.path()));
        }
    }
    out
}

#[test]
fn the_mode_check_catches_mouse_reporting_and_paste_left_on() {
    let good: &[u8] = b"\x1b[?1049h\x1b[?2004h\x1b[?25lframe\x1b[?2004l\x1b[?1049l\x1b[?25h";
    assert_modes(good);
    assert_eq!(modes_set(good), [1049, 2004, 25]);
    let bad: [&[u8]; 4] = [
        b"\x1b[?1049h\x1b[?2004h\x1b[?1000h\x1b[?2004l\x1b[?1049l\x1b[?25h",
        b"\x1b[?1049h\x1b[?2004h\x1b[?1003;1006h\x1b[?2004l\x1b[?1049l\x1b[?25h",
        b"\x1b[?1049h\x1b[?2004h\x1b[?1049l\x1b[?25h",
        b"\x1b[?1049h\x1b[?2004h\x1b[?2004l\x1b[?2004h\x1b[?1049l\x1b[?25h",
    ];
    for raw in bad {
        assert!(std::panic::catch_unwind(|| assert_modes(raw)).is_err(), "{}", String::from_utf8_lossy(raw));
    }
}

// ---------------------------------------------------------------------------
// Issue 13: what an operator hit, end to end
// ---------------------------------------------------------------------------

/// A home with a communication rotation open and stopped at a step for a
/// person; that step's id.
fn open_rotation(home: &Path) -> String {
    stdout_ok(home, &["rotation", "start", "communication", "--setup", "single", "--generate"]);
    let out = keyturn_cli(home, &["rotation", "run", "--wait", "1"], None);
    assert_eq!(out.status.code(), Some(3), "run stops for a person: {}", String::from_utf8_lossy(&out.stderr));
    rotation_json(home)["current"].as_str().expect("a current step").to_string()
}

#[test]
fn a_console_wrapped_paste_with_padding_spaces_imports() {
    if !tmux_available() {
        return;
    }
    let scratch = tempfile::tempdir().expect("temp dir");
    let home = scratch.path().join("home");
    let t = Tmux::start(&home, &[], 80, 24, HINTS);
    let (key, fingerprint) = generated_key("encryption");
    // The first 30 characters, the six spaces a console padded the line
    // with, the break, the rest.
    t.paste(&format!("{}      \n{}", &key[..30], &key[30..]));
    t.wait_status("Key pasted.");
    t.keys(&["Tab"]);
    t.wait_for("Import focused", |s| s.contains("[>Import<]"));
    t.keys(&["Enter"]);
    let screen = t.wait_for("the import confirmation", |s| s.contains("Import the key?") || s.contains("Not imported"));
    assert!(screen.contains(&format!("becomes {fingerprint}")), "the padded paste is the key:\n{screen}");
    t.keys(&["Escape"]);
    t.wait_status("Nothing was imported.");
    assert_eq!(t.quit(), 0);
}

#[test]
fn ctrl_l_repaints_after_stray_output() {
    if !tmux_available() {
        return;
    }
    let scratch = tempfile::tempdir().expect("temp dir");
    let home = scratch.path().join("home");
    let t = Tmux::start(&home, &[], 80, 24, HINTS);
    let reference = t.wait_for("the first frame", |s| s.contains("[>Generate<]") && s.contains(HINTS));
    // A `wall` message written straight to the terminal, over the wizard.
    let tty = t.display("#{pane_tty}");
    fs::write(&tty, "\r\n\r\nBroadcast message from root: the system goes down for maintenance\r\n")
        .expect("the pane's terminal is writable");
    t.wait_for("the stray output", |s| s.contains("Broadcast message"));
    t.keys(&["C-l"]);
    t.wait_for("the whole screen repainted", |s| s == reference);
    // Later partial redraws land in the right rows.
    t.keys(&["Tab"]);
    let screen = t.wait_for("the field focused", |s| s.contains(">Generate new"));
    assert_eq!(
        screen.lines().nth(HINT_ROW).map(str::trim),
        Some("Tab/S-Tab move  Enter press  <-/-> edit  Esc leave  Ctrl-C quit")
    );
    assert_eq!(t.quit_from_field(), 0);
}

impl Tmux {
    /// The screen with wrapped lines joined (a long message reads whole).
    fn joined_screen(&self) -> String {
        self.ok(&["capture-pane", "-p", "-J", "-t", "kt"])
    }

    /// Leaves a field with Esc, then quits with q.
    fn quit_from_field(&self) -> i32 {
        self.keys(&["Escape"]);
        self.wait_for("the field left", |s| s.contains(HINTS));
        self.quit()
    }
}

#[test]
fn the_step_detail_scrolls_at_80x24() {
    if !tmux_available() {
        return;
    }
    let scratch = tempfile::tempdir().expect("temp dir");
    let home = scratch.path().join("home");
    fs::create_dir_all(&home).expect("home");
    fs::write(
        home.join("keyturn.toml"),
        "[components.scheduling]\n[components.storage]\n[components.execution]\n[components.app]\n\
         [[machines]]\nname = \"exec-01\"\nroles = [\"execution\"]\ncommand = [\"false\"]\n",
    )
    .expect("keyturn.toml");
    stdout_ok(&home, &["rotation", "start", "encryption", "--setup", "multi", "--generate"]);
    // Run until the machine's step: its push fails, with a long evidence.
    for _ in 0..20 {
        let _ = keyturn_cli(&home, &["rotation", "run", "--wait", "1"], None);
        let json = rotation_json(&home);
        let current = json["current"].as_str().expect("a current step").to_string();
        if current == "machine-exec-01" {
            break;
        }
        let _ = keyturn_cli(&home, &["rotation", "skip", &current, "--reason", "not in this test"], None);
    }
    let t = Tmux::start(&home, &[], 80, 24, ROTATION_HINTS);
    let screen = t.wait_for("the cut-off detail", |s| s.contains("PgDn: more below"));
    assert!(!screen.contains("type what it shows"), "the end is below:\n{screen}");
    t.keys(&["NPage"]);
    t.keys(&["NPage"]);
    let screen = t.wait_for("the detail's end", |s| s.contains("PgUp: more above"));
    assert!(screen.contains("type what it shows"), "what to do shows after scrolling:\n{screen}");
    assert!(screen.lines().next().is_some_and(|l| l.contains("[Rotation]")), "PgDn scrolled, not a tab switch");
    t.keys(&["PPage"]);
    t.wait_for("scrolled back", |s| s.contains("more above and below") || s.contains("PgDn: more below"));
    assert_eq!(t.quit(), 0);
}

#[test]
fn a_shell_side_change_shows_at_once_and_a_dialog_keeps_typed_text() {
    if !tmux_available() {
        return;
    }
    let scratch = tempfile::tempdir().expect("temp dir");
    let home = scratch.path().join("home");
    fs::create_dir_all(home.join("project")).expect("home and project");
    fs::write(
        home.join("keyturn.toml"),
        "[components.scheduling]\n[components.storage]\n[components.execution]\n[components.app]\n\
         [[projects]]\npath = \"project\"\ngit = false\nbug_tracker = true\n",
    )
    .expect("keyturn.toml");
    stdout_ok(&home, &["rotation", "start", "encryption", "--setup", "single", "--generate"]);
    let _ = keyturn_cli(&home, &["rotation", "run", "--wait", "1"], None);
    let json = rotation_json(&home);
    assert_eq!(json["current"], "credential-bug-tracker", "{json:#}");
    let t = Tmux::start(&home, &[], 80, 24, ROTATION_HINTS);
    t.wait_status("A rotation is open");

    // Another shell skips the step: the open wizard shows it without a key.
    let out = keyturn_cli(&home, &["rotation", "skip", "credential-bug-tracker", "--reason", "from the shell"], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let screen = t.wait_for("the shell's skip", |s| s.contains(&format!("[-] {:<22}", "credential-bug-tracker")));
    assert_screen_agrees(&screen, &rotation_json(&home));
    // And its run: the checklist moves on to the manual step.
    let _ = keyturn_cli(&home, &["rotation", "run", "--wait", "1"], None);
    let screen = t.wait_for("the shell's run", |s| s.contains(&format!(">[>] {:<22}", "continue")));
    assert_screen_agrees(&screen, &rotation_json(&home));

    t.focus_button("Skip");
    t.keys(&["Enter"]);
    t.wait_for("the reason", |s| s.contains("Why is this step skipped?"));
    // Enter on nothing: the dialog stays, and says why in its own words.
    t.keys(&["Enter"]);
    let screen = t.wait_for("the refusal", |s| s.contains("Type why the step is skipped"));
    assert!(!screen.contains("--reason"), "no CLI wording in the wizard:\n{screen}");
    // The keys typed next go into the dialog, Space included, and Home
    // edits in place.
    t.keys(&["-l", "scheduler storage in this lab"]);
    t.keys(&["Home"]);
    t.keys(&["-l", "no "]);
    t.wait_for("the reason typed", |s| s.contains("> no scheduler storage in this lab"));
    t.keys(&["Enter"]);
    t.wait_status("The rotation is finished");
    let json = rotation_json(&home);
    let skipped = json["steps"].as_array().and_then(|s| s.iter().find(|s| s["id"] == "continue")).expect("step");
    assert_eq!(skipped["evidence"], "no scheduler storage in this lab");
    assert_eq!(t.quit(), 0);
}

#[test]
fn ctrl_c_quits_with_status_130_and_says_how_to_resume() {
    if !tmux_available() {
        return;
    }
    let scratch = tempfile::tempdir().expect("temp dir");
    let home = scratch.path().join("home");
    let current = open_rotation(&home);
    let t = Tmux::start(&home, &[], 80, 24, ROTATION_HINTS);
    t.keys(&["C-c"]);
    assert_eq!(t.exit_code(), 130);
    t.assert_terminal_restored();
    let screen = t.joined_screen();
    assert!(
        screen.contains("rotation is still open")
            && screen.contains(&current)
            && screen.contains("keyturn rotation run"),
        "{screen}"
    );
    // From a text field too.
    let t = Tmux::start(&home, &[], 80, 24, ROTATION_HINTS);
    t.keys(&["1"]);
    t.wait_for("Encryption", |s| s.contains("[Encryption]"));
    t.keys(&["Tab"]);
    t.wait_for("the field focused", |s| s.contains("Esc leave  Ctrl-C"));
    t.keys(&["C-c"]);
    assert_eq!(t.exit_code(), 130);
}

#[test]
fn term_dumb_is_refused_with_the_cli_equivalents() {
    if !tmux_available() {
        return;
    }
    let scratch = tempfile::tempdir().expect("temp dir");
    let home = path_str(&scratch.path().join("home"));
    let t = Tmux::start_with(&[("TERM", "dumb")], &["--home", &home], 80, 24, "cannot move its cursor");
    assert_eq!(t.exit_code(), 2);
    let screen = t.joined_screen();
    assert!(screen.contains("TERM=dumb") && screen.contains("keyturn rotation start"), "{screen}");
    let raw = fs::read(t.file("raw")).unwrap_or_default();
    assert!(find(&raw, b"\x1b[?1049h").is_none(), "no alternate screen on a dumb terminal");
}

/// The text of every tmux paste buffer.
fn tmux_buffers(t: &Tmux) -> Vec<String> {
    t.ok(&["list-buffers", "-F", "#{buffer_name}"]).lines().map(|name| t.ok(&["show-buffer", "-b", name])).collect()
}

/// A home with a custom encryption key; its text.
fn home_with_custom_key(home: &Path) -> String {
    let (key, _) = generated_key("encryption");
    let out = keyturn_cli(home, &["import", "encryption"], Some(&key));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    key
}

/// Copies the encryption key in the wizard (Copy is two controls before Generate).
fn copy_in_wizard(t: &Tmux) -> String {
    t.keys(&["BTab", "BTab"]);
    t.wait_for("Copy focused", |s| s.contains("[>Copy to Clipboard<]"));
    t.keys(&["Enter"]);
    t.wait_for("the copy's status", |s| status_of(s).contains("Key sent to"))
}

const NO_SYSTEM_CLIPBOARD: [(&str, &str); 3] = [("DISPLAY", ""), ("WAYLAND_DISPLAY", ""), ("SSH_CONNECTION", "")];

#[test]
fn osc52_inside_tmux_reaches_tmuxs_buffer_and_is_deleted_from_it() {
    if !tmux_available() {
        return;
    }
    let scratch = tempfile::tempdir().expect("temp dir");
    let home = scratch.path().join("home");
    let key = home_with_custom_key(&home);
    let home_arg = path_str(&home);
    let t = Tmux::start_configured(
        &NO_SYSTEM_CLIPBOARD,
        &["--home", &home_arg],
        80,
        24,
        HINTS,
        &[&["set-option", "-s", "set-clipboard", "on"]],
    );
    let screen = copy_in_wizard(&t);
    assert!(status_of(&screen).contains("Key sent to tmux"), "{screen}");
    assert!(tmux_buffers(&t).contains(&key), "tmux's buffer holds the key");
    assert_eq!(t.quit(), 0);
    assert!(!tmux_buffers(&t).contains(&key), "the key was deleted from tmux's buffers");
    let screen = t.joined_screen();
    assert!(screen.contains("deleted from tmux") && screen.contains("may still hold it"), "{screen}");
    assert!(!screen.contains("The clipboard was cleared."), "no clear is claimed for the terminal:\n{screen}");
    // Plain OSC 52, no passthrough that tmux would drop.
    let raw = t.raw_output();
    assert!(find(&raw, b"\x1b]52;c;").is_some(), "OSC 52 was sent");
    assert!(find(&raw, b"\x1bPtmux;").is_none(), "no DCS passthrough inside tmux");
}

#[test]
fn osc52_outside_tmux_is_plain_and_its_clear_is_never_claimed() {
    if !tmux_available() {
        return;
    }
    let scratch = tempfile::tempdir().expect("temp dir");
    let home = scratch.path().join("home");
    let key = home_with_custom_key(&home);
    let home_arg = path_str(&home);
    // keyturn told it is not in tmux (TMUX empty): what a terminal gets.
    let mut env = NO_SYSTEM_CLIPBOARD.to_vec();
    env.push(("TMUX", ""));
    let t = Tmux::start_configured(
        &env,
        &["--home", &home_arg],
        80,
        24,
        HINTS,
        &[&["set-option", "-s", "set-clipboard", "on"]],
    );
    let screen = copy_in_wizard(&t);
    assert!(status_of(&screen).contains("Key sent to your terminal"), "{screen}");
    // The terminal (here tmux, standing in for one) took the plain sequence.
    assert!(tmux_buffers(&t).contains(&key), "the plain OSC 52 reached the terminal");
    assert_eq!(t.quit(), 0);
    let screen = t.joined_screen();
    assert!(screen.contains("may still hold the key"), "the operator is told:\n{screen}");
    assert!(!screen.contains("The clipboard was cleared."), "{screen}");
}

/// The pids of `parent`'s children.
fn children(parent: &str) -> Vec<String> {
    fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(Result::ok)
        .filter_map(|e| {
            let pid = e.file_name().to_string_lossy().into_owned();
            let stat = fs::read_to_string(e.path().join("stat")).ok()?;
            let (_, rest) = stat.rsplit_once(") ")?;
            (rest.split(' ').nth(1) == Some(parent)).then_some(pid)
        })
        .collect()
}

#[test]
fn a_demo_killed_with_sigkill_leaves_no_stand_in_running() {
    if !tmux_available() {
        return;
    }
    let tmp = tempfile::tempdir().expect("temp dir");
    let (t, _demo, pids) = demo_with_stand_ins(tmp.path());
    let _stop = Stop(pids.clone());
    assert!(!pids.is_empty() && pids.iter().all(|p| running(p)), "the stand-ins run: {pids:?}");
    let keyturn = children(&t.display("#{pane_pid}"));
    assert_eq!(keyturn.len(), 1, "keyturn is the pane shell's one child: {keyturn:?}");
    let killed = Command::new("kill").args(["-KILL", &keyturn[0]]).status().expect("kill runs");
    assert!(killed.success());
    let start = Instant::now();
    while pids.iter().any(|p| running(p)) && start.elapsed() < TIMEOUT {
        std::thread::sleep(POLL);
    }
    let left: Vec<&String> = pids.iter().filter(|p| running(p)).collect();
    assert!(left.is_empty(), "stand-ins outlived the killed demo: {left:?}");
}
