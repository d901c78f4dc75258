//! The store: gantry's own history in one embedded database (`redb`, pure Rust, ACID, one file
//! in the state directory). It holds what neither the folder (desired state) nor the Docker
//! labels (running replicas) can: the revisions each component has had, so that revision
//! numbers and rollbacks survive a daemon restart. Later: the usage ledger and events.
//!
//! Values are JSON: readable with any tool, and tolerant of fields added later.

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::spec::normalize::DesiredComponent;

/// `<namespace>/<service>/<component>/<number:05>` → [`RevisionRecord`] as JSON.
const REVISIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("revisions");

/// One immutable revision of a component.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RevisionRecord {
    pub namespace: String,
    pub service: String,
    /// `predictor`, `transformer` or `explainer`.
    pub component: String,
    /// 1, 2, ...
    pub number: u32,
    /// Knative's name: `<service>-<component>-<number:05>`.
    pub name: String,
    /// What its containers run ([`DesiredComponent::revision_key`]).
    pub key: String,
    /// Seconds since the Unix epoch.
    pub created_unix: i64,
    /// The folder the service's YAML lives in (relative model paths resolve against it).
    pub source_dir: String,
    /// The component as it was when the revision was made.
    pub component_spec: DesiredComponent,
}

impl RevisionRecord {
    pub fn name_for(service: &str, component: &str, number: u32) -> String {
        format!("{service}-{component}-{number:05}")
    }

    fn key(&self) -> String {
        format!(
            "{}/{}/{}/{:05}",
            self.namespace, self.service, self.component, self.number
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store {path}: {message}")]
    Open { path: String, message: String },
    #[error("store: {0}")]
    Io(String),
}

fn io(e: impl std::fmt::Display) -> StoreError {
    StoreError::Io(e.to_string())
}

pub struct Store {
    db: Database,
}

impl Store {
    /// Opens (or creates) `gantry.redb` in the state directory.
    pub fn open(state_dir: &Path) -> Result<Store, StoreError> {
        let path = state_dir.join("gantry.redb");
        let db = Database::create(&path).map_err(|e| StoreError::Open {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        let tx = db.begin_write().map_err(io)?;
        tx.open_table(REVISIONS).map_err(io)?;
        tx.commit().map_err(io)?;
        Ok(Store { db })
    }

    /// Every revision, in key order (by component, then number).
    pub fn revisions(&self) -> Result<Vec<RevisionRecord>, StoreError> {
        let tx = self.db.begin_read().map_err(io)?;
        let table = tx.open_table(REVISIONS).map_err(io)?;
        let mut out = Vec::new();
        for item in table.iter().map_err(io)? {
            let (_, value) = item.map_err(io)?;
            match serde_json::from_slice::<RevisionRecord>(value.value()) {
                Ok(r) => out.push(r),
                Err(e) => tracing::warn!(error = %e, "skipping an unreadable revision record"),
            }
        }
        Ok(out)
    }

    /// Saves new revisions in one transaction.
    pub fn add_revisions(&self, records: &[RevisionRecord]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let tx = self.db.begin_write().map_err(io)?;
        {
            let mut table = tx.open_table(REVISIONS).map_err(io)?;
            for r in records {
                let json = serde_json::to_vec(r).map_err(io)?;
                table
                    .insert(r.key().as_str(), json.as_slice())
                    .map_err(io)?;
            }
        }
        tx.commit().map_err(io)
    }
}
