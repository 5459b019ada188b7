// A stand-in for N-1's original JavaScript Worker (cloudfare_worker/worker.js of
// leezhuuuuu/N-1), for tests/bench.test.mjs on a machine without that clone (the
// test machines reach no GitHub). It has what section 6 of `npm run bench` relies
// on, in the same shapes: a service-worker script whose CONFIG object the bench
// replaces (it takes the first declaration it finds, so no comment spells one out),
// with combinations of textModels and a textSummaryModel, each with a bearer
// token; `/v1/chat/completions` with that token; the panel called without
// streaming, one `json()` each; the summary relayed as it comes. Its timings say
// nothing about the real port's: the bench's figures are only real with the clone.
const CONFIG = {
  defaultCombination: "standin",
  combinations: [
    {
      name: "standin",
      apiBearerToken: "replaced-by-the-bench",
      textModels: [],
      textSummaryModel: { endpoint: "http://127.0.0.1:9/v1/chat/completions", bearerToken: "x", modelName: "x", summaryPrompt: "" },
    },
  ],
};

const json = (body, status = 200) => new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });

function call(model, messages, stream) {
  return fetch(model.endpoint, {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${model.bearerToken}` },
    body: JSON.stringify({ model: model.modelName, messages, temperature: model.temperature, stream }),
  });
}

async function handleRequest(request) {
  if (new URL(request.url).pathname !== "/v1/chat/completions") return json({ error: "not found" }, 404);
  const data = await request.json();
  const combo = CONFIG.combinations.find((c) => c.name === data.model) ?? CONFIG.combinations.find((c) => c.name === CONFIG.defaultCombination);
  if (request.headers.get("Authorization") !== `Bearer ${combo.apiBearerToken}`) return json({ error: "bad token" }, 401);
  const answers = await Promise.all(
    combo.textModels.map(async (m) => (await (await call(m, data.messages, false)).json()).choices?.[0]?.message?.content ?? ""),
  );
  const summary = combo.textSummaryModel;
  const system = `${summary.summaryPrompt}\n\n${answers.map((a, i) => `Answer ${i + 1}:\n${a}`).join("\n\n")}`;
  const r = await call(summary, [{ role: "system", content: system }, ...data.messages], Boolean(data.stream));
  return new Response(r.body, { status: r.status, headers: { "Content-Type": data.stream ? "text/event-stream" : "application/json" } });
}

addEventListener("fetch", (event) => {
  event.respondWith(handleRequest(event.request));
});
