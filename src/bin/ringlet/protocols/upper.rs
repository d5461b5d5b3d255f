//! A protocol added the way the table's rule says, to show the rule holds:
//! this one file and one table line (the test's). `--upper ADDR|off` and its
//! own flag `--upper-greeting TEXT`: the greeting when a connection opens,
//! then whatever arrives, upper-cased. A test only; never shipped.

use std::io::{self, Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

use clap::Args;
use ringlet::{Buf, Connection, Server};

use super::{Common, PROTOCOLS, Service, entry};
use crate::cli;

struct UpperService;

#[derive(Debug, Args)]
#[group(skip)]
struct UpperOptions {
    /// Written first on every connection.
    #[arg(long, value_name = "TEXT", default_value = "")]
    upper_greeting: String,
}

struct Upper {
    greeting: Vec<u8>,
}

impl ringlet::Protocol for Upper {
    async fn serve<C: Connection>(&self, conn: &mut C) -> io::Result<()> {
        let mut buf = Buf::with_capacity(4096);
        buf.extend_from_slice(&self.greeting);
        let (done, b) = conn.write_all(buf).await;
        (buf, ()) = (b, done?);
        loop {
            buf.clear();
            let (n, b) = conn.read(buf).await;
            buf = b;
            if n? == 0 {
                return Ok(());
            }
            let upper = buf.filled().to_ascii_uppercase();
            buf.clear();
            buf.extend_from_slice(&upper);
            let (done, b) = conn.write_all(buf).await;
            (buf, ()) = (b, done?);
        }
    }
}

impl Service for UpperService {
    const NAME: &'static str = "upper";
    const DEFAULT: &'static str = "off";
    const HELP: &'static str = "Where the upper-casing server listens, or `off`";
    type Options = UpperOptions;
    type Protocol = Upper;

    fn build(o: &UpperOptions, _: &Common) -> anyhow::Result<Upper> {
        Ok(Upper {
            greeting: o.upper_greeting.clone().into_bytes(),
        })
    }

    fn describe(o: &UpperOptions, _: &Common) -> String {
        format!("greeting {:?}", o.upper_greeting)
    }
}

/// The shipped table and `upper`'s one line.
fn table() -> Vec<super::Entry> {
    [PROTOCOLS, &[entry::<UpperService>()]].concat()
}

/// `serve`'s option ids as `--help` lists them.
fn serve_ids(table: &[super::Entry]) -> Vec<String> {
    let program = cli::program(table);
    let serve = program.find_subcommand("serve").expect("serve");
    let ids = serve.get_arguments().map(|a| a.get_id().to_string());
    ids.collect()
}

#[test]
fn a_new_protocol_is_one_file_and_one_table_line() {
    let table = table();
    let matches = cli::command(&table)
        .try_get_matches_from([
            "ringlet",
            "serve",
            "--echo",
            "off",
            "--file",
            "off",
            "--upper",
            "127.0.0.1:0",
            "--upper-greeting",
            "hi ",
        ])
        .expect("serve accepts upper's flags");
    let m = matches.subcommand_matches("serve").expect("serve");
    let (_, services) = cli::serve_options(&table, m).expect("options");
    assert_eq!(services.names(), ["echo", "file", "http", "upper"]);

    // The serve path's own step adds it, from its flags.
    let builder = Server::builder().cores(Some(1));
    let server = services.add_bound(builder).unwrap().start().unwrap();
    assert_eq!(server.local_addr("echo"), None);
    let addr = server.local_addr("upper").expect("upper listens");
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"hello\n").unwrap();
    let mut got = [0; 9];
    s.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"hi HELLO\n");
    drop(s);
    server.stopper().stop();
    server.wait().unwrap();
}

#[test]
fn the_help_lists_addresses_then_root_then_each_protocols_flags() {
    let ids = serve_ids(&table());
    let at = |id: &str| ids.iter().position(|i| i == id).expect(id);
    assert!(at("http") < at("upper") && at("upper") < at("root"));
    assert!(at("file_header") < at("upper_greeting"));
    assert!(at("upper_greeting") < at("shutdown_timeout"));
    // Without its line, the shipped command knows nothing of it.
    assert!(!serve_ids(PROTOCOLS).iter().any(|i| i.starts_with("upper")));
}
