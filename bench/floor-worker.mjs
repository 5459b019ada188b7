// The JavaScript twin of bench/rust-floor: read the body, answer "{}".
export default {
  async fetch(request) {
    await request.arrayBuffer();
    return new Response("{}", { headers: { "content-type": "text/plain;charset=UTF-8" } });
  },
};
