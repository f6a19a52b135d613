//! The catalog as a file: categories (named by slug, with their parent's) and products
//! (named by SKU, with their category's slug), as JSON or as one CSV.
//!
//! CSV: UTF-8, a header row, one row per category (`kind` = `category`, parents before
//! their children) then one per product (`kind` = `product`). Images are separated by
//! spaces (an image URL holds none); an empty `stock` is unlimited. A cell a spreadsheet
//! would run as a formula (starting with `=`, `+`, `-`, `@`, a tab or a carriage return)
//! is written with a `'` before it, and so is a cell that starts with `'`, so that the
//! escaping can always be undone.

use serde::{Deserialize, Serialize};

use crate::catalog_admin::{CategoryInput, MAX_STOCK, NewCategory, ProductInput, ProductPatch};
use crate::error::FieldError;

/// One category of the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CategoryRecord {
    pub slug: String,
    pub name: String,
    /// The parent's slug; `None` for a root.
    #[serde(default)]
    pub parent_slug: Option<String>,
    #[serde(default)]
    pub sort_order: i32,
    #[serde(default = "active")]
    pub is_active: bool,
}

fn active() -> bool {
    true
}

/// One product of the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductRecord {
    #[serde(default)]
    pub sku: Option<String>,
    pub category_slug: String,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Roubles with two places.
    pub price: String,
    /// `None`: unlimited.
    #[serde(default)]
    pub stock: Option<u32>,
    #[serde(default)]
    pub images: Vec<String>,
    #[serde(default = "active")]
    pub is_active: bool,
    #[serde(default)]
    pub sort_order: i32,
    /// The price in Telegram Stars: `Some(None)` (JSON `null`, an empty CSV cell) none;
    /// `None` (the key or the column absent, as in files exported before it existed)
    /// leaves an existing product's price in stars as it is.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub price_stars: Option<Option<u32>>,
}

/// A field that distinguishes absent (`None`, by `#[serde(default)]`) from `null`.
fn present<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Option<u32>>, D::Error> {
    Option::<u32>::deserialize(deserializer).map(Some)
}

/// The whole catalog.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogFile {
    #[serde(default)]
    pub categories: Vec<CategoryRecord>,
    #[serde(default)]
    pub products: Vec<ProductRecord>,
}

/// Why an import was refused: where (the CSV line the record starts on; in JSON the
/// record's position in its list, from 1), which field, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImportProblem {
    pub line: usize,
    pub field: String,
    pub message: String,
}

impl ImportProblem {
    pub fn new(line: usize, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            line,
            field: field.into(),
            message: message.into(),
        }
    }
}

/// What an import did, or would do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct ImportCounts {
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
}

/// An import's outcome: categories and products created, updated and left unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct ImportReport {
    pub dry_run: bool,
    pub categories: ImportCounts,
    pub products: ImportCounts,
}

/// A file read for import, each record with the line it came from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImportFile {
    pub categories: Vec<(usize, CategoryRecord)>,
    pub products: Vec<(usize, ProductRecord)>,
}

impl ImportFile {
    /// A JSON file (the export's shape).
    pub fn from_json(text: &str) -> Result<Self, Vec<ImportProblem>> {
        let file: CatalogFile = serde_json::from_str(text)
            .map_err(|err| vec![ImportProblem::new(err.line(), "body", err.to_string())])?;
        Ok(Self {
            categories: (1..).zip(file.categories).collect(),
            products: (1..).zip(file.products).collect(),
        }
        .normalised())
    }

    /// A CSV file (the export's shape: its header row, then `category` and `product`
    /// rows in any order).
    pub fn from_csv(text: &str) -> Result<Self, Vec<ImportProblem>> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let rows = parse_csv_rows(text)?;
        let mut rows = rows.into_iter();
        let Some((_, header)) = rows.next() else {
            return Err(vec![ImportProblem::new(1, "header", "the file is empty")]);
        };
        // Files exported before `price_stars` existed lack its column, and are read as is.
        let columns = header.len();
        let expected = CSV_COLUMNS.get(..columns).unwrap_or_default();
        if columns < CSV_COLUMNS.len() - 1
            || columns > CSV_COLUMNS.len()
            || header
                .iter()
                .map(String::as_str)
                .ne(expected.iter().copied())
        {
            return Err(vec![ImportProblem::new(
                1,
                "header",
                format!("the header row must be {}", CSV_COLUMNS.join(",")),
            )]);
        }
        let mut file = Self::default();
        let mut problems = Vec::new();
        for (line, cells) in rows {
            if cells.len() == 1 && cells[0].is_empty() {
                continue;
            }
            if cells.len() != columns {
                problems.push(ImportProblem::new(
                    line,
                    "row",
                    format!("a row has {} cells, not {columns}", cells.len()),
                ));
                continue;
            }
            let cell = |i: usize| undefuse(&cells[i]).to_owned();
            let optional = |i: usize| Some(cell(i)).filter(|c| !c.is_empty());
            let mut flag = |field: &str, i: usize| match cell(i).as_str() {
                "true" => true,
                "false" => false,
                _ => {
                    problems.push(ImportProblem::new(
                        line,
                        field,
                        format!("{field} must be true or false"),
                    ));
                    true
                }
            };
            let is_active = flag("is_active", 10);
            let sort_order = match cell(11).parse::<i32>() {
                Ok(order) => order,
                Err(_) => {
                    problems.push(ImportProblem::new(
                        line,
                        "sort_order",
                        "sort_order must be a whole number",
                    ));
                    0
                }
            };
            match cell(0).as_str() {
                "category" => file.categories.push((
                    line,
                    CategoryRecord {
                        slug: cell(1),
                        name: cell(5),
                        parent_slug: optional(2),
                        sort_order,
                        is_active,
                    },
                )),
                "product" => {
                    let stock = match optional(8).map(|s| s.parse::<u32>()) {
                        None => None,
                        Some(Ok(units)) => Some(units),
                        Some(Err(_)) => {
                            problems.push(ImportProblem::new(
                                line,
                                "stock",
                                "stock must be a whole number of units, or empty for unlimited",
                            ));
                            None
                        }
                    };
                    let price_stars = match (columns > 12).then(|| optional(12)) {
                        None => None,
                        Some(None) => Some(None),
                        Some(Some(stars)) => match stars.parse::<u32>() {
                            Ok(stars) => Some(Some(stars)),
                            Err(_) => {
                                problems.push(ImportProblem::new(
                                    line,
                                    "price_stars",
                                    "price_stars must be a whole number of stars, or empty for none",
                                ));
                                None
                            }
                        },
                    };
                    file.products.push((
                        line,
                        ProductRecord {
                            sku: optional(4),
                            category_slug: cell(3),
                            name: cell(5),
                            description: optional(6),
                            price: cell(7),
                            stock,
                            images: cell(9).split_whitespace().map(str::to_owned).collect(),
                            is_active,
                            sort_order,
                            price_stars,
                        },
                    ));
                }
                other => problems.push(ImportProblem::new(
                    line,
                    "kind",
                    format!("kind must be category or product, not {other:?}"),
                )),
            }
        }
        if problems.is_empty() {
            Ok(file.normalised())
        } else {
            Err(problems)
        }
    }

    /// The records as the admin API would store them: names and SKUs trimmed, a blank
    /// description none. What is checked is then exactly what is written.
    fn normalised(mut self) -> Self {
        for (_, category) in &mut self.categories {
            category.name = category.name.trim().to_owned();
            category.slug = category.slug.trim().to_owned();
        }
        for (_, product) in &mut self.products {
            product.name = product.name.trim().to_owned();
            product.sku = product.sku.take().map(|sku| sku.trim().to_owned());
            product.description = product
                .description
                .take()
                .map(|text| text.trim().to_owned())
                .filter(|text| !text.is_empty());
            product.price = product.price.trim().to_owned();
        }
        self
    }

    /// Every record checked by the admin API's own rules, and the names unique within
    /// the file: the problems, or none.
    pub fn problems(&self) -> Vec<ImportProblem> {
        let mut problems = Vec::new();
        let mut push = |line: usize, errors: Vec<FieldError>| {
            problems.extend(
                errors
                    .into_iter()
                    .map(|e| ImportProblem::new(line, e.field, e.message)),
            );
        };
        let mut slugs = std::collections::HashSet::new();
        for (line, category) in &self.categories {
            let input = CategoryInput {
                name: Some(&category.name),
                slug: Some(&category.slug),
                sort_order: Some(i64::from(category.sort_order)),
                parent_id: None,
                is_active: Some(category.is_active),
            };
            if let Err(errors) = NewCategory::parse(&input) {
                push(*line, errors);
            }
            if !slugs.insert(category.slug.as_str()) {
                push(
                    *line,
                    vec![FieldError::new(
                        "slug",
                        "duplicate",
                        "the file names this slug twice",
                    )],
                );
            }
            if category.parent_slug.as_deref() == Some(category.slug.as_str()) {
                push(
                    *line,
                    vec![FieldError::new(
                        "parent_slug",
                        "invalid_parent",
                        "a category cannot be under itself",
                    )],
                );
            }
        }
        let mut skus = std::collections::HashSet::new();
        let mut unnamed = std::collections::HashSet::new();
        for (line, product) in &self.products {
            let input = ProductInput {
                category_id: None,
                name: Some(&product.name),
                description: Some(product.description.as_deref()),
                price: Some(&product.price),
                images: Some(product.images.clone()),
                is_active: Some(product.is_active),
                sort_order: Some(i64::from(product.sort_order)),
                sku: Some(product.sku.as_deref()),
                stock: None,
                price_stars: product.price_stars.map(|stars| stars.map(i64::from)),
            };
            if let Err(errors) = ProductPatch::parse(&input) {
                push(*line, errors);
            }
            if product.stock.is_some_and(|units| units > MAX_STOCK) {
                push(
                    *line,
                    vec![FieldError::new(
                        "stock",
                        "out_of_range",
                        format!("stock must be at most {MAX_STOCK}"),
                    )],
                );
            }
            if product.sku.is_none()
                && !unnamed.insert((product.category_slug.as_str(), product.name.as_str()))
            {
                push(
                    *line,
                    vec![FieldError::new(
                        "sku",
                        "duplicate",
                        "two products without a sku have this category and name: give them skus",
                    )],
                );
            }
            if let Some(sku) = &product.sku
                && !skus.insert(sku.as_str())
            {
                push(
                    *line,
                    vec![FieldError::new(
                        "sku",
                        "duplicate",
                        "the file names this sku twice",
                    )],
                );
            }
        }
        problems
    }
}

/// RFC 4180 rows, each with the line it starts on: quoted cells may hold commas, quotes
/// (doubled) and line breaks; lines end with CRLF or LF.
fn parse_csv_rows(text: &str) -> Result<Vec<(usize, Vec<String>)>, Vec<ImportProblem>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut cell = String::new();
    let (mut line, mut row_line) = (1, 1);
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    cell.push('"');
                }
                '"' => quoted = false,
                '\n' => {
                    line += 1;
                    cell.push(c);
                }
                _ => cell.push(c),
            }
            continue;
        }
        match c {
            '"' if cell.is_empty() => quoted = true,
            ',' => row.push(std::mem::take(&mut cell)),
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                row.push(std::mem::take(&mut cell));
                rows.push((row_line, std::mem::take(&mut row)));
                line += 1;
                row_line = line;
            }
            _ => cell.push(c),
        }
    }
    if quoted {
        return Err(vec![ImportProblem::new(
            row_line,
            "row",
            "a quoted cell is never closed",
        )]);
    }
    if !cell.is_empty() || !row.is_empty() {
        row.push(cell);
        rows.push((row_line, row));
    }
    Ok(rows)
}

/// The CSV file's columns, in order.
pub const CSV_COLUMNS: [&str; 13] = [
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
    "price_stars",
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
                    String::new(),
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
                    product
                        .price_stars
                        .flatten()
                        .map(|s| s.to_string())
                        .unwrap_or_default(),
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

    #[test]
    fn the_readmes_example_file_imports_without_a_problem() {
        let file = ImportFile::from_csv(include_str!("../../../docs/catalog-example.csv"))
            .unwrap_or_else(|problems| panic!("{problems:?}"));
        assert_eq!(file.problems(), Vec::new());
        assert_eq!(file.categories.len(), 3);
        assert_eq!(file.products.len(), 4);
    }
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
                price_stars: Some(Some(120)),
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
        assert_eq!(lines[1], "category,pizza,,,,Пицца,,,,,true,0,");
        assert_eq!(
            lines[2],
            "product,,,pizza,PZ-1,\"Маргарита, большая\",\"'=HYPERLINK(\"\"x\"\")\",590.00,,https://a/1.jpg https://a/2.jpg,false,3,120"
        );
        assert_eq!(lines[3], "");
    }

    #[test]
    fn an_exported_csv_reads_back_as_it_was_and_bad_rows_are_named_by_line() {
        let file = CatalogFile {
            categories: vec![
                CategoryRecord {
                    slug: "pizza".into(),
                    name: "-Пицца, \"лучшая\"".into(),
                    parent_slug: None,
                    sort_order: 1,
                    is_active: true,
                },
                CategoryRecord {
                    slug: "spicy".into(),
                    name: "'Острая'".into(),
                    parent_slug: Some("pizza".into()),
                    sort_order: 0,
                    is_active: false,
                },
            ],
            products: vec![ProductRecord {
                price_stars: Some(Some(35)),
                sku: None,
                category_slug: "spicy".into(),
                name: "=Диабло".into(),
                description: Some("строка 1\nстрока 2".into()),
                price: "590.00".into(),
                stock: Some(4),
                images: vec!["https://a/1.jpg".into(), "https://a/2.jpg".into()],
                is_active: true,
                sort_order: 2,
            }],
        };
        let read = ImportFile::from_csv(&file.to_csv()).unwrap();
        let categories: Vec<_> = read.categories.iter().map(|(_, c)| c.clone()).collect();
        let products: Vec<_> = read.products.iter().map(|(_, p)| p.clone()).collect();
        assert_eq!(categories, file.categories);
        assert_eq!(products, file.products);
        assert_eq!(read.products[0].0, 4, "the line the record starts on");
        assert!(read.problems().is_empty(), "{:?}", read.problems());

        let bad = format!(
            "{}\r\ncategory,Bad Slug,,,,Имя,,,,,true,0,\r\nproduct,,,x,,Товар,,0,-1,,maybe,0,1.5\r\n",
            CSV_COLUMNS.join(",")
        );
        let problems = ImportFile::from_csv(&bad).unwrap_err();
        let named: Vec<_> = problems
            .iter()
            .map(|p| (p.line, p.field.as_str()))
            .collect();
        assert_eq!(named, [(3, "is_active"), (3, "stock"), (3, "price_stars")]);
        let bad = format!(
            "{}\r\ncategory,Bad Slug,,,,Имя,,,,,true,0,\r\n",
            CSV_COLUMNS.join(",")
        );
        let problems = ImportFile::from_csv(&bad).unwrap().problems();
        assert_eq!(problems[0].line, 2);
        assert_eq!(problems[0].field, "slug");
        assert!(ImportFile::from_csv("kind,slug\r\n").is_err());
        assert!(ImportFile::from_json("{\"categories\": [{\"slug\": 1}]}").is_err());
    }

    #[test]
    fn a_file_exported_before_stars_prices_reads_without_them() {
        let legacy = format!(
            "{}\r\ncategory,pizza,,,,Пицца,,,,,true,0\r\nproduct,,,pizza,PZ-1,Маргарита,,590.00,,,true,0\r\n",
            CSV_COLUMNS[..12].join(",")
        );
        let read = ImportFile::from_csv(&legacy).unwrap();
        assert_eq!(read.products[0].1.price_stars, None);
        assert!(read.problems().is_empty());
        // A row must have as many cells as the header.
        let short = format!(
            "{}\r\nproduct,,,pizza,PZ-1,Маргарита,,590.00,,,true,0\r\n",
            CSV_COLUMNS.join(",")
        );
        assert_eq!(ImportFile::from_csv(&short).unwrap_err()[0].field, "row");
        // A header must be the whole list or the list before `price_stars`.
        let odd = format!("{}\r\n", CSV_COLUMNS[..11].join(","));
        assert_eq!(ImportFile::from_csv(&odd).unwrap_err()[0].field, "header");
        let long = format!("{},extra\r\n", CSV_COLUMNS.join(","));
        assert_eq!(ImportFile::from_csv(&long).unwrap_err()[0].field, "header");
    }

    #[test]
    fn what_is_checked_is_what_is_written_and_unnamed_twins_are_refused() {
        let json = r#"{"products": [
            {"category_slug": "pizza", "name": "  Маргарита ", "description": "   ", "price": "590", "sku": " PZ-1 "},
            {"category_slug": "pizza", "name": "Без артикула", "price": "100"},
            {"category_slug": "pizza", "name": "Без артикула", "price": "200"}
        ]}"#;
        let file = ImportFile::from_json(json).unwrap();
        let first = &file.products[0].1;
        assert_eq!(first.name, "Маргарита");
        assert_eq!(first.description, None);
        assert_eq!(first.sku.as_deref(), Some("PZ-1"));
        let problems = file.problems();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!((problems[0].line, problems[0].field.as_str()), (3, "sku"));
    }
}
