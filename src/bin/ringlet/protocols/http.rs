//! `ringlet serve --http`: the HTTP/1.1 static file server. It has no flags
//! of its own; `--root` and `--request-timeout` are shared.

use clap::Args;
use ringlet::proto::http::HttpServer;

use super::{Common, Service};

/// The HTTP server's table line.
pub struct HttpService;

/// The HTTP server's own flags: none yet.
#[derive(Debug, Args)]
#[group(skip)]
pub struct HttpOptions {}

impl Service for HttpService {
    const NAME: &'static str = "http";
    const DEFAULT: &'static str = "off";
    const HELP: &'static str = "Where the HTTP/1.1 static file server listens (GET and HEAD of \
        the files beneath --root: keep-alive, ranges, conditional requests, index.html for a \
        directory), or `off`";
    const SENDS_FILES: bool = true;
    type Options = HttpOptions;
    type Protocol = HttpServer;

    fn build(_: &HttpOptions, common: &Common) -> anyhow::Result<HttpServer> {
        Ok(HttpServer::new(common.open_root()?).request_timeout(common.request_timeout))
    }

    fn describe(_: &HttpOptions, common: &Common) -> String {
        format!("root {}, HTTP/1.1", common.root_display())
    }
}
