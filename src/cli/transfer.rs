use std::io::{BufRead, BufReader, Write};

use anyhow::Context as _;
use serde_json::{Value, json};

use crate::store::transfer::{TABLES, TableRows, Transfer};

/// `tollbooth export`: one JSON object per row, table by table. The export holds the
/// authorize token, the session secret and every key's hash: when standard output is a file
/// (`tollbooth export > ledger.jsonl`), it is made readable by its owner only.
pub async fn export(store: &dyn Transfer) -> anyhow::Result<()> {
    keep_stdout_private()?;
    let tables = store.export().await?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut rows = 0;
    for (table, values) in &tables {
        for row in values {
            serde_json::to_writer(&mut out, &json!({ "table": table, "row": row }))?;
            out.write_all(b"\n")?;
            rows += 1;
        }
    }
    out.flush()?;
    eprintln!("Exported {rows} rows from {} tables.", tables.len());
    Ok(())
}

/// Makes standard output 0600 if it is a regular file (the shell created it with its umask).
fn keep_stdout_private() -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    // The file open as standard output, through the process's own descriptor table.
    let stdout = std::path::Path::new("/proc/self/fd/1");
    match std::fs::metadata(stdout) {
        Ok(meta) if meta.is_file() && meta.permissions().mode() & 0o077 != 0 => {
            std::fs::set_permissions(stdout, std::fs::Permissions::from_mode(0o600))
                .context("The export's file is readable by others and could not be made 0600")
        }
        _ => Ok(()),
    }
}

/// `tollbooth import FILE`: all or nothing, into an empty ledger.
pub async fn import(store: &dyn Transfer, file: &str) -> anyhow::Result<()> {
    let reader: Box<dyn BufRead> = if file == "-" {
        Box::new(BufReader::new(std::io::stdin()))
    } else {
        Box::new(BufReader::new(
            std::fs::File::open(file).with_context(|| format!("Failed to open {file}"))?,
        ))
    };
    let mut tables: Vec<TableRows> = TABLES.iter().map(|(t, _)| (*t, Vec::new())).collect();
    for (n, line) in reader.lines().enumerate() {
        let line = line.context("Failed to read the export")?;
        if line.trim().is_empty() {
            continue;
        }
        let entry: Value =
            serde_json::from_str(&line).with_context(|| format!("line {} is not JSON", n + 1))?;
        let (Some(table), Some(row)) = (entry["table"].as_str(), entry["row"].as_array()) else {
            anyhow::bail!("line {} is not an exported row", n + 1);
        };
        let slot = tables
            .iter_mut()
            .find(|(t, _)| *t == table)
            .with_context(|| format!("line {}: unknown table {table}", n + 1))?;
        slot.1.push(row.clone());
    }
    let count = store.import(&tables).await?;
    println!("Imported {count} rows.");
    Ok(())
}
