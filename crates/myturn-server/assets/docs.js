// myTurn API page. Fetches this server's OpenAPI document (/openapi.json)
// and renders its operations, parameters, request bodies, statuses and
// schemas. Every string from the document is put into the page as text
// (textContent), never as HTML: a description holding "<b>" shows those
// characters. Backquoted parts of a description become <code> elements,
// their text set the same way.
"use strict";

const $ = (sel) => document.querySelector(sel);
const METHODS = ["get", "put", "post", "delete", "patch", "head", "options", "trace"];
const SCHEMA_PREFIX = "#/components/schemas/";
// Nested inline objects are drawn this deep; deeper ones are named only.
const MAX_DEPTH = 4;

function el(tag, text, attrs) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}

function add(parent, ...children) {
  for (const c of children) {
    if (c !== null && c !== undefined) parent.append(c);
  }
  return parent;
}

// A description as text, `backquoted` parts as <code>.
function prose(text, tag) {
  const p = el(tag || "p", null, { class: "text" });
  String(text || "").split("`").forEach((part, i) => {
    if (part === "") return;
    p.append(i % 2 === 1 ? el("code", part) : document.createTextNode(part));
  });
  return p;
}

// The name of a schema a `$ref` points to (JSON pointer unescaped).
function refName(ref) {
  const s = String(ref);
  const name = s.startsWith(SCHEMA_PREFIX) ? s.slice(SCHEMA_PREFIX.length) : s;
  return name.replace(/~1/g, "/").replace(/~0/g, "~");
}

// An element id for a string from the document: only safe characters.
function anchor(kind, name) {
  return kind + "-" + String(name).replace(/[^A-Za-z0-9_-]/g, "_");
}

function link(name) {
  return el("a", name, { href: "#" + anchor("schema", name), class: "ref" });
}

// What a schema is, as a line of text and links.
function typeLine(schema) {
  const span = el("span", null, { class: "type" });
  if (schema === true || schema === undefined || schema === null) {
    span.textContent = "any";
    return span;
  }
  if (schema === false) {
    span.textContent = "nothing";
    return span;
  }
  if (schema.$ref) {
    span.append(link(refName(schema.$ref)));
    return span;
  }
  const join = (list, sep) => {
    list.forEach((s, i) => {
      if (i > 0) span.append(sep);
      span.append(typeLine(s));
    });
  };
  if (Array.isArray(schema.oneOf)) join(schema.oneOf, " | ");
  else if (Array.isArray(schema.anyOf)) join(schema.anyOf, " | ");
  else if (Array.isArray(schema.allOf)) join(schema.allOf, " & ");
  else {
    const types = Array.isArray(schema.type) ? schema.type : schema.type ? [schema.type] : [];
    if (types.length === 0) span.append(schema.properties ? "object" : "any");
    types.forEach((t, i) => {
      if (i > 0) span.append(" | ");
      if (t === "array") {
        span.append("array of ");
        span.append(typeLine(schema.items));
      } else if (t === "object" && schema.additionalProperties && !schema.properties) {
        span.append("map of ");
        span.append(typeLine(schema.additionalProperties));
      } else {
        span.append(String(t));
      }
    });
  }
  if (schema.format) span.append(" (" + schema.format + ")");
  if (Array.isArray(schema.enum)) {
    span.append(": one of ");
    schema.enum.forEach((v, i) => {
      if (i > 0) span.append(", ");
      span.append(el("code", JSON.stringify(v)));
    });
  }
  if (schema.const !== undefined) {
    span.append(": ");
    span.append(el("code", JSON.stringify(schema.const)));
  }
  const bounds = [];
  if (schema.minimum !== undefined) bounds.push("≥ " + schema.minimum);
  if (schema.maximum !== undefined) bounds.push("≤ " + schema.maximum);
  if (schema.minLength !== undefined) bounds.push("length ≥ " + schema.minLength);
  if (schema.maxLength !== undefined) bounds.push("length ≤ " + schema.maxLength);
  if (bounds.length) span.append(" [" + bounds.join(", ") + "]");
  return span;
}

// The inline objects a schema holds, drawn as property tables: its own
// properties, and those of each inline variant of a oneOf / anyOf / allOf.
function shape(schema, depth) {
  const box = el("div", null, { class: "shape" });
  if (!schema || typeof schema !== "object" || schema.$ref || depth > MAX_DEPTH) return box;
  if (schema.properties && typeof schema.properties === "object") {
    box.append(properties(schema, depth));
  }
  for (const key of ["oneOf", "anyOf", "allOf"]) {
    if (!Array.isArray(schema[key])) continue;
    schema[key].forEach((variant, i) => {
      if (!variant || variant.$ref || !variant.properties) return;
      const d = el("div", null, { class: "variant" });
      add(d, el("p", (key === "allOf" ? "and " : "variant ") + (i + 1) + ":", { class: "label" }));
      if (variant.description) d.append(prose(variant.description));
      d.append(properties(variant, depth));
      box.append(d);
    });
  }
  if (schema.items && !schema.items.$ref) box.append(shape(schema.items, depth + 1));
  return box;
}

function properties(schema, depth) {
  const required = new Set(Array.isArray(schema.required) ? schema.required : []);
  const table = el("table", null, { class: "props" });
  const head = el("tr");
  for (const h of ["Field", "Type", "Required", "Description"]) head.append(el("th", h, { scope: "col" }));
  table.append(add(el("thead"), head));
  const body = el("tbody");
  for (const [name, prop] of Object.entries(schema.properties)) {
    const tr = el("tr");
    tr.append(add(el("td"), el("code", name)));
    const type = add(el("td"), typeLine(prop));
    if (prop && typeof prop === "object" && !prop.$ref) {
      const inner = shape(prop, depth + 1);
      if (inner.childElementCount) type.append(inner);
    }
    tr.append(type);
    tr.append(el("td", required.has(name) ? "yes" : "no"));
    tr.append(add(el("td"), prop && prop.description ? prose(prop.description, "span") : null));
    body.append(tr);
  }
  table.append(body);
  return add(el("div", null, { class: "scroll" }), table);
}

function contentList(content) {
  const ul = el("ul", null, { class: "content" });
  for (const [ctype, media] of Object.entries(content || {})) {
    const li = add(el("li"), el("code", ctype));
    if (media && media.schema) {
      li.append(": ");
      li.append(typeLine(media.schema));
      if (!media.schema.$ref) li.append(shape(media.schema, 1));
    }
    ul.append(li);
  }
  return ul;
}

function parameters(params) {
  const table = el("table", null, { class: "params" });
  const head = el("tr");
  for (const h of ["Name", "In", "Type", "Required", "Description"]) head.append(el("th", h, { scope: "col" }));
  table.append(add(el("thead"), head));
  const body = el("tbody");
  for (const p of params) {
    const tr = el("tr");
    tr.append(add(el("td"), el("code", p.name)));
    tr.append(el("td", p.in));
    tr.append(add(el("td"), typeLine(p.schema)));
    tr.append(el("td", p.required ? "yes" : "no"));
    tr.append(add(el("td"), p.description ? prose(p.description, "span") : null));
    body.append(tr);
  }
  table.append(body);
  return add(el("div", null, { class: "scroll" }), table);
}

function responses(resps) {
  const table = el("table", null, { class: "responses" });
  const head = el("tr");
  for (const h of ["Status", "Description", "Body", "Headers"]) head.append(el("th", h, { scope: "col" }));
  table.append(add(el("thead"), head));
  const body = el("tbody");
  for (const [status, r] of Object.entries(resps || {})) {
    const kind = /^[1-5]/.test(status) ? "s" + status[0] : "sx";
    const tr = el("tr", null, { "data-status": status });
    tr.append(add(el("td"), el("span", status, { class: "status " + kind })));
    tr.append(add(el("td"), r && r.description ? prose(r.description, "span") : null));
    tr.append(add(el("td"), r && r.content ? contentList(r.content) : el("span", "none", { class: "none" })));
    const hs = el("td");
    for (const [name, h] of Object.entries((r && r.headers) || {})) {
      const line = add(el("div"), el("code", name));
      if (h && h.description) {
        line.append(": ");
        line.append(prose(h.description, "span"));
      }
      hs.append(line);
    }
    tr.append(hs);
    body.append(tr);
  }
  table.append(body);
  return add(el("div", null, { class: "scroll" }), table);
}

function operation(method, path, op, pathParams) {
  const id = anchor("op", op.operationId || method + path);
  const sec = el("section", null, { class: "op", id });
  sec.dataset.search = [method, path, op.operationId, ...(op.tags || []), ...Object.keys(op.responses || {})]
    .join(" ")
    .toLowerCase();
  const h = el("h3");
  h.append(el("span", method.toUpperCase(), { class: "method m-" + method }));
  h.append(" ");
  h.append(el("code", path, { class: "path" }));
  sec.append(h);
  if (op.summary) sec.append(prose(op.summary));
  if (op.description && op.description !== op.summary) sec.append(prose(op.description));
  const facts = el("dl", null, { class: "facts" });
  if (op.operationId) add(facts, el("dt", "Operation"), add(el("dd"), el("code", op.operationId)));
  const security = Array.isArray(op.security) ? op.security : [];
  const schemes = security.flatMap((req) => Object.keys(req || {}));
  add(facts, el("dt", "Credentials"), el("dd", schemes.length ? schemes.join(" or ") + " token" : "none"));
  sec.append(facts);
  const params = [...(pathParams || []), ...(op.parameters || [])];
  if (params.length) {
    sec.append(el("h4", "Parameters"));
    sec.append(parameters(params));
  }
  if (op.requestBody) {
    sec.append(el("h4", "Request body" + (op.requestBody.required ? " (required)" : "")));
    if (op.requestBody.description) sec.append(prose(op.requestBody.description));
    sec.append(contentList(op.requestBody.content));
  }
  sec.append(el("h4", "Responses"));
  sec.append(responses(op.responses));
  return sec;
}

function render(doc) {
  const info = doc.info || {};
  $("#title").textContent = info.title || "API";
  document.title = (info.title || "API") + " — API";
  $("#version").textContent = "OpenAPI " + (doc.openapi || "?") + (info.version ? ", version " + info.version : "");
  $("#description").replaceWith(prose(info.description || ""));
  const schemes = (doc.components && doc.components.securitySchemes) || {};
  const dl = $("#security");
  for (const [name, s] of Object.entries(schemes)) {
    dl.append(add(el("dt"), el("code", name)));
    const what = [s.type, s.scheme, s.bearerFormat].filter(Boolean).join(" ");
    const dd = el("dd", what);
    if (s.description) {
      dd.append(": ");
      dd.append(prose(s.description, "span"));
    }
    dl.append(dd);
  }
  $("#intro").hidden = false;

  // Operations by tag, in the document's tag order; untagged ones last.
  const tagOrder = (doc.tags || []).map((t) => t.name);
  const tagInfo = new Map((doc.tags || []).map((t) => [t.name, t]));
  const groups = new Map(tagOrder.map((t) => [t, []]));
  for (const [path, item] of Object.entries(doc.paths || {})) {
    for (const m of METHODS) {
      const op = item && item[m];
      if (!op) continue;
      const tag = (op.tags && op.tags[0]) || "other";
      if (!groups.has(tag)) groups.set(tag, []);
      groups.get(tag).push([m, path, op, item.parameters]);
    }
  }
  const ops = $("#operations");
  const toc = $("#toc");
  let count = 0;
  for (const [tag, list] of groups) {
    if (!list.length) continue;
    const group = el("section", null, { class: "tag", id: anchor("tag", tag) });
    group.append(el("h2", tag));
    const t = tagInfo.get(tag);
    if (t && t.description) group.append(prose(t.description));
    const li = add(el("li"), el("a", tag, { href: "#" + anchor("tag", tag), class: "tag-link" }));
    const sub = el("ul");
    for (const [m, path, op, pp] of list) {
      const sec = operation(m, path, op, pp);
      group.append(sec);
      const entry = add(el("li", null, { "data-search": sec.dataset.search }),
        add(el("a", null, { href: "#" + sec.id }), el("span", m.toUpperCase(), { class: "method m-" + m }), " ", path));
      sub.append(entry);
      count += 1;
    }
    li.append(sub);
    toc.append(li);
    ops.append(group);
  }

  const schemas = (doc.components && doc.components.schemas) || {};
  const box = $("#schemas");
  for (const name of Object.keys(schemas).sort()) {
    const s = schemas[name];
    const sec = el("section", null, { class: "schema", id: anchor("schema", name) });
    sec.append(add(el("h3"), el("code", name)));
    if (s && s.description) sec.append(prose(s.description));
    sec.append(add(el("p", null, { class: "label" }), "Type: ", typeLine(s)));
    sec.append(shape(s, 1));
    box.append(sec);
  }
  $("#schemas-section").hidden = false;
  $("#status").textContent = count + " operations, " + Object.keys(schemas).length + " schemas.";
  document.body.dataset.ready = "1";
}

function filter() {
  const q = $("#filter").value.trim().toLowerCase();
  for (const sec of document.querySelectorAll("section.op, #toc li[data-search]")) {
    sec.hidden = q !== "" && !sec.dataset.search.includes(q);
  }
  for (const group of document.querySelectorAll("section.tag")) {
    group.hidden = ![...group.querySelectorAll("section.op")].some((s) => !s.hidden);
  }
}

async function load() {
  try {
    const r = await fetch("/openapi.json", { headers: { accept: "application/json" } });
    if (!r.ok) throw new Error(r.status + " " + r.statusText);
    render(await r.json());
    // A link to an operation or a schema, followed before the page was drawn.
    if (location.hash) {
      const target = document.getElementById(decodeURIComponent(location.hash.slice(1)));
      if (target) target.scrollIntoView();
    }
  } catch (e) {
    $("#status").textContent = "Could not load /openapi.json: " + e.message;
    document.body.dataset.ready = "error";
  }
}

$("#filter").addEventListener("input", filter);
load();
