//! `order_status_history`: one row per status change of an order (from, to, who, when, an
//! optional note), written in the same transaction as the change itself. An order's
//! creation is not a row: it is the order's own `created_at`, by its customer.

use sea_orm_migration::{prelude::*, schema::*};

use crate::ORDER_STATUSES;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum OrderStatusHistory {
    Table,
    Id,
    OrderId,
    FromStatus,
    ToStatus,
    ChangedBy,
    ManagerTelegramId,
    Note,
    ChangedAt,
}

#[derive(DeriveIden)]
enum Orders {
    Table,
    Id,
}

/// Who may change a status, spelled as `domain::lifecycle::ChangedBy::kind`.
const CHANGED_BY: [&str; 3] = ["customer", "manager", "system"];

const HISTORY_ORDER_INDEX: &str = "idx_order_status_history_order_id";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(OrderStatusHistory::Table)
                    .col(big_pk_auto(OrderStatusHistory::Id))
                    .col(big_integer(OrderStatusHistory::OrderId))
                    .col(text(OrderStatusHistory::FromStatus).check((
                        "ck_order_status_history_from_known",
                        Expr::col(OrderStatusHistory::FromStatus).is_in(ORDER_STATUSES),
                    )))
                    .col(text(OrderStatusHistory::ToStatus).check((
                        "ck_order_status_history_to_known",
                        Expr::col(OrderStatusHistory::ToStatus).is_in(ORDER_STATUSES),
                    )))
                    .col(text(OrderStatusHistory::ChangedBy).check((
                        "ck_order_status_history_changed_by_known",
                        Expr::col(OrderStatusHistory::ChangedBy).is_in(CHANGED_BY),
                    )))
                    // A manager's change names the manager; nobody else's does.
                    .col(
                        big_integer_null(OrderStatusHistory::ManagerTelegramId).check((
                            "ck_order_status_history_manager_named",
                            Expr::col(OrderStatusHistory::ChangedBy)
                                .eq("manager")
                                .eq(Expr::col(OrderStatusHistory::ManagerTelegramId).is_not_null()),
                        )),
                    )
                    .col(text_null(OrderStatusHistory::Note))
                    .col(timestamp_with_time_zone(OrderStatusHistory::ChangedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_order_status_history_order_id")
                            .from(OrderStatusHistory::Table, OrderStatusHistory::OrderId)
                            .to(Orders::Table, Orders::Id)
                            .on_delete(ForeignKeyAction::Cascade)
                            .on_update(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(HISTORY_ORDER_INDEX)
                    .table(OrderStatusHistory::Table)
                    .col(OrderStatusHistory::OrderId)
                    .col(OrderStatusHistory::Id)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(OrderStatusHistory::Table).to_owned())
            .await
    }
}
