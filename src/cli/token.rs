//! `parcours token create|list|revoke`: API tokens, kept hashed in the tokens file that
//! `parcours serve` reads (and rereads when it changes).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use parcours_engine::auth::{Scope, TokenRecord, generate, hash, read_file, write_file};

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it (once: only its hash is kept).
    Create {
        /// A name for the token (who or what uses it).
        name: String,
        /// `ingest` (send events), `read` (every GET) or `admin` (everything).
        #[arg(long)]
        scope: Scope,
        #[command(flatten)]
        file: TokensFile,
        /// Print JSON on one line, for a program.
        #[arg(long)]
        json: bool,
    },
    /// List the tokens: name, scope, creation time (never the token).
    List {
        #[command(flatten)]
        file: TokensFile,
        /// Print JSON on one line, for a program.
        #[arg(long)]
        json: bool,
    },
    /// Remove a token; requests with it are refused from then on.
    Revoke {
        name: String,
        #[command(flatten)]
        file: TokensFile,
        /// Print JSON on one line, for a program.
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args)]
pub struct TokensFile {
    /// The tokens file (default: `<db>.tokens.json`).
    #[arg(long = "tokens", value_name = "FILE", env = "PARCOURS_TOKENS_FILE")]
    tokens: Option<PathBuf>,
    /// The database whose default tokens file to use.
    #[arg(long, default_value = "parcours.db", env = "PARCOURS_DB")]
    db: PathBuf,
}

impl TokensFile {
    fn path(&self) -> PathBuf {
        self.tokens
            .clone()
            .unwrap_or_else(|| default_file(&self.db))
    }
}

/// `<db>.tokens.json`.
pub fn default_file(db: &Path) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push(".tokens.json");
    PathBuf::from(p)
}

pub fn run(cmd: TokenCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        TokenCommand::Create {
            name,
            scope,
            file,
            json,
        } => {
            let path = file.path();
            let mut records = read_file(&path)?;
            if name.is_empty() || records.iter().any(|r| r.name == name) {
                anyhow::bail!(
                    "{}: a token named {name:?} exists already (or the name is empty)",
                    path.display()
                );
            }
            let token = generate();
            records.push(TokenRecord {
                name: name.clone(),
                scope,
                sha256: hash(&token),
                created_at: Some(jiff::Timestamp::now().to_string()),
            });
            write_file(&path, &records)?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"name": name, "scope": scope.as_str(), "token": token, "file": path.display().to_string()})
                );
                return Ok(ExitCode::SUCCESS);
            }
            eprintln!(
                "token {name:?} ({}) added to {}; it is shown once:",
                scope.as_str(),
                path.display()
            );
            println!("{token}");
            Ok(ExitCode::SUCCESS)
        }
        TokenCommand::List { file, json } => {
            let records = read_file(&file.path())?;
            if json {
                let list: Vec<serde_json::Value> = records
                    .iter()
                    .map(|r| serde_json::json!({"name": r.name, "scope": r.scope.as_str(), "created_at": r.created_at}))
                    .collect();
                println!("{}", serde_json::Value::Array(list));
                return Ok(ExitCode::SUCCESS);
            }
            for r in records {
                println!(
                    "{}\t{}\t{}",
                    r.name,
                    r.scope.as_str(),
                    r.created_at.as_deref().unwrap_or("-")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        TokenCommand::Revoke { name, file, json } => {
            let path = file.path();
            let mut records = read_file(&path)?;
            let before = records.len();
            records.retain(|r| r.name != name);
            if records.len() == before {
                anyhow::bail!("{}: no token named {name:?}", path.display());
            }
            write_file(&path, &records)?;
            if json {
                println!("{}", serde_json::json!({"name": name, "revoked": true}));
            } else {
                eprintln!("token {name:?} revoked");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
