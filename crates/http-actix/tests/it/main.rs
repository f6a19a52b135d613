//! HTTP tests of every endpoint and error, with mockall doubles of the ports.

mod catalog;
mod errors;
mod orders;
mod support;
mod users;
