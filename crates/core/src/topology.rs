//! The one list of topologies: how the stages are orchestrated — one process, or a Step
//! Functions state machine of either type — which decides what a run is billed for. The
//! state machine's definition (`vqa-deploy-lambda`), its client (`vqa-sfn-client`) and the
//! cost model (`vqa-bench`) all name them from here.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Standard (exactly once, history kept, billed per state transition) or Express (at
/// least once, up to 5 minutes, billed per request and duration).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MachineType {
    #[default]
    Standard,
    Express,
}

impl MachineType {
    pub fn as_aws(self) -> &'static str {
        match self {
            MachineType::Standard => "STANDARD",
            MachineType::Express => "EXPRESS",
        }
    }
}

impl FromStr for MachineType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "standard" => Ok(MachineType::Standard),
            "express" => Ok(MachineType::Express),
            _ => Err(format!(
                "unknown state machine type {s:?}: use standard or express"
            )),
        }
    }
}

impl fmt::Display for MachineType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_aws().to_ascii_lowercase())
    }
}

/// How a topology is orchestrated, which decides what it is billed for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Orchestration {
    /// One process (ECS on Fargate): billed for vCPU and memory.
    #[default]
    SingleProcess,
    StepFunctionsStandard,
    StepFunctionsExpress,
}

impl Orchestration {
    /// The distributed topology on a state machine of type `t`.
    pub fn step_functions(t: MachineType) -> Self {
        match t {
            MachineType::Standard => Orchestration::StepFunctionsStandard,
            MachineType::Express => Orchestration::StepFunctionsExpress,
        }
    }

    /// The state machine type, for the distributed topology.
    pub fn machine_type(self) -> Option<MachineType> {
        match self {
            Orchestration::SingleProcess => None,
            Orchestration::StepFunctionsStandard => Some(MachineType::Standard),
            Orchestration::StepFunctionsExpress => Some(MachineType::Express),
        }
    }
}
