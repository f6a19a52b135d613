//! Pictures in a directory on local disk (`MEDIA_DIR`): one file per name.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use anyhow::Context;
use async_trait::async_trait;
use domain::media::{MediaName, MediaStore, MediaStoreError, StoredMedia};

/// A directory of pictures. Each is written to a temporary file in the same directory
/// and renamed into place, so a reader (or a crash) never sees half a picture.
#[derive(Debug, Clone)]
pub struct LocalMediaStore {
    dir: PathBuf,
}

impl LocalMediaStore {
    /// The store in `dir`, which is created if missing.
    pub async fn open(dir: impl Into<PathBuf>) -> Result<Self, MediaStoreError> {
        let dir = dir.into();
        tokio::fs::create_dir_all(&dir)
            .await
            .with_context(|| format!("could not create MEDIA_DIR {}", dir.display()))
            .map_err(MediaStoreError)?;
        Ok(Self { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, name: &MediaName) -> PathBuf {
        // `MediaName` is 64 hex digits, a dot and an extension: never a path of its own.
        self.dir.join(name.to_string())
    }

    async fn write_new(&self, target: &Path, bytes: &[u8]) -> anyhow::Result<()> {
        let temporary = self
            .dir
            .join(format!(".upload-{}.tmp", uuid::Uuid::new_v4().simple()));
        let written = async {
            let mut file = tokio::fs::File::create(&temporary)
                .await
                .with_context(|| format!("could not create {}", temporary.display()))?;
            tokio::io::AsyncWriteExt::write_all(&mut file, bytes)
                .await
                .with_context(|| format!("could not write {}", temporary.display()))?;
            // On disk before it gets its name: a name is served as immutable for a year, and
            // a picture already there is never written again, so a crash must not leave a
            // name on half a picture.
            file.sync_all()
                .await
                .with_context(|| format!("could not write {}", temporary.display()))?;
            drop(file);
            tokio::fs::rename(&temporary, target)
                .await
                .with_context(|| format!("could not move a picture to {}", target.display()))?;
            // The rename itself, on disk (best effort: not every platform opens a directory).
            if let Ok(dir) = tokio::fs::File::open(&self.dir).await {
                let _ = dir.sync_all().await;
            }
            Ok(())
        }
        .await;
        if written.is_err() {
            let _ = tokio::fs::remove_file(&temporary).await;
        }
        written
    }
}

#[async_trait]
impl MediaStore for LocalMediaStore {
    async fn put(&self, name: &MediaName, bytes: Vec<u8>) -> Result<(), MediaStoreError> {
        let target = self.path(name);
        // The name is the content's hash: a file already there holds these bytes.
        match tokio::fs::try_exists(&target).await {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(error) => {
                return Err(MediaStoreError(
                    anyhow::Error::new(error)
                        .context(format!("could not look for {}", target.display())),
                ));
            }
        }
        self.write_new(&target, &bytes)
            .await
            .map_err(MediaStoreError)
    }

    async fn get(&self, name: &MediaName) -> Result<Option<StoredMedia>, MediaStoreError> {
        let path = self.path(name);
        match tokio::fs::read(&path).await {
            Ok(bytes) => Ok(Some(StoredMedia { bytes })),
            Err(error) if error.kind() == ErrorKind::NotFound => Ok(None),
            Err(error) => Err(MediaStoreError(
                anyhow::Error::new(error).context(format!("could not read {}", path.display())),
            )),
        }
    }

    async fn check(&self) -> Result<(), MediaStoreError> {
        let probe = self.dir.join(".write-check");
        self.write_new(&probe, b"ok")
            .await
            .with_context(|| format!("MEDIA_DIR {} is not writable", self.dir.display()))
            .map_err(MediaStoreError)
    }
}
