use std::process::ExitCode;

use clap::Parser;
use server::{cli, config, telemetry};

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let settings = match config::Settings::load() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("error: {error:#}");
            return ExitCode::from(2);
        }
    };
    // Kept until `main` returns: dropping it sends the error reports still queued.
    let _telemetry = telemetry::init(&settings);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: could not start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(cli, settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = %format!("{error:#}"), "BotShop failed");
            ExitCode::FAILURE
        }
    }
}
