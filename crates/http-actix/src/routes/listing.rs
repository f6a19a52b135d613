//! Collections as the seed has them: a JSON array, with the number of matches in an
//! `X-Total-Count` header and the neighbouring pages in an RFC 8288 `Link` header.

use actix_web::HttpRequest;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use domain::Page;
use domain::pagination::{next_page, prev_page};

/// The number of matches of a collection request, every page together.
pub const X_TOTAL_COUNT: HeaderName = HeaderName::from_static("x-total-count");

/// The `X-Total-Count` and `Link` headers of one page of `total` matches.
pub(crate) fn list_headers(
    req: &HttpRequest,
    page: Page,
    total: u64,
) -> Vec<(HeaderName, HeaderValue)> {
    let mut headers = vec![(X_TOTAL_COUNT, HeaderValue::from(total))];
    let links: Vec<String> = [(next_page(page, total), "next"), (prev_page(page), "prev")]
        .into_iter()
        .filter_map(|(page, rel)| {
            page.map(|page| format!("<{}>; rel=\"{rel}\"", url_of(req, page)))
        })
        .collect();
    if !links.is_empty()
        && let Ok(value) = HeaderValue::from_str(&links.join(", "))
    {
        headers.push((header::LINK, value));
    }
    headers
}

/// This request's path and query, every parameter kept as sent except `limit` and
/// `offset`, which are `page`'s. Relative, so that it holds behind any proxy or prefix
/// that kept the path; every character that could end the reference is percent-encoded.
fn url_of(req: &HttpRequest, page: Page) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (key, value) in form_urlencoded::parse(req.query_string().as_bytes()) {
        if key != "limit" && key != "offset" {
            query.append_pair(&key, &value);
        }
    }
    query.append_pair("limit", &page.limit().to_string());
    query.append_pair("offset", &page.offset().to_string());
    format!("{}?{}", req.path(), query.finish())
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    fn page(limit: i64, offset: i64) -> Page {
        Page::parse(Some(limit), Some(offset)).unwrap()
    }

    fn header_of(headers: &[(HeaderName, HeaderValue)], name: &HeaderName) -> Option<String> {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.to_str().unwrap().to_owned())
    }

    #[test]
    fn links_keep_the_filters_and_move_the_window() {
        let req = TestRequest::get()
            .uri("/api/v1/products?q=%D0%BF%D0%B8%D1%86%D1%86%D0%B0&limit=10&category_id=1&offset=10")
            .to_http_request();
        let headers = list_headers(&req, page(10, 10), 35);
        assert_eq!(header_of(&headers, &X_TOTAL_COUNT).as_deref(), Some("35"));
        assert_eq!(
            header_of(&headers, &header::LINK).as_deref(),
            Some(
                "</api/v1/products?q=%D0%BF%D0%B8%D1%86%D1%86%D0%B0&category_id=1&limit=10&offset=20>; rel=\"next\", \
                 </api/v1/products?q=%D0%BF%D0%B8%D1%86%D1%86%D0%B0&category_id=1&limit=10&offset=0>; rel=\"prev\""
            )
        );
    }

    #[test]
    fn a_single_page_has_a_count_and_no_links() {
        let req = TestRequest::get()
            .uri("/api/v1/categories")
            .to_http_request();
        let headers = list_headers(&req, Page::default(), 4);
        assert_eq!(header_of(&headers, &X_TOTAL_COUNT).as_deref(), Some("4"));
        assert_eq!(header_of(&headers, &header::LINK), None);
    }

    #[test]
    fn characters_that_could_end_a_link_are_encoded() {
        let req = TestRequest::get()
            .uri("/api/v1/products?q=%3E%3B%20rel%3D%22x%22")
            .to_http_request();
        let headers = list_headers(&req, page(1, 0), 2);
        let link = header_of(&headers, &header::LINK).unwrap();
        assert_eq!(link.matches('>').count(), 1, "{link}");
        assert_eq!(link.matches('"').count(), 2, "{link}");
    }
}
