//! The definitions as authors and integrators write them (serde types).
//!
//! Owns the JSON/YAML shape of journeys, events and profiles and their parsing with
//! located errors. It never validates meaning (that is [`crate::compile`]) and never runs
//! anything.

mod event;
mod journey;
mod problem;
mod profile;

pub use event::{Event, EventInput};
pub use journey::{
    EntryDef, Format, JourneyDef, NodeDef, Properties, ReentranceDef, ReentranceMode, parse_journey,
};
pub use problem::{Problem, Problems, serde_problem};
pub use profile::{Profile, merge_patch};
