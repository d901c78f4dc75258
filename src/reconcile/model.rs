//! Which model a revision's replicas mount, and whether it is on this machine yet: the
//! reconciler's side of [`crate::storage`].

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use crate::runtime::convert::ModelMounts;
use crate::spec::catalog::{ObjectKey, OtherObject};
use crate::spec::normalize::RevisionTemplate;
use crate::storage::credentials::{self, Access, Sources};
use crate::storage::models::{ModelState, ModelView, Models};
use crate::storage::uri::{self, ModelSource};
use crate::storage::StorageConfig;

use super::plan::ModelWait;

/// What the reconciler needs to find models.
#[derive(Clone)]
pub struct ModelAccess {
    pub models: Arc<Models>,
    pub config: StorageConfig,
    /// The daemon's environment (`AWS_*`, `HF_TOKEN`, ...), read once at start.
    pub env: BTreeMap<String, String>,
}

impl std::fmt::Debug for ModelAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelAccess")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// A revision's model.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelFor {
    /// No storage URI, or a local path (mounted as it is by the conversion).
    Nothing,
    Mount(ModelMounts),
    Wait(ModelWait),
}

impl ModelAccess {
    /// Where the model of `template` stands; starts fetching it when it is not here. Never
    /// waits.
    pub fn model_for(
        &self,
        objects: &BTreeMap<ObjectKey, OtherObject>,
        namespace: &str,
        template: &RevisionTemplate,
        source_dir: &Path,
    ) -> ModelFor {
        let Some(text) = template.storage_uri.as_deref().filter(|u| !u.is_empty()) else {
            return ModelFor::Nothing;
        };
        // A URI that does not parse is the conversion's error to report, with its field.
        let Ok(source) = uri::parse(text, source_dir) else {
            return ModelFor::Nothing;
        };
        match &source {
            ModelSource::Local(_) => ModelFor::Nothing,
            ModelSource::Pvc { claim, path } => self.volume(claim, path),
            _ => {
                let access = match self.access(objects, namespace, template) {
                    Ok(a) => a,
                    Err(e) => {
                        return ModelFor::Wait(ModelWait::Failed(format!(
                            "{}: {e}",
                            source.display()
                        )))
                    }
                };
                match self.models.request(&source, &access) {
                    ModelState::Ready(dir) => ModelFor::Mount(ModelMounts {
                        model: dir,
                        pvc_root: None,
                    }),
                    ModelState::Fetching(progress) => ModelFor::Wait(ModelWait::Loading(format!(
                        "downloading {}: {progress}",
                        source.display()
                    ))),
                    ModelState::Failed(reason) => ModelFor::Wait(ModelWait::Failed(reason)),
                }
            }
        }
    }

    fn access(
        &self,
        objects: &BTreeMap<ObjectKey, OtherObject>,
        namespace: &str,
        template: &RevisionTemplate,
    ) -> Result<Access, String> {
        credentials::resolve(&Sources {
            objects,
            namespace,
            service_account: template.service_account_name.as_deref(),
            storage_secret: template.storage_secret_name.as_deref(),
            s3: &self.config.s3,
            hf_endpoint: &self.config.hf_endpoint,
            env: &self.env,
        })
    }

    /// A template's remote model and the access to it, when it has one.
    fn remote(
        &self,
        objects: &BTreeMap<ObjectKey, OtherObject>,
        namespace: &str,
        template: &RevisionTemplate,
        source_dir: &Path,
    ) -> Option<(ModelSource, Access)> {
        let text = template.storage_uri.as_deref()?;
        let source = uri::parse(text, source_dir)
            .ok()
            .filter(ModelSource::is_remote)?;
        let access = self.access(objects, namespace, template).ok()?;
        Some((source, access))
    }

    /// A `pvc://` claim: the host folder the config names for it.
    fn volume(&self, claim: &str, path: &str) -> ModelFor {
        let Some(root) = self.config.volumes.get(claim) else {
            return ModelFor::Wait(ModelWait::Failed(format!(
                "persistentvolumeclaim \"{claim}\" not found: name its host folder in the \
                 daemon config (storage.volumes.{claim})"
            )));
        };
        let model = if path.is_empty() {
            root.clone()
        } else {
            root.join(path)
        };
        if !model.exists() {
            return ModelFor::Wait(ModelWait::Failed(format!(
                "pvc://{claim}/{path}: {} does not exist",
                model.display()
            )));
        }
        ModelFor::Mount(ModelMounts {
            model,
            pvc_root: Some(root.clone()),
        })
    }

    /// The model of `template` as status shows it, once asked for.
    pub fn view_of(
        &self,
        objects: &BTreeMap<ObjectKey, OtherObject>,
        namespace: &str,
        template: &RevisionTemplate,
        source_dir: &Path,
    ) -> Option<ModelView> {
        let (source, access) = self.remote(objects, namespace, template, source_dir)?;
        self.models.view_of(&source, &access)
    }

    /// Keeps the models of these (namespace, template, folder) from eviction: the desired
    /// components' and those of revisions that still have replicas.
    pub fn keep<'a>(
        &self,
        objects: &BTreeMap<ObjectKey, OtherObject>,
        templates: impl Iterator<Item = (&'a str, &'a RevisionTemplate, &'a Path)>,
    ) {
        let sources: Vec<(ModelSource, Access)> = templates
            .filter_map(|(namespace, t, dir)| self.remote(objects, namespace, t, dir))
            .collect();
        self.models.keep(&sources);
    }
}
