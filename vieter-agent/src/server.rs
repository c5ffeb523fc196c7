//! What a running job needs from the Vieter server, as a trait: the job runner ([`crate::job`]) is
//! generic over it so it can be tested without a server. [`vieter_client::Client`] implements it.

use std::future::Future;
use std::path::Path;

use libvieter::api::PublishResult;
use libvieter::job::{AgentId, JobId, Outcome};
use libvieter::version::Version;
use vieter_client::{Client, ClientError};

/// The server side of one leased job.
pub trait JobServer: Send + Sync {
    /// Renews the lease of `job`.
    fn heartbeat(&self, job: JobId, agent: &AgentId) -> impl Future<Output = Result<(), ClientError>> + Send;

    /// Appends `text` to the log of `job`.
    fn append_log(
        &self,
        job: JobId,
        agent: &AgentId,
        text: Vec<u8>,
    ) -> impl Future<Output = Result<(), ClientError>> + Send;

    /// The version of `name` published in `repo`/`arch`; `None` when there is none.
    fn published_version(
        &self,
        repo: &str,
        arch: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<Version>, ClientError>> + Send;

    /// Uploads the package file `file` to `repo`.
    fn publish(
        &self,
        repo: &str,
        file: &Path,
    ) -> impl Future<Output = Result<PublishResult, ClientError>> + Send;

    /// Reports how `job` ended.
    fn finish(
        &self,
        job: JobId,
        agent: &AgentId,
        outcome: Outcome,
    ) -> impl Future<Output = Result<(), ClientError>> + Send;
}

impl JobServer for Client {
    async fn heartbeat(&self, job: JobId, agent: &AgentId) -> Result<(), ClientError> {
        Client::heartbeat(self, job, agent).await
    }

    async fn append_log(&self, job: JobId, agent: &AgentId, text: Vec<u8>) -> Result<(), ClientError> {
        Client::append_log(self, job, agent, text).await
    }

    async fn published_version(
        &self,
        repo: &str,
        arch: &str,
        name: &str,
    ) -> Result<Option<Version>, ClientError> {
        match self.package(repo, arch, name).await {
            Ok(detail) => Ok(Some(detail.summary.version)),
            Err(ClientError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn publish(&self, repo: &str, file: &Path) -> Result<PublishResult, ClientError> {
        Client::publish(self, repo, file, |_| {}).await
    }

    async fn finish(&self, job: JobId, agent: &AgentId, outcome: Outcome) -> Result<(), ClientError> {
        Client::finish(self, job, agent, outcome).await.map(|_| ())
    }
}
