//! BotShop's binary crate: configuration, telemetry, wiring and the command line.
//!
//! It is the only crate that knows every adapter. It holds no shop rules: those live in
//! `domain`. The library half exists so that end-to-end tests can build the real
//! [`app::Application`] on port 0.

pub mod app;
pub mod cli;
pub mod config;
pub mod demo;
pub mod telemetry;
