//! `ringlet serve --file`: the article's file server with its flag
//! (`--file-header`); `--root` and `--request-timeout` are shared.

use clap::Args;
use ringlet::proto::file::FileServer;

use super::{Common, Service};

/// The file server's table line.
pub struct FileService;

/// The file server's own flags.
#[derive(Debug, Args)]
#[group(skip)]
pub struct FileOptions {
    /// Framed file protocol for programs: the server answers `OK <size>\n`
    /// and the bytes, or `ERR <reason>\n`, and keeps the connection open for
    /// the next request. Without it, the article's protocol: the file then
    /// close, or close with nothing sent when the request is refused.
    #[arg(long)]
    pub file_header: bool,
}

impl Service for FileService {
    const NAME: &'static str = "file";
    const DEFAULT: &'static str = "127.0.0.1:6001";
    const HELP: &'static str = "Where the file server listens, or `off`";
    const SENDS_FILES: bool = true;
    type Options = FileOptions;
    type Protocol = FileServer;

    fn build(o: &FileOptions, common: &Common) -> anyhow::Result<FileServer> {
        Ok(FileServer::new(common.open_root()?)
            .framed(o.file_header)
            .request_timeout(common.request_timeout))
    }

    fn describe(o: &FileOptions, common: &Common) -> String {
        let framing = if o.file_header { "framed" } else { "plain" };
        format!("root {}, {framing}", common.root_display())
    }
}
