//! The article's first program, the line echo server on port 6000, written
//! with the ringlet library. Run: `cargo run --example echo`, then
//! `nc 127.0.0.1 6000` and type lines.

use ringlet::{Buf, Connection, Protocol, Server};

struct LineEcho;

impl Protocol for LineEcho {
    async fn serve<C: Connection>(&self, conn: &mut C) -> std::io::Result<()> {
        println!("client connected");
        let mut buf = Buf::with_capacity(4096); // lines up to 4 KiB
        loop {
            let (n, b) = conn.read(buf).await;
            buf = b;
            if n? == 0 {
                break;
            }
            // Pass through every complete line.
            while let Some(i) = buf.filled().iter().position(|&c| c == b'\n') {
                let (done, b) = conn.write_prefix(buf, i + 1).await;
                buf = b;
                done?;
                println!("echoed {}", String::from_utf8_lossy(&buf.filled()[..i]));
                buf.consume(i + 1);
            }
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
