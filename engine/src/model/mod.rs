//! The definitions as authors and integrators write them (serde types).
//!
//! Owns the JSON/YAML shape of journeys, events and profiles and their parsing with
//! located errors. It never validates meaning (that is [`crate::compile`]) and never runs
//! anything.

mod alert;
mod audience;
pub mod consent;
mod depth;
pub mod diff;
mod event;
pub mod import;
mod journey;
mod problem;
mod profile;
mod resources;
mod template;

pub use alert::{AlertCondition, AlertDef, NotifyDef};
pub use audience::{AudienceDef, CappingRuleDef};
pub use consent::{ConsentDefault, SubscriptionGroupDef};
pub use depth::MAX_DOCUMENT_DEPTH;
pub use event::{BusinessEventInput, Event, EventInput, Identity};
pub use journey::{
    EntryDef, ExitDef, Format, JourneyDef, NodeDef, Properties, QualifyOn, ReentranceDef,
    ReentranceMode, ScheduleDef, parse_document, parse_journey,
};
pub use problem::{Problem, Problems, serde_problem, syntax_location};
pub use profile::{Profile, merge_patch};
pub use resources::{ResourcesDef, parse_resources};
pub use template::{Category, Channel, MessageParts, TemplateDef};
