//! The HTTP client of Vieter's API: one type, used by the `vieter` CLI and by `vieter-agent`.
//!
//! Every call returns the envelope's `data` on success; a failure names what went wrong: the address
//! that could not be reached, the HTTP status with the server's own message, or the file that could not
//! be read.

use std::path::Path;

#[cfg(feature = "aur")]
pub mod aur;

use futures_util::TryStreamExt;
use libvieter::api::{
    AgentInfo, CreatedTarget, Envelope, FinishRequest, Health, HeartbeatRequest, JobFilter, LeaseRenewal,
    LeasedJob, ListQuery, LogAppendQuery, LogQuery, PackageDetail, PackageSummary, PollRequest,
    PublishResult, QueueRequest, Removed, RepoInfo, ResolveRequest, TargetFilter, TargetRemoved,
};
use libvieter::builds::DependencyTree;
use libvieter::job::{AgentId, Job, JobId, Outcome};
use libvieter::resolve::ClosureReport;
use libvieter::target::{NewTarget, Target, TargetId, TargetPatch};
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde::de::DeserializeOwned;

/// The header carrying the API key (Vieter's).
pub const API_KEY_HEADER: &str = "X-Api-Key";

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid server address {address:?}: expected e.g. http://127.0.0.1:8000")]
    InvalidAddress { address: String },
    #[error("could not reach the Vieter server at {address}: {source}")]
    Connect {
        address: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("the server refused the API key (HTTP 401): {message}")]
    Unauthorized { message: String },
    #[error("not found (HTTP 404): {message}")]
    NotFound { message: String },
    #[error("the server answered HTTP {status}: {message}")]
    Http { status: u16, message: String },
    #[error("unexpected answer from {url}: {detail}")]
    Decode { url: String, detail: String },
    #[error("{url}: the answer is larger than the {limit} bytes expected")]
    TooLarge { url: String, limit: u64 },
    #[error("{path}: {source}")]
    File {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// A connection to one Vieter server.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    api_key: Option<String>,
    http: reqwest::Client,
}

impl Client {
    /// A client for the server at `address` (`http://host:port`, a trailing `/` is fine).
    pub fn new(address: &str, api_key: Option<String>) -> Result<Self, ClientError> {
        let base = address.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) || base.len() < "http://x".len() {
            return Err(ClientError::InvalidAddress { address: address.to_owned() });
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("vieter/", env!("CARGO_PKG_VERSION")))
            // The server closes connections idle for longer than its header_read_timeout (10 s by
            // default): drop pooled ones before that, so a request never starts on one being closed.
            .pool_idle_timeout(std::time::Duration::from_secs(5))
            .build()
            .map_err(|source| ClientError::Connect { address: base.clone(), source })?;
        Ok(Client { base, api_key, http })
    }

    /// The server address this client talks to.
    pub fn address(&self) -> &str {
        &self.base
    }

    /// A request to `path` (which starts with `/`), with the API key when one is set.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let req = self.http.request(method, format!("{}{}", self.base, path));
        match &self.api_key {
            Some(key) => req.header(API_KEY_HEADER, key),
            None => req,
        }
    }

    /// Sends `req` and returns the envelope's data, or the error the server described.
    pub async fn send<T: DeserializeOwned>(&self, req: RequestBuilder) -> Result<T, ClientError> {
        let resp = req.send().await.map_err(|source| self.connect_error(source))?;
        let status = resp.status();
        let url = resp.url().to_string();
        let body = resp.bytes().await.map_err(|source| self.connect_error(source))?;
        if !status.is_success() {
            return Err(http_error(status, &body));
        }
        let envelope: Envelope<T> =
            serde_json::from_slice(&body).map_err(|e| ClientError::Decode { url, detail: e.to_string() })?;
        Ok(envelope.data)
    }

    fn connect_error(&self, source: reqwest::Error) -> ClientError {
        ClientError::Connect { address: self.base.clone(), source }
    }

    /// `GET /health`.
    pub async fn health(&self) -> Result<(), ClientError> {
        self.send::<Health>(self.request(Method::GET, "/health")).await.map(|_| ())
    }

    /// Uploads a package file to `repo`, streaming it from disk. `progress` is called with the number of
    /// bytes sent so far.
    pub async fn publish(
        &self,
        repo: &str,
        path: &Path,
        progress: impl Fn(u64) + Send + Sync + 'static,
    ) -> Result<PublishResult, ClientError> {
        let file_error = |source| ClientError::File { path: path.display().to_string(), source };
        let file = tokio::fs::File::open(path).await.map_err(file_error)?;
        let len = file.metadata().await.map_err(file_error)?.len();
        let mut sent = 0u64;
        let stream = tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024).inspect_ok(move |chunk| {
            sent += chunk.len() as u64;
            progress(sent);
        });
        let req = self
            .request(Method::POST, &format!("/{}/publish", encode(repo)))
            .header(CONTENT_LENGTH, len)
            .header(CONTENT_TYPE, "application/octet-stream")
            .body(reqwest::Body::wrap_stream(stream));
        self.send(req).await
    }

    /// Uploads a package file with the packager's detached signature of it (`signature`, binary or
    /// armored, as `gpg --detach-sign` writes `FILE.sig`): `multipart/form-data` with the parts `sig`
    /// and `file`, the file streamed from disk. The server verifies it against its `trusted_keys`.
    pub async fn publish_signed(
        &self,
        repo: &str,
        path: &Path,
        signature: Vec<u8>,
        progress: impl Fn(u64) + Send + Sync + 'static,
    ) -> Result<PublishResult, ClientError> {
        use reqwest::multipart::{Form, Part};
        let file_error = |source| ClientError::File { path: path.display().to_string(), source };
        let file = tokio::fs::File::open(path).await.map_err(file_error)?;
        let len = file.metadata().await.map_err(file_error)?.len();
        let mut sent = 0u64;
        let stream = tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024).inspect_ok(move |chunk| {
            sent += chunk.len() as u64;
            progress(sent);
        });
        let name =
            path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "package".into());
        let form = Form::new()
            .part("sig", Part::bytes(signature).file_name(format!("{name}.sig")))
            .part("file", Part::stream_with_length(reqwest::Body::wrap_stream(stream), len).file_name(name));
        let req = self.request(Method::POST, &format!("/{}/publish", encode(repo))).multipart(form);
        self.send(req).await
    }

    /// `GET /api/v1/repos`.
    pub async fn repos(&self) -> Result<Vec<RepoInfo>, ClientError> {
        self.send(self.request(Method::GET, "/api/v1/repos")).await
    }

    /// `GET /api/v1/repos/{repo}/{arch}/packages`.
    pub async fn packages(
        &self,
        repo: &str,
        arch: &str,
        query: &ListQuery,
    ) -> Result<Vec<PackageSummary>, ClientError> {
        let path = format!("/api/v1/repos/{}/{}/packages", encode(repo), encode(arch));
        self.send(self.request(Method::GET, &path).query(query)).await
    }

    /// `GET /api/v1/repos/{repo}/{arch}/packages/{name}`.
    pub async fn package(&self, repo: &str, arch: &str, name: &str) -> Result<PackageDetail, ClientError> {
        let path = format!("/api/v1/repos/{}/{}/packages/{}", encode(repo), encode(arch), encode(name));
        self.send(self.request(Method::GET, &path)).await
    }

    /// `DELETE /{repo}`, `/{repo}/{arch}` or `/{repo}/{arch}/{pkgname}`.
    pub async fn remove(
        &self,
        repo: &str,
        arch: Option<&str>,
        name: Option<&str>,
    ) -> Result<(), ClientError> {
        let mut path = format!("/{}", encode(repo));
        for part in [arch, name].into_iter().flatten() {
            path.push('/');
            path.push_str(&encode(part));
        }
        self.send::<Removed>(self.request(Method::DELETE, &path)).await.map(|_| ())
    }

    /// `PUT /api/v1/repos/{repo}/{arch}`: creates the empty arch-repo; returns whether it was created
    /// (`false`: it existed, and was left alone).
    pub async fn create_arch_repo(&self, repo: &str, arch: &str) -> Result<bool, ClientError> {
        let path = format!("/api/v1/repos/{}/{}", encode(repo), encode(arch));
        let created: libvieter::api::ArchRepoCreated = self.send(self.request(Method::PUT, &path)).await?;
        Ok(created.created)
    }
}

impl Client {
    /// `GET /api/v1/targets` with filters (`repo`, `arch`, `query`, `limit`, `offset`).
    pub async fn targets(&self, filter: &TargetFilter) -> Result<Vec<Target>, ClientError> {
        self.send(self.request(Method::GET, "/api/v1/targets").query(filter)).await
    }

    /// `POST /api/v1/targets`.
    pub async fn create_target(&self, target: &NewTarget) -> Result<Target, ClientError> {
        self.send(self.request(Method::POST, "/api/v1/targets").json(target)).await
    }

    /// `POST /api/v1/targets`, with what adding an `aur` target resolved and created.
    pub async fn add_target(&self, target: &NewTarget) -> Result<CreatedTarget, ClientError> {
        self.send(self.request(Method::POST, "/api/v1/targets").json(target)).await
    }

    /// `GET /api/v1/targets/{id}`.
    pub async fn target(&self, id: TargetId) -> Result<Target, ClientError> {
        self.send(self.request(Method::GET, &format!("/api/v1/targets/{id}"))).await
    }

    /// `GET /api/v1/targets/{id}/deps`: the target and the trees of the targets it needs.
    pub async fn target_deps(&self, id: TargetId) -> Result<DependencyTree, ClientError> {
        self.send(self.request(Method::GET, &format!("/api/v1/targets/{id}/deps"))).await
    }

    /// `PATCH /api/v1/targets/{id}`.
    pub async fn patch_target(&self, id: TargetId, patch: &TargetPatch) -> Result<Target, ClientError> {
        self.send(self.request(Method::PATCH, &format!("/api/v1/targets/{id}")).json(patch)).await
    }

    /// `DELETE /api/v1/targets/{id}`: returns the automatic targets removed with it.
    pub async fn delete_target(&self, id: TargetId) -> Result<Vec<TargetId>, ClientError> {
        self.send::<TargetRemoved>(self.request(Method::DELETE, &format!("/api/v1/targets/{id}")))
            .await
            .map(|r| r.automatic)
    }

    /// `POST /api/v1/jobs`: queue builds now.
    pub async fn queue(&self, request: &QueueRequest) -> Result<Vec<Job>, ClientError> {
        self.send(self.request(Method::POST, "/api/v1/jobs").json(request)).await
    }

    /// `GET /api/v1/jobs` with filters (`state`, `target`, `arch`, `since`, `limit`, `offset`).
    pub async fn jobs(&self, filter: &JobFilter) -> Result<Vec<Job>, ClientError> {
        self.send(self.request(Method::GET, "/api/v1/jobs").query(filter)).await
    }

    /// `GET /api/v1/jobs/{id}`.
    pub async fn job(&self, id: JobId) -> Result<Job, ClientError> {
        self.send(self.request(Method::GET, &format!("/api/v1/jobs/{id}"))).await
    }

    /// `POST /api/v1/jobs/{id}/cancel` or `/retry`.
    pub async fn job_action(&self, id: JobId, action: JobAction) -> Result<Job, ClientError> {
        let verb = match action {
            JobAction::Cancel => "cancel",
            JobAction::Retry => "retry",
        };
        self.send(self.request(Method::POST, &format!("/api/v1/jobs/{id}/{verb}"))).await
    }

    /// `GET /api/v1/jobs/{id}/log`: the whole log; with `follow`, a response whose body streams until
    /// the job ends.
    pub async fn log(&self, id: JobId, follow: bool) -> Result<reqwest::Response, ClientError> {
        let req = self.request(Method::GET, &format!("/api/v1/jobs/{id}/log")).query(&LogQuery { follow });
        let resp = req.send().await.map_err(|source| self.connect_error(source))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let body = resp.bytes().await.map_err(|source| self.connect_error(source))?;
        Err(http_error(status, &body))
    }

    /// Admin: `POST /api/v1/aur/resolve`: the dependency closure of AUR packages as adding `aur`
    /// targets would resolve it, without creating anything.
    pub async fn aur_resolve(&self, request: &ResolveRequest) -> Result<ClosureReport, ClientError> {
        self.send(self.request(Method::POST, "/api/v1/aur/resolve").json(request)).await
    }

    /// `GET /api/v1/agents`.
    pub async fn agents(&self) -> Result<Vec<AgentInfo>, ClientError> {
        self.send(self.request(Method::GET, "/api/v1/agents")).await
    }

    /// `GET /api/v1/keys`: the public keys that sign the server's repositories, current first.
    pub async fn keys(&self) -> Result<Vec<libvieter::api::SigningKey>, ClientError> {
        self.send(self.request(Method::GET, "/api/v1/keys")).await
    }

    /// `GET /api/v1/keys/resign`: how far the re-sign after a key rotation is.
    pub async fn resign_status(&self) -> Result<libvieter::api::ResignStatus, ClientError> {
        self.send(self.request(Method::GET, "/api/v1/keys/resign")).await
    }

    /// Admin: `DELETE /api/v1/keys/{fingerprint}`: a retired key stops being listed.
    pub async fn remove_key(&self, fingerprint: &str) -> Result<(), ClientError> {
        let path = format!("/api/v1/keys/{}", encode(fingerprint));
        self.send::<serde_json::Value>(self.request(Method::DELETE, &path)).await.map(|_| ())
    }

    /// Agent: `POST /api/v1/jobs/poll`.
    pub async fn poll(&self, request: &PollRequest) -> Result<Vec<LeasedJob>, ClientError> {
        self.send(self.request(Method::POST, "/api/v1/jobs/poll").json(request)).await
    }

    /// Agent: `POST /api/v1/jobs/{id}/heartbeat`.
    pub async fn heartbeat(&self, id: JobId, agent: &AgentId) -> Result<(), ClientError> {
        let body = HeartbeatRequest { agent_id: agent.clone() };
        let req = self.request(Method::POST, &format!("/api/v1/jobs/{id}/heartbeat")).json(&body);
        self.send::<LeaseRenewal>(req).await.map(|_| ())
    }

    /// Agent: `POST /api/v1/jobs/{id}/log`: appends to the build log.
    pub async fn append_log(&self, id: JobId, agent: &AgentId, text: Vec<u8>) -> Result<(), ClientError> {
        let req = self
            .request(Method::POST, &format!("/api/v1/jobs/{id}/log"))
            .query(&LogAppendQuery { agent_id: agent.clone() })
            .body(text);
        self.send::<serde_json::Value>(req).await.map(|_| ())
    }

    /// Agent: `POST /api/v1/jobs/{id}/finish`.
    pub async fn finish(&self, id: JobId, agent: &AgentId, outcome: Outcome) -> Result<Job, ClientError> {
        let body = FinishRequest { agent_id: agent.clone(), outcome };
        self.send(self.request(Method::POST, &format!("/api/v1/jobs/{id}/finish")).json(&body)).await
    }
}

/// Reading a Vieter 0.6 server (`vieter migrate`): its API's shapes are `libvieter::compat`'s.
impl Client {
    /// Every target of a Vieter 0.6 server (`GET /api/v1/targets`, paged with `limit`/`offset`).
    pub async fn vieter06_targets(&self) -> Result<Vec<libvieter::compat::VieterTarget>, ClientError> {
        const PAGE: usize = 100;
        let mut out: Vec<libvieter::compat::VieterTarget> = Vec::new();
        loop {
            let req =
                self.request(Method::GET, "/api/v1/targets").query(&[("limit", PAGE), ("offset", out.len())]);
            let page: Vec<libvieter::compat::VieterTarget> = self.send(req).await?;
            // An empty page ends the list; so does one that repeats what was read (a server ignoring
            // offset).
            let fresh = page.iter().filter(|t| !out.iter().any(|o| o.id == t.id)).count();
            if page.is_empty() || fresh == 0 {
                return Ok(out);
            }
            out.extend(page);
        }
    }

    /// `GET {path}` as bytes (a repository file), at most `limit` of them (more is
    /// [`ClientError::TooLarge`], read no further); 404 is [`ClientError::NotFound`].
    pub async fn get_bytes(&self, path: &str, limit: u64) -> Result<Vec<u8>, ClientError> {
        let mut resp =
            self.request(Method::GET, path).send().await.map_err(|source| self.connect_error(source))?;
        let status = resp.status();
        if !status.is_success() {
            let body = resp.bytes().await.map_err(|source| self.connect_error(source))?;
            return Err(http_error(status, &body));
        }
        let url = resp.url().to_string();
        let too_large = || ClientError::TooLarge { url: url.clone(), limit };
        if resp.content_length().is_some_and(|n| n > limit) {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|source| self.connect_error(source))? {
            if (body.len() + chunk.len()) as u64 > limit {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// `GET {path}` streamed into the file `dest` (created or truncated), at most `limit` bytes (more
    /// is [`ClientError::TooLarge`]: the download stops there); returns the bytes written. `progress`
    /// is called with the bytes received so far.
    pub async fn download(
        &self,
        path: &str,
        dest: &Path,
        limit: u64,
        progress: impl Fn(u64),
    ) -> Result<u64, ClientError> {
        use tokio::io::AsyncWriteExt;
        let mut resp =
            self.request(Method::GET, path).send().await.map_err(|source| self.connect_error(source))?;
        let status = resp.status();
        if !status.is_success() {
            let body = resp.bytes().await.map_err(|source| self.connect_error(source))?;
            return Err(http_error(status, &body));
        }
        let url = resp.url().to_string();
        let too_large = || ClientError::TooLarge { url: url.clone(), limit };
        if resp.content_length().is_some_and(|n| n > limit) {
            return Err(too_large());
        }
        let file_error = |source| ClientError::File { path: dest.display().to_string(), source };
        let mut file = tokio::fs::File::create(dest).await.map_err(file_error)?;
        let mut written = 0u64;
        while let Some(chunk) = resp.chunk().await.map_err(|source| self.connect_error(source))? {
            written += chunk.len() as u64;
            if written > limit {
                return Err(too_large());
            }
            file.write_all(&chunk).await.map_err(file_error)?;
            progress(written);
        }
        file.flush().await.map_err(file_error)?;
        Ok(written)
    }

    /// Path of a file of an arch-repo: `/{repo}/{arch}/{file}`, each segment percent-encoded.
    pub fn repo_file_path(repo: &str, arch: &str, file: &str) -> String {
        format!("/{}/{}/{}", encode(repo), encode(arch), encode(file))
    }
}

/// What to do with a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobAction {
    Cancel,
    Retry,
}

/// The error for a non-success answer, with the server's message when it sent an envelope.
fn http_error(status: StatusCode, body: &[u8]) -> ClientError {
    let message = serde_json::from_slice::<Envelope<serde_json::Value>>(body)
        .map(|e| e.message)
        .unwrap_or_else(|_| String::from_utf8_lossy(body).chars().take(500).collect());
    match status {
        StatusCode::UNAUTHORIZED => ClientError::Unauthorized { message },
        StatusCode::NOT_FOUND => ClientError::NotFound { message },
        _ => ClientError::Http { status: status.as_u16(), message },
    }
}

/// Percent-encodes one path segment.
fn encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~@+".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert!(Client::new("http://127.0.0.1:8000/", None).is_ok());
        assert_eq!(Client::new("http://h:1/", None).unwrap().address(), "http://h:1");
        assert!(matches!(Client::new("127.0.0.1:8000", None), Err(ClientError::InvalidAddress { .. })));
    }

    #[test]
    fn errors_carry_the_server_message() {
        let e = http_error(StatusCode::UNAUTHORIZED, br#"{"message":"invalid API key","data":null}"#);
        assert_eq!(e.to_string(), "the server refused the API key (HTTP 401): invalid API key");
        let e = http_error(StatusCode::BAD_GATEWAY, b"upstream down");
        assert_eq!(e.to_string(), "the server answered HTTP 502: upstream down");
    }

    /// `https://` addresses work in every build of the client (TLS is a default feature, not a gift
    /// of another crate of the workspace enabling it): the first byte sent is a TLS handshake record.
    #[tokio::test]
    async fn https_addresses_speak_tls() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let first = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut byte = [0u8; 1];
            tokio::io::AsyncReadExt::read_exact(&mut stream, &mut byte).await.unwrap();
            byte[0]
        });
        let client = Client::new(&format!("https://127.0.0.1:{port}"), None).unwrap();
        let err = client.repos().await.unwrap_err();
        let first = tokio::time::timeout(std::time::Duration::from_secs(10), first).await;
        let first = first.unwrap_or_else(|_| panic!("nothing reached the listener: {err}"));
        assert_eq!(first.unwrap(), 0x16, "a TLS handshake record ({err})");
    }

    #[test]
    fn segments_are_encoded() {
        assert_eq!(encode("a b/c"), "a%20b%2Fc");
        assert_eq!(encode("lib32-gcc@x+1.2_3"), "lib32-gcc@x+1.2_3");
    }
}
