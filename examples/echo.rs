//! The article's first program, the line echo server on port 6000, written
//! with the ringlet library. Run: `cargo run --example echo`, then
//! `nc 127.0.0.1 6000` and type lines.
//!
//! Like Python's `readline`, a last line without a newline is echoed too,
//! and a line longer than the reader's 4 KiB comes (and goes back) in
//! pieces: memory stays bounded, and the client gets every byte.

use ringlet::{Connection, Protocol, Reader, Server};

pub struct LineEcho;

impl Protocol for LineEcho {
    async fn serve<C: Connection>(&self, conn: &mut C) -> std::io::Result<()> {
        println!("client connected");
        let mut reader = Reader::with_capacity(4096);
        while let Some(line) = reader.read_line(conn).await? {
            conn.write_bytes(line).await?;
            println!("echoed {}", String::from_utf8_lossy(line).trim_end());
        }
        println!("client disconnected");
        Ok(())
    }
}

fn main() -> Result<(), ringlet::ServerError> {
    tracing_subscriber::fmt().init(); // failed connections are logged
    let server = Server::builder()
        .service("echo", "127.0.0.1:6000".parse().unwrap(), LineEcho)
        .start()?;
    println!("server socket listening on port 6000");
    server.wait()
}
