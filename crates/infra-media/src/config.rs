//! The configuration keys this adapter owns: where pictures are kept.

use std::fmt;
use std::path::PathBuf;

use domain::settings::InvalidSetting;
use secrecy::SecretString;
use serde::{Deserialize, Deserializer};

/// Where pictures go without S3: `media` in the working directory.
pub const DEFAULT_MEDIA_DIR: &str = "media";

/// The region S3-compatible servers other than AWS accept when they ignore it.
pub const DEFAULT_S3_REGION: &str = "us-east-1";

/// The media keys. Empty values count as unset.
#[derive(Clone, Deserialize)]
#[serde(default)]
pub struct MediaSettings {
    /// The directory uploaded pictures are kept in when S3 is not configured.
    pub media_dir: PathBuf,
    /// The S3 bucket: when set, pictures go there instead of `MEDIA_DIR`.
    #[serde(deserialize_with = "optional_text")]
    pub media_s3_bucket: Option<String>,
    /// The S3 endpoint, `https://…` (`http://` for a local server).
    #[serde(deserialize_with = "optional_text")]
    pub media_s3_endpoint: Option<String>,
    /// The bucket's region.
    pub media_s3_region: String,
    #[serde(deserialize_with = "optional_text")]
    pub media_s3_access_key_id: Option<String>,
    #[serde(deserialize_with = "optional_secret")]
    pub media_s3_secret_access_key: Option<SecretString>,
}

impl fmt::Debug for MediaSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MediaSettings")
            .field("media_dir", &self.media_dir)
            .field("media_s3_bucket", &self.media_s3_bucket)
            .field("media_s3_endpoint", &self.media_s3_endpoint)
            .field("media_s3_region", &self.media_s3_region)
            .finish_non_exhaustive()
    }
}

impl Default for MediaSettings {
    fn default() -> Self {
        Self {
            media_dir: PathBuf::from(DEFAULT_MEDIA_DIR),
            media_s3_bucket: None,
            media_s3_endpoint: None,
            media_s3_region: DEFAULT_S3_REGION.to_owned(),
            media_s3_access_key_id: None,
            media_s3_secret_access_key: None,
        }
    }
}

/// A complete S3 configuration.
#[derive(Clone)]
pub struct S3Settings {
    pub bucket: String,
    pub endpoint: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: SecretString,
}

impl fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Settings")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

/// Where pictures are kept, as the settings decide.
#[derive(Debug, Clone)]
pub enum MediaTarget {
    Local(PathBuf),
    S3(S3Settings),
}

impl MediaSettings {
    /// Checks the keys together: an S3 bucket needs its endpoint and credentials, and
    /// S3 keys without a bucket are a mistake worth stopping for.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        self.target().map(|_| ())
    }

    /// The storage these settings choose.
    pub fn target(&self) -> Result<MediaTarget, InvalidSetting> {
        let Some(bucket) = self.media_s3_bucket.clone() else {
            for (key, set) in [
                ("MEDIA_S3_ENDPOINT", self.media_s3_endpoint.is_some()),
                (
                    "MEDIA_S3_ACCESS_KEY_ID",
                    self.media_s3_access_key_id.is_some(),
                ),
                (
                    "MEDIA_S3_SECRET_ACCESS_KEY",
                    self.media_s3_secret_access_key.is_some(),
                ),
            ] {
                if set {
                    return Err(InvalidSetting::new(
                        key,
                        "is set but MEDIA_S3_BUCKET is not (set the bucket to use S3)",
                    ));
                }
            }
            if self.media_dir.as_os_str().is_empty() {
                return Err(InvalidSetting::new("MEDIA_DIR", "must not be empty"));
            }
            return Ok(MediaTarget::Local(self.media_dir.clone()));
        };
        if !is_bucket_name(&bucket) {
            return Err(InvalidSetting::new(
                "MEDIA_S3_BUCKET",
                "must be 3–63 lower-case letters, digits, dots and hyphens, starting and \
                 ending with a letter or digit",
            ));
        }
        let endpoint = self.media_s3_endpoint.clone().ok_or_else(|| {
            InvalidSetting::new("MEDIA_S3_ENDPOINT", "is required with MEDIA_S3_BUCKET")
        })?;
        let endpoint = endpoint.trim_end_matches('/').to_owned();
        let scheme_ok = ["https://", "http://"].iter().any(|scheme| {
            endpoint
                .strip_prefix(scheme)
                .is_some_and(|rest| !rest.is_empty() && !rest.contains(char::is_whitespace))
        });
        if !scheme_ok {
            return Err(InvalidSetting::new(
                "MEDIA_S3_ENDPOINT",
                "must be an http:// or https:// address, e.g. https://storage.yandexcloud.net",
            ));
        }
        let region = self.media_s3_region.trim();
        if region.is_empty() {
            return Err(InvalidSetting::new("MEDIA_S3_REGION", "must not be empty"));
        }
        let access_key_id = self.media_s3_access_key_id.clone().ok_or_else(|| {
            InvalidSetting::new("MEDIA_S3_ACCESS_KEY_ID", "is required with MEDIA_S3_BUCKET")
        })?;
        let secret_access_key = self.media_s3_secret_access_key.clone().ok_or_else(|| {
            InvalidSetting::new(
                "MEDIA_S3_SECRET_ACCESS_KEY",
                "is required with MEDIA_S3_BUCKET",
            )
        })?;
        Ok(MediaTarget::S3(S3Settings {
            bucket,
            endpoint,
            region: region.to_owned(),
            access_key_id,
            secret_access_key,
        }))
    }
}

/// S3's bucket naming rules, the part every S3-compatible server shares.
fn is_bucket_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    (3..=63).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'.' || *b == b'-')
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
}

fn optional_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    let value = Option::<String>::deserialize(deserializer)?;
    Ok(value
        .map(|value| value.trim().to_owned())
        .filter(|value| !value.is_empty()))
}

fn optional_secret<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<SecretString>, D::Error> {
    Ok(optional_text(deserializer)?.map(SecretString::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s3() -> MediaSettings {
        MediaSettings {
            media_s3_bucket: Some("shop-media".to_owned()),
            media_s3_endpoint: Some("http://127.0.0.1:9000/".to_owned()),
            media_s3_access_key_id: Some("key".to_owned()),
            media_s3_secret_access_key: Some(SecretString::from("wJalrXUtnFEMI-K7MDENG")),
            ..MediaSettings::default()
        }
    }

    #[test]
    fn without_a_bucket_pictures_go_to_media_dir() {
        assert!(matches!(
            MediaSettings::default().target(),
            Ok(MediaTarget::Local(dir)) if dir == std::path::Path::new("media")
        ));
    }

    #[test]
    fn a_complete_s3_configuration_is_used() {
        let Ok(MediaTarget::S3(target)) = s3().target() else {
            panic!("expected S3");
        };
        assert_eq!(target.endpoint, "http://127.0.0.1:9000");
        assert_eq!(target.region, "us-east-1");
    }

    #[test]
    fn an_incomplete_s3_configuration_names_the_missing_key() {
        let mut settings = s3();
        settings.media_s3_secret_access_key = None;
        assert_eq!(
            settings.target().unwrap_err().key,
            "MEDIA_S3_SECRET_ACCESS_KEY"
        );
        let mut settings = s3();
        settings.media_s3_endpoint = Some("storage.example.com".to_owned());
        assert_eq!(settings.target().unwrap_err().key, "MEDIA_S3_ENDPOINT");
        let mut settings = s3();
        settings.media_s3_bucket = Some("Shop_Media".to_owned());
        assert_eq!(settings.target().unwrap_err().key, "MEDIA_S3_BUCKET");
        let mut settings = s3();
        settings.media_s3_bucket = None;
        assert_eq!(settings.target().unwrap_err().key, "MEDIA_S3_ENDPOINT");
    }

    #[test]
    fn the_secret_never_prints() {
        let Ok(MediaTarget::S3(target)) = s3().target() else {
            panic!("expected S3");
        };
        assert!(!format!("{target:?}").contains("wJalrXUtnFEMI"));
        assert!(!format!("{:?}", s3()).contains("wJalrXUtnFEMI"));
    }
}
