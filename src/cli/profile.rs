//! `parcours profile import FILE`: bulk import of profiles (JSON Lines or CSV) into a
//! running engine, in chunks, with a progress bar.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};

use super::{DEFAULT_SERVER, answer};

#[derive(Subcommand)]
pub enum ProfileCommand {
    /// Import profiles: JSON Lines (`{"id", "attributes", "timezone", "aliases"}` per
    /// line) or CSV (`.csv`: an `id` column, optional `timezone` and `alias.<namespace>`
    /// columns, other columns are attributes). Each record is merged into its profile.
    Import {
        file: PathBuf,
        /// Records per request.
        #[arg(long, default_value_t = 1_000)]
        chunk: usize,
        /// The engine's base URL.
        #[arg(long, default_value = DEFAULT_SERVER, env = "PARCOURS_SERVER")]
        server: String,
    },
}

pub async fn run(cmd: ProfileCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ProfileCommand::Import {
            file,
            chunk,
            server,
        } => import(&file, chunk.max(1), &server).await,
    }
}

async fn import(file: &Path, chunk: usize, server: &str) -> anyhow::Result<ExitCode> {
    let csv = file.extension().and_then(|e| e.to_str()) == Some("csv");
    let total = count_records(file, csv)?;
    let bar = ProgressBar::new(total as u64);
    bar.set_style(ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} profiles ({per_sec}, eta {eta})",
    )?);
    let reader = BufReader::new(std::fs::File::open(file)?);
    let mut lines = reader.lines();
    let header = if csv {
        match lines.next() {
            Some(h) => Some(h?),
            None => anyhow::bail!("{}: empty CSV file", file.display()),
        }
    } else {
        None
    };
    let client = super::api_client();
    let content_type = if csv {
        "text/csv"
    } else {
        "application/x-ndjson"
    };
    let mut body = String::new();
    let mut in_body = 0usize;
    // Line number (1-based) of the first record of the chunk, to relocate errors.
    let mut first_line = if csv { 2 } else { 1 };
    let mut line_no = first_line - 1;
    let mut imported = 0u64;
    loop {
        let line = lines.next().transpose()?;
        if let Some(l) = &line {
            line_no += 1;
            if l.trim().is_empty() && in_body == 0 {
                first_line = line_no + 1;
                continue;
            }
            if in_body == 0
                && let Some(h) = &header
            {
                body.push_str(h);
                body.push('\n');
            }
            body.push_str(l);
            body.push('\n');
            if !l.trim().is_empty() {
                in_body += 1;
            }
        }
        if in_body > 0 && (in_body >= chunk || line.is_none()) {
            let response = client
                .post(format!("{server}/v1/profiles/import"))
                .header("content-type", content_type)
                .body(std::mem::take(&mut body))
                .send()
                .await?;
            match answer(response).await {
                Ok(v) => {
                    let n = v["imported"].as_u64().unwrap_or(in_body as u64);
                    imported += n;
                    bar.inc(n);
                }
                Err(e) => {
                    bar.abandon();
                    eprintln!(
                        "{}: the chunk starting at line {first_line} was refused (lines in the message count from the chunk's start{}): {e}",
                        file.display(),
                        if csv { ", header = line 1" } else { "" }
                    );
                    return Ok(ExitCode::FAILURE);
                }
            }
            in_body = 0;
            first_line = line_no + 1;
        }
        if line.is_none() {
            break;
        }
    }
    bar.finish();
    println!("imported {imported} profiles from {}", file.display());
    Ok(ExitCode::SUCCESS)
}

/// Counts records for the progress bar (non-empty lines, minus a CSV header).
fn count_records(file: &Path, csv: bool) -> anyhow::Result<usize> {
    let reader = BufReader::new(std::fs::File::open(file)?);
    let mut n = 0usize;
    for line in reader.lines() {
        if !line?.trim().is_empty() {
            n += 1;
        }
    }
    Ok(if csv { n.saturating_sub(1) } else { n })
}
