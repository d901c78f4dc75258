//! Asking `storage::models::Models` for a model and waiting until it settles.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use gantry::storage::credentials::Access;
use gantry::storage::models::{ModelState, Models};
use gantry::storage::uri::parse;
use gantry::storage::ModelSettings;

/// A model cache in `dir`, 4 requests at a time, checksums on.
pub fn open(dir: &Path) -> Arc<Models> {
    Models::open(ModelSettings {
        cache_dir: dir.to_path_buf(),
        cache_limit: 0,
        parallel: 4,
        max_unpacked: 1 << 30,
        verify_checksums: true,
    })
    .unwrap()
}

/// Asks for `uri` until it is ready or failed (waiting on `Models::changes`, 30 s at most).
pub async fn settle(models: &Arc<Models>, uri: &str, access: &Access) -> ModelState {
    let source = parse(uri, Path::new("/")).unwrap();
    let mut changes = models.changes();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match models.request(&source, access) {
            ModelState::Fetching(_) => {}
            done => return done,
        }
        tokio::time::timeout_at(deadline, changes.changed())
            .await
            .expect("the model settles within 30 s")
            .unwrap();
    }
}
