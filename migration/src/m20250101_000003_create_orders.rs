//! Orders and their lines.

use sea_orm_migration::{prelude::*, schema::*};

use crate::ORDER_STATUSES;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Products {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Orders {
    Table,
    Id,
    UserId,
    Status,
    TotalAmountMinor,
    DeliveryAddress,
    Phone,
    Comment,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum OrderItems {
    Table,
    Id,
    OrderId,
    ProductId,
    ProductName,
    Quantity,
    PriceMinor,
}

const ORDERS_USER_INDEX: &str = "idx_orders_user_id_created_at";
const ORDER_ITEMS_ORDER_INDEX: &str = "idx_order_items_order_id";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Orders::Table)
                    .col(big_pk_auto(Orders::Id))
                    .col(big_integer(Orders::UserId))
                    .col(text(Orders::Status).default(ORDER_STATUSES[0]).check((
                        "ck_orders_status_known",
                        Expr::col(Orders::Status).is_in(ORDER_STATUSES),
                    )))
                    // Kopecks; see the crate docs for why money is an integer.
                    .col(big_integer(Orders::TotalAmountMinor).check((
                        "ck_orders_total_amount_minor_non_negative",
                        Expr::col(Orders::TotalAmountMinor).gte(0),
                    )))
                    .col(text(Orders::DeliveryAddress))
                    .col(text(Orders::Phone))
                    .col(text_null(Orders::Comment))
                    .col(timestamp_with_time_zone(Orders::CreatedAt))
                    .col(timestamp_with_time_zone(Orders::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_orders_user_id")
                            .from(Orders::Table, Orders::UserId)
                            .to(Users::Table, Users::Id)
                            // Orders are business records: a customer with orders is
                            // never deleted implicitly.
                            .on_delete(ForeignKeyAction::Restrict)
                            .on_update(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;

        // Serves "this customer's orders, newest first".
        manager
            .create_index(
                Index::create()
                    .name(ORDERS_USER_INDEX)
                    .table(Orders::Table)
                    .col(Orders::UserId)
                    .col(Orders::CreatedAt)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(OrderItems::Table)
                    .col(big_pk_auto(OrderItems::Id))
                    .col(big_integer(OrderItems::OrderId))
                    .col(big_integer(OrderItems::ProductId))
                    // A snapshot: later renames in the catalog do not alter the order.
                    .col(text(OrderItems::ProductName))
                    .col(integer(OrderItems::Quantity).check((
                        "ck_order_items_quantity_range",
                        Expr::col(OrderItems::Quantity).between(1, 100),
                    )))
                    // The unit price in kopecks when the order was placed.
                    .col(big_integer(OrderItems::PriceMinor).check((
                        "ck_order_items_price_minor_non_negative",
                        Expr::col(OrderItems::PriceMinor).gte(0),
                    )))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_order_items_order_id")
                            .from(OrderItems::Table, OrderItems::OrderId)
                            .to(Orders::Table, Orders::Id)
                            .on_delete(ForeignKeyAction::Cascade)
                            .on_update(ForeignKeyAction::Restrict),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_order_items_product_id")
                            .from(OrderItems::Table, OrderItems::ProductId)
                            .to(Products::Table, Products::Id)
                            // A product that was ever ordered is deactivated, not deleted.
                            .on_delete(ForeignKeyAction::Restrict)
                            .on_update(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;

        // Serves loading the lines of a page of orders in one query.
        manager
            .create_index(
                Index::create()
                    .name(ORDER_ITEMS_ORDER_INDEX)
                    .table(OrderItems::Table)
                    .col(OrderItems::OrderId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(ORDER_ITEMS_ORDER_INDEX)
                    .table(OrderItems::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(OrderItems::Table).to_owned())
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name(ORDERS_USER_INDEX)
                    .table(Orders::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(Orders::Table).to_owned())
            .await
    }

    /// Both backends have transactional DDL, so a step never half-applies.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
