//! keyturn: the domain (keys, tokens, the machine's store, projects,
//! rotations), which never knows there is a terminal; the system edge
//! (`system`); and the terminal wizard (`tui`), which draws the domain.

pub mod demo;
pub mod display;
pub mod fault;
pub mod fleet;
pub mod fuzzing;
pub mod keys;
pub mod project;
pub mod rotation;
pub mod store;
pub mod system;
pub mod token;
pub mod tui;
