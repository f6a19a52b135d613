//! HTTP tests of every endpoint and error, with mockall doubles of the ports.

// A failed unwrap in a test is a failed test, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin;
mod catalog;
mod cors;
mod docs;
mod errors;
mod limits;
mod media;
mod observability;
mod ops;
mod orders;
mod panel;
mod support;
mod telegram;
mod users;
