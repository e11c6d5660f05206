"""`/docs`: a self-contained HTML page that renders /openapi.json (no CDN, no network)."""

from __future__ import annotations

DOCS_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>crossdock partner API</title>
<style>
body{font:15px/1.5 system-ui,sans-serif;margin:0;color:#1d2330;background:#f7f8fa}
main{max-width:980px;margin:0 auto;padding:24px}
h1{margin:0 0 4px}.op{background:#fff;border:1px solid #dde1e8;border-radius:6px;margin:12px 0}
.op summary{cursor:pointer;padding:10px 14px;font-family:ui-monospace,monospace}
.m{display:inline-block;min-width:64px;font-weight:700}.get{color:#0a6c3d}.post{color:#0b57d0}
.delete{color:#b3261e}.patch,.put{color:#8a5a00}.body{padding:0 14px 12px}
table{border-collapse:collapse;width:100%;margin:6px 0}td,th{border-top:1px solid #eceff3;
padding:4px 6px;text-align:left;vertical-align:top}code{font-family:ui-monospace,monospace}
.muted{color:#5d6675}.scope{font-size:12px;background:#eef2ff;border-radius:4px;padding:1px 6px}
</style></head><body><main>
<h1 id="title">crossdock partner API</h1><p id="intro" class="muted"></p>
<p class="muted">Authenticate with <code>Authorization: Bearer &lt;api key&gt;</code>.
Errors are <code>application/problem+json</code>. The raw document is at
<a href="/openapi.json">/openapi.json</a>.</p><div id="ops">Loading…</div>
<h2 id="problems">Problems</h2>
<p class="muted">Every error is <code>application/problem+json</code> with <code>type</code>,
<code>title</code>, <code>status</code>, <code>detail</code>, <code>grpc_code</code>,
<code>correlation_id</code> and <code>violations</code> [{field, description}].</p>
<table>
<tr id="problem-400"><td>400</td><td>invalid input: malformed JSON, unknown fields, wrong types,
broken rules (INVALID_ARGUMENT, FAILED_PRECONDITION, OUT_OF_RANGE)</td></tr>
<tr id="problem-401"><td>401</td><td>missing or invalid API key</td></tr>
<tr id="problem-403"><td>403</td><td>the key lacks the operation's scope</td></tr>
<tr id="problem-404"><td>404</td><td>no such route, or no such resource for your partner</td></tr>
<tr id="problem-405"><td>405</td><td>method not allowed (see Allow)</td></tr>
<tr id="problem-409"><td>409</td><td>conflict (ALREADY_EXISTS, ABORTED), or the same
Idempotency-Key is still running</td></tr>
<tr id="problem-413"><td>413</td><td>request body too large</td></tr>
<tr id="problem-415"><td>415</td><td>body is not application/json</td></tr>
<tr id="problem-422"><td>422</td><td>Idempotency-Key reused with a different request, or a
business rule with a limit broken (e.g. a return of more units than are returnable: each line and
its limit in <code>violations</code>)</td></tr>
<tr id="problem-429"><td>429</td><td>rate limited: see Retry-After and RateLimit-*</td></tr>
<tr id="problem-500"><td>500</td><td>unexpected error; quote the correlation id</td></tr>
<tr id="problem-501"><td>501</td><td>in the contract but not implemented yet</td></tr>
<tr id="problem-503"><td>503</td><td>a backend is unavailable; retry after Retry-After</td></tr>
<tr id="problem-504"><td>504</td><td>a backend did not answer in time</td></tr>
</table>
<h2 id="schemas-h">Schemas</h2><div id="schemas"></div></main>
<script>
"use strict";
function el(tag, attrs, ...kids){const e=document.createElement(tag);
 for(const [k,v] of Object.entries(attrs||{})) e.setAttribute(k,v);
 for(const k of kids) e.append(k instanceof Node?k:document.createTextNode(String(k)));return e;}
function typeOf(s){if(!s)return "any";if(s.$ref)return s.$ref.split("/").pop();
 if(s.type==="array")return typeOf(s.items)+"[]";if(s.enum)return s.enum.join(" | ");
 const t=Array.isArray(s.type)?s.type.join("|"):(s.type||"any");return t;}
function limits(s){if(!s)return "";const out=[];
 for(const k of ["minimum","maximum","exclusiveMinimum","exclusiveMaximum","minLength",
 "maxLength","minItems","maxItems","pattern"]) if(k in s) out.push(k+": "+s[k]);
 if(s.items&&s.items.pattern) out.push("items pattern: "+s.items.pattern);return out.join(", ");}
function propsTable(schema){const t=el("table",{},el("tr",{},el("th",{},"field"),
 el("th",{},"type"),el("th",{},"description"),el("th",{},"constraints")));
 const req=new Set(schema.required||[]);
 for(const [n,p] of Object.entries(schema.properties||{})) t.append(el("tr",{},
  el("td",{},el("code",{},n+(req.has(n)?" *":""))),el("td",{},typeOf(p)),
  el("td",{},p.description||""),el("td",{class:"muted"},limits(p))));return t;}
fetch("/openapi.json").then(r=>r.json()).then(doc=>{
 document.getElementById("intro").textContent=doc.info.description||"";
 const ops=document.getElementById("ops");ops.textContent="";
 for(const [path,item] of Object.entries(doc.paths)) for(const [m,op] of Object.entries(item)){
  const d=el("details",{class:"op"});
  d.append(el("summary",{},el("span",{class:"m "+m},m.toUpperCase())," ",path," ",
   el("span",{class:"muted"},"— "+(op.summary||""))," ",el("span",{class:"scope"},
   op["x-required-scope"]||"")));
  const b=el("div",{class:"body"});const params=(op.parameters||[]);
  if(params.length){const t=el("table",{},el("tr",{},el("th",{},"parameter"),el("th",{},"in"),
   el("th",{},"type"),el("th",{},"description")));
   for(const p of params) t.append(el("tr",{},el("td",{},el("code",{},p.name)),el("td",{},p.in),
    el("td",{},typeOf(p.schema)),el("td",{},(p.schema&&p.schema.description)||p.description||"")));
   b.append(el("h4",{},"Parameters"),t);}
  const rb=op.requestBody&&Object.values(op.requestBody.content)[0].schema;
  if(rb){b.append(el("h4",{},"Request body"));
   b.append(rb.properties?propsTable(rb):el("p",{},el("code",{},typeOf(rb))));}
  b.append(el("h4",{},"Responses"),el("p",{},Object.keys(op.responses).join(", ")));
  d.append(b);ops.append(d);}
 const sc=document.getElementById("schemas");
 for(const [n,s] of Object.entries(doc.components.schemas)){const d=el("details",{class:"op",
  id:"schema-"+n});d.append(el("summary",{},n));const b=el("div",{class:"body"});
  if(s.description) b.append(el("p",{},s.description));
  b.append(s.properties?propsTable(s):el("p",{},typeOf(s)));d.append(b);sc.append(d);}
}).catch(e=>{document.getElementById("ops").textContent="Could not load the spec: "+e;});
</script></body></html>
"""
