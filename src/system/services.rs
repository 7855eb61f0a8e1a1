//! Services as the operating system's service manager sees them: the
//! Service Control Manager on Windows (through its API), systemd elsewhere.
//! A lookup that fails is its own outcome, never "not running".

use std::time::Duration;

/// What the service manager says of a service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServiceState {
    /// Running as this process.
    Running { pid: u32 },
    /// Installed, not running (stopped, or between states with no process).
    Stopped,
}

/// Why the service manager gave no answer. None of these means "not
/// running": a restart step never checks itself off on one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    #[error(
        "service \"{name}\" is not installed here{code}: name the service as the service manager knows it ({hint}), or skip the step with a reason"
    )]
    NotInstalled { name: String, code: &'static str, hint: &'static str },
    #[error("access to service \"{name}\" was denied: run keyturn as an administrator (or root)")]
    AccessDenied { name: String },
    #[error("the service manager gave no answer about \"{name}\": {reason}")]
    Failed { name: String, reason: String },
}

impl ServiceError {
    fn not_installed(name: &str) -> ServiceError {
        if cfg!(windows) {
            ServiceError::NotInstalled {
                name: name.into(),
                code: " (error 1060)",
                hint: "`sc query state= all` lists them",
            }
        } else {
            ServiceError::NotInstalled { name: name.into(), code: "", hint: "`systemctl list-units --all` lists them" }
        }
    }
}

/// The service manager.
pub trait Services: Send + Sync {
    /// The state of service `name`.
    fn query(&self, name: &str) -> Result<ServiceState, ServiceError>;
    /// Stops service `name` (if it runs) and starts it again, waiting at most
    /// `wait` for each.
    fn restart(&self, name: &str, wait: Duration) -> Result<(), ServiceError>;
}

/// The real service manager.
#[derive(Debug, Default)]
pub struct SystemServices;

#[cfg(not(windows))]
mod manager {
    //! systemd, through `systemctl` (its documented command-line interface).
    use std::time::Duration;

    use super::{ServiceError, ServiceState};
    use crate::system::command::{Commands, Output, SystemCommands};

    fn systemctl(args: &[&str], name: &str, wait: Duration) -> Result<Output, ServiceError> {
        let argv: Vec<String> = ["systemctl"].iter().chain(args).map(|s| s.to_string()).chain([name.into()]).collect();
        let out = SystemCommands
            .run(&argv, &[], wait)
            .map_err(|e| ServiceError::Failed { name: name.into(), reason: format!("systemctl could not run: {e}") })?;
        if out.success() {
            return Ok(out);
        }
        let text = out.tail();
        Err(if text.contains("Access denied") || text.contains("Interactive authentication required") {
            ServiceError::AccessDenied { name: name.into() }
        } else if text.contains("not found") || text.contains("not loaded") {
            ServiceError::not_installed(name)
        } else if out.timed_out {
            ServiceError::Failed { name: name.into(), reason: format!("systemctl {} timed out", args.join(" ")) }
        } else {
            ServiceError::Failed { name: name.into(), reason: format!("systemctl {} failed: {text}", args.join(" ")) }
        })
    }

    /// Reads `systemctl show` output.
    pub(super) fn parse_show(name: &str, text: &str) -> Result<ServiceState, ServiceError> {
        let field = |key: &str| {
            text.lines().find_map(|l| l.strip_prefix(key).and_then(|rest| rest.strip_prefix('='))).map(str::trim)
        };
        let garbled = || ServiceError::Failed {
            name: name.into(),
            reason: "systemctl show printed no LoadState, ActiveState and MainPID".into(),
        };
        let (Some(load), Some(active), Some(pid)) = (field("LoadState"), field("ActiveState"), field("MainPID")) else {
            return Err(garbled());
        };
        if load == "not-found" {
            return Err(ServiceError::not_installed(name));
        }
        let pid: u32 = pid.parse().map_err(|_| garbled())?;
        Ok(match active {
            "active" | "reloading" | "deactivating" | "activating" if pid != 0 => ServiceState::Running { pid },
            _ => ServiceState::Stopped,
        })
    }

    pub(super) fn query(name: &str) -> Result<ServiceState, ServiceError> {
        let out = systemctl(
            &["show", "-p", "LoadState", "-p", "ActiveState", "-p", "MainPID", "--"],
            name,
            Duration::from_secs(30),
        )?;
        parse_show(name, &out.stdout)
    }

    pub(super) fn restart(name: &str, wait: Duration) -> Result<(), ServiceError> {
        // Not installed is said as such, not as a failed restart.
        query(name)?;
        systemctl(&["restart", "--"], name, wait.max(Duration::from_secs(1))).map(|_| ())
    }
}

#[cfg(windows)]
mod manager {
    //! The Service Control Manager, through its API (`windows-service`).
    use std::ffi::OsStr;
    use std::time::{Duration, Instant};

    use windows_service::service::{ServiceAccess, ServiceState as WinState};
    use windows_service::service_manager::{ServiceManager, ServiceManagerAccess};

    use super::{ServiceError, ServiceState};

    const ERROR_ACCESS_DENIED: i32 = 5;
    const ERROR_SERVICE_DOES_NOT_EXIST: i32 = 1060;

    fn classify(name: &str, error: windows_service::Error) -> ServiceError {
        match &error {
            windows_service::Error::Winapi(e) if e.raw_os_error() == Some(ERROR_SERVICE_DOES_NOT_EXIST) => {
                ServiceError::not_installed(name)
            }
            windows_service::Error::Winapi(e) if e.raw_os_error() == Some(ERROR_ACCESS_DENIED) => {
                ServiceError::AccessDenied { name: name.into() }
            }
            _ => ServiceError::Failed { name: name.into(), reason: error.to_string() },
        }
    }

    fn open(name: &str, access: ServiceAccess) -> Result<windows_service::service::Service, ServiceError> {
        let manager = ServiceManager::local_computer(None::<&str>, ServiceManagerAccess::CONNECT)
            .map_err(|e| classify(name, e))?;
        manager.open_service(name, access).map_err(|e| classify(name, e))
    }

    fn state(name: &str, service: &windows_service::service::Service) -> Result<ServiceState, ServiceError> {
        let status = service.query_status().map_err(|e| classify(name, e))?;
        Ok(match (status.current_state, status.process_id) {
            (WinState::Stopped, _) | (_, None) | (_, Some(0)) => ServiceState::Stopped,
            (_, Some(pid)) => ServiceState::Running { pid },
        })
    }

    pub(super) fn query(name: &str) -> Result<ServiceState, ServiceError> {
        state(name, &open(name, ServiceAccess::QUERY_STATUS)?)
    }

    fn wait_for(
        name: &str,
        service: &windows_service::service::Service,
        want: WinState,
        deadline: Instant,
    ) -> Result<(), ServiceError> {
        loop {
            let status = service.query_status().map_err(|e| classify(name, e))?;
            if status.current_state == want {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(ServiceError::Failed {
                    name: name.into(),
                    reason: format!("still {:?} after the wait, not {want:?}", status.current_state),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub(super) fn restart(name: &str, wait: Duration) -> Result<(), ServiceError> {
        let service = open(name, ServiceAccess::QUERY_STATUS | ServiceAccess::STOP | ServiceAccess::START)?;
        let deadline = Instant::now() + wait.max(Duration::from_secs(1));
        if service.query_status().map_err(|e| classify(name, e))?.current_state != WinState::Stopped {
            service.stop().map_err(|e| classify(name, e))?;
            wait_for(name, &service, WinState::Stopped, deadline)?;
        }
        service.start::<&OsStr>(&[]).map_err(|e| classify(name, e))?;
        wait_for(name, &service, WinState::Running, deadline)
    }
}

impl Services for SystemServices {
    fn query(&self, name: &str) -> Result<ServiceState, ServiceError> {
        manager::query(name)
    }

    fn restart(&self, name: &str, wait: Duration) -> Result<(), ServiceError> {
        manager::restart(name, wait)
    }
}

/// A service manager for tests: each service's answer, and the restarts
/// asked for.
#[derive(Debug, Default)]
pub struct FakeServices {
    /// Name and answer; a name not listed is not installed.
    pub services: std::sync::Mutex<Vec<(String, Result<ServiceState, ServiceError>)>>,
    /// What a restart changes the service to: name and new pid.
    pub restarts_to: std::sync::Mutex<Vec<(String, u32)>>,
    /// The services restarted so far.
    pub restarted: std::sync::Mutex<Vec<String>>,
}

impl Services for FakeServices {
    fn query(&self, name: &str) -> Result<ServiceState, ServiceError> {
        let services =
            self.services.lock().map_err(|_| ServiceError::Failed { name: name.into(), reason: "poisoned".into() })?;
        services
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, a)| a.clone())
            .unwrap_or_else(|| Err(ServiceError::not_installed(name)))
    }

    fn restart(&self, name: &str, _wait: Duration) -> Result<(), ServiceError> {
        self.query(name)?;
        if let Ok(mut restarted) = self.restarted.lock() {
            restarted.push(name.into());
        }
        let new = self.restarts_to.lock().ok().and_then(|r| r.iter().find(|(n, _)| n == name).map(|(_, pid)| *pid));
        if let (Some(pid), Ok(mut services)) = (new, self.services.lock()) {
            for (n, answer) in services.iter_mut() {
                if n == name {
                    *answer = Ok(ServiceState::Running { pid });
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(not(windows))]
    #[test]
    fn reads_systemctl_show() {
        let show = |text: &str| manager::parse_show("x.service", text);
        assert_eq!(show("LoadState=loaded\nActiveState=active\nMainPID=42\n"), Ok(ServiceState::Running { pid: 42 }));
        assert_eq!(show("MainPID=0\nLoadState=loaded\nActiveState=inactive\n"), Ok(ServiceState::Stopped));
        assert!(matches!(
            show("LoadState=not-found\nActiveState=inactive\nMainPID=0\n"),
            Err(ServiceError::NotInstalled { .. })
        ));
        // Empty or garbled output is a failure, never "stopped".
        assert!(matches!(show(""), Err(ServiceError::Failed { .. })));
        assert!(matches!(show("LoadState=loaded\nActiveState=active\nMainPID=x\n"), Err(ServiceError::Failed { .. })));
    }

    #[test]
    fn a_failed_lookup_is_no_state() {
        let real = SystemServices.query("keyturn-no-such-service-3f9a");
        assert!(real.is_err(), "{real:?}");
        let fake = FakeServices::default();
        assert!(matches!(fake.query("x"), Err(ServiceError::NotInstalled { .. })));
        let message = ServiceError::not_installed("Telerik Storage Service").to_string();
        assert!(message.contains("\"Telerik Storage Service\" is not installed"), "{message}");
    }
}
