//! The public catalog: no authentication.

use actix_web::{HttpRequest, HttpResponse, web};
use domain::catalog::{ProductFilter, ProductQueryInput, bool_param};
use domain::{CategoryId, FieldError, ProductId};

use super::cache::{BrowserCaching, Keep, Loaded, serve_cached};
use super::{page, path_id};
use crate::ApiState;
use crate::catalog_cache::CatalogCache;
use crate::dto::{CategoryDto, ListQuery, ProductDto};
use crate::error::ApiError;
use crate::extract::int_param;

/// Categories, one level of the tree at a time: the roots, or with `parent_id` that
/// category's children; by `sort_order`, then `id`. Only visible categories: active, under
/// active ones.
#[utoipa::path(
    get,
    path = "/api/v1/categories",
    tag = "catalog",
    params(
        ("parent_id" = Option<i64>, Query, minimum = 1, description = "List this category's children instead of the roots (a hidden or missing category has none)"),
        ("include_children" = Option<bool>, Query, description = "`true`: each category carries its visible `children` (one level)"),
        ("If-None-Match" = Option<String>, Header, description = "An `ETag` from an earlier answer: 304 when unchanged"),
        super::PageParams,
    ),
    responses(
        (status = 200, description = "One page of categories, as a JSON array", body = Vec<CategoryDto>,
            headers(("X-Total-Count" = u64, description = "How many match, every page together"), ("Link" = String, description = "RFC 8288 links to the neighbouring pages, with the same filters: `<…&limit=L&offset=O>; rel=\"next\"`, `rel=\"prev\"`; absent on a single page"), ("ETag" = String, description = "Validator for If-None-Match"), ("Cache-Control" = String, description = "`public, max-age=N`, N being at most `CATALOG_CACHE_TTL` seconds (what is left of the server's own copy); `no-cache` when nothing is"))),
        (status = 304, description = "Unchanged since the `ETag` in `If-None-Match`"),
        (status = 422, response = crate::openapi::InvalidQuery),
        (status = 429, response = crate::openapi::RateLimited),
        (status = 503, response = crate::openapi::Unavailable),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn list_categories(
    req: HttpRequest,
    state: web::Data<ApiState>,
    cache: web::Data<CatalogCache>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = page(&query)?;
    let mut errors = Vec::new();
    let parent = match int_param("parent_id", query.parent_id.as_deref()) {
        Ok(Some(id)) if id > 0 => Some(CategoryId(id)),
        Ok(None) => None,
        Ok(Some(_)) | Err(_) => {
            errors.push(FieldError::new(
                "parent_id",
                "invalid_id",
                "parent_id must be a positive integer",
            ));
            None
        }
    };
    let with_children = bool_param(
        "include_children",
        query.include_children.as_deref(),
        &mut errors,
    );
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let key = format!(
        "categories:{parent:?}:{with_children}:{}:{}",
        page.limit(),
        page.offset()
    );
    serve_cached(
        &req,
        &cache,
        key,
        false,
        BrowserCaching::UntilServerExpiry,
        Some(page),
        || async {
            let categories = state.catalog.list_categories(parent, page).await?;
            let mut body: Vec<CategoryDto> = categories
                .items
                .into_iter()
                .map(CategoryDto::from)
                .collect();
            if with_children {
                let ids: Vec<CategoryId> = body.iter().map(|c| CategoryId(c.id)).collect();
                let children = state.catalog.child_categories(&ids).await?;
                for category in &mut body {
                    category.children = Some(
                        children
                            .iter()
                            .filter(|child| child.parent_id == Some(CategoryId(category.id)))
                            .cloned()
                            .map(CategoryDto::from)
                            .collect(),
                    );
                }
            }
            Ok(Loaded {
                total: Some(categories.total),
                body,
                products: Vec::new(),
                keep: Keep::Always,
            })
        },
    )
    .await
}

/// One category, if it is visible (active, under active ones).
#[utoipa::path(
    get,
    path = "/api/v1/categories/{id}",
    tag = "catalog",
    params(
        ("id" = i64, Path, minimum = 1, description = "The category's id"),
        ("If-None-Match" = Option<String>, Header, description = "An `ETag` from an earlier answer: 304 when unchanged"),
    ),
    responses(
        (status = 200, description = "The category", body = CategoryDto,
            headers(("ETag" = String, description = "Validator for If-None-Match"), ("Cache-Control" = String, description = "`public, max-age=N`, N at most `CATALOG_CACHE_TTL` seconds"))),
        (status = 304, description = "Unchanged since the `ETag` in `If-None-Match`"),
        (status = 404, response = crate::openapi::NotFound),
        (status = 422, response = crate::openapi::InvalidQuery),
        (status = 429, response = crate::openapi::RateLimited),
        (status = 503, response = crate::openapi::Unavailable),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn get_category(
    req: HttpRequest,
    state: web::Data<ApiState>,
    cache: web::Data<CatalogCache>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = CategoryId(path_id(&id)?);
    serve_cached(
        &req,
        &cache,
        format!("category:{id}"),
        false,
        BrowserCaching::UntilServerExpiry,
        None,
        || async {
            match state.catalog.find_category(id).await? {
                Some(category) => Ok(Loaded {
                    body: CategoryDto::from(category),
                    products: Vec::new(),
                    total: None,
                    keep: Keep::Always,
                }),
                None => Err(ApiError::NotFound("Category not found")),
            }
        },
    )
    .await
}

/// Active products: search, filter and sort, combined with pagination.
///
/// A JSON array; `X-Total-Count` says how many match and `Link` leads to the neighbouring
/// pages. Invalid parameters (a negative price, an unknown `sort`, `limit` over 500) get a
/// 422 naming the parameter.
#[utoipa::path(
    get,
    path = "/api/v1/products",
    tag = "catalog",
    params(
        ("category_id" = Option<i64>, Query, minimum = 1, description = "Only this category's own products"),
        ("include_descendants" = Option<bool>, Query, description = "With `category_id`, `true`: also the products of its subcategories, all levels"),
        ("q" = Option<String>, Query, max_length = 100, pattern = r"^[^\u0000-\u0008\u000B-\u001F\u007F-\u009F]*$",
            description = "Case-insensitive search in name and description (Cyrillic too; `ё` matches `е`): at most 100 characters, no control characters other than newline and tab", example = "пицца"),
        ("min_price" = Option<String>, Query, pattern = r"^[0-9]{1,10}(?:\.[0-9]{1,2})?$",
            description = "Lowest price, roubles (`100` or `99.90`): up to ten digits, then optionally a point and one or two", example = "100"),
        ("max_price" = Option<String>, Query, pattern = r"^[0-9]{1,10}(?:\.[0-9]{1,2})?$",
            description = "Highest price, roubles, written like `min_price`; below `min_price`, nothing matches", example = "1000"),
        ("in_stock" = Option<bool>, Query, description = "`true`: only products that can be ordered now"),
        ("sort" = Option<crate::dto::ProductSortParam>, Query, description = "`default` (sort_order, id), `price_asc`, `price_desc` or `newest`", example = "price_asc"),
        ("If-None-Match" = Option<String>, Header, description = "An `ETag` from an earlier answer: 304 when unchanged"),
        super::PageParams,
    ),
    responses(
        (status = 200, description = "One page of products, as a JSON array", body = Vec<ProductDto>,
            headers(("X-Total-Count" = u64, description = "How many match, every page together"), ("Link" = String, description = "RFC 8288 links to the neighbouring pages, with the same filters: `<…&limit=L&offset=O>; rel=\"next\"`, `rel=\"prev\"`; absent on a single page"), ("ETag" = String, description = "Validator for If-None-Match"), ("Cache-Control" = String, description = "`no-cache`: the answer shows stock, so revalidate it with `If-None-Match` every time"))),
        (status = 304, description = "Unchanged since the `ETag` in `If-None-Match`"),
        (status = 422, response = crate::openapi::InvalidQuery),
        (status = 429, response = crate::openapi::RateLimited),
        (status = 503, response = crate::openapi::Unavailable),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn list_products(
    req: HttpRequest,
    state: web::Data<ApiState>,
    cache: web::Data<CatalogCache>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = page(&query)?;
    let filter = ProductFilter::parse(ProductQueryInput {
        category_id: int_param("category_id", query.category_id.as_deref())?,
        include_descendants: query.include_descendants.as_deref(),
        q: query.q.as_deref(),
        min_price: query.min_price.as_deref(),
        max_price: query.max_price.as_deref(),
        in_stock: query.in_stock.as_deref(),
        sort: query.sort.as_deref(),
    })
    .map_err(ApiError::Validation)?;
    // The validated filter, not the raw query: `?q=Пицца` and `?q=пицца` share an entry.
    let key = format!("products:{filter:?}:{}:{}", page.limit(), page.offset());
    let stock_filtered = filter.in_stock_only;
    // Most searches are asked once: kept only when asked again, they never push the
    // catalog's pages out (nor fill the memory).
    let keep = if filter.search.is_some() {
        Keep::WhenAskedAgain
    } else {
        Keep::Always
    };
    serve_cached(
        &req,
        &cache,
        key,
        stock_filtered,
        BrowserCaching::Revalidate,
        Some(page),
        || async {
            let products = state.catalog.list_products(filter, page).await?;
            Ok(Loaded {
                keep,
                products: products.items.iter().map(|p| p.id.0).collect(),
                total: Some(products.total),
                body: products
                    .items
                    .into_iter()
                    .map(ProductDto::from)
                    .collect::<Vec<_>>(),
            })
        },
    )
    .await
}

/// One active product.
///
/// An inactive product is a 404, exactly like a missing one.
#[utoipa::path(
    get,
    path = "/api/v1/products/{id}",
    tag = "catalog",
    params(
        ("id" = i64, Path, minimum = 1, description = "The product's id"),
        ("If-None-Match" = Option<String>, Header, description = "An `ETag` from an earlier answer: 304 when unchanged"),
    ),
    responses(
        (status = 200, description = "The product", body = ProductDto,
            headers(("ETag" = String, description = "Validator for If-None-Match"), ("Cache-Control" = String, description = "`no-cache`: the answer shows stock, so revalidate it with `If-None-Match` every time"))),
        (status = 304, description = "Unchanged since the `ETag` in `If-None-Match`"),
        (status = 404, response = crate::openapi::NotFound),
        (status = 422, response = crate::openapi::InvalidQuery),
        (status = 429, response = crate::openapi::RateLimited),
        (status = 503, response = crate::openapi::Unavailable),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn get_product(
    req: HttpRequest,
    state: web::Data<ApiState>,
    cache: web::Data<CatalogCache>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = ProductId(path_id(&id)?);
    serve_cached(
        &req,
        &cache,
        format!("product:{id}"),
        false,
        BrowserCaching::Revalidate,
        None,
        || async {
            match state.catalog.find_active_product(id).await? {
                Some(product) => Ok(Loaded {
                    body: ProductDto::from(product),
                    products: vec![id.0],
                    total: None,
                    keep: Keep::Always,
                }),
                None => Err(ApiError::NotFound("Product not found")),
            }
        },
    )
    .await
}
