//! The public catalog: no authentication.

use actix_web::{HttpResponse, web};
use domain::ports::ProductFilter;
use domain::{CategoryId, ProductId};

use super::{page, path_id};
use crate::ApiState;
use crate::dto::{CategoryDto, ListQuery, PageDto, ProductDto};
use crate::error::ApiError;
use crate::extract::int_param;

/// Categories by `sort_order`, then `id`.
#[utoipa::path(
    get,
    path = "/api/v1/categories",
    tag = "catalog",
    params(super::PageParams),
    responses(
        (status = 200, description = "One page of categories", body = PageDto<CategoryDto>),
        (status = 422, response = crate::openapi::InvalidQuery),
        (status = 429, response = crate::openapi::RateLimited),
        (status = 503, response = crate::openapi::Unavailable),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn list_categories(
    state: web::Data<ApiState>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = page(&query)?;
    let categories = state.catalog.list_categories(page).await?;
    Ok(HttpResponse::Ok().json(PageDto::from_page(categories, CategoryDto::from)))
}

/// Active products by `sort_order`, then `id`, optionally of one category.
#[utoipa::path(
    get,
    path = "/api/v1/products",
    tag = "catalog",
    params(
        ("category_id" = Option<i64>, Query, minimum = 1, description = "Only this category's products"),
        super::PageParams,
    ),
    responses(
        (status = 200, description = "One page of products", body = PageDto<ProductDto>),
        (status = 422, response = crate::openapi::InvalidQuery),
        (status = 429, response = crate::openapi::RateLimited),
        (status = 503, response = crate::openapi::Unavailable),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn list_products(
    state: web::Data<ApiState>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = page(&query)?;
    let category_id = match int_param("category_id", query.category_id.as_deref())? {
        Some(id) if id <= 0 => {
            return Err(ApiError::validation(
                "category_id",
                "invalid_id",
                "category_id must be a positive integer",
            ));
        }
        other => other.map(CategoryId),
    };
    let products = state
        .catalog
        .list_products(ProductFilter { category_id }, page)
        .await?;
    Ok(HttpResponse::Ok().json(PageDto::from_page(products, ProductDto::from)))
}

/// One active product.
///
/// An inactive product is a 404, exactly like a missing one.
#[utoipa::path(
    get,
    path = "/api/v1/products/{id}",
    tag = "catalog",
    params(("id" = i64, Path, minimum = 1, description = "The product's id")),
    responses(
        (status = 200, description = "The product", body = ProductDto),
        (status = 404, response = crate::openapi::NotFound),
        (status = 422, response = crate::openapi::InvalidQuery),
        (status = 429, response = crate::openapi::RateLimited),
        (status = 503, response = crate::openapi::Unavailable),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn get_product(
    state: web::Data<ApiState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = ProductId(path_id(&id)?);
    match state.catalog.find_active_product(id).await? {
        Some(product) => Ok(HttpResponse::Ok().json(ProductDto::from(product))),
        None => Err(ApiError::NotFound),
    }
}
