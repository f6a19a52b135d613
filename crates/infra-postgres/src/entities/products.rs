use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "products")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub category_id: i64,
    pub name: String,
    pub description: Option<String>,
    /// Kopecks.
    pub price_minor: i64,
    pub is_active: bool,
    pub sort_order: i32,
    /// Units left; NULL means unlimited. A CHECK keeps it non-negative.
    pub stock: Option<i32>,
    /// `domain::catalog::product_search_text` of the name and description, written with
    /// every product; what the catalog search matches.
    pub search_text: String,
    /// Bumped by a trigger whenever a field pricing reads changes (everything but the
    /// stock); the placement statement compares it (migration 8).
    pub revision: i64,
    /// The gallery: a JSON array of image URLs (migration 11); a CHECK keeps it an array
    /// of at most 10.
    pub images: String,
    pub created_at: TimeDateTimeWithTimeZone,
    pub updated_at: TimeDateTimeWithTimeZone,
    /// An optional stock-keeping unit, unique when set (migration 20).
    pub sku: Option<String>,
    /// The price in Telegram Stars; NULL: none (migration 22).
    pub price_stars: Option<i32>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
