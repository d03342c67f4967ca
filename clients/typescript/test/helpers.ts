/**
 * Test helpers: a real server process per test (port 0 unless told), a real
 * `redis-server` for the Redis broker, and bounded waits. Every wait here has
 * a timeout; none of them mock the server.
 */
import { spawn } from "node:child_process";
import { createHmac } from "node:crypto";
import type { ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect as tcpConnect, createServer as tcpServer } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { fromBinary } from "@bufbuild/protobuf";
import { WebSocket as NodeWebSocket } from "ws";
import type { RawData } from "ws";
import type { Emitter } from "../src/emitter.js";
import { ClientFrameSchema } from "../src/index.js";
import type { Client, ClientEvents, ClientFrame, Subscription, SubscriptionEvents, WebSocketConstructor } from "../src/index.js";

/** The repository root: the nearest ancestor holding Cargo.toml. */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, "Cargo.toml")) && existsSync(join(dir, "proto"))) {
      return dir;
    }
    const parent = dirname(dir);
    if (parent === dir) {
      throw new Error("cannot find the repository root (Cargo.toml) above the tests");
    }
    dir = parent;
  }
}

/** The server binary: $SWITCHBOARD_BIN or <repo>/target/debug/switchboard. */
export function serverBinary(): string {
  return process.env["SWITCHBOARD_BIN"] ?? resolve(repoRoot(), "target/debug/switchboard");
}

/** A running server process. */
export interface TestServer {
  /** WebSocket endpoint, e.g. ws://127.0.0.1:PORT/ws. */
  readonly url: string;
  readonly port: number;
  readonly process: ChildProcess;
  /** Its stderr so far (for failure messages). */
  logs(): string;
  /** Sends `signal` (default SIGTERM) and waits for the exit (SIGKILL after 5 s). */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

const running = new Set<ChildProcess>();
process.on("exit", () => {
  for (const p of running) {
    p.kill("SIGKILL");
  }
});

/**
 * Starts `switchboard serve` and waits for its "listening" line. `config` is
 * the text of a TOML configuration file, written to a temporary directory and
 * passed with `--config`.
 */
export async function startServer(
  options: { env?: Record<string, string>; port?: number; config?: string } = {},
): Promise<TestServer> {
  const bin = serverBinary();
  if (!existsSync(bin)) {
    throw new Error(`server binary not found: ${bin} (set SWITCHBOARD_BIN)`);
  }
  const args = ["serve", "--listen", `127.0.0.1:${options.port ?? 0}`];
  if (options.config !== undefined) {
    const dir = mkdtempSync(join(tmpdir(), "switchboard-ts-"));
    const file = join(dir, "switchboard.toml");
    writeFileSync(file, options.config);
    args.push("--config", file);
    process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
  }
  const child = spawn(bin, args, {
    env: {
      // The server reads every SWITCHBOARD_* variable as configuration and
      // refuses unknown keys (SWITCHBOARD_BIN among them): pass none through.
      ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("SWITCHBOARD_"))),
      SWITCHBOARD_LIMITS__CLOSE_TIMEOUT: "300ms",
      SWITCHBOARD_SHUTDOWN_TIMEOUT: "3s",
      SWITCHBOARD_LOG__LEVEL: "warn",
      NO_COLOR: "1",
      ...options.env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  running.add(child);
  // A server never keeps the test process alive: the "exit" hook above kills
  // whatever is left when the process ends.
  child.unref();
  (child.stdout as unknown as { unref(): void }).unref();
  (child.stderr as unknown as { unref(): void }).unref();
  let stderr = "";
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (chunk: string) => {
    stderr = (stderr + chunk).slice(-20_000);
  });
  const exited = new Promise<void>((res) => child.once("exit", () => res()));
  void exited.then(() => running.delete(child));
  const lines = createInterface({ input: child.stdout });
  const port = await withTimeout(
    new Promise<number>((res, rej) => {
      lines.once("line", (line) => {
        const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(line);
        if (m?.[1]) {
          res(Number(m[1]));
        } else {
          rej(new Error(`unexpected first line from the server: ${line}`));
        }
      });
      child.once("exit", (code) => rej(new Error(`server exited with ${code}: ${stderr}`)));
    }),
    10_000,
    "server start",
  ).catch((err: unknown) => {
    child.kill("SIGKILL");
    throw err;
  });
  return {
    url: `ws://127.0.0.1:${port}/ws`,
    port,
    process: child,
    logs: () => stderr,
    async stop(signal: NodeJS.Signals = "SIGTERM") {
      if (child.exitCode !== null || child.signalCode !== null) {
        return;
      }
      child.kill(signal);
      const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** A running `redis-server`. */
export interface TestRedis {
  /** For `SWITCHBOARD_REDIS_URL`, e.g. redis://127.0.0.1:PORT. */
  readonly url: string;
  readonly port: number;
  readonly process: ChildProcess;
  /** Pauses it (SIGSTOP) and waits until every thread is stopped. */
  pause(): Promise<void>;
  /** Resumes a paused server (SIGCONT). */
  resume(): void;
  /** Resumes it, kills it (SIGKILL, which ends a stopped process too) and waits for the exit. */
  stop(): Promise<void>;
}

/** `redis-server`: $SWITCHBOARD_TEST_REDIS_SERVER, else the first on PATH. */
function redisBinary(): string {
  const explicit = process.env["SWITCHBOARD_TEST_REDIS_SERVER"];
  if (explicit) {
    return explicit;
  }
  const dirs = (process.env["PATH"] ?? "").split(delimiter).filter((d) => d !== "");
  const found = dirs.map((d) => join(d, "redis-server")).find((f) => existsSync(f));
  if (!found) {
    throw new Error(
      "redis-server is not installed: run scripts/test.sh (it installs it), or `apt-get install redis-server`, " +
        "or set SWITCHBOARD_TEST_REDIS_SERVER",
    );
  }
  return found;
}

/** A loopback port that was free a moment ago. */
async function freePort(): Promise<number> {
  const server = tcpServer();
  await new Promise<void>((res, rej) => {
    server.once("error", rej);
    server.listen(0, "127.0.0.1", () => res());
  });
  const address = server.address();
  await new Promise<void>((res) => server.close(() => res()));
  if (address === null || typeof address === "string") {
    throw new Error("no port from a loopback listener");
  }
  return address.port;
}

/** Whether a Redis server answers PING on `port` within `ms`. */
function redisPing(port: number, ms: number): Promise<boolean> {
  return new Promise((res) => {
    const socket = tcpConnect({ host: "127.0.0.1", port });
    let reply = "";
    const done = (ok: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      res(ok);
    };
    const timer = setTimeout(() => done(false), ms);
    socket.setEncoding("utf8");
    socket.once("connect", () => socket.write("PING\r\n"));
    socket.on("data", (chunk: string) => {
      reply += chunk;
      if (reply.includes("\r\n")) {
        done(reply.startsWith("+PONG"));
      }
    });
    socket.once("error", () => done(false));
  });
}

/**
 * Starts a fresh `redis-server` on a free loopback port, without
 * persistence, in its own temporary directory, and waits until it answers.
 */
export async function startRedis(): Promise<TestRedis> {
  const bin = redisBinary();
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "switchboard-ts-redis-"));
  process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
  const args = ["--bind", "127.0.0.1", "--port", String(port), "--save", "", "--appendonly", "no"];
  const child = spawn(bin, [...args, "--dir", dir, "--daemonize", "no"], { stdio: ["ignore", "ignore", "pipe"] });
  running.add(child);
  child.unref();
  (child.stderr as unknown as { unref(): void }).unref();
  let stderr = "";
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (chunk: string) => {
    stderr = (stderr + chunk).slice(-5000);
  });
  const exited = new Promise<void>((res) => child.once("exit", () => res()));
  void exited.then(() => running.delete(child));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGCONT");
      child.kill("SIGKILL");
    }
    // The child is unref'd: a timer keeps the event loop alive until it exits.
    const keepAlive = setTimeout(() => undefined, 10_000);
    await exited;
    clearTimeout(keepAlive);
  };
  const deadline = Date.now() + 10_000;
  while (!(await redisPing(port, 500))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`redis-server (${bin}) did not answer on port ${port}: ${stderr}`);
    }
    await sleep(50);
  }
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    process: child,
    pause: () => stopProcess(child),
    resume: () => {
      child.kill("SIGCONT");
    },
    stop,
  };
}

/** Rejects with a clear message when `promise` takes longer than `ms`. */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Sends SIGSTOP and waits (bounded) until every thread of the process is
 * stopped: the signal takes effect asynchronously, and a thread still running
 * could answer a frame sent right after `kill`. Where `/proc` is missing it
 * only sends the signal.
 */
export async function stopProcess(child: ChildProcess): Promise<void> {
  child.kill("SIGSTOP");
  const tasks = `/proc/${child.pid ?? 0}/task`;
  if (!existsSync(tasks)) {
    return;
  }
  const stopped = () =>
    readdirSync(tasks).every((t) => {
      try {
        // The state follows the parenthesised command name: "pid (comm) S ...".
        const stat = readFileSync(`${tasks}/${t}/stat`, "utf8");
        return /^[Tt]$/.test(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[0] ?? "");
      } catch {
        return true; // The thread exited.
      }
    });
  const deadline = Date.now() + 2000;
  while (!stopped()) {
    if (Date.now() > deadline) {
      throw new Error(`process ${child.pid ?? "?"} did not stop after SIGSTOP`);
    }
    await sleep(1);
  }
}

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((res) => setTimeout(res, ms));
}

/** Waits (bounded) for the first `event` whose value satisfies `predicate`. */
export function nextEvent<K extends keyof ClientEvents>(
  source: Client,
  event: K,
  timeoutMs: number,
  predicate?: (value: ClientEvents[K]) => boolean,
): Promise<ClientEvents[K]>;
export function nextEvent<K extends keyof SubscriptionEvents>(
  source: Subscription,
  event: K,
  timeoutMs: number,
  predicate?: (value: SubscriptionEvents[K]) => boolean,
): Promise<SubscriptionEvents[K]>;
export function nextEvent(
  source: Client | Subscription,
  event: string,
  timeoutMs: number,
  predicate: (value: unknown) => boolean = () => true,
): Promise<unknown> {
  const emitter = source as unknown as Emitter<Record<string, unknown>>;
  let off: (() => void) | undefined;
  const p = new Promise<unknown>((res) => {
    off = emitter.on(event, (value) => {
      if (predicate(value)) {
        off?.();
        res(value);
      }
    });
  });
  return withTimeout(p, timeoutMs, `event ${event}`).finally(() => off?.());
}

/** Reads `n` items from an async iterator, bounded by `timeoutMs` in total. */
export async function take<T>(iterable: AsyncIterable<T>, n: number, timeoutMs: number): Promise<T[]> {
  const it = iterable[Symbol.asyncIterator]();
  const out: T[] = [];
  const deadline = Date.now() + timeoutMs;
  while (out.length < n) {
    const r = await withTimeout(it.next(), Math.max(1, deadline - Date.now()), `item ${out.length + 1} of ${n}`);
    if (r.done) {
      throw new Error(`iterator ended after ${out.length} of ${n} items`);
    }
    out.push(r.value);
  }
  return out;
}

/**
 * The `ws` WebSocket, recording every frame the client sends into `sent`
 * (decoded), for tests that check what went on the wire.
 */
export function recordingWebSocket(sent: ClientFrame[]): WebSocketConstructor {
  return class Recording extends NodeWebSocket {
    override send(data: Uint8Array): void {
      sent.push(fromBinary(ClientFrameSchema, data));
      super.send(data);
    }
  };
}

/** The bytes of a frame received by a `ws` WebSocket. */
export function rawBytes(data: RawData): Uint8Array {
  if (data instanceof ArrayBuffer) {
    return new Uint8Array(data);
  }
  if (Array.isArray(data)) {
    return Buffer.concat(data);
  }
  return data;
}

/** An HS256 JWT, as the server expects (`sub`, optional `exp` in seconds). */
export function jwt(secret: string, claims: Record<string, unknown>): string {
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");
  const head = `${b64({ alg: "HS256", typ: "JWT" })}.${b64(claims)}`;
  return `${head}.${createHmac("sha256", secret).update(head).digest("base64url")}`;
}
