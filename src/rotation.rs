//! Rotations: the original procedures as checklists that a state machine
//! drives step by step, persisted after every transition.

pub mod evidence;
pub mod join;
pub mod machines;
pub mod persist;
pub mod procedure;
pub mod run;
pub mod state;

pub use procedure::{Action, Facts, Setup, StepKind, Variant};
pub use state::{Change, Event, Rotation, Status, Step, StepState, TransitionError, Window, apply, apply_in_place};
