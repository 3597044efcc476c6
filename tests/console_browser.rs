//! The operator console seen in a real headless Chromium, driven through WebDriver.
//!
//! Needs Debian's `chromium` and `chromium-driver` on `PATH` (`.ci/run` installs them). Under
//! `CI=true` a missing browser is a failure like any other; elsewhere the failure says how to
//! install it. Screenshots land in `target/console-screenshots/`, to look at after a run.

mod browser {
    //! Starting Chromium under chromedriver, screenshots, and reading QR codes off them.

    use std::fs;
    use std::net::{Ipv4Addr, TcpListener, TcpStream};
    use std::os::unix::process::CommandExt as _;
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    use fantoccini::{Client, ClientBuilder};
    use hyper_util::client::legacy::connect::HttpConnector;
    use serde_json::json;
    use tempfile::TempDir;

    /// The window every test sees, so that screenshots are comparable between runs.
    pub const WINDOW: (u32, u32) = (1280, 1600);

    const INSTALL_HINT: &str = "apt-get install chromium chromium-driver";

    /// A chromedriver process and one Chromium session in it.
    pub struct Browser {
        pub client: Client,
        driver: Child,
        // chromedriver's log, kept for failure messages.
        log: PathBuf,
        _dir: TempDir,
    }

    impl Browser {
        /// Starts chromedriver on a free port and opens a headless Chromium session.
        pub async fn start() -> Browser {
            let chromium = require_tool("chromium");
            let chromedriver = require_tool("chromedriver");
            let dir = tempfile::tempdir().expect("temporary directory");
            let log = dir.path().join("chromedriver.log");
            // Another process may take the port between our probe and chromedriver's bind:
            // try a few ports before giving up.
            let mut last_error = String::new();
            for _ in 0..3 {
                let port = free_port();
                let mut driver = Command::new(&chromedriver)
                    .arg(format!("--port={port}"))
                    .arg(format!("--log-path={}", log.display()))
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    // Its own process group, so that dropping the Browser ends Chromium and its
                    // helpers too, even when a panicking test never closed the session.
                    .process_group(0)
                    .spawn()
                    .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromedriver.display()));
                match wait_for_port(&mut driver, port, Duration::from_secs(20)) {
                    Ok(()) => {
                        let client = connect(port, &chromium, dir.path()).await;
                        return Browser { client, driver, log, _dir: dir };
                    }
                    Err(e) => {
                        last_error = e;
                        kill_group(&mut driver);
                    }
                }
            }
            panic!("chromedriver did not start: {last_error}\n{}", read_log(&log));
        }

        /// Loads `url` and waits until the document has loaded.
        pub async fn goto(&self, url: &str) {
            self.client.goto(url).await.unwrap_or_else(|e| panic!("goto {url}: {e}\n{}", self.log()));
        }

        /// A PNG screenshot of the window, saved as `target/console-screenshots/NAME.png`, and
        /// its pixels in grey for decoding.
        pub async fn screenshot(&self, name: &str) -> (PathBuf, image::GrayImage) {
            let png = self.client.screenshot().await.unwrap_or_else(|e| panic!("screenshot: {e}"));
            let path = screenshot_dir().join(format!("{name}.png"));
            fs::write(&path, &png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
            let img = image::load_from_memory_with_format(&png, image::ImageFormat::Png)
                .unwrap_or_else(|e| panic!("{} is no PNG: {e}", path.display()));
            (path, img.to_luma8())
        }

        /// Ends the session (Chromium quits); chromedriver ends when the Browser drops.
        pub async fn close(self) {
            // A clone: `close` consumes the client, and Drop still needs `self`.
            if let Err(e) = self.client.clone().close().await {
                panic!("closing the session: {e}\n{}", self.log());
            }
        }

        /// chromedriver's log so far.
        pub fn log(&self) -> String {
            read_log(&self.log)
        }
    }

    impl Drop for Browser {
        fn drop(&mut self) {
            kill_group(&mut self.driver);
        }
    }

    /// Where screenshots go: `target/console-screenshots/` (under `CARGO_TARGET_DIR` if set).
    pub fn screenshot_dir() -> PathBuf {
        // CARGO_TARGET_TMPDIR is `<target>/tmp`, wherever the target directory is.
        let target = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().map(Path::to_path_buf);
        let dir = target.unwrap_or_else(|| PathBuf::from("target")).join("console-screenshots");
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        dir
    }

    /// Every QR code found in `img`, decoded, top to bottom then left to right.
    pub fn decode_qr_codes(img: image::GrayImage) -> Vec<String> {
        let mut prepared = rqrr::PreparedImage::prepare(img);
        let mut found: Vec<((i32, i32), String)> = prepared
            .detect_grids()
            .iter()
            .map(|grid| {
                let (_, text) = grid.decode().unwrap_or_else(|e| panic!("undecodable QR code: {e:?}"));
                let corner = grid.bounds[0];
                ((corner.y, corner.x), text)
            })
            .collect();
        found.sort();
        found.into_iter().map(|(_, text)| text).collect()
    }

    /// The path of `name` on `PATH`, or a failure that says how to install it.
    pub fn require_tool(name: &str) -> PathBuf {
        let path = std::env::var_os("PATH").unwrap_or_default();
        if let Some(found) = std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file()) {
            return found;
        }
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("CI=true and {name} is not on PATH: the browser tests must run in CI ({INSTALL_HINT})");
        }
        panic!("{name} is not on PATH: the console's browser tests need Debian's Chromium: {INSTALL_HINT}");
    }

    /// A TCP port free on the loopback interface right now (chromedriver needs an explicit one).
    pub fn free_port() -> u16 {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a free port");
        listener.local_addr().expect("local address").port()
    }

    fn wait_for_port(driver: &mut Child, port: u16, limit: Duration) -> Result<(), String> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Ok(Some(status)) = driver.try_wait() {
                return Err(format!("chromedriver exited with {status}"));
            }
            if TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!("nothing listens on port {port} after {limit:?}"))
    }

    async fn connect(port: u16, chromium: &Path, profile_parent: &Path) -> Client {
        let profile = profile_parent.join("profile");
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless=new",
                    // Root in a container has no user namespace sandbox.
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    format!("--window-size={},{}", WINDOW.0, WINDOW.1),
                    // Screenshots at one device pixel per CSS pixel, whatever the host says.
                    "--force-device-scale-factor=1",
                    "--hide-scrollbars",
                    format!("--user-data-dir={}", profile.display()),
                ],
            }),
        );
        let url = format!("http://127.0.0.1:{port}");
        ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&url)
            .await
            .unwrap_or_else(|e| panic!("WebDriver session at {url}: {e}"))
    }

    fn kill_group(driver: &mut Child) {
        if let Ok(None) = driver.try_wait() {
            // The group id is chromedriver's pid (process_group(0)); Chromium was started in it.
            let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", driver.id())]).status();
        }
        let _ = driver.wait();
    }

    fn read_log(path: &Path) -> String {
        let log = fs::read_to_string(path).unwrap_or_default();
        // The end says why it failed; the start is mostly capabilities.
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }
}

use std::time::Instant;

use browser::{Browser, decode_qr_codes, screenshot_dir};
use taler_lite::amount::Amount;
use taler_lite::payto::Payto;
use taler_lite::qr_bill::{CreditorAddress, EpcQrCode, SwissQrBill};

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The Swiss QR bill and the EPC code drawn by `qr_bill`, shown by Chromium, read back off the
/// screenshot: what a banking app's camera would get.
#[tokio::test]
async fn qr_codes_survive_a_real_browser() {
    let started = Instant::now();
    let swiss = SwissQrBill::new(
        &Payto::parse("payto://iban/CH4431999123000889012?receiver-name=Exchange").unwrap(),
        &CreditorAddress::new("8000", "Zürich"),
        &Amount::parse("CHF:1949.75").unwrap(),
        "210000000003139471430009017",
    )
    .unwrap();
    let epc = EpcQrCode::new(
        &Payto::parse("payto://iban/GENODEM1GLS/DE89370400440532013000?receiver-name=Erika%20M").unwrap(),
        &Amount::parse("EUR:12.5").unwrap(),
        "KYC:87WXSE5KSPJ92JRECQ4NSRRQNA81JZXDN0PKW9H7TR9599XC5200",
    )
    .unwrap();
    let amount = swiss.amount_display().unwrap_or_default();
    let page = format!(
        r#"<!doctype html><html><head><meta charset="utf-8"><title>QR codes</title>
<style>body{{font-family:sans-serif;margin:24px}} .code svg{{width:460px;height:460px}}
.part{{display:flex;gap:32px;margin-bottom:48px}}</style></head><body>
<div class="part"><div class="code">{swiss_svg}</div><dl>
<dt>Account / Payable to</dt><dd>{account}<br>{name}<br>{town}</dd>
<dt>Reference</dt><dd>{reference}</dd><dt>Currency</dt><dd>{currency}</dd><dt>Amount</dt><dd>{amount}</dd>
</dl></div>
<div class="part"><div class="code">{epc_svg}</div><p>EPC QR code (GiroCode)</p></div>
</body></html>"#,
        swiss_svg = swiss.svg().unwrap(),
        epc_svg = epc.svg().unwrap(),
        account = escape_html(&swiss.account_display()),
        name = escape_html(swiss.creditor_name()),
        town = escape_html(&swiss.address_lines().join(", ")),
        reference = swiss.reference_display(),
        currency = swiss.currency().code(),
    );
    let html = screenshot_dir().join("qr-codes.html");
    std::fs::write(&html, page).unwrap();

    let browser = Browser::start().await;
    let browser_up = started.elapsed();
    browser.goto(&format!("file://{}", html.display())).await;
    let (png, img) = browser.screenshot("qr-codes").await;
    assert_eq!(img.dimensions().0, browser::WINDOW.0, "screenshot of the whole window width");
    let decoded = decode_qr_codes(img);
    browser.close().await;

    assert_eq!(decoded.len(), 2, "two QR codes in {}: {decoded:?}", png.display());
    let lines = |s: &str| s.split('\n').map(str::to_owned).collect::<Vec<_>>();
    assert_eq!(lines(&decoded[0]), lines(&swiss.payload()), "Swiss QR code read off {}", png.display());
    assert_eq!(lines(&decoded[1]), lines(&epc.payload()), "EPC code read off {}", png.display());
    eprintln!(
        "browser test: {:.1?} in all, {browser_up:.1?} to start chromedriver and Chromium; screenshot {}",
        started.elapsed(),
        png.display()
    );
}

mod common;

use common::bank::EXCHANGE_ACCOUNT as SWISS_ACCOUNT;
use common::kyc::{CUSTOMER, body_hash, party_arg, zip_of};
use fantoccini::Locator;
use taler_lite::crypto::EddsaPrivateKey;

const EPC_ACCOUNT: &str = "payto://iban/DE89370400440532013000?receiver-name=Exchange";
const JPEG: &[u8] = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9";

/// A small real PNG (a blue square), so that the preview shows something.
fn png() -> Vec<u8> {
    let img = image::RgbImage::from_pixel(64, 64, image::Rgb([20, 90, 200]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

fn subject_of(subjects: &serde_json::Value, kind: &str, field: &str) -> String {
    subjects.as_array().unwrap().iter().find(|s| s["type"] == kind).unwrap()[field]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn source(browser: &Browser) -> String {
    browser.client.source().await.unwrap()
}

/// Waits until the page shows `text` (a click's navigation may still be under way).
async fn wait_for(browser: &Browser, text: &str) -> String {
    let start = Instant::now();
    loop {
        let page = source(browser).await;
        if page.contains(text) {
            return page;
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(10), "no {text:?} in {page}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Waits until the browser is at a URL ending with `suffix`.
async fn wait_for_url(browser: &Browser, suffix: &str) {
    let start = Instant::now();
    loop {
        let url = browser.client.current_url().await.unwrap();
        if url.as_str().ends_with(suffix) {
            return;
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(10), "at {url}, not at …{suffix}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

async fn click(browser: &Browser, css: &str) {
    browser
        .client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .unwrap();
}

/// The whole console in Chromium: login, every page, the forms, the previews, the payment
/// codes read back off the screenshots, a simulated transfer, logout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_a_real_browser() {
    let started = Instant::now();
    let party = EddsaPrivateKey::generate().unwrap();
    let party_arg = party_arg(&party);
    let app = common::spawn_app(&[
        "--extern-key",
        &party_arg,
        "--credit-account",
        SWISS_ACCOUNT,
        "--credit-account",
        EPC_ACCOUNT,
    ])
    .await;
    let png = png();
    let zip = zip_of(&[("id/front.jpg", JPEG), ("scan.png", &png)]);
    let (h_png, h_zip) = (body_hash(&png), body_hash(&zip));
    assert_eq!(app.upload(&party, CUSTOMER, "image/png", &png).await.status, 204);
    assert_eq!(app.upload(&party, CUSTOMER, "application/zip", &zip).await.status, 204);
    let (swiss_key, swiss) = app.register_reserve(SWISS_ACCOUNT, "KUDOS:5").await;
    let (epc_key, epc) = app.register_reserve(EPC_ACCOUNT, "KUDOS:5").await;
    assert_eq!((swiss.status, epc.status), (200, 200));
    let (swiss_subjects, epc_subjects) = (swiss.json()["subjects"].clone(), epc.json()["subjects"].clone());
    let base = app.url.trim_end_matches('/').to_owned();

    let browser = Browser::start().await;
    let browser_up = started.elapsed();
    // No session: the login form.
    browser.goto(&format!("{base}/console/")).await;
    assert!(browser.client.current_url().await.unwrap().as_str().ends_with("/console/login"));
    browser.screenshot("console-login").await;
    browser.client.find(Locator::Css("#token")).await.unwrap().send_keys(&app.token).await.unwrap();
    click(&browser, "button[type=submit]").await;
    wait_for(&browser, "Recent events").await;
    browser.screenshot("console-overview").await;

    for (path, name, expect) in [
        ("/console/auditors", "console-auditors", "enable-auditor"),
        ("/console/uploads", "console-uploads", "Test Party"),
        ("/console/registrations", "console-registrations", &swiss_key.public_key().to_string()[..]),
        ("/console/transfers", "console-transfers", "Simulate a transfer"),
    ] {
        browser.goto(&format!("{base}{path}")).await;
        assert!(source(&browser).await.contains(expect), "{path}");
        browser.screenshot(name).await;
    }

    // Add and disable a third party through the forms.
    browser.goto(&format!("{base}/console/extern")).await;
    let new_party = EddsaPrivateKey::generate().unwrap().public_key().to_string();
    browser
        .client
        .find(Locator::Css("form.box input[name=extern_pub]"))
        .await
        .unwrap()
        .send_keys(&new_party)
        .await
        .unwrap();
    browser
        .client
        .find(Locator::Css("form.box input[name=name]"))
        .await
        .unwrap()
        .send_keys("Browser KYC")
        .await
        .unwrap();
    click(&browser, "form.box button[type=submit]").await;
    wait_for(&browser, "Browser KYC added").await;
    click(&browser, "button[aria-label='Disable Browser KYC']").await;
    wait_for(&browser, &format!("{new_party} disabled.")).await;
    browser.screenshot("console-extern").await;

    // Previews: the PNG itself, and a JPEG inside the ZIP.
    browser.goto(&format!("{base}/console/uploads/{h_png}")).await;
    assert!(source(&browser).await.contains(&format!("/console/uploads/{h_png}/raw")));
    browser.screenshot("console-upload-png").await;
    browser.goto(&format!("{base}/console/uploads/{h_zip}")).await;
    assert!(source(&browser).await.contains("id/front.jpg"));
    browser.screenshot("console-upload-zip").await;
    click(&browser, "td a[href$='/entries/0']").await;
    wait_for_url(&browser, "/entries/0").await;
    browser.screenshot("console-zip-entry").await;

    // The Swiss QR bill, read back off the screenshot, field by field.
    let reference = subject_of(&swiss_subjects, "CH_QR_BILL", "qr_reference_number");
    let bill = SwissQrBill::new(
        &Payto::parse(SWISS_ACCOUNT).unwrap(),
        &CreditorAddress::new("8000", "Zürich"),
        &Amount::parse("KUDOS:5").unwrap(),
        &reference,
    )
    .unwrap();
    browser.goto(&format!("{base}/console/registrations/{}#swiss-qr", swiss_key.public_key())).await;
    assert!(source(&browser).await.contains("Specimen"));
    let (shot, img) = browser.screenshot("console-registration").await;
    let decoded = decode_qr_codes(img);
    assert_eq!(decoded.len(), 1, "one code in {}", shot.display());
    let lines: Vec<&str> = decoded[0].split('\n').collect();
    assert_eq!(&lines[..3], ["SPC", "0200", "1"]);
    assert_eq!(lines[3], "CH4431999123000889012");
    assert_eq!(lines[4], "S");
    assert_eq!(lines[5], "Exchange");
    assert!(lines.contains(&"8000") && lines.contains(&"Zürich") && lines.contains(&"CH"));
    assert!(lines.contains(&"CHF"), "a KUDOS specimen is drawn in CHF");
    let qrr = lines.iter().position(|l| *l == "QRR").expect("reference type QRR");
    assert_eq!(lines[qrr + 1], reference);
    assert_eq!(lines.last(), Some(&"EPD"));
    assert_eq!(decoded[0], bill.payload(), "the whole payload");

    // The EPC code of the other IBAN.
    let simple = subject_of(&epc_subjects, "SIMPLE", "subject");
    let epc =
        EpcQrCode::new(&Payto::parse(EPC_ACCOUNT).unwrap(), &Amount::parse("KUDOS:5").unwrap(), &simple)
            .unwrap();
    browser.goto(&format!("{base}/console/registrations/{}#epc-qr", epc_key.public_key())).await;
    let (shot, img) = browser.screenshot("console-registration-epc").await;
    let decoded = decode_qr_codes(img);
    assert_eq!(decoded.len(), 1, "one code in {}", shot.display());
    let lines: Vec<&str> = decoded[0].split('\n').collect();
    assert_eq!(&lines[..4], ["BCD", "002", "1", "SCT"]);
    assert!(lines.contains(&"Exchange") && lines.contains(&"DE89370400440532013000"));
    assert!(lines.contains(&simple.as_str()), "the SIMPLE subject as remittance text");
    assert_eq!(decoded[0], epc.payload(), "the whole payload");

    // Simulate the customer's transfer, and see it credited.
    browser.goto(&format!("{base}/console/registrations/{}", swiss_key.public_key())).await;
    click(&browser, "#simulate").await;
    wait_for(&browser, "status-credited").await;
    browser.screenshot("console-simulated").await;
    browser.goto(&format!("{base}/console/transfers?status=credited")).await;
    assert!(source(&browser).await.contains(&swiss_key.public_key().to_string()));

    // Phone width: the same pages, readable (tables scroll inside their frame).
    browser.client.set_window_size(390, 844).await.unwrap();
    browser.goto(&format!("{base}/console/")).await;
    browser.screenshot("console-overview-phone").await;
    browser.goto(&format!("{base}/console/registrations/{}", epc_key.public_key())).await;
    browser.screenshot("console-registration-phone").await;
    browser.client.set_window_size(browser::WINDOW.0, browser::WINDOW.1).await.unwrap();

    // Log out: the login form again, and no way back without it.
    click(&browser, "header form button").await;
    wait_for_url(&browser, "/console/login").await;
    browser.goto(&format!("{base}/console/transfers")).await;
    assert!(browser.client.current_url().await.unwrap().as_str().ends_with("/console/login"));
    browser.close().await;
    eprintln!(
        "console browser test: {:.1?} in all, {browser_up:.1?} to start; screenshots in {}",
        started.elapsed(),
        screenshot_dir().display()
    );
}
