//! Adapters for BotShop's media ports ([`domain::media`]): [`ImageCodec`] re-encodes
//! uploaded pictures with the `image` crate; [`LocalMediaStore`] keeps them in
//! `MEDIA_DIR`, [`S3MediaStore`] in an S3-compatible bucket shared by every instance.
//!
//! Architecture invariant: this crate depends on `domain` and on no other adapter.

pub mod codec;
pub mod config;
pub mod local;
pub mod s3;

use std::sync::Arc;

use domain::media::{MediaStore, MediaStoreError};

pub use codec::ImageCodec;
pub use config::{MediaSettings, MediaTarget, S3Settings};
pub use local::LocalMediaStore;
pub use s3::S3MediaStore;

/// The store `target` names, checked for writing (a shop that cannot keep an upload
/// should say so at start-up, not at the first upload).
pub async fn open(target: &MediaTarget) -> Result<Arc<dyn MediaStore>, MediaStoreError> {
    let store: Arc<dyn MediaStore> = match target {
        MediaTarget::Local(dir) => Arc::new(LocalMediaStore::open(dir.clone()).await?),
        MediaTarget::S3(settings) => Arc::new(S3MediaStore::new(settings)?),
    };
    store.check().await?;
    Ok(store)
}
