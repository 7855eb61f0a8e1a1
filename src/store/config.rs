//! The machine's configuration, `keyturn.toml` in the home. Read here;
//! commands that edit it keep the operator's comments and layout.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::StoreError;
use super::file::{self, Guard, text, toml_problem};
use crate::keys::KeyKind;

/// The configuration file's name in the home.
pub const CONFIG_FILE: &str = "keyturn.toml";

/// What `keyturn.toml` says.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Files other programs read their keys from.
    #[serde(default)]
    pub publish: Vec<Publish>,
    /// The machine's projects, whose tokens `upgrade` re-encrypts.
    #[serde(default)]
    pub projects: Vec<ProjectEntry>,
    /// The Test Studio components on this machine.
    #[serde(default)]
    pub components: Components,
    /// This machine's part in the setup.
    #[serde(default)]
    pub machine: MachineConfig,
    /// Commands for manual rotation steps, by step id.
    #[serde(default)]
    pub steps: BTreeMap<String, StepConfig>,
    /// The other machines of the fleet.
    #[serde(default)]
    pub machines: Vec<MachineEntry>,
}

/// One `[[projects]]` entry.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectEntry {
    /// The project's directory.
    pub path: PathBuf,
    /// Whether it is connected to Git; unset: a `.git` folder decides.
    pub git: Option<bool>,
    /// Whether it is connected to a bug-tracking system.
    #[serde(default)]
    pub bug_tracker: bool,
}

/// A machine's role in a Test Studio setup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Runs the Scheduling service.
    Scheduling,
    /// Runs the Storage service.
    Storage,
    /// Runs the Execution client.
    Execution,
    /// Holds the project (the Test Studio app).
    Project,
}

/// `[machine]`: this machine.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineConfig {
    /// Its roles.
    #[serde(default)]
    pub roles: Vec<Role>,
    /// Whether the Scheduling server here has SMTP settings (e-mail
    /// notifications), whose credential must be re-entered.
    #[serde(default)]
    pub smtp: bool,
}

/// `[steps.<id>]`: a command that carries out a manual step.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepConfig {
    /// The argument list; the step is done when it exits 0.
    pub command: Vec<String>,
}

/// One `[[machines]]` entry: another machine of the fleet.
#[derive(Clone, Debug, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct MachineEntry {
    /// Its name.
    pub name: String,
    /// Its roles.
    #[serde(default)]
    pub roles: Vec<Role>,
    /// The argument list that runs keyturn there; default
    /// `ssh -o BatchMode=yes NAME keyturn`.
    pub command: Option<Vec<String>>,
}

impl MachineEntry {
    /// The command that runs keyturn on the machine.
    pub fn command(&self) -> Vec<String> {
        self.command
            .clone()
            .unwrap_or_else(|| ["ssh", "-o", "BatchMode=yes", self.name.as_str(), "keyturn"].map(String::from).to_vec())
    }
}

/// `[components.*]`: how each Test Studio component is found on this
/// machine. The defaults name the real components on Windows; check them
/// against the installation.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Components {
    /// The Scheduling service.
    pub scheduling: Component,
    /// The Storage service.
    pub storage: Component,
    /// The Execution client (system tray application).
    pub execution: Component,
    /// The Test Studio app.
    pub app: Component,
}

impl Default for Components {
    fn default() -> Components {
        // The services by their Windows names, restarted through the
        // Service Control Manager; elsewhere those names cannot be systemd
        // units, so the services are not configured until named.
        let service =
            |name: &str| Component { service: cfg!(windows).then(|| name.to_string()), ..Component::default() };
        let process = |name: &str| Component { process: Some(name.to_string()), ..Component::default() };
        Components {
            scheduling: service("Telerik Scheduling Service"),
            storage: service("Telerik Storage Service"),
            execution: process("Telerik.TestStudio.Scheduling.Client.exe"),
            app: process("Telerik.TestStudio.Desktop.exe"),
        }
    }
}

/// How one component is found (its service: a Windows service name or
/// systemd unit; or its process name) and the commands that act on it.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Component {
    /// Windows service name or systemd unit.
    pub service: Option<String>,
    /// Process (executable) name.
    pub process: Option<String>,
    /// Restarts it; a rotation runs it after the import.
    pub restart: Option<Vec<String>>,
    /// Starts it when it is not running.
    pub start: Option<Vec<String>>,
    /// Prints the fingerprint of the key it loaded.
    pub check: Option<Vec<String>>,
}

impl Components {
    /// Each component with its id and name, in the original's order.
    pub fn all(&self) -> [(&'static str, &'static str, &Component); 4] {
        [
            ("scheduling", "Scheduling service", &self.scheduling),
            ("storage", "Storage service", &self.storage),
            ("execution", "Execution client", &self.execution),
            ("app", "Test Studio app", &self.app),
        ]
    }
}

/// One `[[publish]]` entry: keyturn writes the key of `kind` to `path` in
/// `encoding` on every import and reset.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Publish {
    /// Which key.
    pub kind: KeyKind,
    /// Where; relative paths are taken from the home.
    pub path: PathBuf,
    /// How the key is written.
    #[serde(default)]
    pub encoding: Encoding,
}

/// How a published key is written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// keyturn's text form and a line feed.
    #[default]
    Text,
    /// Standard padded base64 of the 32 bytes and a line feed.
    Base64,
    /// Lowercase hex of the 32 bytes and a line feed.
    Hex,
    /// The 32 bytes alone.
    Raw,
}

impl Config {
    /// Reads `keyturn.toml` from `home`; a missing file is the empty
    /// configuration.
    pub fn load(home: &Path) -> Result<Config, StoreError> {
        let path = home.join(CONFIG_FILE);
        let Some(bytes) = file::read(&path, Guard::Trusted)? else {
            return Ok(Config::default());
        };
        Config::parse(&path, &bytes)
    }

    /// Parses and checks the configuration's bytes (read from `path`, for
    /// messages).
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Config, StoreError> {
        let path = path.to_path_buf();
        let text = text(&path, bytes)?;
        let config: Config = toml::from_str(text)
            .map_err(|e| StoreError::Config { path: path.clone(), problem: toml_problem(text, &e) })?;
        for (i, entry) in config.publish.iter().enumerate() {
            if entry.path.as_os_str().is_empty() {
                return Err(StoreError::Config { path, problem: format!("publish entry {}: `path` is empty", i + 1) });
            }
        }
        for (i, entry) in config.projects.iter().enumerate() {
            if entry.path.as_os_str().is_empty() {
                return Err(StoreError::Config { path, problem: format!("project entry {}: `path` is empty", i + 1) });
            }
        }
        for (i, m) in config.machines.iter().enumerate() {
            if m.name.trim().is_empty() || m.command.as_ref().is_some_and(Vec::is_empty) {
                return Err(StoreError::Config {
                    path,
                    problem: format!("machine entry {}: `name` or `command` is empty", i + 1),
                });
            }
        }
        for (id, step) in &config.steps {
            if step.command.is_empty() {
                return Err(StoreError::Config { path, problem: format!("[steps.{id}]: `command` is empty") });
            }
        }
        // Names and paths end up on the operator's terminal: a control
        // character (an escape sequence) or an invisible one (a bidi
        // override, a zero-width space) in one is refused, never echoed.
        if let Some(what) =
            config.texts().into_iter().find(|(_, t)| t.chars().any(crate::display::is_hidden)).map(|(w, _)| w)
        {
            return Err(StoreError::Config {
                path,
                problem: format!(
                    "{what} holds a control character (an escape sequence?) or an invisible one (a bidi override, a zero-width space); remove it"
                ),
            });
        }
        Ok(config)
    }

    /// Every name and path the file gives, with where it is.
    fn texts(&self) -> Vec<(String, String)> {
        let mut texts = Vec::new();
        for (i, p) in self.publish.iter().enumerate() {
            texts.push((format!("publish entry {}", i + 1), p.path.display().to_string()));
        }
        for (i, p) in self.projects.iter().enumerate() {
            texts.push((format!("project entry {}", i + 1), p.path.display().to_string()));
        }
        for (i, m) in self.machines.iter().enumerate() {
            texts.push((format!("machine entry {}", i + 1), m.name.clone()));
            for arg in m.command.iter().flatten() {
                texts.push((format!("machine entry {} command", i + 1), arg.clone()));
            }
        }
        for (id, name, c) in self.components.all() {
            for text in [&c.service, &c.process].into_iter().flatten() {
                texts.push((format!("[components.{id}] ({name})"), text.clone()));
            }
            for arg in [&c.restart, &c.start, &c.check].into_iter().flatten().flatten() {
                texts.push((format!("[components.{id}] command"), arg.clone()));
            }
        }
        for (id, step) in &self.steps {
            texts.push(("[steps] key".to_string(), id.clone()));
            for arg in &step.command {
                texts.push((format!("[steps.{}] command", id.escape_debug()), arg.clone()));
            }
        }
        texts
    }

    /// The registered projects' directories, relative paths taken from `home`.
    pub fn project_dirs(&self, home: &Path) -> Vec<PathBuf> {
        self.projects.iter().map(|p| home.join(&p.path)).collect()
    }

    /// The `[[publish]]` entries for `kind`, with paths resolved from `home`.
    pub fn published(&self, home: &Path, kind: KeyKind) -> Vec<(PathBuf, Encoding)> {
        self.publish.iter().filter(|p| p.kind == kind).map(|p| (home.join(&p.path), p.encoding)).collect()
    }
}
