//! How a build job runs, independent of any container engine.
//!
//! [`BuildPlan::new`] turns a leased job into the shell steps that run inside the build container
//! (configure pacman, fetch the sources, `makepkg --nobuild`, `makepkg --printsrcinfo`, `makepkg`), and
//! [`run_build`] drives them through a [`BuildHost`], which the agent implements with Podman and its HTTP
//! client. The driver decides everything that is not I/O: which step failed and why (makepkg's exit codes
//! are named), whether the exact versions are already published (`skipped`), what the log says at each step.
//!
//! Secrets never reach the container: publishing is a [`BuildHost`] call made by the agent after the
//! packages are copied out.

use std::fmt::Write as _;
use std::future::Future;

use crate::api::LeasedJob;
use crate::job::{BuiltPackage, FailureCause, FailureStep, Outcome};
use crate::name::Arch;
use crate::srcinfo::Srcinfo;
use crate::target::{aur_clone_url, GitRef, Source};
use crate::vcs::{self, Revision};

/// Home of the `builder` user and root of every build inside the container.
pub const BUILD_DIR: &str = "/build";
/// Where the sources are cloned (or the PKGBUILD downloaded).
pub const SOURCE_DIR: &str = "/build/src";
/// Where makepkg writes the packages (`PKGDEST`); the agent copies them out from here.
pub const OUTPUT_DIR: &str = "/build/out";
/// The unprivileged user the build steps run as (makepkg refuses root).
pub const BUILDER_USER: &str = "builder";
/// Label an image carries when it is already prepared for builds (the agent uses it as is).
pub const PREPARED_LABEL: &str = "org.vieter.builder";

/// Who runs a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepUser {
    Root,
    Builder,
}

/// One command run in the build container with `bash -c`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The step a non-zero exit is blamed on.
    pub kind: FailureStep,
    /// Short name shown in the log.
    pub title: &'static str,
    pub user: StepUser,
    pub script: String,
    /// The step's standard output is needed by the driver (it is logged too).
    pub capture_stdout: bool,
}

/// Settings of the agent that shape every plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanOptions {
    /// The architecture the agent builds for.
    pub arch: Arch,
    /// Base URL of the Vieter server as seen from inside the container (for pacman's `Server =`).
    pub repo_server: String,
    /// Base of AUR clone URLs (normally [`crate::target::AUR_BASE`]).
    pub aur_base: String,
}

/// Everything a build does, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildPlan {
    pub arch: Arch,
    /// The sources are a git clone (`git` and `aur` targets) whose commit is recorded.
    pub cloned: bool,
    /// Build even when the exact versions are already published.
    pub force: bool,
    pub steps: PlanSteps,
}

/// The steps of a plan, by role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanSteps {
    /// Adds the target's repository on our server to pacman's configuration.
    pub repo: Step,
    /// Clones the repository or downloads the PKGBUILD.
    pub fetch: Step,
    /// `makepkg --nobuild --syncdeps`: installs dependencies, downloads sources, runs `pkgver()`.
    pub pkgver: Step,
    /// `makepkg --printsrcinfo` (captured).
    pub srcinfo: Step,
    /// `makepkg --noextract --syncdeps`: the build itself, packages to [`OUTPUT_DIR`].
    pub makepkg: Step,
}

/// Quotes `s` for a POSIX shell.
///
/// ```
/// assert_eq!(libvieter::build::shell_quote("it's"), r#"'it'\''s'"#);
/// ```
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Where makepkg keeps downloaded sources and its VCS clones (`SRCDEST`).
pub const SRCDEST: &str = "/build/sources";

/// The environment every makepkg step runs with.
const MAKEPKG_ENV: &str =
    "export PKGDEST=/build/out SRCDEST=/build/sources BUILDDIR=/build/work LOGDEST=/build/logs\n\
     mkdir -p \"$PKGDEST\" \"$SRCDEST\" \"$BUILDDIR\" \"$LOGDEST\"\n";

impl BuildPlan {
    /// The plan for `job` on an agent with `options`.
    pub fn new(job: &LeasedJob, options: &PlanOptions) -> BuildPlan {
        let target = &job.target;
        let repo = target.repo.as_str();
        let server = options.repo_server.trim_end_matches('/');

        // The target's own repository, as the agent reaches it. `SigLevel = Never`: a server that signs
        // serves `.sig` files next to its packages, and pacman checks any signature it finds against
        // the container's keyring, which does not hold the server's key (with `Optional TrustAll` a
        // signed repository made every build needing its own packages fail). Verifying the server's
        // signature inside the build container (importing its key) is not done: this is what an
        // unsigned repository had before.
        let mut repo_script = String::from("set -e\n");
        let _ = write!(
            repo_script,
            "if ! grep -qxF {section} /etc/pacman.conf; then\n  printf '\\n%s\\nSigLevel = Never\\nServer = %s\\n' \
             {section} {server_line} >> /etc/pacman.conf\nfi\n\
             pacman -Sy --noconfirm || echo '[vieter] warning: pacman -Sy failed (a repository without packages has no database yet)'\n",
            section = shell_quote(&format!("[{repo}]")),
            server_line = shell_quote(&format!("{server}/$repo/$arch")),
        );

        let mut fetch = String::from("set -e\n");
        let clone = |fetch: &mut String, url: &str, branch: Option<&GitRef>| {
            let branch = match branch {
                Some(branch) => format!("--branch {} ", shell_quote(branch.as_str())),
                None => String::new(),
            };
            let _ = writeln!(
                fetch,
                "git clone --depth 1 --recurse-submodules --shallow-submodules {branch}-- {} {SOURCE_DIR}",
                shell_quote(url)
            );
        };
        match &target.source {
            Source::Git { url, branch, .. } => clone(&mut fetch, url.as_str(), branch.as_ref()),
            Source::Aur { name } => clone(&mut fetch, &aur_clone_url(&options.aur_base, name), None),
            Source::Url { url } => {
                let _ = writeln!(
                    fetch,
                    "mkdir -p {SOURCE_DIR}\ncurl --fail --silent --show-error --location --retry 2 -o {SOURCE_DIR}/PKGBUILD -- {}",
                    shell_quote(url.as_str())
                );
            }
        }
        let dir = match target.source.path() {
            Some(path) => format!("{SOURCE_DIR}/{}", path.as_str()),
            None => SOURCE_DIR.to_owned(),
        };
        let _ = writeln!(
            fetch,
            "test -f {0}/PKGBUILD || {{ echo \"no PKGBUILD in {0}\" >&2; exit 66; }}",
            shell_quote(&dir)
        );

        let makepkg = |args: &str| format!("set -e\n{MAKEPKG_ENV}cd {}\nmakepkg {args}\n", shell_quote(&dir));
        let step =
            |kind, title, user, script, capture_stdout| Step { kind, title, user, script, capture_stdout };
        BuildPlan {
            arch: options.arch.clone(),
            cloned: !matches!(target.source, Source::Url { .. }),
            force: job.job.force(),
            steps: PlanSteps {
                repo: step(FailureStep::Image, "pacman", StepUser::Root, repo_script, false),
                fetch: step(FailureStep::Fetch, "fetch", StepUser::Builder, fetch, false),
                pkgver: step(
                    FailureStep::Pkgver,
                    "pkgver",
                    StepUser::Builder,
                    makepkg("--nobuild --syncdeps --noconfirm --needed"),
                    false,
                ),
                srcinfo: step(
                    FailureStep::Srcinfo,
                    "srcinfo",
                    StepUser::Builder,
                    makepkg("--printsrcinfo"),
                    true,
                ),
                makepkg: step(
                    FailureStep::Makepkg,
                    "makepkg",
                    StepUser::Builder,
                    makepkg("--noextract --syncdeps --noconfirm --needed --force"),
                    false,
                ),
            },
        }
    }
}

impl BuildPlan {
    /// The step that prints what the build is made from, once makepkg fetched `sources` (the
    /// .SRCINFO's `source` entries): see [`vcs::revision_script`]. Its output is captured, not logged.
    pub fn revision_step(&self, sources: &[String]) -> Step {
        let repo = self.cloned.then_some(SOURCE_DIR);
        Step {
            kind: FailureStep::Srcinfo,
            title: "revision",
            user: StepUser::Builder,
            script: vcs::revision_script(repo, SRCDEST, sources),
            capture_stdout: true,
        }
    }
}

/// Whether a file makepkg wrote to [`OUTPUT_DIR`] is a package to publish: `*.pkg.tar*`, not a signature
/// (`.sig`) nor a hidden file.
///
/// ```
/// use libvieter::build::is_package_file;
/// assert!(is_package_file("a-1-1-x86_64.pkg.tar.zst"));
/// assert!(!is_package_file("a-1-1-x86_64.pkg.tar.zst.sig"));
/// assert!(!is_package_file("a-1-1-x86_64.log"));
/// ```
pub fn is_package_file(name: &str) -> bool {
    name.contains(".pkg.tar") && !name.ends_with(".sig") && !name.starts_with('.')
}

/// The architecture a package file's name ends with (`name-pkgver-pkgrel-ARCH.pkg.tar.*`): an `any`
/// package of a split build is `any`, whatever the job's architecture.
///
/// ```
/// use libvieter::build::package_file_arch;
/// assert_eq!(package_file_arch("splitty-doc-1:2.3-1-any.pkg.tar.zst").unwrap().as_str(), "any");
/// assert!(package_file_arch("garbage").is_none());
/// ```
pub fn package_file_arch(name: &str) -> Option<Arch> {
    let (stem, _) = name.split_once(".pkg.tar")?;
    stem.rsplit_once('-').and_then(|(_, arch)| arch.parse().ok())
}

/// What makepkg's exit codes mean (scripts/makepkg.sh.in, `E_*`).
pub fn makepkg_exit_reason(code: i32) -> &'static str {
    match code {
        1 => "makepkg failed",
        2 => "makepkg configuration error",
        3 => "invalid makepkg option",
        4 => "a PKGBUILD function failed",
        5 => "failed to create the package",
        6 => "a source or auxiliary file is missing",
        7 => "the package directory is missing",
        8 => "failed to install the dependencies",
        9 => "failed to remove the dependencies",
        10 => "makepkg was run as root",
        11 => "insufficient permissions",
        12 => "the PKGBUILD is invalid",
        13 => "the package was already built",
        14 => "failed to install the built package",
        15 => "programs makepkg needs are missing",
        16 => "a PGP signature could not be verified",
        137 => "killed (out of memory or by a signal)",
        _ => "exited with an error",
    }
}

/// The cause of a step that exited with `code`: makepkg's dependency errors are blamed on the
/// dependencies, whatever step ran makepkg.
pub fn step_failure(step: &Step, code: i32) -> FailureCause {
    let (kind, reason) = match step.kind {
        FailureStep::Pkgver | FailureStep::Srcinfo | FailureStep::Makepkg => {
            let kind = if matches!(code, 8 | 15) { FailureStep::Dependencies } else { step.kind };
            (kind, makepkg_exit_reason(code))
        }
        FailureStep::Fetch if code == 66 => (step.kind, "the PKGBUILD is not where the target says"),
        FailureStep::Fetch => (step.kind, "could not fetch the sources (git clone or download failed)"),
        _ => (step.kind, "exited with an error"),
    };
    FailureCause { step: kind, exit_code: Some(code), http_status: None, message: reason.to_owned() }
}

/// What a step printed and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepOutput {
    pub exit_code: i32,
    /// Standard output, when the step asked for it.
    pub stdout: String,
    /// How long the step ran, as the host measured it (the driver reads no clock).
    pub elapsed: std::time::Duration,
}

/// What runs a build: the container, the log and the server, as the agent provides them.
///
/// Every method returns the [`FailureCause`] to report when it fails (a container runtime error, an
/// HTTP status...).
pub trait BuildHost {
    /// Runs `step` in the build container, streaming its output to the log.
    fn run(&mut self, step: &Step) -> impl Future<Output = Result<StepOutput, FailureCause>> + Send;
    /// Writes a line of Vieter's own to the log.
    fn note(&mut self, line: String) -> impl Future<Output = ()> + Send;
    /// Whether every one of `packages` is published in exactly that version.
    fn is_published(
        &mut self,
        packages: &[BuiltPackage],
    ) -> impl Future<Output = Result<bool, FailureCause>> + Send;
    /// Copies the built packages out of the container and publishes them; returns what was published.
    fn publish(&mut self) -> impl Future<Output = Result<Vec<BuiltPackage>, FailureCause>> + Send;
}

/// Prefix of every line the driver writes to the log.
pub const LOG_PREFIX: &str = "==> [vieter]";

async fn run_step<H: BuildHost>(host: &mut H, step: &Step) -> Result<String, FailureCause> {
    host.note(format!("{LOG_PREFIX} {}: started", step.title)).await;
    let output = match host.run(step).await {
        Ok(output) => output,
        Err(cause) => {
            host.note(format!("{LOG_PREFIX} {}: {cause}", step.title)).await;
            return Err(cause);
        }
    };
    let secs = output.elapsed.as_secs_f64();
    host.note(format!("{LOG_PREFIX} {}: exit code {} after {secs:.1} s", step.title, output.exit_code)).await;
    if output.exit_code != 0 {
        return Err(step_failure(step, output.exit_code));
    }
    Ok(output.stdout)
}

fn describe(packages: &[BuiltPackage]) -> String {
    let names: Vec<String> =
        packages.iter().map(|p| format!("{}-{}-{}", p.name.as_str(), p.version, p.arch.as_str())).collect();
    names.join(", ")
}

/// Runs `plan` on `host` and says how the job ended. The timeout is the caller's: it drops this future
/// and reports [`Outcome::TimedOut`].
pub async fn run_build<H: BuildHost>(host: &mut H, plan: &BuildPlan) -> Outcome {
    match drive(host, plan).await {
        Ok(outcome) => outcome,
        Err(cause) => {
            host.note(format!("{LOG_PREFIX} failed: {cause}")).await;
            Outcome::Failed { cause }
        }
    }
}

async fn drive<H: BuildHost>(host: &mut H, plan: &BuildPlan) -> Result<Outcome, FailureCause> {
    let steps = &plan.steps;
    run_step(host, &steps.repo).await?;
    run_step(host, &steps.fetch).await?;
    run_step(host, &steps.pkgver).await?;
    let text = run_step(host, &steps.srcinfo).await?;
    let srcinfo =
        Srcinfo::parse(&text).map_err(|e| FailureCause::new(FailureStep::Srcinfo, e.to_string()))?;
    let expected = srcinfo.packages_for(&plan.arch);
    if expected.is_empty() {
        return Err(FailureCause::new(
            FailureStep::Srcinfo,
            format!("the PKGBUILD builds no package for {}", plan.arch.as_str()),
        ));
    }
    host.note(format!("{LOG_PREFIX} version: {}", describe(&expected))).await;
    let revision = read_revision(host, plan, &srcinfo).await;
    if plan.force {
        host.note(format!("{LOG_PREFIX} forced: building even if these versions are published")).await;
    } else if host.is_published(&expected).await? {
        host.note(format!("{LOG_PREFIX} skipped: these exact versions are already published")).await;
        return Ok(Outcome::Skipped { versions: expected, revision });
    }
    run_step(host, &steps.makepkg).await?;
    host.note(format!("{LOG_PREFIX} publish: started")).await;
    let published = host.publish().await?;
    if published.is_empty() {
        return Err(FailureCause::new(FailureStep::Makepkg, "makepkg succeeded but wrote no package"));
    }
    host.note(format!("{LOG_PREFIX} published: {}", describe(&published))).await;
    Ok(Outcome::Succeeded { versions: published, revision })
}

/// Reads what the build is made from (the repository's commit, the commits makepkg fetched for the VCS
/// sources) with the plan's revision step. Never fails the build: without it, the next scheduled run
/// is built instead of checked.
async fn read_revision<H: BuildHost>(host: &mut H, plan: &BuildPlan, srcinfo: &Srcinfo) -> Option<Revision> {
    let step = plan.revision_step(&srcinfo.sources);
    match host.run(&step).await {
        Ok(output) if output.exit_code == 0 => {
            let revision = vcs::parse_revision(&output.stdout, &srcinfo.sources);
            if let Some(commit) = &revision.commit {
                host.note(format!("{LOG_PREFIX} commit: {commit}")).await;
            }
            for pinned in &revision.sources {
                let commit = pinned.commit.as_deref().unwrap_or("not read");
                host.note(format!("{LOG_PREFIX} vcs source {}: {commit}", pinned.source)).await;
            }
            Some(revision)
        }
        Ok(output) => {
            host.note(format!("{LOG_PREFIX} revision: exit code {} (not recorded)", output.exit_code)).await;
            None
        }
        Err(cause) => {
            host.note(format!("{LOG_PREFIX} revision: {cause} (not recorded)")).await;
            None
        }
    }
}

/// The script that turns a plain Arch image (e.g. `archlinux:base-devel`) into a builder image: the
/// packages makepkg needs, the `builder` user with passwordless sudo and [`BUILD_DIR`] as its home.
pub fn prepare_image_script() -> String {
    format!(
        "set -e\n\
         pacman -Syu --noconfirm --needed base-devel git sudo\n\
         id -u {BUILDER_USER} >/dev/null 2>&1 || useradd -m -d {BUILD_DIR} {BUILDER_USER}\n\
         echo '{BUILDER_USER} ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/{BUILDER_USER}\n\
         chmod 0440 /etc/sudoers.d/{BUILDER_USER}\n\
         mkdir -p {BUILD_DIR} && chown {BUILDER_USER}: {BUILD_DIR}\n\
         pacman -Scc --noconfirm\n"
    )
}

/// What to do for the image of a build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageChoice {
    /// The base image is already a builder image: build in it directly.
    UseAsIs,
    /// Build in this prepared image.
    Reuse(String),
    /// Prepare a new builder image from the base.
    Prepare,
}

/// Chooses the image of a build: a base carrying [`PREPARED_LABEL`] is used as is; else the newest
/// prepared image of that base is reused while younger than `rebuild_after_secs`; else prepare one.
/// `prepared` lists (image name, age in seconds) of the images prepared from this base.
pub fn choose_image(
    base_is_prepared: bool,
    prepared: &[(String, u64)],
    rebuild_after_secs: u64,
) -> ImageChoice {
    if base_is_prepared {
        return ImageChoice::UseAsIs;
    }
    prepared
        .iter()
        .filter(|(_, age)| *age < rebuild_after_secs)
        .min_by_key(|(_, age)| *age)
        .map_or(ImageChoice::Prepare, |(name, _)| ImageChoice::Reuse(name.clone()))
}

/// The name of the images prepared from `base`: `localhost/vieter-prepared:<hex of the base name>`
/// with a creation time suffix, so one base has one repository of prepared images.
pub fn prepared_image_repo(base: &str) -> String {
    let safe: String =
        base.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    format!("localhost/vieter-prepared-{}", safe.trim_matches('-'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{Job, JobId, Trigger};
    use crate::target::{NewTarget, TargetId};
    use crate::version::Version;
    use chrono::{TimeZone, Utc};

    fn leased(kind: &str, url: &str, branch: Option<&str>, path: Option<&str>, force: bool) -> LeasedJob {
        let new = NewTarget {
            kind: kind.into(),
            url: url.into(),
            branch: branch.map(Into::into),
            path: path.map(Into::into),
            repo: "my-repo".into(),
            ..NewTarget::default()
        };
        let target = new.validate(TargetId(7), &"x86_64".parse().unwrap()).unwrap();
        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let job = Job::new(JobId(3), TargetId(7), "x86_64".parse().unwrap(), force, Trigger::Manual, t0);
        LeasedJob {
            job,
            target,
            base_image: "archlinux:base-devel".into(),
            timeout_secs: 60,
            lease_expires_at: t0,
            heartbeat_secs: 10,
        }
    }

    fn options() -> PlanOptions {
        PlanOptions {
            arch: "x86_64".parse().unwrap(),
            repo_server: "http://127.0.0.1:8000/".into(),
            aur_base: "https://aur.example".into(),
        }
    }

    #[test]
    fn git_plan_clones_the_branch_and_enters_the_subdirectory() {
        let plan =
            BuildPlan::new(&leased("git", "git://h/repo.git", Some("v1"), Some("pkg/a"), false), &options());
        let fetch = &plan.steps.fetch.script;
        assert!(fetch.contains("--branch 'v1' -- 'git://h/repo.git' /build/src"), "{fetch}");
        assert!(
            plan.steps.makepkg.script.contains("cd '/build/src/pkg/a'\n"),
            "{}",
            plan.steps.makepkg.script
        );
        assert!(plan.steps.repo.script.contains("'[my-repo]'"));
        assert!(plan.steps.repo.script.contains("'http://127.0.0.1:8000/$repo/$arch'"));
        assert!(plan.steps.repo.script.contains("SigLevel = Never"), "{}", plan.steps.repo.script);
        assert_eq!(plan.steps.fetch.user, StepUser::Builder);
        assert_eq!(plan.steps.repo.user, StepUser::Root);
        assert!(plan.steps.srcinfo.capture_stdout);
    }

    #[test]
    fn aur_and_url_plans() {
        let aur = BuildPlan::new(&leased("aur", "yay", None, None, false), &options());
        assert!(aur.steps.fetch.script.contains("-- 'https://aur.example/yay.git' /build/src"));
        let url = BuildPlan::new(&leased("url", "https://x.example/PKGBUILD", None, None, true), &options());
        assert!(url.steps.fetch.script.contains("-o /build/src/PKGBUILD -- 'https://x.example/PKGBUILD'"));
        assert!(url.force);
    }

    #[test]
    fn exit_codes_name_the_cause() {
        let plan = BuildPlan::new(&leased("git", "git://h/r", None, None, false), &options());
        let c = step_failure(&plan.steps.makepkg, 4);
        assert_eq!(c.to_string(), "makepkg failed (exit code 4): a PKGBUILD function failed");
        assert_eq!(step_failure(&plan.steps.pkgver, 8).step, FailureStep::Dependencies);
        assert_eq!(step_failure(&plan.steps.fetch, 128).step, FailureStep::Fetch);
        assert_eq!(step_failure(&plan.steps.fetch, 66).message, "the PKGBUILD is not where the target says");
    }

    #[test]
    fn image_choice() {
        let imgs = vec![("old".to_string(), 900), ("new".to_string(), 100)];
        assert_eq!(choose_image(true, &imgs, 1000), ImageChoice::UseAsIs);
        assert_eq!(choose_image(false, &imgs, 1000), ImageChoice::Reuse("new".into()));
        assert_eq!(choose_image(false, &imgs, 50), ImageChoice::Prepare);
        assert_eq!(choose_image(false, &[], 50), ImageChoice::Prepare);
        assert_eq!(
            prepared_image_repo("docker.io/archlinux:base-devel"),
            "localhost/vieter-prepared-docker-io-archlinux-base-devel"
        );
        let script = prepare_image_script();
        assert!(script.contains("base-devel git sudo") && script.contains("NOPASSWD"));
    }

    /// A host that plays back exit codes and records the log.
    struct Scripted {
        codes: Vec<(&'static str, i32)>,
        srcinfo: &'static str,
        revision: &'static str,
        published: bool,
        log: Vec<String>,
        publish_calls: usize,
    }

    impl BuildHost for Scripted {
        async fn run(&mut self, step: &Step) -> Result<StepOutput, FailureCause> {
            let exit_code = self.codes.iter().find(|(t, _)| *t == step.title).map_or(0, |(_, c)| *c);
            let stdout = match (step.capture_stdout, step.title) {
                (true, "revision") => self.revision.to_owned(),
                (true, _) => self.srcinfo.to_owned(),
                (false, _) => String::new(),
            };
            Ok(StepOutput { exit_code, stdout, elapsed: std::time::Duration::from_millis(1500) })
        }
        async fn note(&mut self, line: String) {
            self.log.push(line);
        }
        async fn is_published(&mut self, _: &[BuiltPackage]) -> Result<bool, FailureCause> {
            Ok(self.published)
        }
        async fn publish(&mut self) -> Result<Vec<BuiltPackage>, FailureCause> {
            self.publish_calls += 1;
            Ok(vec![BuiltPackage {
                name: "a".parse().unwrap(),
                version: Version::parse("1-1").unwrap(),
                arch: "x86_64".parse().unwrap(),
            }])
        }
    }

    fn host(codes: Vec<(&'static str, i32)>, published: bool) -> Scripted {
        Scripted {
            codes,
            srcinfo: "pkgbase = a\n\tpkgver = 1\n\tpkgrel = 1\n\tarch = x86_64\n\
                      \tsource = lib::git+https://h/lib.git#branch=dev\n\npkgname = a\n",
            revision: "commit 1111111111111111111111111111111111111111\n\
                       source 0 2222222222222222222222222222222222222222\n",
            published,
            log: vec![],
            publish_calls: 0,
        }
    }

    fn block_on<F: Future>(f: F) -> F::Output {
        // The scripted host never waits, so polling once with a no-op waker finishes the future.
        let mut f = std::pin::pin!(f);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match f.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(out) => out,
            std::task::Poll::Pending => panic!("the scripted host never waits"),
        }
    }

    #[test]
    fn the_driver_records_the_revision_and_never_fails_on_it() {
        let plan = BuildPlan::new(&leased("git", "git://h/r", None, None, false), &options());
        let step = plan.revision_step(&["git+https://h/x.git".into()]);
        assert!(step.capture_stdout && step.script.contains("git -C '/build/src'"), "{}", step.script);
        assert!(step.script.contains("--git-dir='/build/sources/x'"), "{}", step.script);
        let url = BuildPlan::new(&leased("url", "https://x.example/PKGBUILD", None, None, false), &options());
        assert!(!url.revision_step(&[]).script.contains("git -C"), "a downloaded PKGBUILD has no commit");

        let mut ok = host(vec![], false);
        let Outcome::Succeeded { revision: Some(revision), .. } = block_on(run_build(&mut ok, &plan)) else {
            panic!("{:?}", ok.log)
        };
        assert_eq!(revision.commit.as_deref(), Some("1111111111111111111111111111111111111111"));
        assert_eq!(revision.sources.len(), 1);
        assert_eq!(revision.sources[0].commit.as_deref(), Some("2222222222222222222222222222222222222222"));
        assert!(ok.log.iter().any(|l| l == "==> [vieter] commit: 1111111111111111111111111111111111111111"));

        let mut skipped = host(vec![], true);
        assert!(matches!(
            block_on(run_build(&mut skipped, &plan)),
            Outcome::Skipped { revision: Some(_), .. }
        ));

        let mut unreadable = host(vec![("revision", 1)], false);
        let outcome = block_on(run_build(&mut unreadable, &plan));
        assert!(matches!(outcome, Outcome::Succeeded { revision: None, .. }), "{outcome:?}");
        assert!(unreadable.log.iter().any(|l| l.contains("revision: exit code 1 (not recorded)")));
    }

    #[test]
    fn driver_outcomes() {
        let plan = BuildPlan::new(&leased("git", "git://h/r", None, None, false), &options());
        let mut ok = host(vec![], false);
        assert!(matches!(block_on(run_build(&mut ok, &plan)), Outcome::Succeeded { .. }));
        assert_eq!(ok.publish_calls, 1);
        assert!(ok.log.iter().any(|l| l == "==> [vieter] version: a-1-1-x86_64"), "{:?}", ok.log);

        let mut skipped = host(vec![], true);
        assert!(matches!(block_on(run_build(&mut skipped, &plan)), Outcome::Skipped { .. }));
        assert_eq!(skipped.publish_calls, 0);

        let forced = BuildPlan::new(&leased("git", "git://h/r", None, None, true), &options());
        let mut again = host(vec![], true);
        assert!(matches!(block_on(run_build(&mut again, &forced)), Outcome::Succeeded { .. }));

        let mut failing = host(vec![("makepkg", 4)], false);
        let Outcome::Failed { cause } = block_on(run_build(&mut failing, &plan)) else { panic!() };
        assert_eq!((cause.step, cause.exit_code), (FailureStep::Makepkg, Some(4)));
        assert!(
            failing.log.iter().any(|l| l == "==> [vieter] makepkg: exit code 4 after 1.5 s"),
            "{:?}",
            failing.log
        );
        assert_eq!(failing.publish_calls, 0);

        let mut bad_srcinfo = host(vec![], false);
        bad_srcinfo.srcinfo = "garbage";
        let Outcome::Failed { cause } = block_on(run_build(&mut bad_srcinfo, &plan)) else { panic!() };
        assert_eq!(cause.step, FailureStep::Srcinfo);

        let mut other_arch = host(vec![], false);
        other_arch.srcinfo = "pkgbase = a\n\tpkgver = 1\n\tpkgrel = 1\n\tarch = aarch64\n\npkgname = a\n";
        let Outcome::Failed { cause } = block_on(run_build(&mut other_arch, &plan)) else { panic!() };
        assert!(cause.message.contains("no package for x86_64"), "{cause}");
    }
}
