// The real thing for the browser tests: a private redis-server, the four
// hookline binaries (subscriptions, fanout, delivery, portal) as separate
// processes, a webhook receiver that checks nothing itself (the tests
// verify its requests' signatures with the standardwebhooks library), and
// the `hookline` CLI to publish events and make links.

import { spawn, execFile } from "node:child_process";
import { createServer } from "node:http";
import { createServer as netServer } from "node:net";
import { mkdirSync, openSync } from "node:fs";
import { createHmac } from "node:crypto";
import { join, resolve } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

export const ROOT = resolve(import.meta.dirname, "../..");
export const OUT = process.env.HOOKLINE_BROWSER_OUT ?? join(ROOT, "target/portal-browser");
const BIN = process.env.HOOKLINE_BIN_DIR ?? join(ROOT, "target/debug");

export const TOKENS = { acme: "tok_acme_browser_test_0001", globex: "tok_globex_browser_test_01" };
const SERVICE_TOKEN = "svc_browser_test_token_0000001";
export const PORTAL_KEY = "portal-key-for-the-browser-tests-only";

export async function freePort() {
  return new Promise((ok, fail) => {
    const server = netServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => ok(port));
    });
    server.on("error", fail);
  });
}

/** Waits until `check` returns a truthy value, up to `ms`. */
export async function eventually(what, check, ms = 20_000) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ""}`);
    await new Promise((r) => setTimeout(r, 150));
  }
}

/** An endpoint that records every request; each path answers as told. */
export async function startReceiver() {
  const requests = [];
  const modes = new Map(); // path -> "ok" | "fail"
  const server = createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const path = new URL(req.url, "http://x").pathname;
      requests.push({ path, headers: req.headers, body: Buffer.concat(chunks).toString("utf8") });
      if (modes.get(path) === "fail") {
        res.writeHead(503, { "content-type": "text/plain" }).end("down for maintenance");
      } else {
        // Attacker-controlled text the portal shows as a response excerpt.
        res.writeHead(200, { "content-type": "text/html" }).end("<script>window.__pwned=1</script>thanks");
      }
    });
  });
  const port = await freePort();
  await new Promise((ok) => server.listen(port, "127.0.0.1", ok));
  return { url: (path) => `http://127.0.0.1:${port}${path}`, requests, modes, close: () => server.close() };
}

/** Pages of another site's app that embed `url` in an iframe. */
export async function startEmbedder() {
  let target = "";
  const server = createServer((req, res) => {
    res.writeHead(200, { "content-type": "text/html" });
    res.end(`<!doctype html><html lang="en"><title>Acme app</title><h1>Acme app</h1><iframe title="Webhooks" src="${target}" width="900" height="600"></iframe></html>`);
  });
  const port = await freePort();
  await new Promise((ok) => server.listen(port, "127.0.0.1", ok));
  return { origin: `http://127.0.0.1:${port}`, embed: (url) => { target = url; }, close: () => server.close() };
}

export async function startStack({ frameAncestors = [] } = {}) {
  mkdirSync(join(OUT, "logs"), { recursive: true });
  mkdirSync(join(OUT, "screenshots"), { recursive: true });
  const children = [];
  const start = (name, command, args, env) => {
    const log = openSync(join(OUT, "logs", `${name}.log`), "w");
    const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ["ignore", log, log] });
    child.on("exit", (code, signal) => {
      if (!stopping && code !== 0) console.error(`${name} exited (${code ?? signal}); see ${OUT}/logs/${name}.log`);
    });
    children.push(child);
    return child;
  };
  let stopping = false;
  const ports = {};
  for (const name of ["redis", "subscriptions", "fanout", "delivery", "portal"]) {
    ports[name] = await freePort();
    ports[`${name}Admin`] = await freePort();
  }
  start("redis", "redis-server", ["--port", String(ports.redis), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {});
  const common = {
    HOOKLINE_REDIS_URL: `redis://127.0.0.1:${ports.redis}`,
    HOOKLINE_SUBSCRIPTIONS_URL: `http://127.0.0.1:${ports.subscriptions}`,
    HOOKLINE_FANOUT_URL: `http://127.0.0.1:${ports.fanout}`,
    HOOKLINE_DELIVERY_URL: `http://127.0.0.1:${ports.delivery}`,
    HOOKLINE_ALLOW_CIDRS: '["127.0.0.0/8"]',
    HOOKLINE_AUTH__TOKENS: `[{token="${TOKENS.acme}",tenant="acme"},{token="${TOKENS.globex}",tenant="globex"}]`,
    HOOKLINE_AUTH__SERVICE_TOKEN: SERVICE_TOKEN,
    HOOKLINE_AUTH__PORTAL_KEY: PORTAL_KEY,
    HOOKLINE_LOG: "warn",
  };
  // Only the subscription service makes links.
  const only = { subscriptions: { HOOKLINE_PORTAL__PUBLIC_URL: `http://127.0.0.1:${ports.portal}` } };
  for (const name of ["subscriptions", "fanout", "delivery"]) {
    start(name, join(BIN, `hookline-${name}`), [], {
      ...common,
      HOOKLINE_LISTEN_ADDR: `127.0.0.1:${ports[name]}`,
      HOOKLINE_ADMIN_ADDR: `127.0.0.1:${ports[`${name}Admin`]}`,
      ...only[name],
    });
  }
  start("portal", join(BIN, "hookline-portal"), [], {
    HOOKLINE_LISTEN_ADDR: `127.0.0.1:${ports.portal}`,
    HOOKLINE_ADMIN_ADDR: `127.0.0.1:${ports.portalAdmin}`,
    HOOKLINE_SUBSCRIPTIONS_URL: common.HOOKLINE_SUBSCRIPTIONS_URL,
    HOOKLINE_DELIVERY_URL: common.HOOKLINE_DELIVERY_URL,
    HOOKLINE_SECURE_COOKIES: "false",
    HOOKLINE_FRAME_ANCESTORS: JSON.stringify(frameAncestors),
    HOOKLINE_BRAND__NAME: "Acme Webhooks",
    HOOKLINE_BRAND__PRIMARY_COLOR: "#8a2be2",
    HOOKLINE_LOG: "warn",
  });
  for (const name of ["subscriptions", "fanout", "delivery", "portal"]) {
    await eventually(`${name} to be ready`, async () => (await fetch(`http://127.0.0.1:${ports[`${name}Admin`]}/readyz`)).ok, 60_000);
  }

  const cli = async (tenant, ...args) => {
    const { stdout } = await run(join(BIN, "hookline"), [...args, "-o", "json"], {
      env: { ...process.env, ...common, HOOKLINE_TOKEN: TOKENS[tenant] },
    });
    return JSON.parse(stdout);
  };
  return {
    portal: `http://127.0.0.1:${ports.portal}`,
    cli,
    link: async (tenant, ...flags) => (await cli(tenant, "portal", "link", ...flags)).url,
    publish: async (tenant, type, payload) => (await cli(tenant, "events", "publish", type, JSON.stringify(payload))).event_id,
    stop: () => {
      stopping = true;
      for (const child of children) child.kill("SIGTERM");
    },
  };
}

/**
 * A magic link that expired a minute ago, signed with the test's portal
 * key: the services must refuse it as expired (a link in any other format
 * would be refused as invalid, which the test tells apart).
 */
export function expiredLink(portal) {
  const b64 = (bytes) => Buffer.from(bytes).toString("base64url");
  const claims = b64(JSON.stringify({ sid: "ps_01JEXPIRED0000000000000000", t: "acme", ro: false, exp: Math.floor(Date.now() / 1000) - 60, life: 3600 }));
  const mac = createHmac("sha256", PORTAL_KEY).update("hll1.").update(claims).digest();
  return `${portal}/enter?code=hll1.${claims}.${b64(mac)}`;
}
