//! The admin panel in a real browser: headless Chromium driven through chromedriver
//! (WebDriver, `fantoccini`), against a real server on a fresh database with a fake Bot
//! API. The panel is opened as Telegram opens a Mini App: the signed initData and the
//! theme in the URL's fragment, which the vendored telegram-web-app.js turns into
//! `Telegram.WebApp`.
//!
//! Needs `chromium` and `chromium-driver` (Debian's packages: /usr/bin/chromium and
//! /usr/bin/chromedriver; `CHROMIUM` and `CHROMEDRIVER` override the paths). Without them
//! each test prints `skipped: ...`, unless `BOTSHOP_REQUIRE_BROWSER=1` makes that a
//! failure (CI sets it). Screenshots of each page go to `BOTSHOP_SCREENSHOT_DIR`
//! (default: `panel-screenshots` in the system's temporary directory).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use server::config::DatabaseTarget;

use crate::support::*;

const ADMIN: i64 = 5_550_001;
const CUSTOMER: i64 = 5_550_002;
/// The theme's button colour: the panel must paint its buttons with it.
const BUTTON_COLOR: &str = "#2e7d5b";
/// How long the panel may take to show something: generous for a loaded CI machine.
const PATIENCE: Duration = Duration::from_secs(20);

/// chromedriver, stopped when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn browser_paths() -> Option<(PathBuf, PathBuf)> {
    let chromium = PathBuf::from(std::env::var("CHROMIUM").unwrap_or("/usr/bin/chromium".into()));
    let driver =
        PathBuf::from(std::env::var("CHROMEDRIVER").unwrap_or("/usr/bin/chromedriver".into()));
    if chromium.exists() && driver.exists() {
        return Some((chromium, driver));
    }
    assert!(
        std::env::var("BOTSHOP_REQUIRE_BROWSER").as_deref() != Ok("1"),
        "BOTSHOP_REQUIRE_BROWSER=1 but {} or {} is missing (apt-get install chromium chromium-driver)",
        chromium.display(),
        driver.display()
    );
    eprintln!(
        "skipped: no Chromium at {} with chromedriver at {} (apt-get install chromium chromium-driver)",
        chromium.display(),
        driver.display()
    );
    None
}

/// Starts chromedriver on a free port and waits for its "started successfully" line.
fn start_driver(driver: &PathBuf) -> Driver {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(driver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    loop {
        let line = lines
            .next()
            .expect("chromedriver said nothing")
            .expect("chromedriver's output is readable");
        if line.contains("started successfully") {
            break;
        }
    }
    // Keep draining its output, so that it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Driver { child, port }
}

/// A headless Chromium the size of a phone (390 × 844 CSS pixels).
async fn browser(chromium: &PathBuf, driver: &Driver) -> Client {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--lang=ru-RU",
                     "--disable-background-networking", "--disable-component-update",
                     "--disable-sync", "--disable-dev-shm-usage"],
            "mobileEmulation": {"deviceMetrics": {"width": 390, "height": 844, "pixelRatio": 2}},
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a WebDriver session")
}

/// The panel's address as Telegram opens it, for this initData.
fn panel_url(app: &TestApp, init_data: &str) -> String {
    let theme =
        json!({"bg_color": "#ffffff", "text_color": "#000000", "button_color": BUTTON_COLOR,
        "button_text_color": "#ffffff", "secondary_bg_color": "#f1f1f1"})
        .to_string();
    let encode = |text: &str| form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>();
    format!(
        "{}/admin/#tgWebAppData={}&tgWebAppVersion=7.10&tgWebAppPlatform=tdesktop&tgWebAppThemeParams={}",
        app.base,
        encode(init_data),
        encode(&theme)
    )
}

/// The raw initData of a Russian-speaking Telegram user, as Telegram signs it.
fn init_data(telegram_id: i64, name: &str) -> String {
    let verifier = domain::auth::InitDataVerifier::new(TOKEN, time::Duration::seconds(86_400));
    let auth_date = time::OffsetDateTime::now_utc().unix_timestamp().to_string();
    let user = json!({"id": telegram_id, "first_name": name, "language_code": "ru"}).to_string();
    verifier.sign(&[("auth_date", &auth_date), ("user", &user)])
}

/// One test's world: a fake Bot API, the server on a fresh SQLite file with the demo
/// catalog, chromedriver and a browser.
struct World {
    telegram: FakeTelegram,
    app: TestApp,
    browser: Client,
    _driver: Driver,
    screenshots: PathBuf,
}

async fn world(test: &str) -> Option<World> {
    world_with(test, |_| {}).await
}

/// [`world`], with the settings changed by `change` first.
async fn world_with(
    test: &str,
    change: impl FnOnce(&mut server::config::Settings),
) -> Option<World> {
    let (chromium, driver) = browser_paths()?;
    let telegram = FakeTelegram::start().await;
    let dir = std::env::temp_dir().join(format!("botshop-panel-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut settings = settings(
        DatabaseTarget::EmbeddedSqlite(dir.join("shop.db").to_string_lossy().into_owned()),
        &telegram.server.uri(),
    );
    settings.auth.admin_telegram_ids = vec![ADMIN];
    // Pictures' absolute URLs must reach this server: a port chosen now, not port 0.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    settings.http.port = port;
    settings.server.public_base_url = Some(format!("http://127.0.0.1:{port}"));
    change(&mut settings);
    let app = TestApp::spawn(&settings).await;
    let driver = start_driver(&driver);
    let browser = browser(&chromium, &driver).await;
    let screenshots = std::env::var("BOTSHOP_SCREENSHOT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| std::env::temp_dir().join("panel-screenshots"));
    std::fs::create_dir_all(&screenshots).unwrap();
    Some(World {
        telegram,
        app,
        browser,
        _driver: driver,
        screenshots,
    })
}

impl World {
    async fn open_as(&self, telegram_id: i64) {
        self.browser
            .goto(&panel_url(&self.app, &init_data(telegram_id, "Админ")))
            .await
            .unwrap();
    }

    async fn wait(&self, css: &str) -> fantoccini::elements::Element {
        self.browser
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|error| panic!("{css} did not appear: {error}"))
    }

    async fn click(&self, css: &str) {
        self.wait(css).await.click().await.unwrap();
    }

    async fn fill(&self, css: &str, text: &str) {
        let field = self.wait(css).await;
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    async fn screenshot(&self, name: &str) {
        let png = self.browser.screenshot().await.unwrap();
        std::fs::write(self.screenshots.join(format!("{name}.png")), png).unwrap();
    }

    /// Whether the page is wider than the screen.
    async fn overflows(&self) -> bool {
        self.browser
            .execute(
                "return document.documentElement.scrollWidth > window.innerWidth",
                vec![],
            )
            .await
            .unwrap()
            .as_bool()
            .unwrap()
    }

    async fn public(&self, path: &str) -> Value {
        self.app.get(path, None).await.json().await.unwrap()
    }

    async fn close(self) {
        self.browser.close().await.unwrap();
    }
}

fn png_file(dir: &std::path::Path) -> PathBuf {
    let picture = image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(320, 240, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 200])
    }));
    let path = dir.join("photo.png");
    picture.save(&path).unwrap();
    path
}

#[tokio::test]
async fn an_admin_creates_a_category_and_a_product_with_an_uploaded_image() {
    let Some(world) = world("catalog").await else {
        return;
    };
    world.open_as(ADMIN).await;
    world.wait("#board").await;
    world.click("#tab-catalog").await;
    world.wait("[data-category]").await;
    world.screenshot("catalog").await;

    world.click("#new-category").await;
    world.fill("#c-name", "Острая пицца").await;
    // The API's refusal appears next to its field.
    world.fill("#c-slug", "Острая Пицца").await;
    world.click("#save-category").await;
    let error = world.wait(".field-error[data-field=slug]").await;
    assert!(!error.text().await.unwrap().is_empty());
    world.fill("#c-slug", "spicy-pizza").await;
    world.screenshot("category-form").await;
    world.click("#save-category").await;
    world
        .browser
        .wait()
        .at_most(PATIENCE)
        .for_element(Locator::XPath(
            "//*[@data-category][contains(., 'Острая пицца')]",
        ))
        .await
        .unwrap();
    let categories: Value = world.public("/categories").await;
    let spicy = categories
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["slug"] == "spicy-pizza")
        .unwrap_or_else(|| panic!("the category is public: {categories}"))
        .clone();

    world.click("#new-product").await;
    world.fill("#p-name", "Пицца Диабло").await;
    world.fill("#p-price", "650").await;
    world
        .wait("#p-category")
        .await
        .select_by_value(&spicy["id"].to_string())
        .await
        .unwrap();
    let dir = std::env::temp_dir().join(format!("botshop-panel-upload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let photo = png_file(&dir);
    world
        .wait("#image-file")
        .await
        .send_keys(&photo.to_string_lossy())
        .await
        .unwrap();
    world.wait("#images img").await;
    world.screenshot("product-editor").await;
    // Telegram's own buttons: Back to the catalog, and the main button saves.
    let buttons = world
        .browser
        .execute(
            "const w = Telegram.WebApp; return [w.BackButton.isVisible, w.MainButton.isVisible, \
             w.MainButton.text, getComputedStyle(document.getElementById('save-product')).backgroundColor]",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        buttons,
        json!([true, true, "Создать", "rgb(46, 125, 91)"]),
        "BackButton, MainButton and the theme's button colour"
    );
    world.click("#save-product").await;
    world
        .browser
        .wait()
        .at_most(PATIENCE)
        .for_element(Locator::XPath(
            "//*[@data-product][contains(., 'Пицца Диабло')]",
        ))
        .await
        .unwrap();

    let products: Value = world
        .public(&format!("/products?category_id={}", spicy["id"]))
        .await;
    let product = &products[0];
    assert_eq!(product["name"], "Пицца Диабло", "{products}");
    assert_eq!(product["price"], "650.00");
    let url = product["images"][0].as_str().unwrap();
    assert!(url.contains("/media/") && url.ends_with(".png"), "{url}");
    let name = url.rsplit('/').next().unwrap();
    let served = world
        .app
        .client
        .get(format!("{}/media/{name}", world.app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(served.status().as_u16(), 200);
    world.close().await;
}

#[tokio::test]
async fn an_order_appears_on_the_board_and_the_admin_confirms_it() {
    let Some(mut world) = world("orders").await else {
        return;
    };
    world.open_as(ADMIN).await;
    world.wait("#board").await;
    // Placed while the board is open: it shows on a refresh.
    let placed: Value = world
        .app
        .client
        .post(world.app.url("/orders"))
        .header("Authorization", auth(CUSTOMER, "Покупатель"))
        .json(&json!({
            "items": [{"product_id": 1, "quantity": 2}],
            "delivery_address": "ул. Ленина, д. 1",
            "phone": "+79001112233"
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = placed["id"].as_i64().unwrap();
    let card = format!("[data-status=PENDING] [data-order=\"{id}\"]");
    world.wait(&card).await;
    world.screenshot("orders-board").await;
    world.click(&card).await;
    world.wait("[data-move=CONFIRMED]").await;
    let page = world.browser.source().await.unwrap();
    assert!(page.contains("+79001112233") && page.contains("ул. Ленина, д. 1"));
    world.screenshot("order").await;
    world.click("[data-move=CONFIRMED]").await;
    world
        .browser
        .wait()
        .at_most(PATIENCE)
        .for_element(Locator::XPath(
            "//*[@id='order-status'][contains(@class, 'CONFIRMED')]",
        ))
        .await
        .unwrap();

    // The customer hears, through the outbox, as with the manager's buttons.
    loop {
        let (method, body) = world.telegram.next_call().await;
        if method == "sendMessage" && body["chat_id"] == CUSTOMER {
            break;
        }
    }
    world.close().await;
}

#[tokio::test]
async fn an_import_dry_run_shows_the_diff_and_the_confirmed_import_changes_the_catalog() {
    let Some(world) = world("import").await else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("botshop-panel-import-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("catalog.csv");
    std::fs::write(
        &file,
        "kind,slug,parent_slug,category_slug,sku,name,description,price,stock,images,is_active,sort_order\n\
         category,soups,,,,Супы,,,,,true,5\n\
         product,,,soups,SOUP-1,Борщ,,390,,,true,0\n\
         product,,,soups,SOUP-2,Солянка,,420,10,,true,1\n",
    )
    .unwrap();
    world.open_as(ADMIN).await;
    world.wait("#board").await;
    world.click("#tab-io").await;
    world
        .wait("#import-file")
        .await
        .send_keys(&file.to_string_lossy())
        .await
        .unwrap();
    let preview = world.wait("#import-preview").await.text().await.unwrap();
    assert!(preview.contains('2') && preview.contains('1'), "{preview}");
    world.screenshot("import-preview").await;
    assert!(!world.overflows().await, "the dry run's table fits");
    assert!(
        world
            .public("/categories")
            .await
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["slug"] != "soups"),
        "a dry run changes nothing"
    );
    world.click("#confirm-import").await;
    world.wait("#import-done").await;
    let soups = world
        .public("/categories")
        .await
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["slug"] == "soups")
        .cloned()
        .expect("the import created the category");
    let products = world
        .public(&format!("/products?category_id={}", soups["id"]))
        .await;
    assert_eq!(products.as_array().unwrap().len(), 2, "{products}");
    world.close().await;
}

#[tokio::test]
async fn a_customer_who_is_not_an_admin_sees_a_refusal_and_no_data() {
    let Some(world) = world("refusal").await else {
        return;
    };
    // An order exists: the refusal must not show it.
    let response = world
        .app
        .client
        .post(world.app.url("/orders"))
        .header("Authorization", auth(CUSTOMER, "Покупатель"))
        .json(&json!({
            "items": [{"product_id": 1, "quantity": 1}],
            "delivery_address": "ул. Секретная, д. 7",
            "phone": "+79005556677"
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);
    world.open_as(CUSTOMER).await;
    let refusal = world.wait("#refusal").await.text().await.unwrap();
    assert!(
        refusal.contains("не администратор") || refusal.contains("not an admin"),
        "{refusal}"
    );
    let page = world.browser.source().await.unwrap();
    assert!(!page.contains("+79005556677") && !page.contains("Секретная"));
    assert!(
        world
            .browser
            .find(Locator::Css("[data-order]"))
            .await
            .is_err()
    );
    world.screenshot("refusal").await;
    world.close().await;
}

#[tokio::test]
async fn at_390_px_nothing_overflows_horizontally() {
    let Some(world) = world("narrow").await else {
        return;
    };
    // A long unbroken name must wrap, not widen the page.
    let long = "Суперпицца".repeat(12);
    let placed = world
        .app
        .client
        .post(world.app.url("/orders"))
        .header("Authorization", auth(CUSTOMER, "Покупатель"))
        .json(&json!({
            "items": [{"product_id": 1, "quantity": 1}],
            "delivery_address": long,
            "phone": "+79001112233"
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(placed.status().as_u16(), 201);
    world.open_as(ADMIN).await;
    world.wait("#board [data-order]").await;
    let width: Value = world
        .browser
        .execute("return window.innerWidth", vec![])
        .await
        .unwrap();
    assert_eq!(width, json!(390));
    assert!(!world.overflows().await, "the board");
    world.click("#board [data-order]").await;
    world.wait("#order-actions").await;
    assert!(!world.overflows().await, "an order");
    for (tab, ready, name) in [
        ("#tab-catalog", "[data-product]", "catalog"),
        ("#tab-io", "#import-file", "import"),
        ("#tab-reports", "#report svg", "reports"),
        ("#tab-audit", "h2", "audit"),
    ] {
        world.click(tab).await;
        world.wait(ready).await;
        assert!(!world.overflows().await, "{name}");
        world.screenshot(name).await;
    }
    world.click("#tab-catalog").await;
    world.click("[data-product]").await;
    world.wait("#stock-adjust").await;
    assert!(!world.overflows().await, "the product editor");
    world.close().await;
}

#[tokio::test]
async fn outside_telegram_the_page_says_to_open_it_from_the_bot() {
    let Some(world) = world("outside").await else {
        return;
    };
    world
        .browser
        .goto(&format!("{}/admin/", world.app.base))
        .await
        .unwrap();
    let text = world.wait("#open-from-bot").await.text().await.unwrap();
    assert!(text.contains("/admin"), "{text}");
    assert!(
        world
            .browser
            .find(Locator::Css("#dev-sign-in"))
            .await
            .is_err()
    );
    world.close().await;
}

#[tokio::test]
async fn in_the_local_setup_the_developer_signs_in_as_an_admin() {
    // The local embedded setup with the demo token, as `cargo run -p server` starts.
    let Some(world) = world_with("dev", |settings| {
        settings.bot_token = server::config::BotToken::new(server::config::DEMO_BOT_TOKEN).unwrap();
        settings.demo_token = true;
    })
    .await
    else {
        return;
    };
    world
        .browser
        .goto(&format!("{}/admin/", world.app.base))
        .await
        .unwrap();
    world.fill("#dev-id", &ADMIN.to_string()).await;
    world.click("#dev-sign-in button[type=submit]").await;
    world.wait("#board").await;
    world.close().await;
}
