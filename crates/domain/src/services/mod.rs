//! Use cases with logic of their own, one module each. Plain reads go straight to the
//! repository ports.
//!
//! - [`authenticate`]: an `Authorization` header becomes a known customer
//!   ([`authenticate::Authenticator`]);
//! - [`place_order`]: a cart becomes an order, idempotently
//!   ([`place_order::OrderService`]).

pub mod authenticate;
pub mod place_order;
