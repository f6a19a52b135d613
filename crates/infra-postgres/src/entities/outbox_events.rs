use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "outbox_events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// `domain::outbox::EventKind::as_str`; a CHECK constraint keeps it to the known kinds.
    pub kind: String,
    pub order_id: i64,
    /// The recipient's chat key (`domain::outbox::Recipient::chat_key`).
    pub chat: String,
    /// What the kind needs beyond its order, as JSON (see `crate::outbox`).
    pub payload: Option<String>,
    /// `PENDING`, `SENT` or `DEAD` (see `crate::outbox`).
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: TimeDateTimeWithTimeZone,
    pub locked_until: Option<TimeDateTimeWithTimeZone>,
    pub last_error: Option<String>,
    pub telegram_message_id: Option<i64>,
    pub created_at: TimeDateTimeWithTimeZone,
    pub sent_at: Option<TimeDateTimeWithTimeZone>,
    pub dead_at: Option<TimeDateTimeWithTimeZone>,
    /// The token of the claim holding the event; every update of a claimed event requires
    /// it (see `crate::outbox`).
    pub claim_token: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
