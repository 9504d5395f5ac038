//! Test support shared by the api and worker test suites (feature `testing`): a fresh,
//! migrated PostgreSQL database and a unique Redis key prefix per test, on the real local
//! services, and a stateful Twilio stand-in for fault tests (`twilio_standin`).

pub mod twilio_standin;

use figment::providers::Serialized;
use sqlx::{Connection, PgConnection, PgPool};

use crate::config::Config;

/// Where the tests find PostgreSQL (a maintenance database to create test databases from)
/// and Redis. Override with `HERALD_TEST_DATABASE_URL` / `HERALD_TEST_REDIS_URL`.
fn admin_database_url() -> String {
    std::env::var("HERALD_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

fn redis_url() -> String {
    std::env::var("HERALD_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A test's own database and Redis namespace, and a configuration pointing at them.
pub struct TestEnv {
    pub config: Config,
    pub db: PgPool,
    pub database_name: String,
}

impl TestEnv {
    /// Creates and migrates a fresh database and picks a fresh Redis key prefix. `overrides`
    /// are `(dotted.setting, value)` pairs layered on top of the defaults.
    pub async fn new(overrides: &[(&str, serde_json::Value)]) -> anyhow::Result<Self> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let database_name = format!("herald_t_{id}");
        let admin_url = admin_database_url();
        let mut admin = PgConnection::connect(&admin_url).await?;
        sqlx::query(&format!("create database {database_name}"))
            .execute(&mut admin)
            .await?;
        admin.close().await?;
        let base = admin_url
            .rsplit_once('/')
            .map(|(base, _)| base)
            .unwrap_or(&admin_url);
        let database_url = format!("{base}/{database_name}");

        let mut figment = Config::figment_defaults()
            .merge(Serialized::default("database.url", &database_url))
            .merge(Serialized::default("database.max_connections", 20))
            .merge(Serialized::default("redis.url", redis_url()))
            .merge(Serialized::default(
                "redis.key_prefix",
                format!("herald-test:{id}:"),
            ))
            .merge(Serialized::default(
                "auth.jwt_secret",
                format!("test-secret-{id}-padding-padding"),
            ))
            .merge(Serialized::default(
                "secrets.encryption_key",
                "dGVzdC1rZXktdGVzdC1rZXktdGVzdC1rZXktdGVzdCE=",
            ))
            .merge(Serialized::default("api.listen", "127.0.0.1:0"))
            .merge(Serialized::default("worker.listen", "127.0.0.1:0"))
            .merge(Serialized::default("worker.replica_name", "test"));
        for (key, value) in overrides {
            figment = figment.merge(Serialized::default(key, value));
        }
        let config = Config::from_figment(&figment)?;
        let db = crate::db::connect(&config.database).await?;
        crate::db::MIGRATOR.run(&db).await?;
        Ok(Self {
            config,
            db,
            database_name,
        })
    }
}

/// Every `table.column` of the database whose value contains `needle` somewhere: each text,
/// JSON and byte column of each table, compared as text (bytes as written, `escape`d). For
/// checking that a secret is stored nowhere in the clear.
pub async fn columns_containing(db: &PgPool, needle: &str) -> anyhow::Result<Vec<String>> {
    let columns: Vec<(String, String, String)> = sqlx::query_as(
        "select table_name::text, column_name::text, data_type::text
         from information_schema.columns
         where table_schema = 'public'
           and data_type in ('text', 'character varying', 'json', 'jsonb', 'bytea')",
    )
    .fetch_all(db)
    .await?;
    let mut found = Vec::new();
    for (table, column, data_type) in columns {
        let as_text = if data_type == "bytea" {
            format!("encode(\"{column}\", 'escape')")
        } else {
            format!("\"{column}\"::text")
        };
        let hits: i64 = sqlx::query_scalar(&format!(
            "select count(*) from \"{table}\" where strpos({as_text}, $1) > 0"
        ))
        .bind(needle)
        .fetch_one(db)
        .await?;
        if hits > 0 {
            found.push(format!("{table}.{column}"));
        }
    }
    Ok(found)
}
