//! The article's second program: read a path up to a NUL byte, send that file
//! back, close. Written with the ringlet library; the connection that asks for
//! a missing file ends alone, as in the article, but promptly. Run:
//! `cargo run --example fileserver`, then `echo -en '/etc/hostname\0' | nc 127.0.0.1 6000`.

use std::io::{Error, ErrorKind};
use std::time::Duration;

use ringlet::proto::request::{self, Request};
use ringlet::{Buf, Connection, Protocol, Root, Server};

const TEN_SECONDS: Duration = Duration::from_secs(10); // to send a whole request

struct FileServer(Root);

impl Protocol for FileServer {
    async fn serve<C: Connection>(&self, conn: &mut C) -> std::io::Result<()> {
        let (req, buf) = request::read(conn, Buf::with_capacity(4096), TEN_SECONDS).await;
        let Request::Path(len) = req? else {
            return Err(Error::new(ErrorKind::InvalidData, "no path ending in NUL"));
        };
        let path = &buf.filled()[..len];
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
