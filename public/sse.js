// Incremental Server-Sent Events parser for fetch() bodies: feed it decoded text
// as it arrives; it returns the `data` of each complete event. Lines may end in
// \n, \r\n or \r, and an event, a line or a \r\n pair may be split across reads.
// Comments (": keep-alive") and other fields are ignored.
export class SseParser {
  constructor() {
    this.buf = "";
    this.data = [];
  }

  /** @returns {string[]} the data of every event completed by `text` */
  push(text) {
    this.buf += text;
    const events = [];
    let start = 0;
    for (;;) {
      const m = /\r\n|\r|\n/g;
      m.lastIndex = start;
      const hit = m.exec(this.buf);
      if (!hit) break;
      // A lone \r at the very end may be the first half of a \r\n still in transit.
      if (hit[0] === "\r" && hit.index === this.buf.length - 1) break;
      this.line(this.buf.slice(start, hit.index), events);
      start = hit.index + hit[0].length;
    }
    this.buf = this.buf.slice(start);
    return events;
  }

  /** Call at the end of the body: a last event without its blank line still counts. */
  end() {
    const events = [];
    if (this.buf) this.line(this.buf.replace(/\r$/, ""), events);
    this.buf = "";
    this.line("", events);
    return events;
  }

  line(line, events) {
    if (line === "") {
      if (this.data.length) events.push(this.data.join("\n"));
      this.data = [];
    } else if (line.startsWith("data:")) {
      this.data.push(line.slice(line.startsWith("data: ") ? 6 : 5));
    }
  }
}
