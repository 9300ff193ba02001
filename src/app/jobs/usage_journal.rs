//! The usage journal: counted use that could not be written to the database, kept on local
//! disk until it is. While writes fail (a database outage, a full disk), every failed flush
//! replaces the journal with everything still pending, written whole and synced to disk; a
//! process that crashes meanwhile replays it at its next start. Each journal has an id that
//! the database records with the counts in one transaction, so a journal counts once, whether
//! the process wrote its counts from memory before it died or the replay does.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::domain::random_base62;
use crate::store::{Usage, UsageBatch};

pub struct Journal {
    path: PathBuf,
    /// The id of the journal on disk, if there is one.
    current: Option<String>,
}

impl Journal {
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            current: None,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes a journal left by a process that stopped before its counts reached the database
    /// (at most once: see the module), then removes it. Returns the predictions it held, if
    /// there was one to apply.
    pub async fn replay(&mut self, store: &dyn Usage) -> anyhow::Result<Option<usize>> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(e).with_context(|| format!("Failed to read {}", self.path.display()));
            }
        };
        let batch: UsageBatch = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a usage journal", self.path.display()))?;
        anyhow::ensure!(
            batch.journal.is_some(),
            "{} has no journal id",
            self.path.display()
        );
        let applied = store
            .flush_usage(&batch)
            .await
            .context("Failed to write the usage journal to the database")?;
        self.current = batch.journal.clone();
        self.clear()?;
        Ok(applied.then(|| batch.counters.iter().map(|c| c.used as usize).sum()))
    }

    /// The id of the journal on disk, which the next write from memory covers.
    pub fn covering(&self) -> Option<String> {
        self.current.clone()
    }

    /// Keeps `pending` (everything not yet written) on disk in place of the journal before:
    /// written to a new file, synced, then renamed over the old one, so a crash at any moment
    /// leaves the old journal or the new one, whole.
    pub fn keep(&mut self, pending: &UsageBatch) -> anyhow::Result<()> {
        let id = format!("uj_{}", random_base62(20));
        let batch = UsageBatch {
            journal: Some(id.clone()),
            ..pending.clone()
        };
        let mut next = self.path.as_os_str().to_owned();
        next.push(".next");
        let next = PathBuf::from(next);
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&next)
            .with_context(|| format!("Failed to create {}", next.display()))?;
        file.write_all(serde_json::to_string(&batch)?.as_bytes())
            .and_then(|()| file.sync_all())
            .with_context(|| format!("Failed to write {}", next.display()))?;
        std::fs::rename(&next, &self.path)
            .with_context(|| format!("Failed to put {} in place", self.path.display()))?;
        sync_folder(&self.path)?;
        self.current = Some(id);
        Ok(())
    }

    /// Everything pending reached the database: the journal goes.
    pub fn clear(&mut self) -> anyhow::Result<()> {
        if self.current.take().is_some() {
            match std::fs::remove_file(&self.path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(e)
                        .with_context(|| format!("Failed to remove {}", self.path.display()));
                }
                _ => sync_folder(&self.path)?,
            }
        }
        Ok(())
    }
}

/// Makes a file's creation, renaming or removal durable.
fn sync_folder(file: &Path) -> anyhow::Result<()> {
    let folder = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(folder)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("Failed to sync {}", folder.display()))
}
