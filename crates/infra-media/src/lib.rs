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

/// The store `target` names, checked for writing: a directory that cannot be written is
/// an error (a shop that cannot keep an upload should say so at start-up, not at the first
/// upload); a bucket that cannot be reached now is logged as a warning, since an outage of
/// the storage service must not keep the shop from starting (uploads answer 503 meanwhile).
pub async fn open(target: &MediaTarget) -> Result<Arc<dyn MediaStore>, MediaStoreError> {
    match target {
        MediaTarget::Local(dir) => {
            let store = LocalMediaStore::open(dir.clone()).await?;
            store.check().await?;
            Ok(Arc::new(store))
        }
        MediaTarget::S3(settings) => {
            let store = S3MediaStore::new(settings)?;
            if let Err(error) = store.check().await {
                tracing::warn!(
                    error = format!("{:#}", error.0),
                    "the S3 bucket for pictures cannot be written now; uploads will fail until it can"
                );
            }
            Ok(Arc::new(store))
        }
    }
}
