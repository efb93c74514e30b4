//! `vqa`: analyse audio/video inputs for perceptual defects, in one process or through the
//! distributed topology (Lambda functions under Step Functions), and compare what each costs.
//!
//! This file parses the command line and dispatches: each subcommand is a module, the flags
//! several share are in `args`, and the work is done by the library crates.

mod analyze;
mod args;
mod bench;
mod deploy;
mod eval;
mod monitor;
mod output;
mod router;
mod summary;

use std::process::ExitCode;

use clap::Parser;

use args::{Cli, Command};

async fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Analyze(args) => analyze::analyze(args).await,
        Command::Monitor(args) => monitor::monitor(args).await,
        Command::Router(args) => router::router(args).await,
        Command::StateMachine(args) => deploy::print_definition(args),
        Command::Deploy(args) => deploy::deploy(args).await,
        Command::Config(args) => {
            let config = args.pipeline.load()?;
            print!(
                "{}{}",
                vqa_core::PipelineConfig::profiles_table(config.profile),
                config.to_toml()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Eval(args) => eval::eval_corpus(args).await,
        Command::Bench(args) => bench::bench(args).await,
    }
}

fn init_logging(verbose: u8) {
    // The AWS SDK warns at length while it looks for credentials in places that have none
    // (instance metadata); a missing credential is reported once, as vqa's error.
    let default = match verbose {
        0 => "warn,aws_config=error",
        1 => "info,aws_config=error",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("vqa: error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(dispatch(cli.command));
    // Do not wait for stage threads that an error left blocked: the result is decided.
    runtime.shutdown_background();
    match result {
        Ok(code) => code,
        Err(e) => {
            // One line: the chain of causes, outermost first.
            let causes: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            eprintln!("vqa: error: {}", causes.join(": "));
            ExitCode::FAILURE
        }
    }
}
