//! A cheap liveness check of the database, for `/healthz`.

use crate::{Db, StoreError};

impl Db {
    /// Runs `SELECT 1`; an error means the database does not answer.
    pub async fn ping(&self) -> Result<(), StoreError> {
        match self {
            Db::Sqlite(pool, _) => sqlx::query("SELECT 1").execute(pool).await.map(drop),
            Db::Postgres(pool) => sqlx::query("SELECT 1").execute(pool).await.map(drop),
        }
        .map_err(StoreError::query("checking that the database answers"))
    }
}
