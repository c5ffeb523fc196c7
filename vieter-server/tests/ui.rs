//! The web interface in a real browser: Debian's Chromium driven through ChromeDriver (WebDriver), against
//! the real server holding the test corpus. Every page is opened and its HTML checked by html5ever; a
//! package search runs as you type; a running job's log grows in the page while the test appends to it
//! through the agent API (no reload); signing in, adding a target, building and cancelling it happen by
//! clicking. Screenshots of every page go to `target/ui-screenshots/`.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{call, publish, require_tool, Server, KEY};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

const AGENT_KEY: &str = "ui-agent-key";

/// ChromeDriver on a free port, killed when dropped.
struct Driver {
    child: Child,
    port: u16,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

async fn browser() -> (Driver, Client) {
    let port = free_port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let profile = tempfile::tempdir().expect("a profile dir");
    let driver = Driver { child, port, _profile: profile };
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = http.get(format!("http://127.0.0.1:{port}/status")).send().await {
            if r.status().is_success() {
                break;
            }
        }
        assert!(Instant::now() < deadline, "chromedriver did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let args = [
        "--headless=new".to_owned(),
        "--no-sandbox".to_owned(),
        "--disable-gpu".to_owned(),
        "--disable-dev-shm-usage".to_owned(),
        "--disable-background-networking".to_owned(),
        "--disable-component-update".to_owned(),
        "--disable-sync".to_owned(),
        "--disable-quic".to_owned(),
        "--no-first-run".to_owned(),
        "--window-size=1280,900".to_owned(),
        format!("--user-data-dir={}", driver._profile.path().display()),
    ];
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": { "binary": "/usr/bin/chromium", "args": args },
        "goog:loggingPrefs": { "browser": "ALL" },
    });
    let serde_json::Value::Object(caps) = caps else { unreachable!() };
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a WebDriver session");
    (driver, client)
}

/// The browser's console messages since the last call (ChromeDriver's log endpoint).
#[derive(Debug)]
struct BrowserLog;

impl fantoccini::wd::WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(&self, base: &url::Url, session: Option<&str>) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or("")))
    }
    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(r#"{"type":"browser"}"#.to_owned()))
    }
}

async fn console_errors(client: &Client) -> Vec<String> {
    let logs = client.issue_cmd(BrowserLog).await.expect("the browser's log");
    logs.as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["level"] == "SEVERE" || e["level"] == "WARNING")
        .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
        // Chromium's own network noise on this closed machine is not the page's.
        .filter(|m| !m.contains("favicon.ico"))
        .collect()
}

fn screenshots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/ui-screenshots");
    std::fs::create_dir_all(&dir).expect("the screenshot directory");
    dir
}

/// Opens a page, checks that its HTML parses without error and that nothing went to the console, and
/// keeps a screenshot of it.
async fn visit(client: &Client, http: &reqwest::Client, url: &str, name: &str, cookie: Option<&str>) {
    client.goto(url).await.unwrap_or_else(|e| panic!("open {url}: {e}"));
    wait_ready(client).await;
    let png = client.screenshot().await.expect("a screenshot");
    std::fs::write(screenshots().join(format!("{name}.png")), png).expect("write the screenshot");
    // The same page's HTML as the server sent it, checked by html5ever.
    let mut req = http.get(url);
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    let resp = req.send().await.expect("the page");
    assert_eq!(resp.status(), 200, "{url}");
    assert_eq!(resp.headers()["content-type"], "text/html; charset=utf-8", "{url}");
    let html = resp.text().await.expect("the page's text");
    let doc = scraper::Html::parse_document(&html);
    assert!(doc.errors.is_empty(), "{url}: HTML errors {:?}", doc.errors);
    assert!(!html.contains(KEY), "{url}: the admin key is in the page");
    let errors = console_errors(client).await;
    assert!(errors.is_empty(), "{url}: console errors {errors:?}");
}

async fn wait_ready(client: &Client) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while client.execute("return document.readyState", vec![]).await.ok() != Some(json!("complete")) {
        assert!(Instant::now() < deadline, "the page did not load");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Clicks what leads to another page and waits until that page has loaded (a marker set on the old
/// document is gone from the new one): `readyState` alone may still be the old page's.
async fn click_to_next_page(client: &Client, what: Locator<'_>) {
    client.execute("window.__old_page = true", vec![]).await.expect("mark the page");
    client.find(what).await.expect("the element to click").click().await.expect("click");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let state = client
            .execute("return [window.__old_page === true, document.readyState]", vec![])
            .await
            .unwrap_or(json!([true, "loading"]));
        if state == json!([false, "complete"]) {
            return;
        }
        assert!(Instant::now() < deadline, "the click led to no new page");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `check` holds (the page changes by itself).
async fn until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(15);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn text(client: &Client, css: &str) -> String {
    match client.find(Locator::Css(css)).await {
        Ok(e) => e.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

fn corpus() -> Option<Vec<PathBuf>> {
    let Some(dir) = std::env::var_os("VIETER_CORPUS").filter(|v| !v.is_empty()) else {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("VIETER_CORPUS must be set when CI=true (scripts/test.sh builds the corpus)");
        }
        eprintln!("skipping: VIETER_CORPUS is not set");
        return None;
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("the corpus directory")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().contains(".pkg.tar"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "the corpus in {dir:?} is empty");
    Some(files)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_interface_in_a_real_browser() {
    if !require_tool("chromium") || !require_tool("chromedriver") {
        return;
    }
    let Some(corpus) = corpus() else { return };
    let server = Server::start(&[("VIETER_AGENT_KEY", AGENT_KEY)]);
    let url = server.url.clone();
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    for file in &corpus {
        let resp = publish(&http, &url, "extra", std::fs::read(file).unwrap()).await;
        assert_eq!(resp.status(), 200, "publishing {file:?}");
    }
    let (_driver, client) = browser().await;

    // `/` is the overview; without a key, repositories only.
    client.goto(&format!("{url}/")).await.unwrap();
    assert_eq!(client.current_url().await.unwrap().path(), "/ui/");
    visit(&client, &http, &format!("{url}/ui/"), "overview-public", None).await;
    assert!(text(&client, "main").await.contains("extra"));
    assert!(text(&client, "header nav").await.lines().all(|l| !l.contains("Jobs")), "builds need a key");
    let (status, _) = (http.get(format!("{url}/ui/jobs")).send().await.unwrap().status(), ());
    assert_eq!(status, 303, "the jobs page sends an anonymous reader to sign in");

    // The repository: every package, then a search as you type (no reload: a marker survives).
    visit(&client, &http, &format!("{url}/ui/repos/extra"), "repository", None).await;
    let rows = client.find_all(Locator::Css("#packages tbody tr")).await.unwrap();
    assert_eq!(rows.len(), corpus.len(), "one row per package");
    client.execute("window.__still_here = true", vec![]).await.unwrap();
    let search = client.find(Locator::Css("input[name=q]")).await.unwrap();
    search.send_keys("split").await.unwrap();
    until("the search to narrow the table", || async {
        client.find_all(Locator::Css("#packages tbody tr")).await.map(|r| r.len()).unwrap_or(0) == 3
    })
    .await;
    assert_eq!(client.execute("return window.__still_here === true", vec![]).await.unwrap(), json!(true));
    assert!(client.current_url().await.unwrap().query().unwrap_or("").contains("q=split"));
    std::fs::write(screenshots().join("repository-search.png"), client.screenshot().await.unwrap()).unwrap();

    // A package: its fields, its dependency linked to the package that satisfies it, the snippet.
    click_to_next_page(&client, Locator::LinkText("corpus-split-bin")).await;
    let package_url = client.current_url().await.unwrap().to_string();
    assert!(package_url.ends_with("/ui/repos/extra/x86_64/corpus-split-bin"), "{package_url}");
    visit(&client, &http, &package_url, "package", None).await;
    let dep = client.find(Locator::LinkText("corpus-split-lib=3.2.1")).await.expect("a linked dependency");
    assert_eq!(dep.attr("href").await.unwrap().as_deref(), Some("/ui/repos/extra/x86_64/corpus-split-lib"));
    let page = text(&client, "main").await;
    assert!(page.contains("[extra]") && page.contains("Server = http://"), "{page}");
    assert!(page.contains("3.2.1-2"), "the version: {page}");
    let history = text(&client, "#history").await;
    assert!(history.contains("published") && history.contains("3.2.1-2"), "the history: {history}");

    // Signing in: a wrong key is refused, the admin key makes a session (an HttpOnly cookie).
    client.goto(&format!("{url}/ui/login?next=/ui/targets")).await.unwrap();
    client.find(Locator::Css("input[name=key]")).await.unwrap().send_keys("wrong").await.unwrap();
    click_to_next_page(&client, Locator::Css("form.form button")).await;
    assert!(text(&client, "main").await.contains("not one of this server's keys"));
    // The refusal is a 401, which the browser notes in its console: that one message only.
    let refused = console_errors(&client).await;
    assert!(refused.len() == 1 && refused[0].contains("401"), "{refused:?}");
    client.find(Locator::Css("input[name=key]")).await.unwrap().send_keys(KEY).await.unwrap();
    click_to_next_page(&client, Locator::Css("form.form button")).await;
    assert_eq!(client.current_url().await.unwrap().path(), "/ui/targets");
    assert!(text(&client, "header").await.contains("Signed in (admin)"));
    let cookie = client.get_named_cookie("vieter_session").await.expect("the session cookie");
    assert_eq!(cookie.http_only(), Some(true));
    assert_eq!(format!("{:?}", cookie.same_site()), "Some(Strict)");
    let cookie_header = format!("vieter_session={}", cookie.value());
    assert!(
        client.execute("return document.cookie", vec![]).await.unwrap() == json!(""),
        "scripts cannot read the session"
    );

    // Adding a target through the form, then building it.
    client.goto(&format!("{url}/ui/targets/new")).await.unwrap();
    for (field, value) in
        [("url", "https://example.invalid/ui-pkg.git"), ("repo", "extra"), ("arch", "x86_64")]
    {
        client
            .find(Locator::Css(&format!("input[name={field}]")))
            .await
            .unwrap()
            .send_keys(value)
            .await
            .unwrap();
    }
    click_to_next_page(&client, Locator::Css("form.form button")).await;
    let target_path = client.current_url().await.unwrap().path().to_owned();
    assert!(target_path.starts_with("/ui/targets/"), "{target_path}");
    visit(&client, &http, &format!("{url}{target_path}"), "target", Some(&cookie_header)).await;
    // A form without the session's token is refused.
    let forged = http
        .post(format!("{url}{target_path}/delete"))
        .header("cookie", &cookie_header)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("csrf=forged")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403, "a forged form is refused");
    click_to_next_page(&client, Locator::XPath("//button[text()='Build now']")).await;
    let job_path = client.current_url().await.unwrap().path().to_owned();
    let job_id: u64 = job_path.rsplit('/').next().unwrap().parse().expect("a job page");
    assert!(text(&client, "#job-head").await.contains("queued"));

    // An agent leases it: the page's state changes by itself.
    let poll = json!({ "agent_id": "ui-agent", "arch": "x86_64", "capacity": 1 });
    let (status, leased) =
        call(&http, reqwest::Method::POST, format!("{url}/api/v1/jobs/poll"), AGENT_KEY, Some(poll)).await;
    assert_eq!(status, 200, "{leased}");
    assert_eq!(leased["data"][0]["job"]["id"], json!(job_id), "{leased}");
    client.execute("window.__still_here = true", vec![]).await.unwrap();
    until("the state to become running", || async { text(&client, "#job-head").await.contains("running") })
        .await;
    assert!(text(&client, "#job-head").await.contains("ui-agent"), "the timeline names the agent");

    // Its log grows line by line while the page is open; colours are rendered.
    let append = |line: &'static str| {
        let http = http.clone();
        let url = url.clone();
        async move {
            let r = http
                .post(format!("{url}/api/v1/jobs/{job_id}/log?agent_id=ui-agent"))
                .header("X-Api-Key", AGENT_KEY)
                .body(line)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }
    };
    append("\x1b[32m==> first line\x1b[0m\n").await;
    until("the first line", || async { text(&client, "#log").await.contains("==> first line") }).await;
    append("second <line> & more\n").await;
    until("the second line", || async { text(&client, "#log").await.contains("second <line> & more") }).await;
    let green = client.find(Locator::Css("#log span.f2")).await.expect("the green span");
    assert_eq!(green.text().await.unwrap(), "==> first line");
    assert_eq!(
        client.execute("return window.__still_here === true", vec![]).await.unwrap(),
        json!(true),
        "no reload"
    );
    std::fs::write(screenshots().join("job-live.png"), client.screenshot().await.unwrap()).unwrap();
    let errors = console_errors(&client).await;
    assert!(errors.is_empty(), "console errors while following: {errors:?}");

    // Cancelling it by clicking.
    click_to_next_page(&client, Locator::XPath("//button[text()='Cancel']")).await;
    until("the job to be cancelled", || async { text(&client, "#job-head").await.contains("cancelled") })
        .await;
    let (_, job) = call(&http, reqwest::Method::GET, format!("{url}/api/v1/jobs/{job_id}"), KEY, None).await;
    assert_eq!(job["data"]["state"], "cancelled", "{job}");
    visit(&client, &http, &format!("{url}{job_path}"), "job-ended", Some(&cookie_header)).await;
    assert!(text(&client, "#log").await.contains("second <line> & more"), "the whole log after the end");

    // The remaining pages, signed in.
    visit(&client, &http, &format!("{url}/ui/"), "overview", Some(&cookie_header)).await;
    visit(&client, &http, &format!("{url}/ui/targets"), "targets", Some(&cookie_header)).await;
    visit(&client, &http, &format!("{url}/ui/jobs"), "jobs", Some(&cookie_header)).await;
    visit(&client, &http, &format!("{url}/ui/jobs?state=cancelled"), "jobs-cancelled", Some(&cookie_header))
        .await;
    assert_eq!(client.find_all(Locator::Css("main tbody tr")).await.unwrap().len(), 1);
    visit(&client, &http, &format!("{url}/ui/agents"), "agents", Some(&cookie_header)).await;
    assert!(text(&client, "main").await.contains("ui-agent"));
    visit(&client, &http, &format!("{url}{target_path}/edit"), "target-edit", Some(&cookie_header)).await;

    // The dependency tree: a target that needs the first one links to it; the first names who needs it.
    let first_id: u64 = target_path.rsplit('/').next().unwrap().parse().expect("a target id");
    let needing = json!({ "kind": "git", "url": "https://example.invalid/ui-app.git", "repo": "extra",
                          "arch": ["x86_64"], "needs": [first_id] });
    let (status, created) =
        call(&http, reqwest::Method::POST, format!("{url}/api/v1/targets"), KEY, Some(needing)).await;
    assert_eq!(status, 200, "{created}");
    let app_id = created["data"]["id"].as_u64().expect("the new target's id");
    visit(&client, &http, &format!("{url}/ui/targets/{app_id}"), "target-tree", Some(&cookie_header)).await;
    let tree = client.find(Locator::Css("ul.tree a")).await.expect("the dependency tree");
    assert_eq!(tree.attr("href").await.unwrap(), Some(format!("/ui/targets/{first_id}")));
    click_to_next_page(&client, Locator::Css("ul.tree a")).await;
    assert_eq!(client.current_url().await.unwrap().path(), target_path, "the tree links to the target");
    let needed_by = client.find(Locator::Css(&format!("section a[href='/ui/targets/{app_id}']"))).await;
    assert!(needed_by.is_ok(), "the needed target names who needs it");

    // Job lists are live: a job queued, leased and failed while the list is open changes its row
    // without a reload (the page fetches itself again when the server says jobs changed).
    let (status, lone) = call(
        &http,
        reqwest::Method::POST,
        format!("{url}/api/v1/targets"),
        KEY,
        Some(json!({ "kind": "git", "url": "https://example.invalid/ui-live.git", "repo": "extra", "arch": ["x86_64"] })),
    )
    .await;
    assert_eq!(status, 200, "{lone}");
    let lone_id = lone["data"]["id"].as_u64().unwrap();
    client.goto(&format!("{url}/ui/jobs?target={lone_id}")).await.unwrap();
    wait_ready(&client).await;
    assert!(text(&client, "#live-jobs").await.contains("No job matches"));
    client.execute("window.__still_here = true", vec![]).await.unwrap();
    let (status, queued) = call(
        &http,
        reqwest::Method::POST,
        format!("{url}/api/v1/jobs"),
        KEY,
        Some(json!({ "target": lone_id })),
    )
    .await;
    assert_eq!(status, 200, "{queued}");
    let lone_job = queued["data"][0]["id"].as_u64().expect("the queued job");
    until("the new job in the list", || async { text(&client, "#live-jobs").await.contains("queued") }).await;
    let poll = json!({ "agent_id": "ui-agent-2", "arch": "x86_64", "capacity": 1 });
    let (status, leased) =
        call(&http, reqwest::Method::POST, format!("{url}/api/v1/jobs/poll"), AGENT_KEY, Some(poll)).await;
    assert_eq!(status, 200, "{leased}");
    assert_eq!(leased["data"][0]["job"]["id"], json!(lone_job), "{leased}");
    until("the job running in the list", || async {
        let t = text(&client, "#live-jobs").await;
        t.contains("running") && t.contains("ui-agent-2")
    })
    .await;
    let failed = json!({ "agent_id": "ui-agent-2", "outcome": { "state": "failed", "cause":
        { "step": "makepkg", "exit_code": 4, "http_status": null, "message": "build() failed" } } });
    let (status, done) = call(
        &http,
        reqwest::Method::POST,
        format!("{url}/api/v1/jobs/{lone_job}/finish"),
        AGENT_KEY,
        Some(failed),
    )
    .await;
    assert_eq!(status, 200, "{done}");
    until("the job failed in the list", || async {
        let t = text(&client, "#live-jobs").await;
        t.contains("failed") && t.contains("makepkg")
    })
    .await;
    assert_eq!(
        client.execute("return window.__still_here === true", vec![]).await.unwrap(),
        json!(true),
        "no reload"
    );
    std::fs::write(screenshots().join("jobs-live.png"), client.screenshot().await.unwrap()).unwrap();
    let errors = console_errors(&client).await;
    assert!(errors.is_empty(), "console errors while the list was live: {errors:?}");

    // Signing out ends the session server-side: the old cookie no longer reads builds.
    client.goto(&format!("{url}/ui/")).await.unwrap();
    click_to_next_page(&client, Locator::XPath("//button[text()='Sign out']")).await;
    let after = http.get(format!("{url}/ui/jobs")).header("cookie", &cookie_header).send().await.unwrap();
    assert_eq!(after.status(), 303, "the session is gone");
    let _: Value = json!(null);
    client.close().await.unwrap();
}
