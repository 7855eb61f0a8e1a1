//! The system edge: what keyturn asks of the operating system (services,
//! processes, commands and the remote runner, Git, the clock), behind small
//! traits with a real and a fake implementation each, gathered in [`Edge`].

pub mod clipboard;
pub mod clock;
pub mod command;
pub mod git;
mod identity;
pub mod processes;
pub mod services;

use std::sync::Arc;
use std::time::Duration;

pub use clock::{Clock, SystemClock};
pub use command::{Commands, Output, SystemCommands};
pub use git::{Git, SystemGit};
pub use identity::{machine, operator};
pub use processes::{ProcessInfo, Processes, SystemProcesses, Wanted};
pub use services::{ServiceError, ServiceState, Services, SystemServices};

/// The system edge that rotation, fleet and the wizard receive, and how long
/// they wait. Cheap to clone; every part is shared.
#[derive(Clone)]
pub struct Edge {
    /// The process table.
    pub processes: Arc<dyn Processes>,
    /// The service manager.
    pub services: Arc<dyn Services>,
    /// Runs configured commands (restart, start, check, step) and the
    /// remote runner that reaches other machines.
    pub commands: Arc<dyn Commands>,
    /// Git, for the source-control steps.
    pub git: Arc<dyn Git>,
    /// Tells the time and waits.
    pub clock: Arc<dyn Clock>,
    /// How long a restart step waits for its component.
    pub wait: Duration,
    /// How often it looks meanwhile.
    pub poll: Duration,
    /// How long a configured command may take.
    pub command_timeout: Duration,
    /// How long another machine's join may take.
    pub machine_timeout: Duration,
}

/// How long a configured command may take.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

impl Edge {
    /// The real system; a restart waits `wait`, another machine's join
    /// `machine_timeout`.
    pub fn system(wait: Duration, machine_timeout: Duration) -> Edge {
        let commands: Arc<dyn Commands> = Arc::new(SystemCommands);
        Edge {
            processes: Arc::new(SystemProcesses),
            services: Arc::new(SystemServices),
            git: Arc::new(SystemGit { commands: commands.clone(), timeout: COMMAND_TIMEOUT }),
            commands,
            clock: Arc::new(SystemClock),
            wait,
            poll: Duration::from_millis(250),
            command_timeout: COMMAND_TIMEOUT,
            machine_timeout,
        }
    }

    /// Fakes throughout, for tests: nothing runs, no service is installed,
    /// Git answers clean, the clock moves only when slept; a restart waits
    /// a minute of fake time.
    pub fn fake() -> Edge {
        Edge {
            processes: Arc::new(processes::FakeProcesses::default()),
            services: Arc::new(services::FakeServices::default()),
            commands: Arc::new(command::FakeCommands::default()),
            git: Arc::new(git::FakeGit::default()),
            clock: Arc::new(clock::FakeClock::default()),
            wait: Duration::from_secs(60),
            poll: Duration::from_secs(1),
            command_timeout: Duration::from_secs(1),
            machine_timeout: Duration::from_secs(1),
        }
    }
}

impl std::fmt::Debug for Edge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Edge")
            .field("wait", &self.wait)
            .field("poll", &self.poll)
            .field("command_timeout", &self.command_timeout)
            .field("machine_timeout", &self.machine_timeout)
            .finish_non_exhaustive()
    }
}
