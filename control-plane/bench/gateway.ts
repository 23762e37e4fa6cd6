/**
 * `npm run bench:gateway`: Portico's gateway against nginx, on one machine, in one run.
 *
 *   upstream  nginx (1 worker) answering `GET /bench/hello` with a short body: cheap, so the figures are
 *             the proxies' own cost
 *   direct    the upstream itself
 *   nginx     nginx as a reverse proxy (1 worker, keep-alive upstream pool)
 *   portico   the control plane as `npm start` runs it (the bundle), its gateway routing
 *             `/bench/hello` to the upstream, registered through the admin API; metrics and trace
 *             propagation on, as always
 *
 *   relay     a bare Node.js TCP relay, one upstream connection per client connection and no HTTP at
 *             all: the most any Node.js proxy can do on this machine, so the figures show how much of
 *             the distance to nginx is Node's own
 *
 * Throughput: wrk with the same connections and duration for all four, in alternating rounds; the best
 * round of each is printed with the ratio portico/nginx (target ≥ 0.6). Latency at a fixed moderate
 * load: wrk with paced connections at about the same rate against nginx, the relay and portico, in
 * alternating rounds; the median of the rounds' p50 and p99 is printed (target: portico's p99 within
 * 1 ms of nginx's), and each proxy's CPU time per request in those rounds (user and system, read from
 * /proc), which moves less with the machine than requests/s do. The load is offered two ways:
 *
 *   spread    each connection waits a random 0-20 ms before each request (10 on average): like
 *             independent clients, requests arrive at random moments. The target is judged here.
 *   bursts    each connection waits the same 10 ms: the connections, started together, stay in step
 *             and send about 50 requests at once every 10 ms, so each proxy works through a burst in
 *             turn and its p99 is about a burst's worth of its CPU time per request.
 *
 * Needs the Debian packages nginx and wrk.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { buildControlPlane, freePort, runControlPlane, waitForHttp } from '../test/support/control-plane-process.js';

const run = promisify(execFile);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const DURATION_S = Number(process.env.BENCH_DURATION_S ?? 5);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32);
const FIXED_RATE = Number(process.env.BENCH_FIXED_RATE ?? 5000);
const FIXED_CONNECTIONS = 50;
const FIXED_ROUNDS = Number(process.env.BENCH_FIXED_ROUNDS ?? 5);

interface WrkFigures {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
}

/** Parse wrk's `--latency` report: requests/s, the 50th and 99th percentile (ms), socket errors and non-2xx. */
function parseWrk(output: string): WrkFigures {
  const ms = (text: string | undefined): number => {
    const match = /([\d.]+)(us|ms|s)/.exec(text ?? '');
    if (match === null) return NaN;
    const value = Number(match[1]);
    return match[2] === 'us' ? value / 1000 : match[2] === 's' ? value * 1000 : value;
  };
  const errors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(output);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(output);
  return {
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(output)?.[1] ?? NaN),
    p50: ms(/\s50%\s+(\S+)/.exec(output)?.[1]),
    p99: ms(/\s99%\s+(\S+)/.exec(output)?.[1]),
    errors: (errors === null ? 0 : errors.slice(1).reduce((sum, n) => sum + Number(n), 0)) + Number(non2xx?.[1] ?? 0),
  };
}

async function wrk(url: string, seconds = DURATION_S): Promise<WrkFigures> {
  const { stdout } = await run('wrk', ['-t1', `-c${CONNECTIONS}`, `-d${seconds}s`, '--latency', url]);
  return parseWrk(stdout);
}

const dir = await mkdtemp(join(tmpdir(), 'portico-bench-gateway-'));
const [upstreamPort, nginxPort, port, gatewayPort, relayPort] = [await freePort(), await freePort(), await freePort(), await freePort(), await freePort()];
const token = `bench-${randomBytes(24).toString('hex')}`;
const children: ChildProcess[] = [];
/** The proxies' processes, whose CPU time is read around each fixed-load round (nginx: its master, whose workers are read). */
const pids: { nginx?: number | undefined; relay?: number | undefined; portico?: number | undefined } = {};

/** CPU time (user, system) in µs of `pid` and its children processes (nginx's worker), from /proc. */
async function cpuTime(pid: number | undefined): Promise<{ user: number; system: number }> {
  if (pid === undefined) return { user: NaN, system: NaN };
  const all = [pid];
  const children = await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8').catch(() => '');
  for (const child of children.trim().split(/\s+/).filter((id) => id !== '')) all.push(Number(child));
  let user = 0;
  let system = 0;
  for (const id of all) {
    const fields = (await readFile(`/proc/${id}/stat`, 'utf8')).split(') ')[1]?.split(' ') ?? [];
    // utime and stime, in clock ticks (100 a second on Linux).
    user += Number(fields[11]) * 10_000;
    system += Number(fields[12]) * 10_000;
  }
  return { user, system };
}
let controlPlane: ReturnType<typeof runControlPlane> | undefined;

try {
  for (const [name, server] of [
    ['upstream', `server { listen 127.0.0.1:${upstreamPort}; location / { default_type text/plain; return 200 "hello from the upstream\\n"; } }`],
    [
      'proxy',
      `upstream backend { server 127.0.0.1:${upstreamPort}; keepalive 64; }
  server { listen 127.0.0.1:${nginxPort}; location /bench/ { proxy_pass http://backend/; proxy_http_version 1.1; proxy_set_header Connection ""; } }`,
    ],
  ] as const) {
    const conf = join(dir, `${name}.conf`);
    await writeFile(
      conf,
      `worker_processes 1;
daemon off;
pid ${join(dir, `${name}.pid`)};
error_log ${join(dir, `${name}.error.log`)} warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/${name}-body;
  proxy_temp_path ${dir}/${name}-proxy;
  keepalive_requests 1000000;
  ${server}
}`,
    );
    const nginx = spawn('nginx', ['-p', dir, '-c', conf, '-e', join(dir, `${name}.error.log`)], { stdio: 'inherit' });
    children.push(nginx);
    if (name === 'proxy') pids.nginx = nginx.pid;
  }

  // The relay: bytes both ways, nothing else.
  const relay = join(dir, 'relay.mjs');
  await writeFile(
    relay,
    `import { connect, createServer } from 'node:net';
createServer({ noDelay: true }, (client) => {
  const upstream = connect({ host: '127.0.0.1', port: ${upstreamPort}, noDelay: true });
  client.pipe(upstream).on('error', () => client.destroy());
  upstream.pipe(client).on('error', () => upstream.destroy());
  client.on('error', () => upstream.destroy());
  upstream.on('error', () => client.destroy());
}).listen(${relayPort}, '127.0.0.1');
`,
  );
  const relayProcess = spawn(process.execPath, [relay], { stdio: 'inherit' });
  children.push(relayProcess);
  pids.relay = relayProcess.pid;

  await buildControlPlane();
  controlPlane = runControlPlane(
    { PORTICO_PORT: String(port), PORTICO_GATEWAY_PORT: String(gatewayPort), PORTICO_DATA_DIR: join(dir, 'portico'), PORTICO_ADMIN_TOKEN: token, PORTICO_LOG_LEVEL: 'warn' },
    { built: true },
  );
  pids.portico = controlPlane.child.pid;
  await waitForHttp(`http://127.0.0.1:${port}/healthz`);
  const registered = await fetch(`http://127.0.0.1:${port}/api/v1/instances/bench-1`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ service: 'bench', address: '127.0.0.1', port: upstreamPort, checks: [{ kind: 'ttl', ttl: '10m', status: 'passing' }] }),
  });
  if (!registered.ok) throw new Error(`registering the upstream failed: ${registered.status} ${await registered.text()}`);

  const targets = {
    direct: `http://127.0.0.1:${upstreamPort}/hello`,
    nginx: `http://127.0.0.1:${nginxPort}/bench/hello`,
    relay: `http://127.0.0.1:${relayPort}/hello`,
    portico: `http://127.0.0.1:${gatewayPort}/bench/hello`,
  } as const;
  for (const url of Object.values(targets)) await waitForHttp(url);

  // Warm-up: connections, JIT.
  for (const url of Object.values(targets)) await wrk(url, 2);

  const best: Record<keyof typeof targets, WrkFigures[]> = { direct: [], nginx: [], relay: [], portico: [] };
  for (let round = 0; round < ROUNDS; round++) {
    for (const name of Object.keys(targets) as Array<keyof typeof targets>) best[name].push(await wrk(targets[name]));
  }
  const top = (name: keyof typeof targets) => best[name].reduce((a, b) => (b.rps > a.rps ? b : a));

  // Paced wrk, so the offered load is about FIXED_RATE req/s whatever the proxy does: each of
  // FIXED_CONNECTIONS connections waits `gap` = 1000 * FIXED_CONNECTIONS / FIXED_RATE ms on average
  // before each request, a random 0 to 2 × gap (spread) or exactly gap (bursts).
  const gap = Math.round((1000 * FIXED_CONNECTIONS) / FIXED_RATE);
  const paces = { spread: join(dir, 'pace-spread.lua'), bursts: join(dir, 'pace-bursts.lua') } as const;
  type Pace = keyof typeof paces;
  await writeFile(paces.spread, `function delay()\n  return math.random(0, ${2 * gap})\nend\n`);
  await writeFile(paces.bursts, `function delay()\n  return ${gap}\nend\n`);
  const fixed = async (url: string, pid: number | undefined, pace: Pace) => {
    const before = await cpuTime(pid);
    const { stdout } = await run('wrk', ['-t1', `-c${FIXED_CONNECTIONS}`, `-d${DURATION_S}s`, '--latency', '-s', paces[pace], url]);
    const after = await cpuTime(pid);
    const figures = parseWrk(stdout);
    const requests = figures.rps * DURATION_S;
    return { ...figures, userUs: (after.user - before.user) / requests, systemUs: (after.system - before.system) / requests };
  };
  const paced = { nginx: targets.nginx, relay: targets.relay, portico: targets.portico } as const;
  type Paced = keyof typeof paced;
  type Round = WrkFigures & { userUs: number; systemUs: number };
  const rounds: Record<Pace, Record<Paced, Round[]>> = { spread: { nginx: [], relay: [], portico: [] }, bursts: { nginx: [], relay: [], portico: [] } };
  for (let round = 0; round < FIXED_ROUNDS; round++) {
    for (const pace of Object.keys(paces) as Pace[]) {
      for (const name of Object.keys(paced) as Paced[]) rounds[pace][name].push(await fixed(paced[name], pids[name], pace));
    }
  }
  const median = (values: number[]) => {
    const sorted = [...values].sort((a, b) => a - b);
    const middle = Math.floor(sorted.length / 2);
    return sorted.length % 2 === 1 ? (sorted[middle] as number) : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
  };
  const fixedMedian = (pace: Pace, name: Paced): WrkFigures => ({
    rps: median(rounds[pace][name].map((r) => r.rps)),
    p50: median(rounds[pace][name].map((r) => r.p50)),
    p99: median(rounds[pace][name].map((r) => r.p99)),
    errors: rounds[pace][name].reduce((sum, r) => sum + r.errors, 0),
  });

  const f = (n: number, digits = 2) => n.toFixed(digits).padStart(10);
  console.log(`\ngateway: ${ROUNDS} alternating rounds of wrk -t1 -c${CONNECTIONS} -d${DURATION_S}s (best round of each), one 2-core machine`);
  console.log(`${'target'.padEnd(10)}${'req/s'.padStart(10)}${'p50 ms'.padStart(10)}${'p99 ms'.padStart(10)}${'errors'.padStart(10)}   every round's req/s`);
  for (const name of Object.keys(targets) as Array<keyof typeof targets>) {
    const t = top(name);
    console.log(`${name.padEnd(10)}${f(t.rps, 0)}${f(t.p50)}${f(t.p99)}${f(t.errors, 0)}   ${best[name].map((r) => r.rps.toFixed(0)).join(' / ')}`);
  }
  console.log(`ratio relay/nginx (req/s): ${(top('relay').rps / top('nginx').rps).toFixed(2)}   (a Node.js process that only relays bytes)`);
  console.log(`ratio portico/nginx (req/s): ${(top('portico').rps / top('nginx').rps).toFixed(2)}   target ≥ 0.60`);
  const describe: Record<Pace, string> = {
    spread: `each connection waiting a random 0-${2 * gap} ms before each request`,
    bursts: `each connection waiting ${gap} ms before each request, so they send together`,
  };
  for (const pace of Object.keys(paces) as Pace[]) {
    console.log(
      `\nfixed load, ${pace}: about ${FIXED_RATE} req/s for ${DURATION_S} s (wrk, ${FIXED_CONNECTIONS} connections, ${describe[pace]}), ${FIXED_ROUNDS} alternating rounds, median of the rounds`,
    );
    console.log(`${'target'.padEnd(10)}${'req/s'.padStart(10)}${'p50 ms'.padStart(10)}${'p99 ms'.padStart(10)}${'errors'.padStart(10)}   every round's p99 ms`);
    for (const name of Object.keys(paced) as Paced[]) {
      const r = fixedMedian(pace, name);
      console.log(`${name.padEnd(10)}${f(r.rps, 0)}${f(r.p50)}${f(r.p99)}${f(r.errors, 0)}   ${rounds[pace][name].map((x) => x.p99.toFixed(2)).join(' / ')}`);
    }
    console.log(`p99 relay − nginx: ${(fixedMedian(pace, 'relay').p99 - fixedMedian(pace, 'nginx').p99).toFixed(2)} ms   (a Node.js process that only relays bytes)`);
    const gapMs = (fixedMedian(pace, 'portico').p99 - fixedMedian(pace, 'nginx').p99).toFixed(2);
    console.log(`p99 portico − nginx: ${gapMs} ms   ${pace === 'spread' ? 'target ≤ 1 ms' : `(${FIXED_CONNECTIONS} requests at once: each proxy works through them in turn)`}`);
  }
  console.log(`\nCPU time per request at the fixed load (the proxy's processes, from /proc; median of the rounds): user, system and total when spread, total in bursts`);
  console.log(`${'target'.padEnd(10)}${'user µs'.padStart(10)}${'system µs'.padStart(12)}${'total µs'.padStart(10)}${'bursts µs'.padStart(12)}`);
  for (const name of Object.keys(paced) as Paced[]) {
    const user = median(rounds.spread[name].map((r) => r.userUs));
    const system = median(rounds.spread[name].map((r) => r.systemUs));
    const bursts = median(rounds.bursts[name].map((r) => r.userUs + r.systemUs));
    console.log(`${name.padEnd(10)}${f(user, 1)}${f(system, 1).padStart(12)}${f(user + system, 1)}${f(bursts, 1).padStart(12)}`);
  }
} finally {
  await controlPlane?.stop('SIGTERM');
  for (const child of children) child.kill('SIGQUIT');
  await new Promise((resolve) => setTimeout(resolve, 200));
  await rm(dir, { recursive: true, force: true });
}
