// The load client of benchmarks/server_load.py: many WebSocket connections for little CPU.
//
//   node benchmarks/load/client.mjs CONFIG.json
//
// Speaks thengine's protocol (docs/CONTRACT.md, "The network protocol") with the `ws`
// package. Told what to do by the JSON file CONFIG (written by server_load.py; the
// fields are read in `main` below). Writes one JSON object per line on stdout:
//
//   {"phase":"connected",...}   every connection said hello and got its answer
//   {"phase":"start","t":ms}    the measured window begins
//   {"phase":"end","t":ms}      the measured window ends
//   {"phase":"ready",...}       (mode "hold") every connection is open and idle; the
//                               client waits for a line "close" on stdin, then closes
//                               them all together
//   {"phase":"summary",...}     the last line: counts and latency percentiles (ms)
//
// Everything is bounded: connections, commands, the measured window (duration_s) and
// the whole run (timeout_s, after which the summary says "timed_out": true). Errors
// that end the run early are reported in the summary's "fatal".

import fs from 'node:fs';
import readline from 'node:readline';
import WebSocket from 'ws';

const cfg = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const now = () => performance.now();
const emit = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');

// Event types that change the mover's own leaderboard entry (for staleness).
const BOARD_EVENTS = new Set(['player_joined', 'clue_solved', 'hint_revealed', 'treasure_found', 'score_adjusted',
  'player_left', 'player_removed']);

// -- statistics ------------------------------------------------------------------------------

class Samples {
  constructor() { this.buf = new Float64Array(1024); this.n = 0; }
  add(x) {
    if (this.n === this.buf.length) { const b = new Float64Array(this.buf.length * 2); b.set(this.buf); this.buf = b; }
    this.buf[this.n++] = x;
  }
  summary() {
    if (!this.n) return {};
    const s = this.buf.slice(0, this.n).sort();
    const at = (q) => +s[Math.min(this.n - 1, Math.floor(q * this.n))].toFixed(3);
    let sum = 0; for (let i = 0; i < this.n; i++) sum += s[i];
    return { n: this.n, mean: +(sum / this.n).toFixed(3), p50: at(0.5), p90: at(0.9), p99: at(0.99), p999: at(0.999),
      max: +s[this.n - 1].toFixed(3) };
  }
}

const counts = {};
const bump = (table, key, n = 1) => { table[key] = (table[key] || 0) + n; };

function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6D2B79F5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// -- one connection ------------------------------------------------------------------------

const stats = {
  connectFailed: 0, connectErrors: {}, extensions: {}, closes: {}, replyBytes: 0, replies: 0,
};

class Conn {
  constructor(token, label) {
    this.token = token; this.label = label; this.ws = null; this.onFrame = null; this.closed = false;
    this.welcome = null;
  }

  open() {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(cfg.url, { perMessageDeflate: cfg.deflate !== false, maxPayload: 1 << 26, skipUTF8Validation: true,
        handshakeTimeout: 30000 });
      this.ws = ws;
      let settled = false;
      const fail = (why) => { if (!settled) { settled = true; reject(new Error(why)); } };
      const timer = setTimeout(() => { fail('no welcome within 30 s'); ws.terminate(); }, 30000);
      ws.on('open', () => {
        if (this.label !== 'admin') bump(stats.extensions, ws.extensions || 'none');
        ws.send(JSON.stringify({ op: 'hello', token: this.token }));
      });
      ws.on('message', (data) => {
        if (!settled) {
          settled = true; clearTimeout(timer);
          let msg;
          try { msg = JSON.parse(data.toString()); } catch { msg = {}; }
          if (msg.op === 'welcome') { this.welcome = msg; resolve(this); } else {
            reject(new Error(`hello answered with ${data.toString().slice(0, 200)}`));
          }
          return;
        }
        if (this.onFrame) this.onFrame(data);
      });
      ws.on('error', (err) => { clearTimeout(timer); fail(err.code || err.message); });
      ws.on('close', (code) => {
        clearTimeout(timer);
        this.closed = true;
        if (!closingAll && !this.expectedClose) bump(stats.closes, String(code));
        fail(`closed ${code}`);
        if (this.onClose) this.onClose(code);
      });
    });
  }

  send(obj) { if (!this.closed) this.ws.send(JSON.stringify(obj)); }
}

let closingAll = false;

async function openAll(specs) {
  // Open connections `connect_concurrency` at a time, so the listen backlog never overflows
  // (an overflowed SYN is retried after 1 s, 3 s ... and would only measure the kernel).
  const conns = new Array(specs.length);
  let next = 0;
  const width = Math.max(1, cfg.connect_concurrency || 64);
  async function worker() {
    while (next < specs.length) {
      const i = next++;
      const conn = new Conn(specs[i].token, specs[i]);
      try { conns[i] = await conn.open(); } catch (err) {
        stats.connectFailed++; bump(stats.connectErrors, String(err.message).slice(0, 120)); conns[i] = null;
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(width, specs.length) }, worker));
  return conns;
}

// -- requests with replies -----------------------------------------------------------------

function parse(data) {
  try { return JSON.parse(data.toString()); } catch { return null; }
}

// One waiting reply per id on a connection; `request` resolves with the reply object.
function attachReplies(conn) {
  conn.pending = new Map();
  conn.nextId = 1;
  conn.request = (obj) => new Promise((resolve) => {
    const id = conn.nextId++;
    conn.pending.set(id, resolve);
    conn.send({ ...obj, id });
  });
  conn.onReply = (msg) => {
    const resolve = conn.pending.get(msg.id);
    if (resolve) { conn.pending.delete(msg.id); resolve(msg); return true; }
    return false;
  };
}

async function runSetup() {
  // Admin commands before anything is measured (create and start hunts): all must be ok.
  if (!cfg.setup || !cfg.setup.commands.length) return;
  const admin = new Conn(cfg.setup.token, 'admin');
  try { await admin.open(); } catch (err) { throw new Error(`setup: the admin connection failed: ${err.message}`); }
  admin.expectedClose = true;
  attachReplies(admin);
  admin.onFrame = (data) => { const msg = parse(data); if (msg) admin.onReply(msg); };
  for (const command of cfg.setup.commands) {
    const reply = await admin.request({ op: 'command', command });
    if (!reply.ok) throw new Error(`setup: ${command.type} answered ${JSON.stringify(reply).slice(0, 300)}`);
  }
  admin.ws.close(1000);
}

// -- players ---------------------------------------------------------------------------------

class Player {
  constructor(conn, spec, seed, window) {
    this.conn = conn; this.player = spec.player; this.hunt = spec.hunt; this.window = window;
    this.rng = mulberry32(seed);
    this.unsolved = Array.from({ length: cfg.clues }, (_, i) => i);
    this.hinted = new Set();
    this.sent = 0; this.inFlight = new Map(); this.nextId = 1; this.joined = false;
    this.boardSeq = -1; this.stale = []; // [result seq, result time] waiting for a board frame
  }

  command() {
    if (!this.joined) { this.joined = true; return { type: 'join_hunt', hunt_id: this.hunt, player_id: this.player }; }
    const u = this.unsolved;
    const clue = u.length === 1 ? u[0] : u[Math.floor(this.rng() * Math.min(u.length, this.window))];
    const roll = this.rng();
    if (roll < cfg.p_hint && !this.hinted.has(clue)) {
      this.hinted.add(clue);
      return { type: 'request_hint', hunt_id: this.hunt, player_id: this.player, clue_id: `c${clue}` };
    }
    const right = roll < cfg.p_hint + cfg.p_right && u.length > 1; // the last clue stays open: the hunt never ends
    if (right) u.splice(u.indexOf(clue), 1); // at issue time, so pipelined commands never race for it
    return { type: 'submit_answer', hunt_id: this.hunt, player_id: this.player, clue_id: `c${clue}`,
      answer: right ? `a${clue}` : 'wrong' };
  }

  // Send the next command; `t0` is when it was due (open loop) or now (closed loop).
  send(t0, measured) {
    const id = this.nextId++;
    const frame = { op: 'command', id, command: this.command() };
    if (cfg.command_ids) frame.command_id = `${cfg.run_id}-${this.player}-${id}`;
    this.inFlight.set(id, [t0, measured]);
    this.sent++;
    this.conn.send(frame);
    return id;
  }
}

const latency = new Samples();
const staleness = new Samples();
const outcomes = {};
let stalenessDropped = 0;
let done = 0;
let measuring = false;
let stopIssuing = false;

function onPlayerFrame(player, data, onDone) {
  const msg = parse(data);
  if (!msg) return;
  if (msg.op === 'leaderboard') {
    watchFrames++; watchBytes += data.length;
    if (typeof msg.seq === 'number' && msg.seq > player.boardSeq) {
      player.boardSeq = msg.seq;
      const t = now();
      // replies may come back out of seq order, so look at every waiting result
      if (player.stale.length) {
        const still = [];
        for (const w of player.stale) if (w[0] <= msg.seq) staleness.add(t - w[1]); else still.push(w);
        player.stale = still;
      }
    }
    return;
  }
  if (msg.op === 'result' || msg.op === 'error') {
    const entry = player.inFlight.get(msg.id);
    if (!entry) return;
    player.inFlight.delete(msg.id);
    const t = now();
    stats.replies++; stats.replyBytes += data.length;
    const [t0, measured] = entry;
    if (measured) {
      latency.add(t - t0);
      done++;
      bump(outcomes, msg.op === 'error' ? `error:${msg.code}` : (msg.ok ? 'ok' : msg.error.code));
      if (watchOn && msg.ok && Array.isArray(msg.events)) {
        let seq = -1;
        for (const ev of msg.events) if (BOARD_EVENTS.has(ev.type) && ev.seq > seq) seq = ev.seq;
        if (seq >= 0) {
          if (player.boardSeq >= seq) staleness.add(0);
          else player.stale.push([seq, t]);
        }
      }
    }
    onDone(player, msg);
  }
}

// -- watchers and subscribers ----------------------------------------------------------------

let watchOn = false;
let watchFrames = 0;
let watchBytes = 0;
let subEvents = 0;
let subFrames = 0;
let subBytes = 0;
let subBreaks = 0;
const pushLag = new Samples();

function watchRequest() {
  return { op: 'watch', id: 'watch', hunt_id: cfg.watch.hunt, limit: cfg.watch.limit, interval_ms: cfg.watch.interval_ms };
}

// Ask one connection to watch; resolves with null when watching, else the reason it is not.
function startWatch(conn) {
  return new Promise((resolve) => {
    const timer = setTimeout(() => { conn.onFrame = countWatchFrame; resolve('no reply to watch within 10 s'); }, 10000);
    conn.onFrame = (data) => {
      const msg = parse(data);
      if (!msg) return;
      if (msg.op === 'watching') { clearTimeout(timer); conn.onFrame = countWatchFrame; resolve(null); return; }
      if (msg.op === 'leaderboard') { countWatchFrame(data); return; }
      if (msg.id === 'watch' || msg.op === 'error') {
        clearTimeout(timer); conn.onFrame = countWatchFrame;
        resolve(`${msg.code || (msg.error && msg.error.code) || msg.op}: ${msg.message || (msg.error && msg.error.message) || ''}`);
      }
    };
    conn.send(watchRequest());
  });
}

function countWatchFrame(data) { watchFrames++; watchBytes += data.length; }

function startSubscribe(conn) {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve('no reply to subscribe within 10 s'), 10000);
    conn.onFrame = (data) => {
      const msg = parse(data);
      if (!msg) return;
      clearTimeout(timer);
      if (msg.op === 'subscribed') {
        conn.onFrame = eventCounter(msg.after_seq);
        resolve(null);
      } else resolve(`${msg.code || msg.op}: ${msg.message || ''}`);
    };
    conn.send({ op: 'subscribe', id: 1, hunt_id: cfg.subscribe.hunt, after_seq: cfg.subscribe.after_seq, batch: true });
  });
}

const SEQ = Buffer.from('"seq":');

function seqAt(data, at) {
  let n = 0;
  for (let i = at + SEQ.length; i < data.length; i++) {
    const c = data[i];
    if (c < 48 || c > 57) break;
    n = n * 10 + (c - 48);
  }
  return n;
}

// Cheap: a subscription to the one hunt of the run gets consecutive seqs, so a frame's
// events are counted from its first and last seq (no scan of the frame), and a break in
// the sequence (a gap or a repeat) is counted too. One frame in 20 is decoded to sample
// the push lag.
function eventCounter(afterSeq) {
  let last = afterSeq;
  return (data) => {
    const first = data.indexOf(SEQ);
    if (first < 0) return;
    const a = seqAt(data, first);
    const b = seqAt(data, data.lastIndexOf(SEQ));
    if (a !== last + 1) subBreaks++;
    last = b;
    subEvents += b - a + 1; subFrames++; subBytes += data.length;
    if (subFrames % 20 === 0) {
      const msg = parse(data);
      const events = msg && (msg.events || (msg.event ? [msg.event] : null));
      if (events && events.length) pushLag.add(Date.now() - events[events.length - 1].ts);
    }
  };
}

// -- the run ---------------------------------------------------------------------------------

let timedOut = false;
const timeout = setTimeout(() => { timedOut = true; finish('timed out'); }, (cfg.timeout_s || 120) * 1000);
const started = now();
let window0 = 0;
let window1 = 0;
let cpu0 = null;
let cpu1 = null;
let connected = [];
let watchInfo = null;
let subInfo = null;
let extra = {};
let inWindow = { subEvents: 0, watchFrames: 0 };

function startWindow() {
  measuring = true; window0 = now(); cpu0 = process.cpuUsage();
  emit({ phase: 'start', t: Date.now() });
}

function endWindow() {
  if (!measuring) return;
  measuring = false; window1 = now(); cpu1 = process.cpuUsage(cpu0);
  inWindow = { subEvents, watchFrames };
  emit({ phase: 'end', t: Date.now() });
}

async function closedLoop(players) {
  // Each player keeps `depth` commands in flight until it has sent commands_each or the
  // window's duration is over; the window ends when every reply is in.
  const deadline = now() + cfg.duration_s * 1000;
  await new Promise((resolve) => {
    let active = players.length;
    if (!active) resolve();
    const onDone = (player) => {
      if (!stopIssuing && player.sent < cfg.commands_each && now() < deadline && !player.conn.closed) {
        player.send(now(), true);
      } else if (player.inFlight.size === 0 && !player.finished) {
        player.finished = true;
        if (--active === 0) resolve();
      }
    };
    for (const p of players) {
      p.conn.onFrame = (data) => onPlayerFrame(p, data, onDone);
      p.conn.onClose = () => { p.inFlight.clear(); if (!p.finished) { p.finished = true; if (--active === 0) resolve(); } };
      for (let k = 0; k < cfg.depth && p.sent < cfg.commands_each; k++) p.send(now(), true);
    }
  });
}

async function joinAll(players) {
  // Open loop: players join before the window (one command each, not measured).
  await new Promise((resolve) => {
    let left = players.length;
    if (!left) resolve();
    for (const p of players) {
      p.conn.onFrame = (data) => onPlayerFrame(p, data, () => { if (--left === 0) resolve(); });
      p.send(now(), false);
    }
  });
}

async function openLoop(players) {
  // `rate` commands/s in total, each player in turn, on a fixed timetable; latency is
  // measured from when a command was due, so a server falling behind shows up in the
  // percentiles instead of lowering the offered load.
  const rate = cfg.rate;
  const t0 = now();
  let issued = 0;
  const total = Math.floor(rate * cfg.duration_s);
  const noop = () => {};
  for (const p of players) p.conn.onFrame = (data) => onPlayerFrame(p, data, noop);
  await new Promise((resolve) => {
    const tick = setInterval(() => {
      const due = Math.min(total, Math.floor((now() - t0) * rate / 1000));
      while (issued < due) {
        const p = players[issued % players.length];
        const at = t0 + (issued * 1000) / rate;
        issued++;
        if (!p.conn.closed) p.send(at, true); else bump(outcomes, 'not_sent:closed');
      }
      if (issued >= total) { clearInterval(tick); resolve(); }
    }, 2);
  });
  extra.offered = issued;
  // Wait for the replies still in flight (bounded).
  const drainUntil = now() + (cfg.drain_s || 10) * 1000;
  while (now() < drainUntil && players.some((p) => p.inFlight.size && !p.conn.closed)) await sleep(5);
  extra.unanswered = players.reduce((n, p) => n + p.inFlight.size, 0);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function main() {
  await runSetup();

  // Connections: players first (the first `watching_players` of them also watch), then
  // watch-only connections, then subscribers, then idle ones (mode "hold").
  const specs = [];
  for (const p of cfg.players || []) specs.push({ ...p, role: 'player' });
  for (const w of cfg.watchers || []) specs.push({ ...w, role: 'watcher' });
  for (const s of cfg.subscribers || []) specs.push({ ...s, role: 'subscriber' });
  for (const h of cfg.idle || []) specs.push({ ...h, role: 'idle' });
  const c0 = now();
  connected = await openAll(specs);
  const open = connected.filter(Boolean);
  emit({ phase: 'connected', open: open.length, failed: stats.connectFailed, seconds: +((now() - c0) / 1000).toFixed(3) });
  extra.connect_s = +((now() - c0) / 1000).toFixed(3);
  if (cfg.require_all && stats.connectFailed) throw new Error(`${stats.connectFailed} connections failed: ${JSON.stringify(stats.connectErrors)}`);

  const players = [];
  connected.forEach((conn, i) => {
    if (conn && specs[i].role === 'player') players.push(new Player(conn, specs[i], (cfg.seed || 1) * 100003 + i, cfg.window || 2));
  });

  if (cfg.mode === 'hold') {
    emit({ phase: 'ready', open: open.length, failed: stats.connectFailed });
    const lines = readline.createInterface({ input: process.stdin });
    for await (const line of lines) if (line.trim() === 'close') break;
    closingAll = true;
    const t = now();
    let left = open.filter((c) => !c.closed).length;
    await new Promise((resolve) => {
      if (!left) resolve();
      for (const c of open) {
        if (c.closed) continue;
        c.onClose = () => { if (--left === 0) resolve(); };
        if (cfg.close === 'terminate') c.ws.terminate(); else c.ws.close(1000);
      }
      setTimeout(resolve, 30000);
    });
    extra.close_s = +((now() - t) / 1000).toFixed(3);
    extra.close_unfinished = left;
    finish(null);
    return;
  }

  if (cfg.watch) {
    // Probe with one connection first: a server without `watch` answers an error, and
    // then nobody else asks (the run goes on with idle watchers and says so).
    const watchConns = connected.filter((c, i) => c && (specs[i].role === 'watcher' || specs[i].role === 'player'));
    const t = now();
    const reason = watchConns.length ? await startWatch(watchConns[0]) : 'no connections';
    watchInfo = { requested: watchConns.length, supported: reason === null, error: reason };
    if (reason === null) {
      const reasons = {};
      let next = 1;
      async function worker() {
        while (next < watchConns.length) {
          const r = await startWatch(watchConns[next++]);
          if (r) bump(reasons, r.slice(0, 120));
        }
      }
      await Promise.all(Array.from({ length: 256 }, worker));
      watchInfo.failed = reasons;
      watchInfo.setup_s = +((now() - t) / 1000).toFixed(3);
      watchOn = true;
    }
  }
  if (cfg.subscribe) {
    const subConns = connected.filter((c, i) => c && specs[i].role === 'subscriber');
    const reasons = {};
    let ok = 0; let next = 0;
    async function worker() {
      while (next < subConns.length) {
        const r = await startSubscribe(subConns[next++]);
        if (r) bump(reasons, r.slice(0, 120)); else ok++;
      }
    }
    await Promise.all(Array.from({ length: 256 }, worker));
    subInfo = { requested: subConns.length, subscribed: ok, failed: reasons };
  }

  if (cfg.mode === 'open') {
    await joinAll(players);
    if (cfg.settle_s) await sleep(cfg.settle_s * 1000);
    watchFrames = 0; watchBytes = 0;
    startWindow();
    await openLoop(players);
    endWindow();
  } else {
    if (cfg.settle_s) await sleep(cfg.settle_s * 1000);
    watchFrames = 0; watchBytes = 0; subEvents = 0; subFrames = 0; subBytes = 0;
    startWindow();
    await closedLoop(players);
    endWindow();
  }
  if (cfg.linger_s) await sleep(cfg.linger_s * 1000); // late pushes and board frames
  for (const p of players) stalenessDropped += p.stale.length;
  finish(null);
}

function finish(fatal) {
  clearTimeout(timeout);
  endWindow();
  const seconds = window1 > window0 ? (window1 - window0) / 1000 : 0;
  const summary = {
    phase: 'summary', mode: cfg.mode, fatal, timed_out: timedOut,
    connections: { requested: connected.length, open: connected.filter(Boolean).length, failed: stats.connectFailed,
      errors: stats.connectErrors, extensions: stats.extensions, unexpected_closes: stats.closes },
    window_s: +seconds.toFixed(3),
    commands: done, commands_per_s: seconds ? +(done / seconds).toFixed(1) : null,
    latency_ms: latency.summary(), outcomes,
    reply_bytes_mean: stats.replies ? Math.round(stats.replyBytes / stats.replies) : null,
    client_cpu_s: cpu1 ? +((cpu1.user + cpu1.system) / 1e6).toFixed(3) : null,
    run_s: +((now() - started) / 1000).toFixed(3),
    ...extra,
  };
  if (watchInfo) {
    summary.watch = { ...watchInfo, frames: watchFrames,
      frames_per_s: seconds ? +(inWindow.watchFrames / seconds).toFixed(1) : null,
      bytes: watchBytes, staleness_ms: staleness.summary(), staleness_unresolved: stalenessDropped };
  }
  if (subInfo) {
    summary.subscribe = { ...subInfo, events: subEvents, frames: subFrames, bytes: subBytes, sequence_breaks: subBreaks,
      events_per_s: seconds ? +(inWindow.subEvents / seconds).toFixed(1) : null, push_lag_ms: pushLag.summary() };
  }
  emit(summary);
  process.exit(0);
}

main().catch((err) => finish(String(err && err.stack ? err.message : err)));
