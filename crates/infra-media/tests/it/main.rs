//! infra-media's integration tests: the re-encoder on real pictures, the local store on
//! a real directory, and the S3 store against an S3-compatible server when one is given.

// clippy.toml allows unwrap/expect inside #[test] functions, but not in the helpers they
// call; here too a failed unwrap is simply a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod codec;
mod local;
mod s3;
