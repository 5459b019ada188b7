// The N-1 chat page: talks to this worker's own /v1 API (same origin).
// Model output only ever reaches the DOM through renderMarkdown (escape first)
// or textContent.
import { renderMarkdown } from "./markdown.js";
import { SseParser } from "./sse.js";

const $ = (id) => document.getElementById(id);
const ui = {
  ensemble: $("ensemble"),
  info: $("ensemble-info"),
  budget: $("budget"),
  modelsError: $("models-error"),
  key: $("key"),
  newChat: $("new-chat"),
  log: $("log"),
  empty: $("empty"),
  form: $("composer"),
  input: $("input"),
  send: $("send"),
  stop: $("stop"),
};

const store = {
  get(k) {
    try {
      return localStorage.getItem(k) ?? "";
    } catch {
      return "";
    }
  },
  set(k, v) {
    try {
      if (v) localStorage.setItem(k, v);
      else localStorage.removeItem(k);
    } catch {
      /* storage disabled: the value lives for this page only */
    }
  },
};

/** The conversation so far: completed user/assistant turns only. */
let history = [];
let running = null; // AbortController of the request in flight
/** Ensemble name → its `n1` description from /v1/models. */
const ensembles = new Map();

function headers(json) {
  const h = {};
  if (json) h["content-type"] = "application/json";
  const key = ui.key.value.trim();
  if (key) h.authorization = `Bearer ${key}`;
  return h;
}

// ---------- small DOM helpers ----------

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text != null) e.textContent = text;
  return e;
}

function nearBottom() {
  const s = document.scrollingElement;
  return s.scrollHeight - s.scrollTop - s.clientHeight < 120;
}

function follow(wasNearBottom) {
  if (wasNearBottom) window.scrollTo(0, document.scrollingElement.scrollHeight);
}

const fmtMs = (ms) => (ms >= 10000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms)} ms`);

/** USD, with two significant digits below a cent: `$0.0000045`, `$0.0123`, `$1.5000`. */
function fmtUsd(x) {
  if (x == null) return "unknown";
  if (x === 0) return "$0";
  const digits = x >= 0.01 ? 4 : Math.min(12, 1 - Math.floor(Math.log10(x)));
  return `$${x.toFixed(digits).replace(/(\.\d*?)0+$/, "$1").replace(/\.$/, "")}`;
}

function fmtUsage(u) {
  if (!u) return "";
  const p = u.prompt_tokens ?? 0;
  const c = u.completion_tokens ?? 0;
  return `${p} prompt + ${c} completion = ${u.total_tokens ?? p + c} tokens`;
}

// ---------- errors ----------

class ApiError extends Error {
  constructor({ status = null, message, type = null, code = null, failures = null, retryAfter = null }) {
    super(message);
    Object.assign(this, { status, type, code, failures, retryAfter });
  }
}

async function httpError(res) {
  const text = await res.text().catch(() => "");
  let err = null;
  try {
    err = JSON.parse(text).error;
  } catch {
    /* not JSON */
  }
  return new ApiError({
    status: res.status,
    message: err?.message || text.slice(0, 300) || res.statusText || "Request failed",
    type: err?.type ?? null,
    code: err?.code ?? null,
    failures: Array.isArray(err?.failures) ? err.failures : null,
    retryAfter: res.headers.get("retry-after"),
  });
}

function hint(e) {
  if (e.status === 401 || e.code === "invalid_api_key") return "Check the access key at the top of the page.";
  if (e.status === 403) return "This key may not use this ensemble.";
  if (e.code === "insufficient_quota") return "This key's budget is used up until the time above.";
  if (e.status === 429) return e.retryAfter ? `Rate limited: try again in ${e.retryAfter} s.` : "Rate limited: wait a moment, then try again.";
  if (e.status === 404 && e.code === "model_not_found") return "Pick another ensemble.";
  return "";
}

/** Fills `box` with a plain-text description of an error (never HTML). */
function showError(box, e, extra = "") {
  box.replaceChildren();
  const head = [e.status ? `HTTP ${e.status}` : e.type === "stream" ? "Stream error" : "Error", e.code].filter(Boolean);
  box.append(el("strong", null, head.join(" · ")), " ", el("span", "message", e.message));
  if (e.failures?.length) {
    const ul = el("ul", "failures");
    for (const f of e.failures) {
      const what = f.status ? `HTTP ${f.status}` : f.kind || "failed";
      ul.append(el("li", null, `${f.model ?? "?"}: ${what}${f.reason ? ` · ${f.reason}` : ""}`));
    }
    box.append(ul);
  }
  const tip = [hint(e), extra].filter(Boolean).join(" ");
  if (tip) box.append(el("div", "hint", tip));
  box.hidden = false;
}

// ---------- ensembles ----------

async function loadModels() {
  ui.modelsError.hidden = true;
  const wanted = ui.ensemble.value || store.get("n1.ensemble");
  let list = [];
  try {
    const res = await fetch("/v1/models", { headers: headers(false) });
    if (!res.ok) throw await httpError(res);
    list = (await res.json()).data ?? [];
  } catch (e) {
    showError(ui.modelsError, e instanceof ApiError ? e : new ApiError({ message: `Could not load the ensembles: ${e.message}` }));
  }
  ui.ensemble.replaceChildren();
  ensembles.clear();
  if (!list.length) ui.ensemble.append(new Option("(default ensemble)", ""));
  for (const m of list) {
    ensembles.set(m.id, m.n1);
    ui.ensemble.append(new Option(m.id, m.id));
  }
  // The user's last choice, else the worker's default ensemble.
  const pick = list.find((m) => m.id === wanted) ?? list.find((m) => m.n1?.default);
  if (pick) ui.ensemble.value = pick.id;
  describeEnsemble();
}

function describeEnsemble() {
  const d = ensembles.get(ui.ensemble.value);
  if (!d) {
    ui.info.textContent = "";
    return;
  }
  const panel = d.panel?.length ? `panel: ${d.panel.join(", ")}` : "no panel";
  ui.info.textContent = [d.description, `${panel} → summary: ${d.summary}`].filter(Boolean).join(" · ");
}

// ---------- one exchange in the log ----------

class Turn {
  constructor(text) {
    ui.empty.hidden = true;
    this.root = el("section", "turn");
    const user = el("div", "msg user");
    user.append(el("div", "bubble", text));

    const a = el("div", "msg assistant");
    this.panel = el("details", "panel");
    this.panel.open = true;
    this.panel.hidden = true;
    const sum = el("summary");
    sum.append(el("span", "label", "Panel"), " ", (this.panelStatus = el("span", "status", "")));
    this.cards = el("div", "cards");
    this.panel.append(sum, this.cards);

    this.synth = el("div", "synthesis");
    const head = el("div", "head");
    head.append(el("span", "label", "Synthesis"), " ", (this.synthModel = el("span", "model", "")), " ", (this.synthStatus = el("span", "status", "waiting for the panel…")));
    this.answer = el("div", "answer md");
    this.synth.append(head, this.answer);

    this.error = el("div", "error");
    this.error.setAttribute("role", "alert");
    this.error.hidden = true;
    this.meta = el("div", "meta");

    a.append(this.panel, this.synth, this.error, this.meta);
    this.root.append(user, a);
    this.text = "";
    this.members = new Map();
    this.pending = false;
    ui.log.append(this.root);
    follow(true);
  }

  // Panel progress (n1_progress events).
  progress(p) {
    const stick = nearBottom();
    if (p.type === "panel_start") {
      this.panelStart(p.panel ?? [], p.summary);
    } else if (p.type === "panel_delta") {
      this.memberDelta(p);
    } else if (p.type === "panel_member") {
      this.member(p);
    } else if (p.type === "panel_done") {
      const end = p.end && p.end !== "all" ? ` (ended by ${p.end})` : "";
      this.panelStatus.textContent = `${p.panel_ok}/${p.panel_total} answered${end}`;
      this.synthStatus.textContent = p.panel_ok ? "starting…" : "";
    } else if (p.type === "summary_start") {
      this.synthModel.textContent = p.model ?? "";
      this.synthStatus.textContent = "writing…";
    }
    follow(stick);
  }

  panelStart(panel, summary) {
    this.panel.hidden = panel.length === 0;
    this.panelStatus.textContent = `${panel.length} model${panel.length === 1 ? "" : "s"} working…`;
    if (summary) this.synthModel.textContent = summary;
    for (const { index, model } of panel) this.card(index, model);
  }

  card(index, model) {
    let c = this.members.get(index);
    if (!c) {
      c = { root: el("article", "card") };
      c.root.dataset.status = "pending";
      const head = el("header");
      head.append((c.model = el("span", "model", model)), (c.badge = el("span", "badge", "working…")));
      c.meta = el("div", "card-meta");
      c.body = el("div", "answer md");
      c.root.append(head, c.meta, c.body);
      this.cards.append(c.root);
      this.members.set(index, c);
    }
    return c;
  }

  // A member's text as it streams in (panel_delta), before it is done.
  memberDelta(p) {
    this.panel.hidden = false;
    const c = this.card(p.index, p.model);
    c.text = (c.text ?? "") + (p.content ?? "");
    c.badge.textContent = "answering…";
    c.body.innerHTML = renderMarkdown(c.text);
  }

  member(p) {
    this.panel.hidden = false;
    const c = this.card(p.index ?? this.members.size, p.model);
    c.root.dataset.status = p.status;
    c.badge.textContent = p.status;
    const bits = [];
    if (p.latency_ms != null) bits.push(fmtMs(p.latency_ms));
    if (p.ttft_ms != null) bits.push(`first token ${fmtMs(p.ttft_ms)}`);
    if (p.attempts > 1) bits.push(`${p.attempts} attempts`);
    if (p.usage?.total_tokens != null) bits.push(`${p.usage.total_tokens} tokens`);
    if (p.cost_usd !== undefined) bits.push(p.cost_usd === null ? "cost unknown" : fmtUsd(p.cost_usd) + (p.cost_estimated ? " (estimated)" : ""));
    c.meta.textContent = bits.join(" · ");
    const waiting = [...this.members.values()].filter((m) => m.root.dataset.status === "pending").length;
    if (waiting) this.panelStatus.textContent = `${this.members.size - waiting}/${this.members.size} in, ${waiting} working…`;
    if (p.content != null) {
      c.body.innerHTML = renderMarkdown(p.content);
    } else if (p.error) {
      const e = p.error;
      c.body.replaceChildren(el("p", "reason", [e.status ? `HTTP ${e.status}` : e.kind, e.reason].filter(Boolean).join(": ")));
    } else if (p.status === "cancelled") {
      c.body.replaceChildren(el("p", "reason", p.error?.reason ?? "not needed: the quorum was reached"));
    }
  }

  // Synthesis tokens: rendered at most once per frame.
  append(delta) {
    this.text += delta;
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => this.render());
  }

  render() {
    this.pending = false;
    const stick = nearBottom();
    this.answer.innerHTML = renderMarkdown(this.text);
    follow(stick);
  }

  finish(n1, finishReason) {
    this.render();
    if (n1?.panel) {
      // Every card gets its final report (the costs come only with n1).
      n1.panel.forEach((r, i) => this.member({ ...r, index: i }));
      this.panelStatus.textContent = `${n1.panel_ok}/${n1.panel_total} answered`;
    }
    const s = n1?.summary;
    if (s?.model) this.synthModel.textContent = s.model;
    const bits = [];
    if (s?.latency_ms != null) bits.push(fmtMs(s.latency_ms));
    if (s?.status && s.status !== "ok") bits.push(s.status.replace(/_/g, " "));
    if (finishReason === "length") bits.push("cut off at the token limit");
    else if (finishReason && finishReason !== "stop") bits.push(`finish: ${finishReason}`);
    this.synthStatus.textContent = ["done", ...bits].join(" · ");
    if (n1?.degraded) {
      this.synth.classList.add("degraded");
      this.meta.append(el("span", "badge warn", `degraded: ${n1.panel_ok}/${n1.panel_total} panel answers`));
    }
    if (n1 && "cost_usd" in n1) {
      const cost = n1.cost_usd === null ? "unknown (a model has no price)" : fmtUsd(n1.cost_usd) + (n1.cost_estimated ? " (partly estimated)" : "");
      this.meta.append(el("span", "cost", `Cost: ${cost}`));
    }
  }

  usage(u) {
    this.meta.append(el("span", "usage", `Usage (panel + summary): ${fmtUsage(u)}`));
  }

  fail(e) {
    this.render();
    this.root.classList.add("failed");
    this.synthStatus.textContent = "failed";
    if (!this.text) this.synth.hidden = true;
    for (const c of this.members.values()) {
      if (c.root.dataset.status === "pending") {
        c.root.dataset.status = "unknown";
        c.badge.textContent = "—";
      }
    }
    showError(this.error, e, "This turn is not kept in the conversation.");
  }

  stopped() {
    this.render();
    this.root.classList.add("failed");
    this.synthStatus.textContent = "stopped";
    this.error.replaceChildren(el("span", "message", "Stopped. This turn is not kept in the conversation."));
    this.error.hidden = false;
  }
}

// ---------- sending ----------

async function send(text) {
  const turn = new Turn(text);
  const messages = [...history, { role: "user", content: text }];
  const body = { messages, stream: true, stream_options: { include_usage: true }, n1: { progress: true } };
  if (ui.ensemble.value) body.model = ui.ensemble.value;

  const ctrl = new AbortController();
  running = ctrl;
  setBusy(true);
  turn.root.setAttribute("aria-busy", "true"); // screen readers: announce the turn once it is complete
  try {
    const res = await fetch("/v1/chat/completions", {
      method: "POST",
      headers: headers(true),
      body: JSON.stringify(body),
      signal: ctrl.signal,
    });
    if (!res.ok) throw await httpError(res);
    if (!(res.headers.get("content-type") ?? "").includes("text/event-stream")) {
      throw new ApiError({ status: res.status, message: `Expected an event stream, got ${res.headers.get("content-type") || "no content type"}.` });
    }
    const answer = await readStream(res, turn);
    history = [...messages, { role: "assistant", content: answer }];
  } catch (e) {
    if (ctrl.signal.aborted) turn.stopped();
    else {
      turn.fail(e instanceof ApiError ? e : new ApiError({ message: `Could not reach N-1: ${e.message}` }));
      if (!ui.input.value) ui.input.value = text; // easy to retry
    }
  } finally {
    turn.root.removeAttribute("aria-busy");
    running = null;
    setBusy(false);
    showBudget();
  }
}

/** What the key spent and may still spend (GET /v1/n1/usage); hidden without a key or usage. */
async function showBudget() {
  if (!ui.key.value.trim()) return (ui.budget.hidden = true);
  try {
    const res = await fetch("/v1/n1/usage", { headers: headers(false) });
    if (!res.ok) return (ui.budget.hidden = true);
    const { day, month } = await res.json();
    const resets = (iso) => new Date(iso).toLocaleString([], { dateStyle: "short", timeStyle: "short" });
    const parts = [];
    const usd = (w, what) => {
      if (w.limit_usd == null) return `${what}: ${fmtUsd(w.usd)} spent`;
      return `${what}: ${fmtUsd(Math.max(0, w.limit_usd - w.usd))} left of ${fmtUsd(w.limit_usd)} (resets ${resets(w.resets_at)})`;
    };
    parts.push(usd(day, "Today"));
    if (day.limit_tokens != null) parts.push(`${Math.max(0, day.limit_tokens - day.input_tokens - day.output_tokens)} of ${day.limit_tokens} tokens left today`);
    if (month.limit_usd != null) parts.push(usd(month, "This month"));
    ui.budget.textContent = `Budget · ${parts.join(" · ")}`;
    ui.budget.hidden = false;
  } catch {
    ui.budget.hidden = true;
  }
}

/** Reads the SSE body into the turn; resolves with the answer, throws ApiError on a stream error. */
async function readStream(res, turn) {
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  const sse = new SseParser();
  let finished = false;
  let done = false;
  const handle = (data) => {
    if (data === "[DONE]") {
      done = true;
      return;
    }
    let chunk;
    try {
      chunk = JSON.parse(data);
    } catch {
      throw new ApiError({ type: "stream", message: "The server sent an unreadable event." });
    }
    if (chunk.error) {
      const e = chunk.error;
      throw new ApiError({ type: "stream", message: e.message ?? "The stream failed.", code: e.code, failures: e.failures });
    }
    if (chunk.n1_progress) return turn.progress(chunk.n1_progress);
    const choice = chunk.choices?.[0];
    if (choice?.delta?.content) turn.append(choice.delta.content);
    if (choice?.finish_reason) {
      finished = true;
      turn.finish(chunk.n1, choice.finish_reason);
    }
    if (chunk.usage) turn.usage(chunk.usage);
  };
  try {
    for (;;) {
      const { value, done: eof } = await reader.read();
      const events = eof ? sse.push(decoder.decode()).concat(sse.end()) : sse.push(decoder.decode(value, { stream: true }));
      for (const data of events) handle(data);
      if (eof || done) break;
    }
  } finally {
    reader.cancel().catch(() => {});
  }
  if (!finished || !done) {
    throw new ApiError({ type: "stream", message: "The stream ended before the answer was complete." });
  }
  return turn.text;
}

function setBusy(busy) {
  ui.send.hidden = busy;
  ui.stop.hidden = !busy;
  document.body.classList.toggle("busy", busy);
}

// ---------- wiring ----------

ui.form.addEventListener("submit", (ev) => {
  ev.preventDefault();
  const text = ui.input.value.trim();
  if (!text || running) return;
  ui.input.value = "";
  send(text);
});

ui.input.addEventListener("keydown", (ev) => {
  if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
    ev.preventDefault();
    ui.form.requestSubmit();
  }
});

ui.stop.addEventListener("click", () => running?.abort());

ui.newChat.addEventListener("click", () => {
  running?.abort();
  history = [];
  for (const t of ui.log.querySelectorAll(".turn")) t.remove();
  ui.empty.hidden = false;
  ui.input.focus();
});

ui.ensemble.addEventListener("change", () => {
  store.set("n1.ensemble", ui.ensemble.value);
  describeEnsemble();
});

ui.key.value = store.get("n1.key");
ui.key.addEventListener("change", () => {
  store.set("n1.key", ui.key.value.trim());
  loadModels();
  showBudget();
});

loadModels();
showBudget();
