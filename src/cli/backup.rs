//! `parcours backup` and `parcours restore`: copies of the database file, on the machine
//! that runs the engine.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use parcours_engine::store::sqlite::{self, Copied};

/// Which database: the one `serve` would open with the same settings.
#[derive(Args)]
pub struct DbArgs {
    /// The settings file `serve` reads (for its `db_path`).
    #[arg(long, value_name = "FILE", env = "PARCOURS_CONFIG")]
    config: Option<PathBuf>,
    /// The database file (default: `db_path` of the settings, `parcours.db`).
    #[arg(long)]
    db: Option<PathBuf>,
}

#[derive(Args)]
pub struct BackupArgs {
    /// Where to write the backup (a new file).
    file: PathBuf,
    #[command(flatten)]
    db: DbArgs,
    /// Print what was copied as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct RestoreArgs {
    /// The backup to restore.
    file: PathBuf,
    #[command(flatten)]
    db: DbArgs,
    /// Replace the database if it exists (never while an engine runs on it).
    #[arg(long)]
    force: bool,
    /// Print what was restored as JSON.
    #[arg(long)]
    json: bool,
}

fn report(verb: &str, copied: &Copied, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(copied)?);
    } else {
        println!(
            "{verb} {} ({:.1} MB: {} events, {} instances, {} profiles, {} journeys) in {:.1} s",
            copied.path.display(),
            copied.bytes as f64 / 1e6,
            copied.events,
            copied.instances,
            copied.profiles,
            copied.journeys,
            copied.took.as_secs_f64()
        );
    }
    Ok(())
}

pub fn backup(args: BackupArgs) -> anyhow::Result<ExitCode> {
    let db = super::config::db_path(args.db.config, args.db.db)?;
    let copied = sqlite::backup(&db, &args.file)?;
    report(
        &format!("backed up {} to", db.display()),
        &copied,
        args.json,
    )?;
    Ok(ExitCode::SUCCESS)
}

pub fn restore(args: RestoreArgs) -> anyhow::Result<ExitCode> {
    let db = super::config::db_path(args.db.config, args.db.db)?;
    let copied = sqlite::restore(&args.file, &db, args.force)?;
    report(
        &format!("restored {} as", args.file.display()),
        &copied,
        args.json,
    )?;
    Ok(ExitCode::SUCCESS)
}
