//! The pool's connections: a client and the statements it has prepared. A read's SQL text
//! depends on its filter's shape, not on its values, so the statements of the lists a
//! client keeps asking for are parsed and planned once per connection (PostgreSQL then
//! keeps a generic plan), where a statement sent whole each time is planned each time.

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};

use postgres::types::Type;
use postgres::{Client, Config, Error, Statement};
use r2d2::ManageConnection;
use tokio_postgres_rustls::MakeRustlsConnect;

/// Most statements one connection keeps prepared; past it they are all let go (each is
/// closed on the server when dropped), so that clients sending ever new filter shapes
/// cannot grow a connection's memory without end.
const PREPARED: usize = 128;

pub type Pool = r2d2::Pool<Manager>;
pub type Pooled = r2d2::PooledConnection<Manager>;

/// Makes the pool's connections.
pub struct Manager {
    config: Config,
    tls: MakeRustlsConnect,
}

impl Manager {
    pub fn new(config: Config, tls: MakeRustlsConnect) -> Self {
        Manager { config, tls }
    }
}

impl ManageConnection for Manager {
    type Connection = Connection;
    type Error = Error;

    fn connect(&self) -> Result<Connection, Error> {
        Ok(Connection {
            client: self.config.connect(self.tls.clone())?,
            prepared: HashMap::new(),
        })
    }

    fn is_valid(&self, conn: &mut Connection) -> Result<(), Error> {
        conn.probe()
    }

    fn has_broken(&self, conn: &mut Connection) -> bool {
        conn.client.is_closed()
    }
}

/// A pooled client with the statements it prepared, by SQL text.
pub struct Connection {
    client: Client,
    prepared: HashMap<String, Statement>,
}

impl Connection {
    /// An empty statement: whether the server still answers on this connection.
    pub fn probe(&mut self) -> Result<(), Error> {
        self.client.simple_query("").map(drop)
    }

    /// The statement `sql` (its parameters of `types`), prepared on this connection the
    /// first time it is asked for.
    pub fn prepared(&mut self, sql: &str, types: &[Type]) -> Result<Statement, Error> {
        if let Some(statement) = self.prepared.get(sql) {
            return Ok(statement.clone());
        }
        if self.prepared.len() >= PREPARED {
            self.prepared.clear();
        }
        let statement = self.client.prepare_typed(sql, types)?;
        self.prepared.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }
}

impl Deref for Connection {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}

impl DerefMut for Connection {
    fn deref_mut(&mut self) -> &mut Client {
        &mut self.client
    }
}
