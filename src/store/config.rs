//! The machine's configuration, `keyturn.toml` in the home. Read here;
//! commands that edit it keep the operator's comments and layout.

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
}

/// One `[[projects]]` entry.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectEntry {
    /// The project's directory.
    pub path: PathBuf,
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
        let service = |name: &str| Component { service: Some(name.to_string()), process: None };
        let process = |name: &str| Component { service: None, process: Some(name.to_string()) };
        Components {
            scheduling: service("Telerik Scheduling Service"),
            storage: service("Telerik Storage Service"),
            execution: process("Telerik.TestStudio.Scheduling.Client.exe"),
            app: process("Telerik.TestStudio.Desktop.exe"),
        }
    }
}

/// How one component is found: its service (Windows service name or
/// systemd unit) or its process name.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Component {
    /// Windows service name or systemd unit.
    pub service: Option<String>,
    /// Process (executable) name.
    pub process: Option<String>,
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
        let text = text(&path, &bytes)?;
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
        Ok(config)
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
