// Sends the conformance scenario through an unchanged Node client library.
// usage: node node_clients.cjs <modules dir> <segment|rudder> <collector url> <write key>
// The calls come as JSON on stdin (tests/conformance/scenario.py, snake case); exits non-zero
// when the library reports an error.
const { createRequire } = require("node:module");
const path = require("node:path");

const [modules, sdk, url, writeKey] = process.argv.slice(2);
const load = createRequire(path.join(modules, "index.js"));
const camel = (name) => name.replace(/_([a-z])/g, (_, c) => c.toUpperCase());

function message(call) {
  const out = {};
  for (const [key, value] of Object.entries(call)) {
    if (key !== "call") out[camel(key)] = key === "timestamp" ? new Date(value) : value;
  }
  return out;
}

async function segment(calls) {
  const { Analytics } = load("@segment/analytics-node");
  const analytics = new Analytics({ writeKey, host: url, path: "/v1/batch", flushInterval: 50 });
  const errors = [];
  analytics.on("error", (error) => errors.push(error));
  for (const call of calls) analytics[call.call](message(call));
  await analytics.closeAndFlush({ timeout: 20000 });
  return errors;
}

async function rudder(calls) {
  const Analytics = load("@rudderstack/rudder-sdk-node");
  const errors = [];
  const client = new Analytics(writeKey, {
    dataPlaneUrl: url,
    flushAt: 100,
    flushInterval: 50,
    logLevel: "error",
    errorHandler: (error) => errors.push(error),
  });
  for (const call of calls) client[call.call](message(call));
  await client.flush();
  return errors;
}

async function main() {
  let input = "";
  for await (const chunk of process.stdin) input += chunk;
  const errors = await (sdk === "segment" ? segment : rudder)(JSON.parse(input));
  if (errors.length) {
    console.error(errors.map((e) => String(e && (e.message || e))).join("\n"));
    process.exit(1);
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(2);
});
