//! `keyturn demo`: a throwaway home with a sample Test Studio project
//! (`project::sample`: password steps, connection strings, a workbook),
//! sample credentials, and stand-in services that really stop and start
//! again, so a newcomer can walk a whole rotation in a minute. Everything lives in one temporary directory, removed at the
//! end, and the stand-ins are stopped.

use std::fs;
use std::io;
use std::path::Path;

use crate::keys::{Key, KeyKind};
use crate::store::config::Encoding;
use crate::store::credentials::CredentialName;
use crate::store::home::Home;
use crate::store::{Store, publish};

/// The stand-in components: config id and process name (at most 15 bytes,
/// as Linux keeps them).
const STANDINS: [(&str, &str); 3] =
    [("scheduling", "kt-demo-sched"), ("storage", "kt-demo-storage"), ("execution", "kt-demo-exec")];

/// A demo home; dropping it stops the stand-ins and removes everything.
#[derive(Debug)]
pub struct Demo {
    dir: tempfile::TempDir,
}

impl Demo {
    /// The home to open the wizard on.
    pub fn home(&self) -> Home {
        Home { dir: self.dir.path().join("home"), machine_wide: false }
    }

    /// The temporary directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        cleanup(self.dir.path(), false);
    }
}

/// Stops the demo's stand-ins and, with `remove`, removes its directory:
/// what dropping it does, for a process about to die of a signal (a closed
/// terminal, a dropped SSH session), which runs no destructors.
pub fn cleanup(dir: &Path, remove: bool) {
    // A hangup runs this on the signal's thread while the wizard's thread
    // runs it too (its terminal is gone): one at a time, so neither ends
    // the process in the middle of the other's removal.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    for (_, name) in STANDINS {
        stop(dir, name);
    }
    if remove {
        let _ = fs::remove_dir_all(dir);
    }
}

#[cfg(unix)]
fn stop(dir: &Path, name: &str) {
    let pid_file = dir.join("run").join(format!("{name}.pid"));
    if let Ok(pid) = fs::read_to_string(pid_file) {
        let _ = std::process::Command::new("kill").arg(pid.trim()).status();
    }
}

#[cfg(not(unix))]
fn stop(_dir: &Path, _name: &str) {}

fn write(path: &Path, text: &str) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    fs::write(path, text)
}

/// Builds the demo. `keyturn` is the binary the stand-ins' check commands run.
pub fn create(keyturn: &Path) -> io::Result<Demo> {
    let dir = tempfile::Builder::new().prefix("keyturn-demo-").tempdir()?;
    let root = dir.path().to_path_buf();
    let home = root.join("home");
    crate::store::atomic::create_private_dir(&home)?;
    let demo = Demo { dir };
    let project = root.join("Projects").join("Checkout");
    let mut config = String::from(
        "# The keyturn demo: a throwaway home. Everything here is removed when the wizard ends.\n\n\
         [machine]\nroles = [\"scheduling\", \"execution\"]\nsmtp = true\n\n",
    );
    config.push_str(&format!(
        "[[projects]]\npath = {}\ngit = false\nbug_tracker = true\n\n",
        toml::Value::String(project.display().to_string())
    ));
    for kind in KeyKind::ALL {
        config.push_str(&format!(
            "[[publish]]\nkind = \"{kind}\"\npath = {}\nencoding = \"base64\"\n\n",
            toml::Value::String(root.join("pub").join(format!("{kind}.key")).display().to_string())
        ));
    }
    let standins = standins(&root, keyturn)?;
    config.push_str(&standins);
    config.push_str("[components.app]\nprocess = \"kt-demo-app\"   # not running: nothing to restart\n\n");
    // The roster machine is another home on this machine, reached with a
    // local command instead of ssh, so Refresh and Push work for real.
    let exec02 = root.join("exec-02");
    crate::store::atomic::create_private_dir(&exec02)?;
    write(&exec02.join("keyturn.toml"), &format!("{}[components.app]\n", empty_components()))?;
    config.push_str(&format!(
        "[[machines]]\nname = \"exec-02\"\nroles = [\"execution\"]\ncommand = [{}, \"--home\", {}]\n",
        toml::Value::String(keyturn.display().to_string()),
        toml::Value::String(exec02.display().to_string())
    ));
    write(&home.join("keyturn.toml"), &config)?;

    let mut store = Store::open(Home { dir: home, machine_wide: false }).map_err(io::Error::other)?;
    for kind in KeyKind::ALL {
        let target = (root.join("pub").join(format!("{kind}.key")), Encoding::Base64);
        fs::create_dir_all(root.join("pub"))?;
        publish::publish(&[target], &Key::default_for(kind)).map_err(io::Error::other)?;
    }
    let ring = store.keyring();
    // A Test Studio project shaped like the real thing: JSON tests with
    // password steps of every kind, a connection string, Settings.aiis, a
    // workbook data source, image stores.
    crate::project::sample::write(&project, &|value| ring.seal(value))?;
    store.set_credential(CredentialName::Git, "qa-bot", b"ghp-demo-token").map_err(io::Error::other)?;
    store.set_credential(CredentialName::Smtp, "alerts@example.test", b"smtp-demo-pass").map_err(io::Error::other)?;
    start_standins(&root)?;
    Ok(demo)
}

/// Writes the stand-in services: keyturn itself under the component's name
/// (a link, so the process is called that), waiting for the demo to end
/// (`keyturn demo-standin --watch PID`), a start script that loads the
/// published keys then starts it, a restart script, and a check that prints
/// the fingerprints it loaded. A stand-in dies with the demo however the
/// demo ends, SIGKILL included, so the next demo never finds an old one.
#[cfg(unix)]
fn standins(root: &Path, keyturn: &Path) -> io::Result<String> {
    use std::os::unix::fs::PermissionsExt;
    let mut config = String::new();
    for dir in ["bin", "run", "loaded"] {
        fs::create_dir_all(root.join(dir))?;
    }
    write(&root.join("run").join("demo.pid"), &format!("{}\n", std::process::id()))?;
    let quote = |p: &Path| format!("'{}'", p.display().to_string().replace('\'', "'\\''"));
    for (id, name) in STANDINS {
        std::os::unix::fs::symlink(keyturn, root.join("bin").join(name))?;
        let start = root.join(format!("start-{name}.sh"));
        let restart = root.join(format!("restart-{name}.sh"));
        let check = root.join(format!("check-{name}.sh"));
        write(
            &start,
            &format!(
                "#!/bin/sh\n# Stand-in for the {id} component: loads the published keys at start.\ncd {root}\ncp pub/encryption.key loaded/{name}-encryption.key\ncp pub/communication.key loaded/{name}-communication.key\nnohup bin/{name} demo-standin --watch \"$(cat run/demo.pid)\" >/dev/null 2>&1 &\necho $! > run/{name}.pid\n",
                root = quote(root)
            ),
        )?;
        write(
            &restart,
            &format!(
                "#!/bin/sh\ncd {root}\n[ -f run/{name}.pid ] && kill \"$(cat run/{name}.pid)\" 2>/dev/null\nsleep 0.3\nexec sh {start}\n",
                root = quote(root),
                start = quote(&start)
            ),
        )?;
        write(
            &check,
            &format!(
                "#!/bin/sh\ncd {root}\n{k} fingerprint encryption --file loaded/{name}-encryption.key --encoding base64\n{k} fingerprint communication --file loaded/{name}-communication.key --encoding base64\n",
                root = quote(root),
                k = quote(keyturn)
            ),
        )?;
        for script in [&start, &restart, &check] {
            fs::set_permissions(script, fs::Permissions::from_mode(0o755))?;
        }
        // By the executable's path: two demos at once never watch each
        // other's stand-ins.
        let exe = fs::canonicalize(root.join("bin").join(name))?;
        config.push_str(&format!(
            "[components.{id}]\nprocess = {exe}\nrestart = [{restart}]\nstart = [{start}]\ncheck = [{check}]\n\n",
            exe = toml::Value::String(exe.display().to_string()),
            restart = toml::Value::String(restart.display().to_string()),
            start = toml::Value::String(start.display().to_string()),
            check = toml::Value::String(check.display().to_string()),
        ));
    }
    Ok(config)
}

#[cfg(not(unix))]
fn standins(_root: &Path, _keyturn: &Path) -> io::Result<String> {
    Ok(empty_components())
}

/// No stand-ins on this system: the components are left out, and their
/// restart steps are skipped as not configured.
fn empty_components() -> String {
    "[components.scheduling]\n[components.storage]\n[components.execution]\n\n".to_string()
}

#[cfg(unix)]
fn start_standins(root: &Path) -> io::Result<()> {
    for (_, name) in STANDINS {
        let start = root.join(format!("start-{name}.sh"));
        if start.exists() {
            std::process::Command::new("sh").arg(&start).status()?;
        }
    }
    Ok(())
}

#[cfg(not(unix))]
fn start_standins(_root: &Path) -> io::Result<()> {
    Ok(())
}

/// A stand-in's life: until the process `demo` ends (at most a day, as a
/// stand-in has never needed longer). On Linux it waits on a pidfd, which
/// costs nothing while waiting; elsewhere it looks once a second.
#[cfg(unix)]
pub fn standin(demo: u32) {
    let Some(pid) = rustix::process::Pid::from_raw(i32::try_from(demo).unwrap_or(0)) else { return };
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if let Ok(fd) = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()) {
        use rustix::event::{PollFd, PollFlags, poll};
        let mut fds = [PollFd::new(&fd, PollFlags::IN)];
        let day = rustix::event::Timespec { tv_sec: 86_400, tv_nsec: 0 };
        // Readable when the process has ended; an interrupted wait retries.
        while let Err(rustix::io::Errno::INTR) = poll(&mut fds, Some(&day)) {}
        return;
    }
    let end = std::time::Instant::now() + std::time::Duration::from_secs(86_400);
    while rustix::process::test_kill_process(pid).is_ok() && std::time::Instant::now() < end {
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}
