//! The adapter against a fake Telegram (wiremock): what it sends, and how it reads the
//! answers. One binary, so the crate and its dependencies are linked once.

// clippy.toml allows unwrap/expect inside #[test] functions, but not in the helpers they
// call; here too a failed unwrap is simply a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod chats;
mod check_chat;
mod errors;
mod polling;
mod rendering;
mod secrets;
mod sending;
mod support;
mod welcome;
