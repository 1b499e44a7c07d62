//! Every stable code the engine emits: API errors, step and ending codes, entry
//! refusals, plugin failures.
//!
//! Owns the code's string form, which is part of the API (clients, alerts and reports
//! compare it): a variant may be added, and its text never changes. Codes are produced
//! and compared as [`Code`]; they become strings only where they leave the engine (JSON
//! answers, step events, the store). The catalogue in docs/errors.md lists them all (a
//! test iterates [`Code::ALL`]). Never holds a message: the code says what, the message
//! says why.

use std::fmt;

macro_rules! codes {
    ($($variant:ident = $text:literal,)*) => {
        /// A stable, machine-readable code (see docs/errors.md).
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum Code {
            $($variant,)*
        }

        impl Code {
            /// Every code, in the order of their names.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// The code as clients see it (`EXPR_EVAL`).
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $text,)*
                }
            }

            /// The code with this string form, if there is one.
            pub fn parse(text: &str) -> Option<Code> {
                match text {
                    $($text => Some(Code::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

codes! {
    ActionsHeld = "ACTIONS_HELD",
    ActionFailed = "ACTION_FAILED",
    ActionInvalidInput = "ACTION_INVALID_INPUT",
    ActionRetryable = "ACTION_RETRYABLE",
    ActionTimeout = "ACTION_TIMEOUT",
    ActionUnknown = "ACTION_UNKNOWN",
    AlreadyInJourney = "ALREADY_IN_JOURNEY",
    AudienceIsComputed = "AUDIENCE_IS_COMPUTED",
    BadBody = "BAD_BODY",
    BatchTooLarge = "BATCH_TOO_LARGE",
    BodyTimeout = "BODY_TIMEOUT",
    BodyTooLarge = "BODY_TOO_LARGE",
    Capped = "CAPPED",
    Completed = "COMPLETED",
    Duplicate = "DUPLICATE",
    EntryConditionFalse = "ENTRY_CONDITION_FALSE",
    EventTooLarge = "EVENT_TOO_LARGE",
    ExitCriteria = "EXIT_CRITERIA",
    ExprEval = "EXPR_EVAL",
    Failed = "FAILED",
    Forbidden = "FORBIDDEN",
    FrequencyCapped = "FREQUENCY_CAPPED",
    Held = "HELD",
    Internal = "INTERNAL",
    InvalidAlert = "INVALID_ALERT",
    InvalidAudience = "INVALID_AUDIENCE",
    InvalidCappingRule = "INVALID_CAPPING_RULE",
    InvalidCloudevent = "INVALID_CLOUDEVENT",
    InvalidComponent = "INVALID_COMPONENT",
    InvalidEvent = "INVALID_EVENT",
    InvalidJourney = "INVALID_JOURNEY",
    InvalidLink = "INVALID_LINK",
    InvalidManifest = "INVALID_MANIFEST",
    InvalidProfile = "INVALID_PROFILE",
    InvalidRequest = "INVALID_REQUEST",
    InvalidSegmentCall = "INVALID_SEGMENT_CALL",
    InvalidSimulation = "INVALID_SIMULATION",
    InvalidTemplate = "INVALID_TEMPLATE",
    InvalidTransition = "INVALID_TRANSITION",
    JourneyEndDate = "JOURNEY_END_DATE",
    JourneyMissing = "JOURNEY_MISSING",
    JourneyNotLive = "JOURNEY_NOT_LIVE",
    JourneyStopped = "JOURNEY_STOPPED",
    JourneyTooLarge = "JOURNEY_TOO_LARGE",
    JumpFailed = "JUMP_FAILED",
    MethodNotAllowed = "METHOD_NOT_ALLOWED",
    NotATestProfile = "NOT_A_TEST_PROFILE",
    NoAddress = "NO_ADDRESS",
    NotFound = "NOT_FOUND",
    OutsideSchedule = "OUTSIDE_SCHEDULE",
    Overloaded = "OVERLOADED",
    PluginHttpDenied = "PLUGIN_HTTP_DENIED",
    PluginInUse = "PLUGIN_IN_USE",
    PluginMemoryLimit = "PLUGIN_MEMORY_LIMIT",
    PluginNameConflict = "PLUGIN_NAME_CONFLICT",
    PluginOutputTooLarge = "PLUGIN_OUTPUT_TOO_LARGE",
    PluginStackOverflow = "PLUGIN_STACK_OVERFLOW",
    PluginTimeout = "PLUGIN_TIMEOUT",
    PluginTrap = "PLUGIN_TRAP",
    ProfileDeleted = "PROFILE_DELETED",
    ProfileMerged = "PROFILE_MERGED",
    ProfileMissing = "PROFILE_MISSING",
    ProfileTooLarge = "PROFILE_TOO_LARGE",
    QuietHours = "QUIET_HOURS",
    ReentranceBlocked = "REENTRANCE_BLOCKED",
    SecretNotGranted = "SECRET_NOT_GRANTED",
    StepLimit = "STEP_LIMIT",
    Suppressed = "SUPPRESSED",
    TemplateError = "TEMPLATE_ERROR",
    TestEnded = "TEST_ENDED",
    TestProfile = "TEST_PROFILE",
    Timeout = "TIMEOUT",
    Unauthorized = "UNAUTHORIZED",
    UnexpectedResult = "UNEXPECTED_RESULT",
    UnexpectedTimer = "UNEXPECTED_TIMER",
    UnknownIdentity = "UNKNOWN_IDENTITY",
    Unsubscribed = "UNSUBSCRIBED",
}

/// As its text in quotes (`"EXPR_EVAL"`), as the codes read when they were strings:
/// logs and error chains that print a code's debug form keep their words.
impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl From<Code> for String {
    fn from(code: Code) -> String {
        code.as_str().to_string()
    }
}

impl PartialEq<Code> for Option<String> {
    fn eq(&self, code: &Code) -> bool {
        self.as_deref() == Some(code.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_reads_back_and_is_upper_snake_case() {
        let mut seen = std::collections::BTreeSet::new();
        for code in Code::ALL {
            let text = code.as_str();
            assert_eq!(Code::parse(text), Some(*code));
            assert!(seen.insert(text), "{text} twice");
            assert!(
                text.chars().all(|c| c.is_ascii_uppercase() || c == '_'),
                "{text}"
            );
            assert_eq!(
                serde_json::to_value(code).ok(),
                Some(serde_json::json!(text))
            );
        }
        assert_eq!(Code::parse("expr_eval"), None);
        assert_eq!(format!("{:?}", Code::ExprEval), "\"EXPR_EVAL\"");
        assert_eq!(Code::ExprEval.to_string(), "EXPR_EVAL");
    }
}
