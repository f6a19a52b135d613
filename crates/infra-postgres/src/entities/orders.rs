use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "orders")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub user_id: i64,
    /// `domain::OrderStatus::as_str`; a CHECK constraint keeps it to the known spellings.
    pub status: String,
    /// Kopecks.
    pub total_amount_minor: i64,
    pub delivery_address: String,
    pub phone: String,
    pub comment: Option<String>,
    pub created_at: TimeDateTimeWithTimeZone,
    pub updated_at: TimeDateTimeWithTimeZone,
    /// `domain::payments::PaymentStatus::as_str` (migration 22).
    pub payment_status: String,
    /// What the order owes online: the currency's code (`XTR` for Stars) and the amount in
    /// its smallest units; NULL when nothing is.
    pub payment_currency: Option<String>,
    pub payment_amount: Option<i64>,
    /// Until when an unpaid order holds its stock.
    pub payment_due_by: Option<TimeDateTimeWithTimeZone>,
    pub paid_at: Option<TimeDateTimeWithTimeZone>,
    /// The random half of the invoice's payload.
    pub invoice_nonce: Option<String>,
    pub invoice_link: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
