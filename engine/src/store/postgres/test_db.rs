//! A database of its own for one test: created on the PostgreSQL server the tests use
//! (`PARCOURS_TEST_POSTGRES`, a connection string to a database from which others can be
//! created; by default `postgres` as user `postgres` on 127.0.0.1:5432), with a name no
//! other run uses, and dropped when the test ends, passed or failed.

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio_postgres::NoTls;

/// The server the tests use, unless `PARCOURS_TEST_POSTGRES` names another.
const DEFAULT_SERVER: &str = "host=127.0.0.1 port=5432 user=postgres dbname=postgres";

pub(crate) struct TestDb {
    admin: String,
    name: String,
    url: String,
}

fn admin_url() -> String {
    std::env::var("PARCOURS_TEST_POSTGRES").unwrap_or_else(|_| DEFAULT_SERVER.to_string())
}

/// A client of the admin database, its connection driven on this runtime.
async fn admin(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "the PostgreSQL tests need a server: {e} (connecting to `{url}`; start PostgreSQL \
             or set PARCOURS_TEST_POSTGRES)"
            )
        });
    tokio::spawn(connection);
    client
}

impl TestDb {
    pub(crate) async fn create() -> TestDb {
        static MADE: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!(
            "parcours_test_{}_{}_{nanos}",
            std::process::id(),
            MADE.fetch_add(1, Ordering::SeqCst)
        );
        let admin_url = admin_url();
        admin(&admin_url)
            .await
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create the test database");
        let config: tokio_postgres::Config = admin_url.parse().expect("PARCOURS_TEST_POSTGRES");
        let mut url = String::new();
        for host in config.get_hosts() {
            match host {
                tokio_postgres::config::Host::Tcp(h) => url.push_str(&format!("host={h} ")),
                tokio_postgres::config::Host::Unix(p) => {
                    url.push_str(&format!("host={} ", p.display()))
                }
            }
        }
        if let Some(port) = config.get_ports().first() {
            url.push_str(&format!("port={port} "));
        }
        if let Some(user) = config.get_user() {
            url.push_str(&format!("user={user} "));
        }
        if let Some(password) = config.get_password() {
            url.push_str(&format!("password={} ", String::from_utf8_lossy(password)));
        }
        url.push_str(&format!("dbname={name}"));
        TestDb {
            admin: admin_url,
            name,
            url,
        }
    }

    /// The connection string of the test's database.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for TestDb {
    /// Drops the database (closing the connections the test left open) on a thread of
    /// its own, since a test's runtime cannot be blocked on from inside it.
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                admin(&admin_url)
                    .await
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!(
                "could not drop the test database {}: {dropped:?}",
                self.name
            );
        }
    }
}
