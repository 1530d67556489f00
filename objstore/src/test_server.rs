//! An in-process S3-compatible server for tests: s3s (SigV4 signatures checked) over s3s-fs
//! (conditional and multipart puts honoured) with object bodies read 1 MiB at a time
//! ([`crate::test_fs`]), served over HTTP/1.1 and HTTP/2 on `127.0.0.1:0` by its own
//! multi-thread tokio runtime on [`SERVER_THREADS`] threads, stopped when dropped. Its [`Faults`]
//! (empty unless a test adds rules) apply to every request it serves, so a test can inject
//! errors, latency and cut bodies into the object store of another process (a real broker).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::ObjStoreConfig;
use crate::faults::Faults;
use crate::server_faults::FaultyService;
use crate::test_fs::TestFs;

/// Worker threads of the server's own runtime.
const SERVER_THREADS: usize = 2;

/// Access key the server accepts.
pub const ACCESS_KEY: &str = "strata-test";
/// Secret key the server accepts.
pub const SECRET_KEY: &str = "strata-test-secret";

/// A running server. Buckets are directories under its root.
pub struct S3TestServer {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    root: PathBuf,
    faults: Arc<Faults>,
    stop: CancellationToken,
}

impl S3TestServer {
    /// Serves `root` (buckets are its subdirectories); creates `bucket`.
    pub async fn start(root: &Path, bucket: &str) -> std::io::Result<Self> {
        Self::start_with_faults(root, bucket, Arc::new(Faults::new(0))).await
    }

    /// Like [`S3TestServer::start`], every request going through `faults` first.
    pub async fn start_with_faults(
        root: &Path,
        bucket: &str,
        faults: Arc<Faults>,
    ) -> std::io::Result<Self> {
        std::fs::create_dir_all(root.join(bucket))?;
        let service = {
            let mut b = S3ServiceBuilder::new(TestFs::new(root)?);
            b.set_auth(SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
            FaultyService {
                inner: b.build(),
                faults: faults.clone(),
            }
        };
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let stop = CancellationToken::new();
        // Its own runtime on its own threads: the server neither competes with the caller's
        // tasks on the caller's worker threads nor depends on the caller's runtime (a test's
        // current-thread runtime, or one blocked in `block_on`) to make progress.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(SERVER_THREADS)
            .thread_name("s3-test-server")
            .enable_all()
            .build()?;
        let st = stop.clone();
        std::thread::Builder::new()
            .name("s3-test-server".into())
            .spawn(move || {
                rt.block_on(serve(listener, service, st));
                rt.shutdown_timeout(std::time::Duration::from_secs(1));
            })?;
        Ok(Self {
            endpoint,
            root: root.to_path_buf(),
            faults,
            stop,
        })
    }

    /// A config reaching `s3://bucket/prefix` on this server with its credentials.
    pub fn config(&self, bucket: &str, prefix: &str) -> ObjStoreConfig {
        ObjStoreConfig {
            url: format!("s3://{bucket}/{prefix}"),
            endpoint: Some(self.endpoint.clone()),
            region: Some("us-east-1".into()),
            credentials: Some((ACCESS_KEY.into(), SECRET_KEY.into())),
            ..Default::default()
        }
    }

    /// The environment a broker process needs to reach this server (`AWS_*` credentials).
    pub fn env() -> [(&'static str, &'static str); 3] {
        [
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
            ("AWS_REGION", "us-east-1"),
        ]
    }

    /// The fault rules applied to every request (add rules to break the server, clear to heal).
    pub fn faults(&self) -> &Arc<Faults> {
        &self.faults
    }

    /// Every object key under `bucket` (relative to the bucket, `/`-separated, sorted), read
    /// from the server's directory: what a listing of the bucket shows, faults or not.
    pub fn keys(&self, bucket: &str) -> Vec<String> {
        fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) {
            let Ok(rd) = std::fs::read_dir(dir) else {
                return;
            };
            for e in rd.flatten() {
                let p = e.path();
                if e.file_name().to_string_lossy().starts_with('.') {
                    continue; // s3s-fs's temporary files
                }
                if p.is_dir() {
                    walk(&p, base, out);
                } else if let Ok(rel) = p.strip_prefix(base) {
                    out.push(rel.to_string_lossy().replace('\\', "/"));
                }
            }
        }
        let base = self.root.join(bucket);
        let mut out = vec![];
        walk(&base, &base, &mut out);
        out.sort();
        out
    }

    /// The directory served.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

/// Accepts connections on `listener` and serves each until `stop`.
async fn serve(listener: std::net::TcpListener, service: FaultyService, stop: CancellationToken) {
    let Ok(listener) = TcpListener::from_std(listener) else {
        return;
    };
    let http = ConnBuilder::new(TokioExecutor::new());
    loop {
        let socket = tokio::select! {
            () = stop.cancelled() => break,
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(_) => continue,
            },
        };
        // As HTTP servers do: without it, a response's last small segment can wait for the
        // client's delayed ACK (Nagle), ≈ 40 ms on Linux.
        let _ = socket.set_nodelay(true);
        let conn = http
            .serve_connection(TokioIo::new(socket), service.clone())
            .into_owned();
        let st = stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = st.cancelled() => {}
                _ = conn => {}
            }
        });
    }
}

impl Drop for S3TestServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
