// Sends an HTTP request the way a Node user would, with the built-in `fetch`,
// and prints each answer as one JSON line: {"status": 413, "headers": {...},
// "body": "..."} or, when fetch threw instead, {"error": "TypeError: fetch
// failed (cause: EPIPE ...)"}.
//
//   node node_client.mjs [--method POST] [-H 'Name: value']...
//                        [--body-file PATH | --body-size N] [--chunked] [--repeat N] URL
//
// A body file is read into memory and sent with its length; --chunked streams
// it instead (fetch then sends it chunked, and needs `duplex: 'half'`).

import { createReadStream, readFileSync } from "node:fs";
import { Readable } from "node:stream";

const TIMEOUT_MS = 60_000;

function parseArgs(argv) {
  const args = { method: "POST", headers: {}, chunked: false, repeat: 1 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === "--method") args.method = value();
    else if (a === "-H" || a === "--header") {
      const h = value();
      const colon = h.indexOf(":");
      args.headers[h.slice(0, colon).trim()] = h.slice(colon + 1).trim();
    } else if (a === "--body-file") args.bodyFile = value();
    else if (a === "--body-size") args.bodySize = Number(value());
    else if (a === "--chunked") args.chunked = true;
    else if (a === "--repeat") args.repeat = Number(value());
    else if (a.startsWith("-")) throw new Error(`unknown option ${a}`);
    else args.url = a;
  }
  if (!args.url) throw new Error("no URL");
  return args;
}

function bodyOf(args, fileBytes) {
  if (args.chunked) {
    const source = args.bodyFile ? createReadStream(args.bodyFile) : Readable.from([fileBytes]);
    return Readable.toWeb(source);
  }
  return fileBytes;
}

function describe(e) {
  let text = `${e.name}: ${e.message}`;
  for (let c = e.cause; c; c = c.cause) text += ` (cause: ${c.code ?? ""} ${c.message ?? c})`;
  return text;
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  let fileBytes;
  if (args.bodyFile && !args.chunked) fileBytes = readFileSync(args.bodyFile);
  else if (args.bodySize !== undefined) fileBytes = Buffer.alloc(args.bodySize, "x");
  for (let n = 0; n < args.repeat; n++) {
    let line;
    try {
      const init = {
        method: args.method,
        headers: args.headers,
        signal: AbortSignal.timeout(TIMEOUT_MS),
      };
      if (fileBytes !== undefined || args.bodyFile) {
        init.body = bodyOf(args, fileBytes);
        if (args.chunked) init.duplex = "half";
      }
      const response = await fetch(args.url, init);
      const body = await response.text();
      line = { status: response.status, headers: Object.fromEntries(response.headers), body };
    } catch (e) {
      line = { error: describe(e) };
    }
    process.stdout.write(JSON.stringify(line) + "\n");
  }
}

main().catch((e) => {
  process.stderr.write(`${e.stack ?? e}\n`);
  process.exit(2);
});
