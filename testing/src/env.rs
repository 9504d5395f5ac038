//! A test's own PostgreSQL database and Redis key prefix on the real local services, and a
//! configuration pointing at them. [`Scratch`] owns both and removes them when it is dropped,
//! whether the test passed or failed (set `HERALD_TEST_KEEP=1` to keep them for inspection);
//! `scripts/test` still sweeps what a killed test run left behind.

use figment::providers::Serialized;
use herald_shared::config::Config;
use sqlx::{Connection, PgConnection, PgPool};

/// Where the tests find PostgreSQL: a maintenance database to create test databases from.
/// Override with `HERALD_TEST_DATABASE_URL`.
pub fn admin_database_url() -> String {
    std::env::var("HERALD_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// Where the tests find Redis. Override with `HERALD_TEST_REDIS_URL`.
pub fn redis_url() -> String {
    std::env::var("HERALD_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A fresh, empty database `herald_t_<id>` and the Redis key prefix `herald-test:<id>:`,
/// dropped (the database with `with (force)`, so open connections do not keep it) and
/// deleted when this is dropped. Whoever hands the database to child processes must stop
/// them first: keep this after the children in field order, or kill them in `Drop`.
pub struct Scratch {
    /// The id in the database's name and the Redis prefix (a UUID, simple form).
    pub id: String,
    pub database_name: String,
    /// The database's URL, for the test's own pool or a child process.
    pub database_url: String,
    /// `herald-test:<id>:`, for `redis.key_prefix`.
    pub redis_prefix: String,
    admin_url: String,
}

impl Scratch {
    pub async fn create() -> anyhow::Result<Self> {
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
        Ok(Self {
            redis_prefix: format!("herald-test:{id}:"),
            id,
            database_name,
            database_url,
            admin_url,
        })
    }
}

/// What [`Scratch`]'s `Drop` removes, owned by the thread that removes it.
struct Removal {
    admin_url: String,
    database_name: String,
    redis_prefix: String,
}

impl Removal {
    async fn run(&self) -> anyhow::Result<()> {
        let mut admin = PgConnection::connect(&self.admin_url).await?;
        sqlx::query(&format!(
            "drop database if exists {} with (force)",
            self.database_name
        ))
        .execute(&mut admin)
        .await?;
        admin.close().await?;
        let client = redis::Client::open(redis_url())?;
        let mut redis = client.get_multiplexed_async_connection().await?;
        herald_shared::redis_conn::delete_keys_with_prefix(&mut redis, &self.redis_prefix).await?;
        Ok(())
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::env::var_os("HERALD_TEST_KEEP").is_some() {
            eprintln!(
                "HERALD_TEST_KEEP: kept database {} and Redis keys {}*",
                self.database_name, self.redis_prefix
            );
            return;
        }
        let removal = Removal {
            admin_url: self.admin_url.clone(),
            database_name: self.database_name.clone(),
            redis_prefix: self.redis_prefix.clone(),
        };
        // `Drop` is synchronous and usually runs on the test's runtime, which cannot be
        // blocked on: remove on a thread of our own with its own small runtime, and wait.
        // Never panic here (a panic while unwinding aborts): report and go on.
        let removed = std::thread::spawn(move || {
            let result = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(anyhow::Error::from)
                .and_then(|runtime| runtime.block_on(removal.run()));
            if let Err(error) = result {
                eprintln!(
                    "could not remove test database {} / Redis keys {}*: {error:#}",
                    removal.database_name, removal.redis_prefix
                );
            }
        })
        .join();
        if removed.is_err() {
            eprintln!("removing test database {} panicked", self.database_name);
        }
    }
}

/// A test's own database (created and migrated) and Redis namespace, and a configuration
/// pointing at them. Dropped with its [`Scratch`]: keep `scratch` alive as long as anything
/// uses the database (moving `config` and `db` out is fine).
pub struct TestEnv {
    pub config: Config,
    pub db: PgPool,
    pub scratch: Scratch,
}

impl TestEnv {
    /// Creates and migrates a fresh database and picks a fresh Redis key prefix. `overrides`
    /// are `(dotted.setting, value)` pairs layered on top of the defaults.
    pub async fn new(overrides: &[(&str, serde_json::Value)]) -> anyhow::Result<Self> {
        let scratch = Scratch::create().await?;
        let id = &scratch.id;
        let mut figment = Config::figment_defaults()
            .merge(Serialized::default("database.url", &scratch.database_url))
            .merge(Serialized::default("database.max_connections", 20))
            .merge(Serialized::default("redis.url", redis_url()))
            .merge(Serialized::default(
                "redis.key_prefix",
                &scratch.redis_prefix,
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
        let db = herald_shared::db::connect(&config.database).await?;
        herald_shared::db::MIGRATOR.run(&db).await?;
        Ok(Self {
            config,
            db,
            scratch,
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
