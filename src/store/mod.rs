//! The store: gantry's own history in one embedded database (`redb`, pure Rust, ACID, one file
//! in the state directory). It holds what neither the folder (desired state) nor the Docker
//! labels (running replicas) can: the revisions each component has had, so that revision
//! numbers and rollbacks survive a daemon restart, and each component's rollout bookkeeping,
//! so that a canary split does too. Later: the usage ledger and events.
//!
//! Values are JSON: readable with any tool, and tolerant of fields added later.

use std::collections::BTreeMap;
use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::reconcile::plan::ComponentId;
use crate::reconcile::traffic::Rollout;
use crate::spec::normalize::DesiredComponent;

/// `<namespace>/<service>/<component>/<number:05>` → [`RevisionRecord`] as JSON.
const REVISIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("revisions");

/// `<namespace>/<service>/<component>` → [`ComponentRecord`] as JSON.
const COMPONENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("components");

/// What KServe keeps in a component's status and gantry must not forget on a restart: the
/// rollout bookkeeping behind the canary traffic split, and the latest revision that came up
/// (Knative's `latestReadyRevisionName`, which never goes back).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ComponentRecord {
    #[serde(flatten)]
    pub rollout: Rollout,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_ready_revision: Option<String>,
}

impl ComponentRecord {
    /// Whether the record names `revision`: then it came up once (ready, or rolled out).
    pub fn mentions(&self, revision: &str) -> bool {
        [
            &self.latest_ready_revision,
            &self.rollout.latest_rolledout_revision,
            &self.rollout.previous_rolledout_revision,
        ]
        .into_iter()
        .any(|r| r.as_deref() == Some(revision))
    }
}

fn component_key(id: &ComponentId) -> String {
    format!("{}/{}/{}", id.namespace, id.service, id.component)
}

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
        tx.open_table(COMPONENTS).map_err(io)?;
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

    /// Every component's record.
    pub fn components(&self) -> Result<BTreeMap<ComponentId, ComponentRecord>, StoreError> {
        let tx = self.db.begin_read().map_err(io)?;
        let table = tx.open_table(COMPONENTS).map_err(io)?;
        let mut out = BTreeMap::new();
        for item in table.iter().map_err(io)? {
            let (key, value) = item.map_err(io)?;
            let mut parts = key.value().splitn(3, '/').map(str::to_string);
            let (Some(namespace), Some(service), Some(component)) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            match serde_json::from_slice::<ComponentRecord>(value.value()) {
                Ok(r) => {
                    let id = ComponentId {
                        namespace,
                        service,
                        component,
                    };
                    out.insert(id, r);
                }
                Err(e) => tracing::warn!(error = %e, "skipping an unreadable component record"),
            }
        }
        Ok(out)
    }

    /// Writes the records that changed and removes those of components that are gone, in
    /// one transaction.
    pub fn save_components<'a>(
        &self,
        changed: impl IntoIterator<Item = (&'a ComponentId, &'a ComponentRecord)>,
        removed: impl IntoIterator<Item = &'a ComponentId>,
    ) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(io)?;
        {
            let mut table = tx.open_table(COMPONENTS).map_err(io)?;
            for (key, record) in changed {
                let json = serde_json::to_vec(record).map_err(io)?;
                table
                    .insert(component_key(key).as_str(), json.as_slice())
                    .map_err(io)?;
            }
            for key in removed {
                table.remove(component_key(key).as_str()).map_err(io)?;
            }
        }
        tx.commit().map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(service: &str) -> ComponentId {
        ComponentId {
            namespace: "default".into(),
            service: service.into(),
            component: "predictor".into(),
        }
    }

    #[test]
    fn component_records_survive_reopening_and_can_be_removed() {
        let dir = tempfile::tempdir().unwrap();
        let record = ComponentRecord {
            rollout: Rollout {
                latest_rolledout_revision: Some("iris-predictor-00001".into()),
                previous_rolledout_revision: None,
            },
            latest_ready_revision: Some("iris-predictor-00002".into()),
        };
        {
            let store = Store::open(dir.path()).unwrap();
            assert!(store.components().unwrap().is_empty());
            store
                .save_components([(&id("iris"), &record), (&id("other"), &record)], [])
                .unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        let all = store.components().unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[&id("iris")], record);
        store.save_components([], [&id("other")]).unwrap();
        assert_eq!(
            store.components().unwrap().into_keys().collect::<Vec<_>>(),
            [id("iris")]
        );
    }
}
