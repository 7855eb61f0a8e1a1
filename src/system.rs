//! The system edge: what keyturn asks of the operating system, behind small
//! traits with fakes for tests.

pub mod clipboard;
pub mod command;
mod identity;
pub mod processes;
pub mod remote;

pub use command::{Commands, Output, SystemCommands};
pub use identity::{machine, operator};
pub use processes::{ProcessInfo, Processes, SystemProcesses};
