// `npm run dev` (started by scripts/dev.sh once the tools are in place): runs
// `wrangler dev` with this project's defaults and reloads the worker when its
// vars file changes. Arguments go to `wrangler dev`.
//
// - `--ip 127.0.0.1` and `--port 8787` are added only when the caller gave no
//   `--ip` / `--port` of their own (wrangler refuses a flag given twice).
// - The Workers AI binding makes `wrangler dev` demand a Cloudflare login even
//   offline, so the local run uses wrangler.local.toml, a copy of wrangler.toml
//   without it; N1_DEV_AI=1 (after `npx wrangler login`) keeps it, and the
//   built-in default ensemble then answers locally too. The copy is written
//   again whenever wrangler.toml changes. `--config` / `-c` uses that file instead.
// - wrangler 4.86 reads `.dev.vars` (or the `--env-file` files) only when it
//   loads its config, not when they change. This script watches them and, when
//   one changes, writes the config file again: wrangler then reloads the worker
//   with the new values (a second or two, since scripts/build.sh skips the
//   unchanged build that wrangler runs on every reload).
// - The server is wrangler's own dev server with its inspector off
//   (scripts/dev-server.mjs): `wrangler dev` always runs one, which reports
//   every upstream fetch and streamed chunk to wrangler's Node process and slows
//   each request (bench/NOTES.md). Plain `wrangler dev` (DevTools, hotkeys) runs
//   instead with N1_DEV_INSPECT=1 or with any argument besides --ip, --port,
//   --config, --env-file and --env.
// - Ctrl-C or SIGTERM stops wrangler (which stops its workerd), then this script.
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const args = process.argv.slice(2);
const log = (msg) => console.error(`[dev] ${msg}`);

/** Whether the caller gave one of these flags (`--flag value` or `--flag=value`). */
const given = (...names) => args.some((a) => names.some((n) => a === n || a.startsWith(`${n}=`)));

/** Every value given for these flags; array flags (--env-file) take all the words that follow. */
function valuesOf(names, many = false) {
  const out = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const n = names.find((n) => a.startsWith(`${n}=`));
    if (n) out.push(a.slice(n.length + 1));
    else if (names.includes(a)) {
      do out.push(args[++i]);
      while (many && i + 1 < args.length && !args[i + 1].startsWith("-"));
    }
  }
  return out.filter((v) => v !== undefined);
}

// The vars files wrangler reads: the --env-file files, else .dev.vars (or .dev.vars.<env>).
const envFiles = valuesOf(["--env-file"], true);
const env = valuesOf(["--env", "-e"]).at(-1);
const varsFiles = envFiles.length ? envFiles : [...(env ? [`.dev.vars.${env}`] : []), ".dev.vars"];
if (!envFiles.length && !fs.existsSync(".dev.vars")) {
  fs.copyFileSync(".dev.vars.example", ".dev.vars");
  log("created .dev.vars from .dev.vars.example: put your ensemble config and API keys there.");
}

const LOCAL_CONFIG = "wrangler.local.toml";
const ownConfig = valuesOf(["--config", "-c"]).at(-1);
const config = ownConfig ?? LOCAL_CONFIG;

/** wrangler.local.toml: wrangler.toml without its [ai] section (unless N1_DEV_AI=1). */
function writeLocalConfig() {
  const keepAi = process.env.N1_DEV_AI === "1";
  let skip = false;
  const lines = fs.readFileSync("wrangler.toml", "utf8").split("\n").filter((line) => {
    if (/^\[/.test(line)) skip = !keepAi && /^\[ai\]/.test(line);
    return !skip;
  });
  const note = "# Written by scripts/dev.mjs from wrangler.toml at each start and change: edit wrangler.toml instead.\n";
  // Written whole beside it and renamed over it: the running wrangler watches this file, and
  // reading it half-written (empty) would make it exit with "Missing entry-point".
  fs.writeFileSync(`${LOCAL_CONFIG}.tmp`, note + lines.join("\n"));
  fs.renameSync(`${LOCAL_CONFIG}.tmp`, LOCAL_CONFIG);
}

/** Makes wrangler load its config again, and with it the vars files. */
function reload() {
  if (ownConfig) {
    const now = new Date();
    fs.utimesSync(ownConfig, now, now);
  } else {
    writeLocalConfig();
  }
}

if (!ownConfig) writeLocalConfig();

// Watch the directories (editors often replace a file rather than write it);
// act only when a watched file's content really changed. File names only in
// the log: the files hold secrets.
const digest = (file) => {
  try {
    return createHash("sha256").update(fs.readFileSync(file)).digest("hex");
  } catch {
    return null; // missing
  }
};
const watched = new Map(); // absolute path -> { name, digest, onChange }
const watch = (file, onChange) => watched.set(path.resolve(file), { name: file, digest: digest(file), onChange });
for (const f of varsFiles) watch(f, reload);
if (!ownConfig) watch("wrangler.toml", writeLocalConfig);

const timers = new Map();
const watchDir = (dir, onEvent) => {
  try {
    const w = fs.watch(dir, onEvent);
    w.on("error", (e) => log(`stopped watching ${dir} (${e.code})`));
    return [w];
  } catch (e) {
    log(`cannot watch ${dir} (${e.code}): changes there need a restart`);
    return [];
  }
};
const watchers = [...new Set([...watched.keys()].map((f) => path.dirname(f)))].flatMap((dir) =>
  watchDir(dir, (_event, filename) => {
    const file = filename && path.join(dir, filename.toString());
    const w = watched.get(file);
    if (!w) return;
    clearTimeout(timers.get(file));
    timers.set(file, setTimeout(() => {
      const d = digest(file);
      if (d === w.digest) return;
      w.digest = d;
      log(`${w.name} changed: reloading the worker`);
      try {
        w.onChange();
      } catch (e) {
        log(`could not reload: ${e.message}`);
      }
    }, 150));
  }),
);

const ip = valuesOf(["--ip"]).at(-1) ?? "127.0.0.1";
const port = valuesOf(["--port"]).at(-1) ?? "8787";
// scripts/dev-server.mjs takes these flags (and their values); any other argument is for `wrangler dev`.
const serverFlags = ["--ip", "--port", "--config", "-c", "--env-file", "--env", "-e"];
const others = [];
for (let i = 0; i < args.length; i++) {
  const name = args[i].split("=")[0];
  if (!serverFlags.includes(name)) others.push(args[i]);
  else if (!args[i].includes("=")) {
    i++; // its value; --env-file takes all the words that follow
    while (name === "--env-file" && i + 1 < args.length && !args[i + 1].startsWith("-")) i++;
  }
}
const inspect = process.env.N1_DEV_INSPECT === "1" || others.length > 0;
const [command, commandArgs] = inspect
  ? ["wrangler", ["dev", ...(ownConfig ? [] : ["--config", config]), ...(given("--ip") ? [] : ["--ip", ip]), ...(given("--port") ? [] : ["--port", port]), ...args]]
  : [process.execPath, [path.join(import.meta.dirname, "dev-server.mjs"), JSON.stringify({ config, ip, port, env, envFiles })]];
const child = spawn(command, commandArgs, { stdio: "inherit" });
child.on("error", (e) => {
  log(`could not start ${inspect ? "wrangler" : "the dev server"}: ${e.message}`);
  process.exit(1);
});
child.on("exit", (code, signal) => {
  for (const w of watchers) w.close();
  process.exit(code ?? 128 + (os.constants.signals[signal] ?? 0));
});

// Ctrl-C reaches wrangler through the terminal too; SIGTERM (a service
// manager, a test) may reach only this process. Either way wrangler stops its
// workerd and exits, and this script exits after it.
let stopping = false;
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.on(sig, () => {
    if (stopping) return;
    stopping = true;
    for (const w of watchers) w.close();
    child.kill(sig);
    setTimeout(() => child.kill("SIGKILL"), 10_000).unref();
  });
}
