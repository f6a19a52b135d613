use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "idempotency_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub key: String,
    /// `domain::idempotency::RequestFingerprint`, 32 bytes.
    pub request_hash: Vec<u8>,
    pub order_id: Option<i64>,
    pub response_status: Option<i32>,
    pub response_body: Option<Vec<u8>>,
    pub created_at: TimeDateTimeWithTimeZone,
    pub claimed_at: TimeDateTimeWithTimeZone,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
