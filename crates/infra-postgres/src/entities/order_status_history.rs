use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "order_status_history")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub order_id: i64,
    /// `domain::OrderStatus::as_str` spellings; CHECK constraints keep them known.
    pub from_status: String,
    pub to_status: String,
    /// `domain::lifecycle::ChangedBy::kind`: `customer`, `manager` or `system`.
    pub changed_by: String,
    /// Set exactly when `changed_by` is `manager` (a CHECK).
    pub manager_telegram_id: Option<i64>,
    pub note: Option<String>,
    pub changed_at: TimeDateTimeWithTimeZone,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
