//! The article's second program: read a path up to a NUL byte, send that file
//! back, close. Written with the ringlet library; the connection that asks for
//! a missing file ends alone, as in the article, but promptly. Run:
//! `cargo run --example fileserver`, then `echo -en '/etc/hostname\0' | nc 127.0.0.1 6000`.
//!
//! A request that is not a path ending in NUL within 4 KiB and 10 seconds,
//! or names no file that may be read, ends its connection with a reset and
//! one log line.

use std::time::Duration;

use ringlet::{Connection, Protocol, Reader, Root, Server};

const TEN_SECONDS: Duration = Duration::from_secs(10); // to send a whole request

pub struct FileServer(pub Root);

impl Protocol for FileServer {
    async fn serve<C: Connection>(&self, conn: &mut C) -> std::io::Result<()> {
        let mut reader = Reader::with_capacity(4096).request_timeout(TEN_SECONDS);
        let Some(path) = reader.read_record(conn, b'\0').await? else {
            return Ok(()); // closed without asking for anything
        };
        println!("client requested: {}", String::from_utf8_lossy(path));
        let file = conn.open_file(&self.0, path).await?;
        conn.send_file(file).await?;
        Ok(())
    }
}

fn main() -> Result<(), ringlet::ServerError> {
    tracing_subscriber::fmt().init(); // each failed request is one log line
    let root = Root::open("/")?; // the article served the whole filesystem
    Server::builder()
        .service("file", "127.0.0.1:6000".parse().unwrap(), FileServer(root))
        .start()?
        .wait()
}
