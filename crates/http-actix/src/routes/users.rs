use actix_web::HttpResponse;

use crate::dto::UserDto;
use crate::extract::Customer;

/// `GET /users/me`
pub async fn me(Customer(user): Customer) -> HttpResponse {
    HttpResponse::Ok().json(UserDto::from(user))
}
