// The customer portal in a real browser: Debian's chromium driven by
// playwright-core, against the real binaries (stack.mjs). One subscriber's
// story, step by step, then what other sessions must not see or do.
// Screenshots of every page land in target/portal-browser/screenshots.
//
//   cargo build --bins && (cd tests/browser && npm ci && npm test)

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { AxeBuilder } from "@axe-core/playwright";
import { Webhook } from "standardwebhooks";
import { OUT, eventually, expiredLink, startEmbedder, startReceiver, startStack } from "./stack.mjs";

const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--no-first-run",
];
const HOSTILE_NAME = "<script>window.__pwned=1</script> Orders";

let stack, receiver, embedder, stranger, browser, page, link;
const state = {};

async function shot(name) {
  await page.screenshot({ path: join(OUT, "screenshots", `${name}.png`), fullPage: true });
}

/** No serious or critical accessibility violation on the current page. */
async function accessible() {
  const { violations } = await new AxeBuilder({ page }).analyze();
  const bad = violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  assert.deepEqual(
    bad.map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(" ")).join(", ")})`),
    [],
    `accessibility violations on ${page.url()}`,
  );
}

/** Reloads `path` until `locator` (a function of the page) has `count` items. */
async function until(path, locator, count, what) {
  await eventually(what, async () => {
    await page.goto(stack.portal + path);
    return (await locator(page).count()) === count;
  });
}

function verifies(secret, request) {
  try {
    new Webhook(secret).verify(request.body, request.headers);
    return true;
  } catch {
    return false;
  }
}

const rows = (p) => p.locator("main table tbody tr");

describe("the customer portal", () => {
  before(async () => {
    receiver = await startReceiver();
    // One app may embed the portal; another may not.
    embedder = await startEmbedder();
    stranger = await startEmbedder();
    stack = await startStack({ frameAncestors: [embedder.origin] });
    await stack.cli("acme", "event-types", "create", "order.paid", "--description", "An order was paid in full");
    await stack.cli("acme", "event-types", "create", "order.refunded", "--description", "Money went back to the buyer");
    browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium", args: CHROMIUM_ARGS });
    page = await (await browser.newContext()).newPage();
    link = await stack.link("acme");
  });

  after(async () => {
    await browser?.close();
    stack?.stop();
    receiver?.close();
    embedder?.close();
    stranger?.close();
  });

  it("opens a magic link into the tenant's endpoints, keyboard first", async () => {
    const response = await page.goto(link);
    assert.equal(new URL(page.url()).pathname, "/endpoints");
    assert.equal(response.status(), 200);
    await page.getByText("No endpoints yet").waitFor();
    const cookie = (await page.context().cookies()).find((c) => c.name === "hookline_portal");
    assert.ok(cookie.httpOnly && cookie.sameSite === "Lax", "the session cookie is HttpOnly and SameSite");
    assert.equal(await page.evaluate(() => document.cookie), "", "no script can read the session");
    await page.keyboard.press("Tab");
    assert.equal(await page.evaluate(() => document.activeElement.textContent), "Skip to content");
    await shot("01-endpoints-empty");
    await accessible();
  });

  it("creates an endpoint from the catalog, names and all rendered as text", async () => {
    await page.getByRole("link", { name: "Add an endpoint" }).click();
    await page.getByLabel("Name").fill(HOSTILE_NAME);
    await page.getByLabel("URL").fill(receiver.url("/orders"));
    await page.getByRole("checkbox", { name: /order\.paid/ }).check();
    await page.getByLabel("Extra headers").fill("X-Team: payments");
    await shot("02-endpoint-form");
    await accessible();
    await page.getByRole("button", { name: "Save" }).click();
    await page.getByText("The endpoint was created").waitFor();
    assert.equal(await page.getByRole("heading", { level: 1 }).textContent(), HOSTILE_NAME);
    assert.equal(await page.evaluate(() => window.__pwned), undefined, "the name ran as script");
    state.orders = new URL(page.url()).pathname.split("/")[2];
    await shot("03-endpoint");
    await accessible();
  });

  it("refuses a form it cannot read with what to fix, keeping what was typed", async () => {
    await page.goto(`${stack.portal}/endpoints/${state.orders}/edit`);
    await page.getByLabel("Filters on the payload").fill("just some words");
    await page.getByRole("button", { name: "Save" }).click();
    await page.getByRole("alert").getByText("Filters, line 1").waitFor();
    assert.equal(await page.getByLabel("Filters on the payload").inputValue(), "just some words");
    assert.equal(await page.getByLabel("Extra headers").inputValue(), "x-team: payments");
    await page.getByLabel("Filters on the payload").fill("");
    await page.getByLabel("Name").fill("Orders (EU)");
    await page.getByRole("button", { name: "Save" }).click();
    await page.getByText("Your changes were saved").waitFor();
    assert.equal(await page.getByRole("heading", { level: 1 }).textContent(), "Orders (EU)");
  });

  it("reveals the secret on request and sends a test event whose signature verifies", async () => {
    await page.goto(`${stack.portal}/endpoints/${state.orders}`);
    assert.equal(await page.locator("[data-secret]").count(), 0, "no secret until revealed");
    await page.getByRole("button", { name: "Reveal the secret" }).click();
    state.secret = await page.locator('[data-secret="current"]').textContent();
    assert.match(state.secret, /^whsec_/);
    await shot("04-secret");
    await page.goto(`${stack.portal}/endpoints/${state.orders}`);
    await page.getByLabel("Event type").selectOption("order.paid");
    await page.getByRole("button", { name: "Send the test event" }).click();
    await page.getByText("Your endpoint accepted it").waitFor();
    await page.getByText("HTTP 200").waitFor();
    assert.ok(await page.getByText("thanks").first().isVisible(), "the response body is shown");
    assert.equal(await page.evaluate(() => window.__pwned), undefined, "the response body ran as script");
    const sent = receiver.requests.filter((r) => r.path === "/orders");
    assert.equal(sent.length, 1);
    assert.ok(verifies(state.secret, sent[0]), "the test event's signature verifies");
    assert.equal(sent[0].headers["x-team"], "payments");
    await shot("05-test-event");
    await accessible();
  });

  it("lists published events' deliveries and each one's attempts", async () => {
    for (let i = 0; i < 3; i++) await stack.publish("acme", "order.paid", { order: i, note: "<script>alert(1)</script>" });
    await until(`/deliveries?endpoint=${state.orders}&status=DELIVERY_STATUS_SUCCEEDED`, rows, 3, "three deliveries");
    await shot("06-deliveries");
    await accessible();
    await rows(page).first().getByRole("link").click();
    await page.getByRole("heading", { name: "Attempts" }).waitFor();
    const attempt = page.locator("main table tbody tr").first();
    assert.match(await attempt.textContent(), /HTTP 200/);
    assert.match(await attempt.locator("pre").textContent(), /<script>window.__pwned=1<\/script>thanks/);
    assert.equal(await page.evaluate(() => window.__pwned), undefined);
    await shot("07-delivery");
    await accessible();
  });

  it("retries a failed delivery from the portal once the endpoint works again", async () => {
    receiver.modes.set("/orders", "fail");
    const event = await stack.publish("acme", "order.paid", { order: "late" });
    await until(`/deliveries?endpoint=${state.orders}&status=DELIVERY_STATUS_SCHEDULED`, rows, 1, "a scheduled retry");
    await rows(page).first().getByRole("link").click();
    assert.match(await page.locator("main").textContent(), new RegExp(event));
    assert.match(await page.locator("main table").textContent(), /HTTP 503/);
    receiver.modes.set("/orders", "ok");
    await page.getByRole("button", { name: "Retry now" }).click();
    await page.getByText("The delivery was sent again").waitFor();
    await eventually("the retry to succeed", async () => {
      await page.reload();
      return (await page.locator("main h1").textContent()).includes("succeeded");
    });
    assert.match(await page.locator("main table").textContent(), /manual retry/);
    await shot("08-retried");
  });

  it("replays dead letters with progress", async () => {
    const dead = await stack.cli("acme", "subscriptions", "create", "--url", receiver.url("/dead"), "--event-type", "order.refunded", "--name", "Refunds", "--max-attempts", "1");
    state.dead = dead.subscription.id;
    receiver.modes.set("/dead", "fail");
    for (let i = 0; i < 2; i++) await stack.publish("acme", "order.refunded", { refund: i });
    await until(`/deliveries?endpoint=${state.dead}&status=DELIVERY_STATUS_DEAD_LETTERED`, rows, 2, "two dead letters");
    receiver.modes.set("/dead", "ok");
    await page.goto(`${stack.portal}/endpoints/${state.dead}`);
    await page.getByRole("button", { name: "Replay dead-lettered deliveries" }).click();
    await page.getByText("Done: 2 deliveries are being sent again").waitFor();
    await shot("09-replay");
    await until(`/deliveries?endpoint=${state.dead}&status=DELIVERY_STATUS_SUCCEEDED`, rows, 2, "replayed deliveries");
  });

  it("pauses an endpoint, holding its deliveries until it is resumed", async () => {
    await page.goto(`${stack.portal}/endpoints/${state.orders}`);
    await page.getByRole("button", { name: "Pause" }).click();
    await page.getByText("The endpoint is paused").waitFor();
    assert.match(await page.locator("main").textContent(), /Paused in the webhooks portal/);
    const before = receiver.requests.length;
    const event = await stack.publish("acme", "order.paid", { order: "held" });
    await until(`/deliveries?endpoint=${state.orders}&status=DELIVERY_STATUS_HELD`, rows, 1, "a held delivery");
    assert.match(await rows(page).first().textContent(), new RegExp(event));
    assert.equal(receiver.requests.length, before, "a paused endpoint received nothing");
    await shot("10-held");
    await page.goto(`${stack.portal}/endpoints/${state.orders}`);
    await page.getByRole("button", { name: "Resume" }).click();
    await page.getByText("The endpoint is active again").waitFor();
    await eventually("the held delivery", () => receiver.requests.some((r) => r.body.includes('"held"')));
  });

  it("rotates the secret; during the grace period both secrets verify", async () => {
    await page.goto(`${stack.portal}/endpoints/${state.orders}`);
    await page.getByLabel("Keep the old secret for").selectOption("86400");
    await page.getByRole("button", { name: "Rotate the secret" }).click();
    const rotated = await page.locator('[data-secret="current"]').textContent();
    assert.notEqual(rotated, state.secret);
    await page.getByText("with the old secret too until").waitFor();
    await shot("11-rotated");
    await stack.publish("acme", "order.paid", { order: "after-rotation" });
    const request = await eventually("a delivery after the rotation", () =>
      receiver.requests.find((r) => r.body.includes("after-rotation")),
    );
    assert.ok(verifies(state.secret, request), "the old secret still verifies");
    assert.ok(verifies(rotated, request), "the new secret verifies");
    assert.equal(request.headers["webhook-signature"].split(" ").length, 2);
  });

  it("shows the catalog, the summary as charts and how to verify", async () => {
    await page.getByRole("link", { name: "Event types" }).click();
    await page.getByText("An order was paid in full").waitFor();
    await shot("12-event-types");
    await accessible();
    await page.getByRole("link", { name: "Summary" }).click();
    const charts = page.locator("svg.chart");
    assert.equal(await charts.count(), 2);
    assert.match(await charts.first().locator("title").first().textContent(), /[1-9]\d* succeeded/);
    await shot("13-summary");
    await accessible();
    await page.getByRole("link", { name: "Verifying signatures" }).click();
    await page.getByText("webhook-signature").first().waitFor();
    await shot("14-verifying");
    await accessible();
  });

  it("deletes an endpoint after asking", async () => {
    await page.goto(`${stack.portal}/endpoints/${state.dead}`);
    await page.getByRole("link", { name: "Delete…" }).click();
    await page.getByText("This cannot be undone").waitFor();
    await shot("15-delete");
    await page.getByRole("button", { name: "Delete the endpoint" }).click();
    await page.getByText("The endpoint was deleted").waitFor();
    assert.equal(await page.getByRole("link", { name: "Refunds" }).count(), 0);
    const gone = await page.goto(`${stack.portal}/endpoints/${state.dead}`);
    assert.equal(gone.status(), 404);
  });

  it("shows in the iframe of an app it allows, and in no other", async () => {
    for (const app of [embedder, stranger]) app.embed(`${stack.portal}/endpoints`);
    await page.goto(embedder.origin);
    const frame = page.frameLocator('iframe[title="Webhooks"]');
    await frame.getByRole("heading", { name: "Endpoints" }).waitFor();
    await frame.getByRole("link", { name: "Orders (EU)" }).waitFor();
    await shot("16-embedded");
    await page.goto(stranger.origin);
    await page.getByRole("heading", { name: "Acme app" }).waitFor();
    // Chromium replaces a frame that CSP frame-ancestors refuses with its error page.
    const child = await eventually("the frame to be refused", async () =>
      page.frames().find((f) => f !== page.mainFrame() && f.url().startsWith("chrome-error:")),
    );
    assert.equal(await child.getByRole("link", { name: "Orders (EU)" }).count(), 0, "CSP frame-ancestors kept it out");
  });

  it("refuses a used link and an expired one, saying which", async () => {
    const other = await (await browser.newContext()).newPage();
    let response = await other.goto(link);
    assert.equal(response.status(), 410);
    await other.getByText("already been used").waitFor();
    await other.screenshot({ path: join(OUT, "screenshots", "17-link-used.png") });
    response = await other.goto(expiredLink(stack.portal));
    assert.equal(response.status(), 410);
    await other.getByText("expired").waitFor();
    response = await other.goto(`${stack.portal}/endpoints`);
    assert.equal(response.status(), 401, "no session: nothing to see");
    await other.context().close();
  });

  it("shows another tenant's session nothing of this one", async () => {
    const other = await (await browser.newContext()).newPage();
    await other.goto(await stack.link("globex"));
    await other.getByText("No endpoints yet").waitFor();
    assert.equal((await other.goto(`${stack.portal}/endpoints/${state.orders}`)).status(), 404);
    await other.goto(`${stack.portal}/deliveries`);
    await other.getByText("No deliveries here").waitFor();
    await other.context().close();
  });

  it("gives a read-only session no way to change anything, and the services agree", async () => {
    const other = await (await browser.newContext()).newPage();
    await other.goto(await stack.link("acme", "--read-only"));
    await other.getByRole("link", { name: "Orders (EU)" }).waitFor();
    assert.equal(await other.getByRole("link", { name: "Add an endpoint" }).count(), 0);
    await other.goto(`${stack.portal}/endpoints/${state.orders}`);
    assert.equal(await other.getByRole("button").filter({ hasNotText: "Sign out" }).count(), 0);
    // A forged form, with this session's own CSRF token: the service refuses.
    const csrf = await other.locator('input[name="csrf"]').first().inputValue();
    const forged = await other.request.post(`${stack.portal}/endpoints/${state.orders}/pause`, { form: { csrf } });
    assert.equal(forged.status(), 403);
    assert.match(await forged.text(), /read-only/);
    await other.context().close();
  });

  it("keeps a session limited to one account within it", async () => {
    const twelve = await (await browser.newContext()).newPage();
    await twelve.goto(await stack.link("acme", "--scope", "account_id=12"));
    await twelve.getByText("This session covers only").waitFor();
    assert.equal(await twelve.getByRole("link", { name: "Orders (EU)" }).count(), 0, "a tenant-wide endpoint is outside");
    assert.equal((await twelve.goto(`${stack.portal}/endpoints/${state.orders}`)).status(), 404);
    await twelve.goto(`${stack.portal}/endpoints/new`);
    assert.equal(await twelve.getByLabel("Scope").inputValue(), "account_id = 12");
    await twelve.getByLabel("Name").fill("Account 12 CRM");
    await twelve.getByLabel("URL").fill(receiver.url("/account-12"));
    await twelve.getByRole("checkbox", { name: "Every event type" }).check();
    await twelve.getByRole("button", { name: "Save" }).click();
    await twelve.getByText("The endpoint was created").waitFor();
    const id = new URL(twelve.url()).pathname.split("/")[2];
    await twelve.screenshot({ path: join(OUT, "screenshots", "18-limited-session.png"), fullPage: true });
    // Widening it to another account is refused in the form, naming why.
    await twelve.goto(`${stack.portal}/endpoints/${id}/edit`);
    await twelve.getByLabel("Scope").fill("account_id = 13");
    await twelve.getByRole("button", { name: "Save" }).click();
    await twelve.getByRole("alert").getByText("scope.account_id").waitFor();
    // Another account's session sees none of it.
    const thirteen = await (await browser.newContext()).newPage();
    await thirteen.goto(await stack.link("acme", "--scope", "account_id=13"));
    await thirteen.getByText("No endpoints yet").waitFor();
    assert.equal((await thirteen.goto(`${stack.portal}/endpoints/${id}`)).status(), 404);
    await twelve.context().close();
    await thirteen.context().close();
  });

  it("refuses a form without the session's CSRF token, then signs out", async () => {
    const forged = await page.request.post(`${stack.portal}/endpoints/${state.orders}/pause`, { form: { csrf: "0".repeat(32) } });
    assert.equal(forged.status(), 403);
    await page.goto(`${stack.portal}/endpoints`);
    const cookie = (await page.context().cookies()).find((c) => c.name === "hookline_portal");
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByText("You have left the webhooks portal").waitFor();
    assert.equal((await page.goto(`${stack.portal}/endpoints`)).status(), 401);
    // Signing out ended the session for every service, not only this cookie.
    await page.context().addCookies([cookie]);
    assert.equal((await page.goto(`${stack.portal}/endpoints`)).status(), 401);
    await page.getByText("Your session has ended").waitFor();
  });
});
