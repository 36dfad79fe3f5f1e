//! Names for the numbers in a `RowDescription`: which table a column comes
//! from and what its type is called. Built-in types are known here; table
//! OIDs and other types are looked up once per database over a separate
//! upstream connection (the held credentials) and cached.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgConnection, PgSslMode};
use sqlx::{ConnectOptions, Row};

use super::codec::FieldDescription;
use super::event::ResolvedColumn;

/// How long a looked-up name is trusted (OIDs can be reused after a drop).
pub const TTL: Duration = Duration::from_secs(60);
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);

pub struct Catalog {
    options: PgConnectOptions,
    databases: Mutex<HashMap<String, Arc<DatabaseCatalog>>>,
}

/// A looked-up name (or the knowledge that there is none) and when.
type CachedName = (Option<Arc<str>>, Instant);

#[derive(Default)]
struct DatabaseCatalog {
    conn: tokio::sync::Mutex<Option<PgConnection>>,
    /// Keyed by ('t' table | 'y' type, OID).
    names: Mutex<HashMap<(char, u32), CachedName>>,
}

impl Catalog {
    pub fn new(options: PgConnectOptions) -> Self {
        Self {
            options,
            databases: Mutex::new(HashMap::new()),
        }
    }

    pub fn options(
        host: &str,
        port: u16,
        user: &str,
        password: Option<&str>,
        tls: bool,
        ca: Option<&std::path::Path>,
    ) -> PgConnectOptions {
        let mut o = PgConnectOptions::new()
            .host(host)
            .port(port)
            .username(user)
            .application_name("gatehouse-catalog")
            .ssl_mode(if tls {
                PgSslMode::VerifyFull
            } else {
                PgSslMode::Disable
            })
            .statement_cache_capacity(0);
        if let Some(p) = password {
            o = o.password(p);
        }
        if let Some(ca) = ca {
            o = o.ssl_root_cert(ca);
        }
        o
    }

    /// Resolves every column of a result. Never fails: what cannot be looked
    /// up is left without a table and named by its OID.
    pub async fn resolve(
        &self,
        database: &str,
        fields: &[FieldDescription],
    ) -> Vec<ResolvedColumn> {
        let db = self.database(database);
        let mut out = Vec::with_capacity(fields.len());
        for f in fields {
            let table = if f.table_oid == 0 {
                None
            } else {
                db.lookup(&self.options, database, 't', f.table_oid).await
            };
            let type_name = match builtin_type(f.type_oid) {
                Some(n) => Arc::from(n),
                None => db
                    .lookup(&self.options, database, 'y', f.type_oid)
                    .await
                    .unwrap_or_else(|| Arc::from(format!("oid:{}", f.type_oid))),
            };
            out.push(ResolvedColumn {
                field: f.clone(),
                table,
                type_name,
            });
        }
        out
    }

    fn database(&self, database: &str) -> Arc<DatabaseCatalog> {
        let mut dbs = self.databases.lock().unwrap_or_else(|e| e.into_inner());
        dbs.entry(database.to_string()).or_default().clone()
    }
}

impl DatabaseCatalog {
    async fn lookup(
        &self,
        options: &PgConnectOptions,
        database: &str,
        what: char,
        oid: u32,
    ) -> Option<Arc<str>> {
        if let Some((name, at)) = self
            .names
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(what, oid))
            && at.elapsed() < TTL
        {
            return name.clone();
        }
        let name = match tokio::time::timeout(
            LOOKUP_TIMEOUT,
            self.query(options, database, what, oid),
        )
        .await
        {
            Ok(Ok(n)) => n.map(Arc::from),
            Ok(Err(e)) => {
                tracing::warn!(database, oid, error = %e, "catalog lookup failed; column names only");
                *self.conn.lock().await = None;
                return None;
            }
            Err(_) => {
                tracing::warn!(database, oid, "catalog lookup timed out; column names only");
                return None;
            }
        };
        self.names
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((what, oid), (name.clone(), Instant::now()));
        name
    }

    async fn query(
        &self,
        options: &PgConnectOptions,
        database: &str,
        what: char,
        oid: u32,
    ) -> Result<Option<String>, sqlx::Error> {
        let mut guard = self.conn.lock().await;
        if guard.is_none() {
            *guard = Some(options.clone().database(database).connect().await?);
        }
        let Some(conn) = guard.as_mut() else {
            return Ok(None);
        };
        let sql = if what == 't' {
            "SELECT n.nspname || '.' || c.relname FROM pg_catalog.pg_class c \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1::oid"
        } else {
            "SELECT typname::text FROM pg_catalog.pg_type WHERE oid = $1::oid"
        };
        let row = sqlx::query(sql)
            .bind(oid as i64)
            .fetch_optional(&mut *conn)
            .await?;
        Ok(row.map(|r| r.get::<String, _>(0)))
    }
}

/// Names of the built-in types (their OIDs are fixed in every database).
pub fn builtin_type(oid: u32) -> Option<&'static str> {
    Some(match oid {
        16 => "bool",
        17 => "bytea",
        18 => "char",
        19 => "name",
        20 => "int8",
        21 => "int2",
        23 => "int4",
        24 => "regproc",
        25 => "text",
        26 => "oid",
        114 => "json",
        142 => "xml",
        650 => "cidr",
        700 => "float4",
        701 => "float8",
        705 => "unknown",
        774 => "macaddr8",
        790 => "money",
        829 => "macaddr",
        869 => "inet",
        1000 => "_bool",
        1005 => "_int2",
        1007 => "_int4",
        1009 => "_text",
        1014 => "_bpchar",
        1015 => "_varchar",
        1016 => "_int8",
        1021 => "_float4",
        1022 => "_float8",
        1042 => "bpchar",
        1043 => "varchar",
        1082 => "date",
        1083 => "time",
        1114 => "timestamp",
        1184 => "timestamptz",
        1186 => "interval",
        1266 => "timetz",
        1560 => "bit",
        1562 => "varbit",
        1700 => "numeric",
        2249 => "record",
        2278 => "void",
        2950 => "uuid",
        3614 => "tsvector",
        3802 => "jsonb",
        _ => return None,
    })
}

/// Types whose binary form is their text (UTF-8), so text masks apply to both formats.
pub fn is_textual(oid: u32) -> bool {
    matches!(oid, 18 | 19 | 25 | 114 | 142 | 705 | 1042 | 1043)
}
