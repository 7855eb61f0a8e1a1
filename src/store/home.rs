//! Where a machine's store lives.

use std::ffi::OsString;
use std::path::PathBuf;

/// The store's directory and whether it is the machine-wide one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Home {
    /// The directory.
    pub dir: PathBuf,
    /// Whether this is the machine-wide store every component reads (as
    /// opposed to one user's).
    pub machine_wide: bool,
}

/// What home resolution looks at, gathered by the caller so that the rule
/// itself can be tested on any platform.
#[derive(Clone, Debug, Default)]
pub struct HomeInputs {
    /// `--home DIR`.
    pub flag: Option<PathBuf>,
    /// `KEYTURN_HOME`.
    pub env_home: Option<OsString>,
    /// Whether this is Windows.
    pub windows: bool,
    /// `%ProgramData%` on Windows.
    pub program_data: Option<OsString>,
    /// Whether the user is root (Unix).
    pub root: bool,
    /// `XDG_DATA_HOME`.
    pub xdg_data_home: Option<OsString>,
    /// `HOME`.
    pub user_home: Option<OsString>,
}

impl HomeInputs {
    /// The inputs of this process.
    pub fn from_process(flag: Option<PathBuf>) -> HomeInputs {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        HomeInputs {
            flag,
            env_home: var("KEYTURN_HOME"),
            windows: cfg!(windows),
            program_data: var("ProgramData"),
            root: is_root(),
            xdg_data_home: var("XDG_DATA_HOME"),
            user_home: var("HOME").or_else(|| var("USERPROFILE")),
        }
    }
}

#[cfg(unix)]
fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

#[cfg(not(unix))]
fn is_root() -> bool {
    false
}

/// Home resolution failed: no directory could be named.
#[derive(Debug, thiserror::Error)]
#[error("cannot tell where the store is: {0}; pass --home DIR or set KEYTURN_HOME")]
pub struct HomeError(&'static str);

impl Home {
    /// `--home`, else `KEYTURN_HOME`, else `%ProgramData%\keyturn` on Windows,
    /// `/var/lib/keyturn` for root on Unix, and the user's data directory
    /// (`$XDG_DATA_HOME/keyturn` or `~/.local/share/keyturn`) otherwise.
    pub fn resolve(inputs: &HomeInputs) -> Result<Home, HomeError> {
        let machine = Home::machine_default(inputs);
        let chosen = if let Some(dir) = &inputs.flag {
            dir.clone()
        } else if let Some(dir) = &inputs.env_home {
            PathBuf::from(dir)
        } else if let Some(dir) = &machine {
            if inputs.windows || inputs.root { dir.clone() } else { user_default(inputs)? }
        } else {
            user_default(inputs)?
        };
        let machine_wide = machine.as_ref().is_some_and(|m| (inputs.windows || inputs.root) && *m == chosen);
        Ok(Home { dir: chosen, machine_wide })
    }

    fn machine_default(inputs: &HomeInputs) -> Option<PathBuf> {
        if inputs.windows {
            inputs.program_data.as_ref().map(|p| PathBuf::from(p).join("keyturn"))
        } else {
            Some(PathBuf::from("/var/lib/keyturn"))
        }
    }
}

fn user_default(inputs: &HomeInputs) -> Result<PathBuf, HomeError> {
    if let Some(xdg) = &inputs.xdg_data_home {
        return Ok(PathBuf::from(xdg).join("keyturn"));
    }
    let home = inputs.user_home.as_ref().ok_or(HomeError("neither HOME nor XDG_DATA_HOME is set"))?;
    Ok(PathBuf::from(home).join(".local").join("share").join("keyturn"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence() {
        let mut i = HomeInputs { user_home: Some("/home/op".into()), ..Default::default() };
        assert_eq!(Home::resolve(&i).expect("home").dir, PathBuf::from("/home/op/.local/share/keyturn"));
        assert!(!Home::resolve(&i).expect("home").machine_wide);
        i.xdg_data_home = Some("/xdg".into());
        assert_eq!(Home::resolve(&i).expect("home").dir, PathBuf::from("/xdg/keyturn"));
        i.root = true;
        let root = Home::resolve(&i).expect("home");
        assert_eq!((root.dir.as_path(), root.machine_wide), (std::path::Path::new("/var/lib/keyturn"), true));
        i.env_home = Some("/env".into());
        assert_eq!(Home::resolve(&i).expect("home").dir, PathBuf::from("/env"));
        i.flag = Some("/flag".into());
        let flagged = Home::resolve(&i).expect("home");
        assert_eq!((flagged.dir.as_path(), flagged.machine_wide), (std::path::Path::new("/flag"), false));
        let win = HomeInputs { windows: true, program_data: Some("C:\\ProgramData".into()), ..Default::default() };
        let w = Home::resolve(&win).expect("home");
        assert!(w.machine_wide && w.dir.ends_with("keyturn"));
        assert!(Home::resolve(&HomeInputs::default()).is_err());
    }
}
