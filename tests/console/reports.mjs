// Loads the reports pane in headless Chromium (signing in by typing the key) and writes
// the DOM after its scripts ran, for check_dom.py to compare with the report API.
//
// usage: node reports.mjs BASE_URL API_KEY DAYS DOM_OUT [SCREENSHOT]
import fs from "node:fs";
import { chromium } from "playwright-core";

const [BASE, KEY, DAYS, OUT, SHOT] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const page = await (await browser.newContext({ viewport: { width: 1400, height: 1000 } })).newPage();
let errors = 0;
page.on("pageerror", (e) => { errors++; console.error("page error: " + e.message); });
await page.goto(`${BASE}/dashboard#reports?days=${DAYS}&tz=UTC`);
await page.fill("#secret", KEY);
await page.click("#sign-in");
await page.waitForSelector("body[data-state=ready], body[data-state=error]", { timeout: 30000 });
fs.writeFileSync(OUT, await page.content());
if (SHOT) await page.screenshot({ path: SHOT });
const violations = await page.evaluate(() => document.body.dataset.cspViolations || "0");
await browser.close();
if (errors || violations !== "0") { console.error(`page errors: ${errors}, CSP violations: ${violations}`); process.exit(1); }
