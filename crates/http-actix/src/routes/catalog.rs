//! The public catalog: no authentication.

use actix_web::{HttpResponse, web};
use domain::ports::ProductFilter;
use domain::{CategoryId, ProductId};

use super::{page, path_id};
use crate::ApiState;
use crate::dto::{CategoryDto, ListQuery, PageDto, ProductDto};
use crate::error::ApiError;
use crate::extract::int_param;

/// `GET /categories`
pub async fn list_categories(
    state: web::Data<ApiState>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = page(&query)?;
    let categories = state.catalog.list_categories(page).await?;
    Ok(HttpResponse::Ok().json(PageDto::from_page(categories, CategoryDto::from)))
}

/// `GET /products?category_id=`
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

/// `GET /products/{id}`: inactive and missing products are both 404.
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
