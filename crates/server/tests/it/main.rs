//! End-to-end tests: the real application on port 0, a real database, a fake Telegram.

// A failed unwrap in a test is a failed test, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin;
mod backup;
mod chats;
mod cli;
mod crash;
mod deploy;
mod e2e;
mod instances;
mod manager;
mod media;
mod panel;
mod payments;
mod process;
mod sentry;
mod shutdown;
mod support;
