use actix_web::HttpResponse;

use crate::dto::UserDto;
use crate::extract::Customer;

/// The authenticated customer.
///
/// The first authenticated request creates the customer; later ones update their
/// username and names from Telegram.
#[utoipa::path(
    get,
    path = "/api/v1/users/me",
    tag = "customer",
    security(("tma" = [])),
    responses(
        (status = 200, description = "The customer", body = UserDto),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 429, response = crate::openapi::RateLimited),
        (status = 503, response = crate::openapi::Unavailable),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn me(Customer(user): Customer) -> HttpResponse {
    HttpResponse::Ok().json(UserDto::from(user))
}
