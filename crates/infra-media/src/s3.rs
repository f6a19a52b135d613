//! Pictures in an S3-compatible bucket (AWS S3, MinIO, Yandex Object Storage, Selectel,
//! Cloudflare R2…), shared by every instance of the shop.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use domain::media::{MediaName, MediaStore, MediaStoreError, StoredMedia};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{
    Attribute, Attributes, ClientOptions, ObjectStore, PutOptions, PutPayload, RetryConfig,
};
use secrecy::ExposeSecret;

use crate::config::S3Settings;

/// How long one request to the bucket may take, connection included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The `Cache-Control` stored with each picture, for anyone serving the bucket directly:
/// a name never changes its content.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// A bucket of pictures, one object per name.
#[derive(Debug, Clone)]
pub struct S3MediaStore {
    store: Arc<dyn ObjectStore>,
    bucket: String,
}

impl S3MediaStore {
    /// A client for the bucket in `settings`; nothing is sent until it is used.
    pub fn new(settings: &S3Settings) -> Result<Self, MediaStoreError> {
        let store = AmazonS3Builder::new()
            .with_bucket_name(&settings.bucket)
            .with_endpoint(&settings.endpoint)
            .with_region(&settings.region)
            .with_access_key_id(&settings.access_key_id)
            .with_secret_access_key(settings.secret_access_key.expose_secret())
            // Before `with_allow_http`, which is one of the client options it replaces.
            .with_client_options(ClientOptions::new().with_timeout(REQUEST_TIMEOUT))
            .with_allow_http(settings.endpoint.starts_with("http://"))
            // Path-style addressing (`endpoint/bucket/key`) works with every S3-compatible
            // server; virtual hosts need DNS for each bucket.
            .with_virtual_hosted_style_request(false)
            .with_retry(RetryConfig {
                max_retries: 3,
                retry_timeout: Duration::from_secs(60),
                ..RetryConfig::default()
            })
            .build()
            .context("could not set up the S3 client")
            .map_err(MediaStoreError)?;
        Ok(Self {
            store: Arc::new(store),
            bucket: settings.bucket.clone(),
        })
    }

    fn failed(&self, what: &str, error: object_store::Error) -> MediaStoreError {
        // object_store's messages name the bucket and key and may quote S3's error body
        // (which can name the access key id, never the secret key).
        MediaStoreError(
            anyhow::Error::new(error)
                .context(format!("S3 bucket {}: could not {what}", self.bucket)),
        )
    }
}

#[async_trait]
impl MediaStore for S3MediaStore {
    async fn put(&self, name: &MediaName, bytes: Vec<u8>) -> Result<(), MediaStoreError> {
        let path = Path::from(name.to_string());
        // The name is the content's hash: writing it again writes the same bytes, so no
        // look first (which, without s3:ListBucket, AWS answers 403 for a missing key).
        let mut attributes = Attributes::new();
        attributes.insert(Attribute::ContentType, name.format().content_type().into());
        attributes.insert(Attribute::CacheControl, IMMUTABLE.into());
        let options = PutOptions {
            attributes,
            ..PutOptions::default()
        };
        self.store
            .put_opts(&path, PutPayload::from(bytes), options)
            .await
            .map(|_| ())
            .map_err(|error| self.failed("store a picture", error))
    }

    async fn get(&self, name: &MediaName) -> Result<Option<StoredMedia>, MediaStoreError> {
        let path = Path::from(name.to_string());
        let found = match self.store.get(&path).await {
            Ok(found) => found,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(error) => return Err(self.failed("read a picture", error)),
        };
        let bytes = found
            .bytes()
            .await
            .map_err(|error| self.failed("read a picture", error))?;
        Ok(Some(StoredMedia {
            bytes: bytes.to_vec(),
        }))
    }

    async fn check(&self) -> Result<(), MediaStoreError> {
        self.store
            .put(
                &Path::from(".botshop-write-check"),
                PutPayload::from_static(b"ok"),
            )
            .await
            .map(|_| ())
            .map_err(|error| self.failed("write (check MEDIA_S3_* and the bucket)", error))
    }
}
