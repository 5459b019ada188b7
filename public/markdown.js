// A small, safe Markdown subset for model output.
//
// Safety rule: every character of the input is HTML-escaped FIRST; the only
// markup in the result is the fixed set of tags this file writes itself. Link
// targets must start with http:// or https://, so no `javascript:` and no
// attribute can be opened by model output (quotes are escaped too).
//
// Supported: fenced code blocks, inline code, headings, bold, italic,
// strikethrough, links, (nested) lists, block quotes, horizontal rules,
// paragraphs with line breaks. Tables and raw HTML are shown as text.

const ESC = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

/** Escapes text for use in HTML content and in double-quoted attributes. */
export function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, (c) => ESC[c]);
}

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([\w+#.-]*)/;
const HEADING = /^ {0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$/;
const RULE = /^ {0,3}([-*_])(\s*\1){2,}\s*$/;
const ITEM = /^(\s*)([-*+]|\d{1,9}[.)])\s+(.*)$/;
const QUOTE = /^ {0,3}&gt;\s?(.*)$/;

/** Renders Markdown to an HTML string that contains no markup from the input. */
export function renderMarkdown(src) {
  // NUL is used below as a placeholder delimiter; it never belongs in text anyway.
  const lines = escapeHtml(String(src ?? "").replace(/\0/g, "")).split(/\r\n|\r|\n/);
  return blocks(lines).join("");
}

function blocks(lines) {
  const out = [];
  let para = [];
  const flush = () => {
    if (para.length) out.push(`<p>${para.map(inline).join("<br>")}</p>`);
    para = [];
  };
  for (let i = 0; i < lines.length; ) {
    const line = lines[i];
    let m;
    if ((m = line.match(FENCE))) {
      flush();
      const fence = m[1];
      const body = [];
      i++;
      // An unterminated fence (e.g. mid-stream) runs to the end of the text.
      while (i < lines.length && !lines[i].trim().startsWith(fence)) body.push(lines[i++]);
      i++;
      const lang = m[2] ? ` class="language-${m[2].replace(/[^\w-]/g, "")}"` : "";
      out.push(`<pre><code${lang}>${body.join("\n")}</code></pre>`);
    } else if (!line.trim()) {
      flush();
      i++;
    } else if ((m = line.match(HEADING))) {
      flush();
      const level = Math.min(m[1].length + 2, 6); // h3..h6: answers sit inside the page
      out.push(`<h${level}>${inline(m[2])}</h${level}>`);
      i++;
    } else if (RULE.test(line)) {
      flush();
      out.push("<hr>");
      i++;
    } else if (QUOTE.test(line)) {
      flush();
      const body = [];
      while (i < lines.length && (m = lines[i].match(QUOTE))) {
        body.push(m[1]);
        i++;
      }
      out.push(`<blockquote>${blocks(body).join("")}</blockquote>`);
    } else if (ITEM.test(line)) {
      flush();
      const items = [];
      while (i < lines.length) {
        const l = lines[i];
        if ((m = l.match(ITEM))) {
          items.push({ indent: m[1].replace(/\t/g, "    ").length, ordered: /\d/.test(m[2]), start: parseInt(m[2], 10), lines: [m[3]] });
        } else if (l.trim() && /^\s/.test(l)) {
          items[items.length - 1].lines.push(l.trim()); // an indented continuation line
        } else {
          break;
        }
        i++;
      }
      out.push(list(items, 0).html);
    } else {
      para.push(line);
      i++;
    }
  }
  flush();
  return out;
}

// Items with a deeper indent than their predecessor nest under it.
function list(items, from) {
  const first = items[from];
  const tag = first.ordered ? "ol" : "ul";
  const start = first.ordered && first.start !== 1 && first.start >= 0 ? ` start="${first.start}"` : "";
  let html = `<${tag}${start}>`;
  let i = from;
  while (i < items.length && items[i].indent >= first.indent) {
    if (items[i].indent > first.indent) {
      const sub = list(items, i);
      html = html.replace(/<\/li>$/, sub.html + "</li>");
      i = sub.next;
      continue;
    }
    html += `<li>${items[i].lines.map(inline).join("<br>")}</li>`;
    i++;
  }
  return { html: html + `</${tag}>`, next: i };
}

/** Inline spans on already-escaped text: code, links, bold, italic, strikethrough. */
function inline(text) {
  const slots = [];
  const hold = (html) => `\0${slots.push(html) - 1}\0`;
  let s = text
    // Code spans first: nothing inside them is formatted.
    .replace(/(`+)([^`]|[^`][\s\S]*?[^`])\1(?!`)/g, (_, __, code) => hold(`<code>${code.trim() || code}</code>`))
    // Links: only absolute http(s) targets; anything else stays text.
    .replace(/\[([^\]]+)\]\((https?:\/\/[^\s()\0]+)\)/g, (_, label, url) =>
      hold(`<a href="${url}" target="_blank" rel="noopener noreferrer nofollow">${emphasis(label)}</a>`),
    );
  const restore = (t) => t.replace(/\0(\d+)\0/g, (_, n) => restore(slots[n]));
  return restore(emphasis(s));
}

function emphasis(s) {
  return s
    .replace(/\*\*(?=\S)([\s\S]*?\S)\*\*/g, "<strong>$1</strong>")
    .replace(/(^|[^\w])__(?=\S)([\s\S]*?\S)__(?!\w)/g, "$1<strong>$2</strong>")
    .replace(/(^|[^*\w])\*(?=[^\s*])([\s\S]*?[^\s*])\*(?!\*)/g, "$1<em>$2</em>")
    .replace(/(^|[^\w])_(?=[^\s_])([\s\S]*?[^\s_])_(?!\w)/g, "$1<em>$2</em>")
    .replace(/~~(?=\S)([\s\S]*?\S)~~/g, "<del>$1</del>");
}
