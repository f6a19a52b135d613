//! The catalog as a file: categories (named by slug, with their parent's) and products
//! (named by SKU, with their category's slug), as JSON or as one CSV.
//!
//! CSV: UTF-8, a header row, one row per category (`kind` = `category`, parents before
//! their children) then one per product (`kind` = `product`). Images are separated by
//! spaces (an image URL holds none); an empty `stock` is unlimited. A cell a spreadsheet
//! would run as a formula (starting with `=`, `+`, `-`, `@`, a tab or a carriage return)
//! is written with a `'` before it, and so is a cell that starts with `'`, so that the
//! escaping can always be undone.

use serde::Serialize;

/// One category of the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CategoryRecord {
    pub slug: String,
    pub name: String,
    /// The parent's slug; `None` for a root.
    pub parent_slug: Option<String>,
    pub sort_order: i32,
    pub is_active: bool,
}

/// One product of the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProductRecord {
    pub sku: Option<String>,
    pub category_slug: String,
    pub name: String,
    pub description: Option<String>,
    /// Roubles with two places.
    pub price: String,
    /// `None`: unlimited.
    pub stock: Option<u32>,
    pub images: Vec<String>,
    pub is_active: bool,
    pub sort_order: i32,
}

/// The whole catalog.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct CatalogFile {
    pub categories: Vec<CategoryRecord>,
    pub products: Vec<ProductRecord>,
}

/// The CSV file's columns, in order.
pub const CSV_COLUMNS: [&str; 12] = [
    "kind",
    "slug",
    "parent_slug",
    "category_slug",
    "sku",
    "name",
    "description",
    "price",
    "stock",
    "images",
    "is_active",
    "sort_order",
];

impl CatalogFile {
    /// The file as CSV (RFC 4180: CRLF line ends, cells quoted when they hold a comma, a
    /// quote or a line break).
    pub fn to_csv(&self) -> String {
        let mut out = String::new();
        row(&mut out, CSV_COLUMNS.iter().map(|c| (*c).to_owned()));
        for category in &self.categories {
            row(
                &mut out,
                [
                    "category".to_owned(),
                    category.slug.clone(),
                    category.parent_slug.clone().unwrap_or_default(),
                    String::new(),
                    String::new(),
                    category.name.clone(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                    category.is_active.to_string(),
                    category.sort_order.to_string(),
                ],
            );
        }
        for product in &self.products {
            row(
                &mut out,
                [
                    "product".to_owned(),
                    String::new(),
                    String::new(),
                    product.category_slug.clone(),
                    product.sku.clone().unwrap_or_default(),
                    product.name.clone(),
                    product.description.clone().unwrap_or_default(),
                    product.price.clone(),
                    product.stock.map(|s| s.to_string()).unwrap_or_default(),
                    product.images.join(" "),
                    product.is_active.to_string(),
                    product.sort_order.to_string(),
                ],
            );
        }
        out
    }
}

/// Appends one CSV row.
fn row(out: &mut String, cells: impl IntoIterator<Item = String>) {
    let mut first = true;
    for cell in cells {
        if !first {
            out.push(',');
        }
        first = false;
        let cell = defuse(&cell);
        if cell.contains([',', '"', '\n', '\r']) {
            out.push('"');
            out.push_str(&cell.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(&cell);
        }
    }
    out.push_str("\r\n");
}

/// `cell` as a spreadsheet will not run it: a `'` before a leading `=`, `+`, `-`, `@`, tab
/// or carriage return, and before a leading `'` (so that [`undefuse`] is exact).
pub fn defuse(cell: &str) -> String {
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r' | '\'') => format!("'{cell}"),
        _ => cell.to_owned(),
    }
}

/// The cell [`defuse`] was given.
pub fn undefuse(cell: &str) -> &str {
    cell.strip_prefix('\'').unwrap_or(cell)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_defused_and_the_escaping_undone_exactly() {
        for cell in [
            "=SUM(A1)", "+7", "-50%", "@cmd", "\tx", "'quoted'", "''", "plain", "",
        ] {
            let written = defuse(cell);
            assert!(
                !written.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "{cell:?} written as {written:?}"
            );
            assert_eq!(undefuse(&written), cell);
        }
    }

    #[test]
    fn the_csv_has_a_header_categories_then_products_and_quotes_what_it_must() {
        let file = CatalogFile {
            categories: vec![CategoryRecord {
                slug: "pizza".into(),
                name: "Пицца".into(),
                parent_slug: None,
                sort_order: 0,
                is_active: true,
            }],
            products: vec![ProductRecord {
                sku: Some("PZ-1".into()),
                category_slug: "pizza".into(),
                name: "Маргарита, большая".into(),
                description: Some("=HYPERLINK(\"x\")".into()),
                price: "590.00".into(),
                stock: None,
                images: vec!["https://a/1.jpg".into(), "https://a/2.jpg".into()],
                is_active: false,
                sort_order: 3,
            }],
        };
        let csv = file.to_csv();
        let lines: Vec<&str> = csv.split("\r\n").collect();
        assert_eq!(lines[0], CSV_COLUMNS.join(","));
        assert_eq!(lines[1], "category,pizza,,,,Пицца,,,,,true,0");
        assert_eq!(
            lines[2],
            "product,,,pizza,PZ-1,\"Маргарита, большая\",\"'=HYPERLINK(\"\"x\"\")\",590.00,,https://a/1.jpg https://a/2.jpg,false,3"
        );
        assert_eq!(lines[3], "");
    }
}
