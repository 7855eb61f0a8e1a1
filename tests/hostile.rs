//! Hostile files and terminals: project files that are FIFOs, links out of
//! the project, one huge line, invalid UTF-8; names and answers carrying
//! control characters or ANSI escapes, which must never reach the terminal
//! raw; a home owned by another user.
#![cfg_attr(not(unix), allow(dead_code, unused_imports, unused_variables, unused_mut))] // helpers of unix-only tests

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn keyturn(home: &Path, args: &[&str], input: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_keyturn"))
        .arg("--home")
        .arg(home)
        .args(args)
        .env_remove("KEYTURN_HOME")
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("keyturn runs");
    child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("input");
    child.wait_with_output().expect("keyturn ends")
}

fn ok(home: &Path, args: &[&str], input: &str) -> String {
    let out = keyturn(home, args, input);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8")
}

fn no_escape(out: &Output, what: &str) {
    assert!(!out.stdout.contains(&0x1b) && !out.stderr.contains(&0x1b), "{what}: an escape byte reached the terminal");
}

#[cfg(unix)]
#[test]
fn fifos_links_huge_lines_and_invalid_utf8_in_a_project() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("home");
    let project = tmp.path().join("project");
    fs::create_dir_all(&project).expect("mkdir");
    let token = ok(&home, &["encrypt"], "s3cret\n").trim().to_string();
    // A FIFO: reading it would hang the upgrade forever.
    let fifo = project.join("pipe.xml");
    assert!(Command::new("mkfifo").arg(&fifo).status().expect("mkfifo").success());
    // A link to a file outside the project that holds a token.
    let outside = tmp.path().join("outside.xml");
    fs::write(&outside, format!("<x v=\"{token}\"/>")).expect("outside");
    std::os::unix::fs::symlink(&outside, project.join("link.xml")).expect("symlink");
    // One 4 MiB line with a token in its middle, and a file of invalid UTF-8.
    let half = "a".repeat(2 * 1024 * 1024);
    fs::write(project.join("huge.txt"), format!("{half} {token} {half}")).expect("huge");
    let mut latin1 = b"caf\xe9 \xff\xfe Password=".to_vec();
    latin1.extend_from_slice(token.as_bytes());
    latin1.extend_from_slice(b"; \xe9t\xe9\n");
    fs::write(project.join("latin1.ini"), &latin1).expect("latin1");
    let key = ok(&home, &["generate", "encryption"], "");
    ok(&home, &["import", "encryption"], &key);
    let report: serde_json::Value =
        serde_json::from_str(&ok(&home, &["upgrade", "--json", &project.display().to_string()], "")).expect("json");
    let p = &report["projects"][0];
    assert_eq!(p["upgraded"], 2, "{report}");
    assert_eq!(p["files_skipped"], 2, "the FIFO and the link are skipped: {report}");
    assert_eq!(
        fs::read_to_string(&outside).expect("outside"),
        format!("<x v=\"{token}\"/>"),
        "the outside file is untouched"
    );
    let after = fs::read(project.join("latin1.ini")).expect("latin1");
    assert!(after.starts_with(b"caf\xe9 \xff\xfe Password=ktsec:1:") && after.ends_with(b"; \xe9t\xe9\n"));
    let huge = fs::read_to_string(project.join("huge.txt")).expect("huge");
    assert!(
        huge.starts_with(&format!("{half} ktsec:1:")) && huge.ends_with(&format!(" {half}")) && !huge.contains(&token)
    );
}

#[test]
fn a_config_name_with_an_escape_is_refused_without_echoing_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("home");
    fs::create_dir_all(&home).expect("mkdir");
    fs::write(home.join("keyturn.toml"), "[[machines]]\nname = \"exec\\u001b[2J-01\"\nroles = [\"execution\"]\n")
        .expect("config");
    let out = keyturn(&home, &["machines", "list"], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("machine entry 1 holds a control character"));
    no_escape(&out, "config error");
    // A bidi override or a zero-width space would reorder or hide a name.
    for hidden in ["\u{202E}", "\u{200B}", "\u{2066}"] {
        fs::write(
            home.join("keyturn.toml"),
            format!("[[machines]]\nname = \"exec{hidden}-01\"\nroles = [\"execution\"]\n"),
        )
        .expect("config");
        let out = keyturn(&home, &["machines", "list"], "");
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("machine entry 1 holds") && stderr.contains("invisible"), "{stderr}");
        assert_eq!(hides(&stderr), None, "{stderr}");
    }
}

#[cfg(unix)]
#[test]
fn a_remote_answer_with_escapes_is_shown_without_them() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("home");
    fs::create_dir_all(&home).expect("mkdir");
    // A "remote" that answers status with an escape in its home and version.
    let script = tmp.path().join("remote.sh");
    fs::write(
        &script,
        "#!/bin/sh\ncat <<'EOF'\n{\"keyturn\":\"0.1.0\\u001b[31m\",\"home\":\"/x\\u001b]52;c;AAAA\\u0007\",\"machine_wide\":true,\"time\":null,\"keys\":{\"encryption\":{\"fingerprint\":\"BF85-76AA-883D-FC91\"},\"communication\":{\"fingerprint\":\"565A-7B86-D266-00B6\"}}}\nEOF\n",
    )
    .expect("script");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    fs::write(
        home.join("keyturn.toml"),
        format!("[[machines]]\nname = \"evil\"\nroles = [\"execution\"]\ncommand = [\"{}\"]\n", script.display()),
    )
    .expect("config");
    // Shown as `\u{1B}`; JSON writes that backslash as `\\`.
    for (args, shown) in
        [(&["machines", "status"][..], "0.1.0\\u{1B}[31m"), (&["machines", "status", "--json"], "0.1.0\\\\u{1B}[31m")]
    {
        let out = keyturn(&home, args, "");
        no_escape(&out, &format!("{args:?}"));
        assert!(String::from_utf8_lossy(&out.stdout).contains(shown), "shown with the escape replaced");
    }
}

#[cfg(unix)]
#[test]
fn a_home_owned_by_another_user_is_refused() {
    if !rustix_is_root() {
        eprintln!("NOTICE: not root: cannot give a home to another user; skipped");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("home");
    fs::create_dir_all(&home).expect("mkdir");
    assert!(Command::new("chown").arg("65534").arg(&home).status().expect("chown").success());
    let out = keyturn(&home, &["status"], "");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is owned by another user (uid 65534"), "{stderr}");
}

#[cfg(unix)]
fn rustix_is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

#[test]
fn a_pasted_escape_never_reaches_the_key_field() {
    use keyturn::system::clipboard::FakeClipboard;
    use keyturn::tui::app::{App, Options};
    use keyturn::tui::keymap::Action;
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = keyturn::store::home::Home { dir: tmp.path().join("home"), machine_wide: false };
    let mut app = App::new(
        home,
        Box::new(FakeClipboard::default()),
        Options { background: false, wait: std::time::Duration::from_secs(1) },
    );
    app.update(Action::Paste("kt1:enc:\u{1b}[2Jabc\u{7}\r\ndef".into()));
    assert_eq!(app.panes[0].field.text(), "kt1:enc:[2Jabcdef");
}

/// Whether `text` holds a character that would act on the terminal or draw
/// nothing (the line breaks of the layout aside).
fn hides(text: &str) -> Option<char> {
    text.chars().find(|&c| c != '\n' && keyturn::display::is_hidden(c))
}

/// A roster machine that answers with bidi overrides, isolates and
/// zero-width characters (the "Trojan Source" class) in its version and its
/// home: the real keyturn there, its answers rewritten on the way back. They
/// reach no screen raw: not `machines status` (text or JSON), not the step
/// evidence (`rotation status`, text or JSON), not the wizard's fleet view.
#[cfg(unix)]
#[test]
fn a_remote_answer_with_bidi_or_invisible_characters_is_shown_escaped() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().expect("tempdir");
    let components = "[components.scheduling]\n[components.storage]\n[components.execution]\n[components.app]\n\n";
    let remote = tmp.path().join("remote");
    fs::create_dir_all(&remote).expect("mkdir remote");
    fs::write(remote.join("keyturn.toml"), components).expect("remote config");
    let script = tmp.path().join("remote.sh");
    fs::write(
        &script,
        format!(
            "#!/bin/sh\n{} --home {} \"$@\" | sed -e 's/\"keyturn\": \"/&\u{202E}\u{200B}/' -e 's/\"home\": \"/&\u{2066}\u{200F}\u{FEFF}/' -e 's/\"evidence\": \"/&\u{202B}\u{2060}/'\n",
            env!("CARGO_BIN_EXE_keyturn"),
            remote.display()
        ),
    )
    .expect("script");
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).expect("chmod");
    let home = tmp.path().join("home");
    fs::create_dir_all(&home).expect("mkdir home");
    fs::write(
        home.join("keyturn.toml"),
        format!(
            "{components}[[machines]]\nname = \"evil\"\nroles = [\"execution\"]\ncommand = [\"{}\"]\n",
            script.display()
        ),
    )
    .expect("config");

    // The fleet view on the command line, text and JSON.
    let text = keyturn(&home, &["machines", "status"], "");
    let shown = String::from_utf8_lossy(&text.stdout);
    assert_eq!(hides(&shown), None, "{shown}");
    assert!(shown.contains("\\u{202E}\\u{200B}0.1"), "the version is shown with its escapes: {shown}");
    let json = keyturn(&home, &["machines", "status", "--json"], "");
    let raw = String::from_utf8_lossy(&json.stdout);
    assert_eq!(hides(&raw), None, "{raw}");
    let fleet: serde_json::Value = serde_json::from_str(&raw).expect("machines status --json is JSON");
    let status = &fleet["machines"][0]["status"];
    assert!(status["keyturn"].as_str().is_some_and(|v| v.starts_with("\\u{202E}\\u{200B}")), "{status}");
    assert!(status["home"].as_str().is_some_and(|h| h.starts_with("\\u{2066}\\u{200F}\\u{FEFF}")), "{status}");

    // The machine's join report, into the step's evidence.
    ok(&home, &["rotation", "start", "communication", "--setup", "multi", "--generate"], "");
    let _ = keyturn(&home, &["rotation", "run", "--wait", "1"], "");
    ok(&home, &["rotation", "confirm", "distribute"], "");
    let _ = keyturn(&home, &["rotation", "run", "--wait", "1"], "");
    let steps = ok(&home, &["rotation", "status"], "");
    assert_eq!(hides(&steps), None, "{steps}");
    assert!(steps.contains("keyturn \\u{202E}\\u{200B}0.1"), "the evidence shows the escapes: {steps}");
    let steps = ok(&home, &["rotation", "status", "--json"], "");
    assert_eq!(hides(&steps), None, "{steps}");
    let rotation: serde_json::Value = serde_json::from_str(&steps).expect("rotation status --json is JSON");
    let step = rotation["steps"].as_array().and_then(|s| s.iter().find(|s| s["id"] == "machine-evil")).cloned();
    assert!(
        step.as_ref().and_then(|s| s["evidence"].as_str()).is_some_and(|e| e.contains("keyturn \\u{202E}\\u{200B}0.1")),
        "{step:?}"
    );

    // The wizard's fleet view.
    use keyturn::system::clipboard::FakeClipboard;
    use keyturn::tui::app::{App, Options, Tab};
    let mut app = App::new(
        keyturn::store::home::Home { dir: home.clone(), machine_wide: false },
        Box::new(FakeClipboard::default()),
        Options { background: false, wait: std::time::Duration::from_secs(1) },
    );
    app.tab = Tab::Machines;
    app.refresh_fleet();
    let mut terminal = ratatui::Terminal::new(ratatui::backend::TestBackend::new(160, 30)).expect("a test terminal");
    let theme = keyturn::tui::theme::Theme { color: false, ascii: false };
    terminal.draw(|frame| keyturn::tui::view::render(&app, &theme, frame)).expect("draws");
    let buffer = terminal.backend().buffer();
    let screen: String = (0..buffer.area.height)
        .map(|y| (0..buffer.area.width).map(|x| buffer[(x, y)].symbol()).collect::<String>() + "\n")
        .collect();
    assert_eq!(hides(&screen), None, "{screen}");
    assert!(screen.contains("\\u{2066}\\u{200F}\\u{FEFF}"), "the home is shown with its escapes:\n{screen}");
    assert!(screen.contains("Rollout: evil reports"), "the rollout evidence is there:\n{screen}");
}
