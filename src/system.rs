//! The system edge: what keyturn asks of the operating system, behind small
//! traits with fakes for tests.

mod identity;
pub mod processes;

pub use identity::{machine, operator};
pub use processes::{ProcessInfo, Processes, SystemProcesses};
