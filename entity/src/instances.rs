use sea_orm::entity::prelude::*;

/// Lifecycle state of an instance. `LoggedOut` is terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum Status {
    #[sea_orm(string_value = "created")]
    Created,
    #[sea_orm(string_value = "qr_pending")]
    QrPending,
    #[sea_orm(string_value = "online")]
    Online,
    #[sea_orm(string_value = "disconnected")]
    Disconnected,
    #[sea_orm(string_value = "logged_out")]
    LoggedOut,
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "instances")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub name: Option<String>,
    pub phone_number: Option<String>,
    pub jid: Option<String>,
    pub status: Status,
    pub is_connected: bool,
    pub last_connected_at: Option<DateTimeUtc>,
    pub last_error: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    /// Turn incoming calls away.
    pub reject_calls: bool,
    /// Text sent to a caller after a rejected call.
    #[sea_orm(column_type = "Text", nullable)]
    pub call_reply: Option<String>,
    /// Mark inbound messages read once their webhooks took them.
    pub auto_read: bool,
    /// Drop group messages before they are recorded.
    pub ignore_groups: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
