//! `sluice-bench` command line: see `sluice-bench --help`.
#![forbid(unsafe_code)]

use clap::Parser;
use sluice_bench::{BenchError, Opts};

fn main() -> std::process::ExitCode {
    let opts = Opts::parse();
    let rt = if opts.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(opts.threads)
            .enable_all()
            .build()
    };
    let rt = match rt {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sluice-bench: tokio runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let json = opts.json.clone();
    if opts.rtc.is_some() {
        return match rt.block_on(sluice_bench::rtc::run(opts)) {
            Ok(report) => {
                println!("{report}");
                if let Some(path) = json
                    && let Err(e) = std::fs::write(&path, report.to_json() + "\n")
                {
                    eprintln!("sluice-bench: writing {}: {e}", path.display());
                    return std::process::ExitCode::FAILURE;
                }
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("sluice-bench: {e}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    if opts.flood.is_some() {
        return match rt.block_on(sluice_bench::flood::run(opts)) {
            Ok((flood, report)) => {
                println!("{report}");
                println!("{flood}");
                if let Some(path) = json
                    && let Err(e) = std::fs::write(&path, flood.to_json() + "\n")
                {
                    eprintln!("sluice-bench: writing {}: {e}", path.display());
                    return std::process::ExitCode::FAILURE;
                }
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("sluice-bench: {e}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    match rt.block_on(sluice_bench::run(opts)) {
        Ok(report) => {
            println!("{report}");
            if let Some(path) = json {
                let r = std::fs::write(&path, report.to_json() + "\n").map_err(|e| {
                    BenchError::Report {
                        path: path.display().to_string(),
                        reason: e.to_string(),
                    }
                });
                if let Err(e) = r {
                    eprintln!("sluice-bench: {e}");
                    return std::process::ExitCode::FAILURE;
                }
            }
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sluice-bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
