//! keyturn's domain: keys, tokens and the machine's store. Nothing here knows
//! there is a terminal.

pub mod fault;
pub mod keys;
pub mod project;
pub mod rotation;
pub mod store;
pub mod system;
pub mod token;
