//! Declarative masking. Policies say *what* to mask; the host compiles the
//! rules once (`compile`) and applies them natively: to headers, to JSON
//! documents by pointer (`json`), and to streamed text (`stream`) without
//! holding more than one match window of it.

pub mod compile;
pub mod detectors;
pub mod json;
pub mod method;
pub mod stream;

use serde::Serialize;

pub use compile::{CompiledMasks, MaskCompiler};
pub use stream::StreamMasker;

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "value")]
pub enum MaskTarget {
    Header(String),
    JsonPointer(String),
    Column(String),
    Pattern(String),
    Detector(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum MaskMethod {
    Redact,
    Partial { prefix: u8, suffix: u8 },
    Hash,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct MaskRule {
    pub target: MaskTarget,
    pub method: MaskMethod,
}
