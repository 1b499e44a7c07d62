//! `parcours profile import FILE`: bulk import of profiles (JSON Lines or CSV) into a
//! running engine, in chunks of whole records, with a progress bar; a refusal is reported
//! at the line of the file it concerns.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::Method;

use super::client::{Answer, Api, Remote, failure};

#[derive(Subcommand)]
pub enum ProfileCommand {
    /// Import profiles: JSON Lines (`{"id", "attributes", "timezone", "aliases"}` per
    /// line) or CSV (`.csv`: an `id` column, optional `timezone` and `alias.<namespace>`
    /// columns, other columns are attributes: text, or typed as `age:number`,
    /// `vip:boolean`, `visits:integer`, `tags:json`). Each record is merged into its
    /// profile.
    Import {
        file: PathBuf,
        /// Records per request.
        #[arg(long, default_value_t = 1_000)]
        chunk: usize,
        /// Print the outcome as one line of JSON (`{"file", "imported"}`, and `refused`
        /// with the located refusal).
        #[arg(long)]
        json: bool,
    },
    /// One profile: attributes, zone, aliases, audiences.
    Get(super::reads::One),
    /// Profiles in id order, those a rhai condition holds for with `--filter`
    /// (`'profile.tier == "gold"'`).
    List {
        #[arg(long)]
        filter: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Delete a profile: its live instances end, its personal data is erased from its
    /// events, steps and instances (docs/security.md).
    Delete(super::reads::One),
}

pub async fn run(cmd: ProfileCommand, server: &Remote) -> anyhow::Result<ExitCode> {
    use super::reads::{all_pages, encode, print_list, print_value};
    match cmd {
        ProfileCommand::Import { file, chunk, json } => {
            import(&file, chunk.max(1), server, json).await
        }
        ProfileCommand::Get(super::reads::One { id, json }) => {
            let profile = Api::new(server)?
                .get(&format!("/v1/profiles/{}", encode(&id)))
                .await?;
            print_value(&profile, json)?;
            Ok(ExitCode::SUCCESS)
        }
        ProfileCommand::List { filter, json } => {
            let path = match &filter {
                Some(f) => format!("/v1/profiles?filter={}", encode(f)),
                None => "/v1/profiles".to_string(),
            };
            let profiles = all_pages(&Api::new(server)?, &path, "profiles").await?;
            print_list(
                &profiles,
                &[
                    ("id", "id"),
                    ("timezone", "timezone"),
                    ("updated", "updated_at"),
                ],
                json,
            )?;
            Ok(ExitCode::SUCCESS)
        }
        ProfileCommand::Delete(super::reads::One { id, json }) => {
            Api::new(server)?
                .delete(&format!("/v1/profiles/{}", encode(&id)))
                .await?;
            if json {
                println!("{}", serde_json::json!({"id": id, "deleted": true}));
            } else {
                println!("{id}: deleted");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn import(
    file: &Path,
    chunk: usize,
    server: &Remote,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let csv = file.extension().and_then(|e| e.to_str()) == Some("csv");
    let mut records = Records::open(file, csv)?;
    // Progress in bytes of the file, which is read once.
    let size = std::fs::metadata(file).map_or(0, |m| m.len());
    let bar = ProgressBar::new(size);
    bar.set_style(ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {msg} ({bytes_per_sec}, eta {eta})",
    )?);
    if json {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let api = Api::new(server)?;
    let content_type = if csv {
        "text/csv"
    } else {
        "application/x-ndjson"
    };
    let mut imported = 0u64;
    loop {
        let mut body = records.header.clone();
        // Where each record of the chunk starts: (line in the chunk, line in the file).
        let mut starts = Vec::new();
        let mut chunk_line = 1 + newlines(&body);
        while starts.len() < chunk
            && let Some((line, text)) = records.next()?
        {
            starts.push((chunk_line, line));
            chunk_line += newlines(&text);
            body.extend_from_slice(&text);
        }
        if starts.is_empty() {
            break;
        }
        let request = api
            .request(Method::POST, "/v1/profiles/import")
            .header("content-type", content_type)
            .body(body);
        let Answer { status, mut body } = match api.send(request).await {
            Ok(answer) => answer,
            Err(e) => {
                bar.abandon();
                return Err(e);
            }
        };
        if !status.is_success() {
            bar.abandon();
            relocate(&mut body, &starts);
            if json {
                println!(
                    "{}",
                    serde_json::json!({"file": file.display().to_string(), "imported": imported, "refused": body})
                );
            } else {
                eprintln!("{}: refused: {}", file.display(), failure(status, &body));
            }
            return Ok(ExitCode::FAILURE);
        }
        imported += body["imported"].as_u64().unwrap_or(starts.len() as u64);
        bar.set_position(records.offset());
        bar.set_message(format!("{imported} profiles"));
    }
    bar.finish();
    if json {
        println!(
            "{}",
            serde_json::json!({"file": file.display().to_string(), "imported": imported})
        );
    } else {
        println!("imported {imported} profiles from {}", file.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn newlines(text: &[u8]) -> usize {
    text.iter().filter(|b| **b == b'\n').count()
}

/// The records of an import file, each with the line it starts on: CSV records read (and
/// written back) by the csv crate, so that a quoted cell may span lines; JSON Lines one
/// per non-empty line.
struct Records {
    /// Sent at the top of every chunk: the CSV header, or nothing.
    header: Vec<u8>,
    source: Source,
    file: PathBuf,
}

enum Source {
    /// The reader and the record it reads into.
    Csv(csv::Reader<std::fs::File>, csv::ByteRecord),
    /// The lines, the number of the last one read, the bytes read.
    Jsonl(std::io::Lines<BufReader<std::fs::File>>, usize, u64),
}

impl Records {
    fn open(file: &Path, csv: bool) -> anyhow::Result<Records> {
        let opened =
            std::fs::File::open(file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
        let mut records = Records {
            header: Vec::new(),
            source: if csv {
                let reader = csv::ReaderBuilder::new()
                    .has_headers(false)
                    .flexible(false)
                    .from_reader(opened);
                Source::Csv(reader, csv::ByteRecord::new())
            } else {
                Source::Jsonl(BufReader::new(opened).lines(), 0, 0)
            },
            file: file.to_path_buf(),
        };
        if csv {
            match records.next()? {
                Some((_, header)) => records.header = header,
                None => anyhow::bail!("{}: empty CSV file", file.display()),
            }
        }
        Ok(records)
    }

    /// How far into the file the records read so far reach, in bytes.
    fn offset(&self) -> u64 {
        match &self.source {
            Source::Csv(reader, ..) => reader.position().byte(),
            Source::Jsonl(_, _, bytes) => *bytes,
        }
    }

    /// The next record's first line and text (ending with a newline).
    fn next(&mut self) -> anyhow::Result<Option<(usize, Vec<u8>)>> {
        let file = &self.file;
        match &mut self.source {
            Source::Csv(reader, record) => {
                let more = reader.read_byte_record(record).map_err(|e| {
                    let line = e.position().map_or(0, |p| p.line());
                    anyhow::anyhow!("{}: line {line}: bad CSV row: {e}", file.display())
                })?;
                if !more {
                    return Ok(None);
                }
                let line = record.position().map_or(0, |p| p.line() as usize);
                // A record at a time: a small buffer, not the default 8 KiB per record.
                let mut writer = csv::WriterBuilder::new()
                    .terminator(csv::Terminator::Any(b'\n'))
                    .buffer_capacity(256)
                    .from_writer(Vec::new());
                writer.write_byte_record(record)?;
                let text = writer
                    .into_inner()
                    .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
                Ok(Some((line, text)))
            }
            Source::Jsonl(lines, line_no, bytes) => loop {
                let Some(line) = lines.next() else {
                    return Ok(None);
                };
                *line_no += 1;
                let line = line.map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
                *bytes += line.len() as u64 + 1;
                if !line.trim().is_empty() {
                    let mut text = line.into_bytes();
                    text.push(b'\n');
                    return Ok(Some((*line_no, text)));
                }
            },
        }
    }
}

/// Rewrites the `line N` locations of a refused chunk (counted from the chunk's start,
/// whose first line is the CSV header when there is one) as lines of the file.
fn relocate(answer: &mut serde_json::Value, starts: &[(usize, usize)]) {
    let to_file = |location: &str| -> Option<String> {
        let rest = location.strip_prefix("line ")?;
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let chunk_line: usize = rest[..digits].parse().ok()?;
        // The record the line falls in (or the header before the first record).
        let file_line = match starts.iter().rev().find(|(start, _)| *start <= chunk_line) {
            Some((start, line)) => line + (chunk_line - start),
            None => chunk_line,
        };
        Some(format!("line {file_line}{}", &rest[digits..]))
    };
    if let Some(location) = answer["location"].as_str().and_then(to_file) {
        answer["location"] = location.into();
    }
    if let Some(problems) = answer["problems"].as_array_mut() {
        for problem in problems {
            if let Some(path) = problem["path"].as_str().and_then(to_file) {
                problem["path"] = path.into();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn chunk_lines_become_file_lines() {
        // A chunk of three records that start on file lines 40, 41 and 45 (the second
        // spans four lines), sent after a one-line header.
        let starts = [(2, 40), (3, 41), (7, 45)];
        let mut answer = json!({"location": "line 7.age", "problems": [{"path": "line 4"}]});
        relocate(&mut answer, &starts);
        assert_eq!(answer["location"], "line 45.age");
        assert_eq!(answer["problems"][0]["path"], "line 42");
        let mut header = json!({"location": "line 1.column 2"});
        relocate(&mut header, &starts);
        assert_eq!(header["location"], "line 1.column 2");
    }
}
