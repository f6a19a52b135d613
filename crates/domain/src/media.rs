//! Uploaded pictures: which are accepted, how they are named, and the upload use case.
//!
//! An upload is recognised by its first bytes (never by its file name or the type the
//! client declares), decoded and re-encoded by an [`ImageProcessor`] (which drops every
//! piece of metadata, EXIF and GPS included, and caps the longer side at
//! [`MAX_SIDE`] pixels), named after the SHA-256 of the re-encoded bytes, and put in a
//! [`MediaStore`]. The same picture uploaded twice has one name and is stored once; a
//! name never changes its content, so it can be cached forever.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

/// The largest upload accepted, in bytes: 5 MiB.
pub const MAX_UPLOAD_BYTES: usize = 5 * 1024 * 1024;

/// The longest side of a stored picture, in pixels; larger ones are scaled down.
pub const MAX_SIDE: u32 = 2048;

/// The largest picture decoded, per side, in pixels. A 5 MiB PNG can claim a huge
/// canvas (a decompression bomb); anything past this is refused before its pixels are
/// allocated.
pub const MAX_DECODED_SIDE: u32 = 12_000;

/// The formats accepted and stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImageFormat {
    Jpeg,
    Png,
    Webp,
}

impl ImageFormat {
    pub const ALL: [ImageFormat; 3] = [ImageFormat::Jpeg, ImageFormat::Png, ImageFormat::Webp];

    /// The format of these bytes, from their signature; `None` for anything else.
    pub fn sniff(bytes: &[u8]) -> Option<Self> {
        if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(ImageFormat::Jpeg)
        } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(ImageFormat::Png)
        } else if bytes.len() >= 12 && &bytes[0..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
            Some(ImageFormat::Webp)
        } else {
            None
        }
    }

    /// The file extension a stored picture of this format carries.
    pub fn extension(self) -> &'static str {
        match self {
            ImageFormat::Jpeg => "jpg",
            ImageFormat::Png => "png",
            ImageFormat::Webp => "webp",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            ImageFormat::Jpeg => "image/jpeg",
            ImageFormat::Png => "image/png",
            ImageFormat::Webp => "image/webp",
        }
    }

    fn from_extension(extension: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|format| format.extension() == extension)
    }
}

/// A stored picture's name: the lower-case hex SHA-256 of its bytes and its format's
/// extension, such as `3a7b…e1.jpg`. The name is the content's, so it never changes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MediaName {
    hash: String,
    format: ImageFormat,
}

impl MediaName {
    /// The name of these (re-encoded) bytes.
    pub fn of(bytes: &[u8], format: ImageFormat) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
        let hash = digest
            .as_ref()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        Self { hash, format }
    }

    /// A name as it appears in a URL; `None` unless it is exactly 64 lower-case hex digits,
    /// a dot and a known extension (so a path can never escape the store).
    pub fn parse(name: &str) -> Option<Self> {
        let (hash, extension) = name.split_once('.')?;
        let format = ImageFormat::from_extension(extension)?;
        let hex = hash.len() == 64
            && hash
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        hex.then(|| Self {
            hash: hash.to_owned(),
            format,
        })
    }

    /// The SHA-256 of the content, in lower-case hex: a strong validator for it.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    pub fn format(&self) -> ImageFormat {
        self.format
    }
}

impl fmt::Display for MediaName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.hash, self.format.extension())
    }
}

/// A picture ready to store: re-encoded, without metadata, within [`MAX_SIDE`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessedImage {
    pub bytes: Vec<u8>,
    pub format: ImageFormat,
    pub width: u32,
    pub height: u32,
}

/// Why a picture could not be processed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImageError {
    /// The bytes carry a known signature but are not a picture that can be decoded.
    #[error("the picture could not be decoded")]
    Undecodable,
    /// The picture claims more than [`MAX_DECODED_SIDE`] pixels on a side.
    #[error("the picture is larger than {MAX_DECODED_SIDE} pixels on a side")]
    TooManyPixels,
    /// The processor failed for a reason of its own (a bug, an encoder failure).
    #[error("the picture could not be processed")]
    Failed(String),
}

/// Decodes and re-encodes pictures (an outbound port: the work is CPU-heavy, and an
/// adapter runs it where it does not block request handling).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait ImageProcessor: Send + Sync {
    /// Decodes `bytes` (already recognised as `format`), applies the orientation its
    /// metadata asks for, scales it down to at most [`MAX_SIDE`] on its longer side and
    /// encodes it again without any metadata: in the same format, except that an
    /// adapter may store a format another way (the result says which).
    async fn process(
        &self,
        format: ImageFormat,
        bytes: Vec<u8>,
    ) -> Result<ProcessedImage, ImageError>;
}

/// The media storage could not be used.
#[derive(Debug, thiserror::Error)]
#[error("the media storage failed")]
pub struct MediaStoreError(#[source] pub anyhow::Error);

/// A stored picture as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMedia {
    pub bytes: Vec<u8>,
}

/// Where pictures are kept, by name (an outbound port: local disk, or S3-compatible
/// object storage shared by several instances).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait MediaStore: Send + Sync {
    /// Stores `bytes` under `name`. Names are content hashes, so storing a name that is
    /// already there changes nothing and succeeds; a reader never sees a partial picture.
    async fn put(&self, name: &MediaName, bytes: Vec<u8>) -> Result<(), MediaStoreError>;

    /// The picture stored under `name`, or `None`.
    async fn get(&self, name: &MediaName) -> Result<Option<StoredMedia>, MediaStoreError>;

    /// Whether the storage can be written (checked at start-up).
    async fn check(&self) -> Result<(), MediaStoreError>;
}

/// Why an upload was refused.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("the picture is larger than {MAX_UPLOAD_BYTES} bytes")]
    TooLarge,
    /// Not a JPEG, PNG or WebP by its content.
    #[error("the file is not a JPEG, PNG or WebP picture")]
    UnsupportedFormat,
    #[error(transparent)]
    Image(ImageError),
    #[error(transparent)]
    Storage(#[from] MediaStoreError),
}

/// A stored upload: its name and what it became.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uploaded {
    pub name: MediaName,
    pub width: u32,
    pub height: u32,
    pub bytes: usize,
}

/// The upload use case.
#[derive(Clone)]
pub struct MediaService {
    processor: Arc<dyn ImageProcessor>,
    store: Arc<dyn MediaStore>,
}

impl fmt::Debug for MediaService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MediaService").finish_non_exhaustive()
    }
}

impl MediaService {
    pub fn new(processor: Arc<dyn ImageProcessor>, store: Arc<dyn MediaStore>) -> Self {
        Self { processor, store }
    }

    /// Checks, re-encodes and stores one uploaded picture.
    pub async fn upload(&self, bytes: Vec<u8>) -> Result<Uploaded, UploadError> {
        if bytes.len() > MAX_UPLOAD_BYTES {
            return Err(UploadError::TooLarge);
        }
        let format = ImageFormat::sniff(&bytes).ok_or(UploadError::UnsupportedFormat)?;
        let image = self
            .processor
            .process(format, bytes)
            .await
            .map_err(UploadError::Image)?;
        let name = MediaName::of(&image.bytes, image.format);
        let size = image.bytes.len();
        self.store.put(&name, image.bytes).await?;
        Ok(Uploaded {
            name,
            width: image.width,
            height: image.height,
            bytes: size,
        })
    }

    /// The picture stored under `name`, if any.
    pub async fn get(&self, name: &MediaName) -> Result<Option<StoredMedia>, MediaStoreError> {
        self.store.get(name).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

    #[test]
    fn formats_are_recognised_by_their_signature_only() {
        assert_eq!(
            ImageFormat::sniff(&[0xFF, 0xD8, 0xFF, 0xE0]),
            Some(ImageFormat::Jpeg)
        );
        assert_eq!(ImageFormat::sniff(PNG_SIGNATURE), Some(ImageFormat::Png));
        assert_eq!(
            ImageFormat::sniff(b"RIFF\x10\0\0\0WEBPVP8 "),
            Some(ImageFormat::Webp)
        );
        assert_eq!(ImageFormat::sniff(b"RIFF\x10\0\0\0WAVEfmt "), None);
        assert_eq!(ImageFormat::sniff(b"GIF89a"), None);
        assert_eq!(ImageFormat::sniff(b"<svg xmlns="), None);
        assert_eq!(ImageFormat::sniff(b""), None);
        assert_eq!(ImageFormat::sniff(&PNG_SIGNATURE[..7]), None);
    }

    #[test]
    fn a_name_is_the_sha256_of_the_bytes_and_the_extension() {
        let name = MediaName::of(b"abc", ImageFormat::Png);
        assert_eq!(
            name.to_string(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad.png"
        );
        assert_eq!(MediaName::parse(&name.to_string()), Some(name));
    }

    #[test]
    fn only_well_formed_names_parse() {
        let hash = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        for bad in [
            format!("{hash}.gif"),
            format!("{hash}.JPG"),
            format!("{}.jpg", hash.to_uppercase()),
            format!("{}.jpg", &hash[1..]),
            format!("{hash}0.jpg"),
            format!("{hash}.jpg.jpg"),
            format!("../{}.jpg", &hash[3..]),
            hash.to_owned(),
            String::new(),
        ] {
            assert_eq!(MediaName::parse(&bad), None, "{bad}");
        }
        for format in ImageFormat::ALL {
            let name = format!("{hash}.{}", format.extension());
            assert_eq!(MediaName::parse(&name).map(|n| n.format()), Some(format));
        }
    }

    fn service(processor: MockImageProcessor, store: MockMediaStore) -> MediaService {
        MediaService::new(Arc::new(processor), Arc::new(store))
    }

    #[tokio::test]
    async fn an_upload_is_stored_under_the_hash_of_what_was_re_encoded() {
        let mut processor = MockImageProcessor::new();
        processor
            .expect_process()
            .withf(|format, bytes| *format == ImageFormat::Png && bytes.starts_with(PNG_SIGNATURE))
            .returning(|_, _| {
                Ok(ProcessedImage {
                    bytes: b"re-encoded".to_vec(),
                    format: ImageFormat::Png,
                    width: 3,
                    height: 2,
                })
            });
        let expected = MediaName::of(b"re-encoded", ImageFormat::Png);
        let mut store = MockMediaStore::new();
        let stored = expected.clone();
        store
            .expect_put()
            .withf(move |name, bytes| *name == stored && bytes == b"re-encoded")
            .times(1)
            .returning(|_, _| Ok(()));
        let mut upload = PNG_SIGNATURE.to_vec();
        upload.extend_from_slice(b"original with EXIF");
        let uploaded = service(processor, store).upload(upload).await.unwrap();
        assert_eq!(
            uploaded,
            Uploaded {
                name: expected,
                width: 3,
                height: 2,
                bytes: 10
            }
        );
    }

    #[tokio::test]
    async fn unknown_content_is_refused_before_decoding() {
        let mut processor = MockImageProcessor::new();
        processor.expect_process().never();
        let mut store = MockMediaStore::new();
        store.expect_put().never();
        let result = service(processor, store)
            .upload(b"GIF89a....".to_vec())
            .await;
        assert!(
            matches!(result, Err(UploadError::UnsupportedFormat)),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn an_upload_over_the_limit_is_refused_before_decoding() {
        let mut processor = MockImageProcessor::new();
        processor.expect_process().never();
        let mut store = MockMediaStore::new();
        store.expect_put().never();
        let mut upload = PNG_SIGNATURE.to_vec();
        upload.resize(MAX_UPLOAD_BYTES + 1, 0);
        let result = service(processor, store).upload(upload).await;
        assert!(matches!(result, Err(UploadError::TooLarge)), "{result:?}");
    }

    #[tokio::test]
    async fn an_undecodable_picture_is_not_stored() {
        let mut processor = MockImageProcessor::new();
        processor
            .expect_process()
            .returning(|_, _| Err(ImageError::Undecodable));
        let mut store = MockMediaStore::new();
        store.expect_put().never();
        let result = service(processor, store)
            .upload(PNG_SIGNATURE.to_vec())
            .await;
        assert!(
            matches!(result, Err(UploadError::Image(ImageError::Undecodable))),
            "{result:?}"
        );
    }
}
