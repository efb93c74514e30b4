//! `vqa state-machine` and `vqa deploy`: the Step Functions definition for a configuration,
//! printed or deployed.

use std::process::ExitCode;

use vqa_deploy_lambda::state_machine::{self, MachineType};

use crate::args::{MachineArgs, PipelineArgs};

#[derive(clap::Args)]
pub struct StateMachineArgs {
    #[command(flatten)]
    pub machine: MachineArgs,

    #[command(flatten)]
    pub pipeline: PipelineArgs,
}

#[derive(clap::Args)]
pub struct DeployArgs {
    /// The state machine's name.
    #[arg(long, default_value = "vqa")]
    pub name: String,

    /// Standard (exactly once, billed per state transition) or Express (up to 5 min,
    /// billed per request and duration).
    #[arg(
        long = "type",
        value_name = "standard|express",
        default_value = "standard"
    )]
    pub machine_type: MachineType,

    #[arg(long, env = "VQA_CONVERTER_ARN", value_name = "ARN")]
    pub converter_arn: String,

    #[arg(long, env = "VQA_DETECTOR_ARN", value_name = "ARN")]
    pub detector_arn: String,

    #[arg(long, env = "VQA_AGGREGATOR_ARN", value_name = "ARN")]
    pub aggregator_arn: String,

    /// The role Step Functions assumes to invoke the functions.
    #[arg(long, env = "VQA_STATES_ROLE_ARN", value_name = "ARN")]
    pub role_arn: String,

    #[command(flatten)]
    pub machine: MachineArgs,

    #[command(flatten)]
    pub pipeline: PipelineArgs,
}

pub fn print_definition(args: StateMachineArgs) -> anyhow::Result<ExitCode> {
    let options = args.machine.options(&args.pipeline.load()?)?;
    println!(
        "{}",
        serde_json::to_string_pretty(&state_machine::definition(&options))?
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn deploy(args: DeployArgs) -> anyhow::Result<ExitCode> {
    let options = args.machine.options(&args.pipeline.load()?)?;
    let definition = state_machine::substitute(
        &serde_json::to_string_pretty(&state_machine::definition(&options))?,
        &args.converter_arn,
        &args.detector_arn,
        &args.aggregator_arn,
    );
    let sdk = vqa_transport_s3::aws_config(None).await;
    let arn = vqa_sfn_client::deploy(
        &sdk,
        &args.name,
        &definition,
        &args.role_arn,
        args.machine_type,
    )
    .await?;
    let var = match args.machine_type {
        MachineType::Standard => "VQA_STATE_MACHINE_ARN",
        MachineType::Express => "VQA_EXPRESS_STATE_MACHINE_ARN",
    };
    println!("export {var}={arn}");
    Ok(ExitCode::SUCCESS)
}
