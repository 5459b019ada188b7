// The runtime floor for the benchmarks: a minimal JavaScript Worker doing the same
// work as N-1 with nothing else: the client's body goes to every panel model (at
// most 6 calls open at once, like N-1, and streamed, like N-1 since issue 15: each
// answer is assembled from its SSE stream), the answers go to the summary model in a
// system message, and the summary's reply is returned. No validation, no retries,
// no timeouts, no metadata, no usage sums. Streaming: the role chunk goes out at
// once (as N-1 does), then the summary's SSE bytes are copied chunk by chunk
// without parsing. Configured by the REF_CONFIG binding:
//   {"<ensemble>": {"panel": [{"url", "model"}...], "summary": {"url", "model"}}}
const JSON_HEADERS = { "content-type": "application/json" };
const enc = new TextEncoder();
let config;

async function panel(ens, body) {
  const answers = new Array(ens.panel.length);
  let next = 0;
  const worker = async () => {
    while (next < ens.panel.length) {
      const i = next++;
      const m = ens.panel[i];
      const r = await fetch(m.url, {
        method: "POST",
        headers: JSON_HEADERS,
        body: JSON.stringify({ ...body, model: m.model, stream: true, stream_options: { include_usage: true } }),
      });
      answers[i] = await streamedAnswer(r.body);
    }
  };
  await Promise.all(Array.from({ length: Math.min(6, ens.panel.length) }, worker));
  return answers;
}

// A panel answer assembled from its stream, as N-1 has called panel models since
// issue 15 (answers visible while they arrive): SSE lines split as they come,
// each `data:` JSON parsed, the content deltas joined.
async function streamedAnswer(stream) {
  const reader = stream.getReader();
  const dec = new TextDecoder();
  let buf = "";
  let answer = "";
  const line = (l) => {
    if (!l.startsWith("data:")) return;
    const data = l.slice(5).trim();
    if (data === "[DONE]") return;
    const c = JSON.parse(data).choices?.[0]?.delta?.content;
    if (c) answer += c;
  };
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true });
    let nl;
    while ((nl = buf.indexOf("\n")) >= 0) {
      line(buf.slice(0, nl).replace(/\r$/, ""));
      buf = buf.slice(nl + 1);
    }
  }
  line(buf);
  return answer;
}

function summaryRequest(ens, body, answers, stream) {
  const system = "Synthesize the best answer from these answers:\n\n" + answers.map((a, i) => `Answer ${i + 1}:\n${a}`).join("\n\n");
  return fetch(ens.summary.url, {
    method: "POST",
    headers: JSON_HEADERS,
    body: JSON.stringify({
      ...body,
      model: ens.summary.model,
      messages: [{ role: "system", content: system }, ...body.messages],
      stream,
      ...(stream ? { stream_options: { include_usage: true } } : {}),
    }),
  });
}

export default {
  async fetch(request, env, ctx) {
    config ??= JSON.parse(env.REF_CONFIG);
    const body = await request.json();
    const ens = config[body.model];
    const id = "chatcmpl-" + crypto.randomUUID();
    if (!body.stream) {
      const answers = await panel(ens, body);
      const j = await (await summaryRequest(ens, body, answers, false)).json();
      j.id = id;
      j.model = body.model;
      return Response.json(j);
    }
    const { readable, writable } = new TransformStream();
    const writer = writable.getWriter();
    const role = { id, object: "chat.completion.chunk", created: Math.floor(Date.now() / 1000), model: body.model, choices: [{ index: 0, delta: { role: "assistant", content: "" }, finish_reason: null }] };
    ctx.waitUntil(
      (async () => {
        await writer.write(enc.encode(`data: ${JSON.stringify(role)}\n\n`));
        const answers = await panel(ens, body);
        const reader = (await summaryRequest(ens, body, answers, true)).body.getReader();
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          await writer.write(value);
        }
        await writer.close();
      })(),
    );
    return new Response(readable, { headers: { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache" } });
  },
};
