public import JSON
import Pipeline

/// The web interface's one page (HTML, CSS and the script that lays out the JSON pages of
/// `StoreBrowser`), embedded in the program: no build step, nothing fetched from elsewhere.
/// `haps-pipe ui` serves it; `haps-pipe report --html` writes it with an evaluation's data
/// inside, so that the evaluation page works from a file.
public enum BrowserAssets {
    /// The page; `data` (API path → its JSON), when given, is what the script reads instead of
    /// asking a server, and `start` the page it opens on.
    public static func page(data: [(path: String, value: JSONValue)]? = nil, start: String? = nil) -> String {
        var embedded = ""
        if let data {
            // "</" inside a script element would end it: JSON allows "<\/" for "</".
            let json = JSONValue.object(data.map { ($0.path, $0.value) }).canonical.split(separator: "</", omittingEmptySubsequences: false).joined(separator: "<\\/")
            embedded = "<script>window.HAPS_DATA = \(json);\nwindow.HAPS_START = \(JSONValue.string(start ?? "#/").canonical);</script>\n"
        }
        return """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
            <title>haps-pipe</title><link rel="icon" href="data:,">
            <style>\(style)</style>
            \(embedded)</head>
            <body><header><a class="brand" href="#/">haps-pipe</a><nav id="nav"><a href="#/">Experiments</a><a href="#/sweeps">Sweeps</a></nav><span id="where"></span></header>
            <main id="main"><p class="muted">Loading…</p></main>
            <script>\(script)</script></body></html>

            """
    }

    static let style = #"""
        :root { --fg: #1d2330; --muted: #667085; --line: #e3e6ea; --accent: #2557a7; --router: #c0392b; }
        * { box-sizing: border-box; }
        body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: #fafbfc; }
        header { display: flex; gap: 24px; align-items: center; padding: 10px 20px; background: #1d2330; color: white; }
        header a { color: #dbe4f3; text-decoration: none; margin-right: 16px; }
        header a.brand { font-weight: 700; color: white; }
        #where { margin-left: auto; color: #9aa6b8; font-size: 12px; }
        main { padding: 16px 24px 48px; max-width: 1400px; }
        h1 { font-size: 20px; margin: 8px 0 4px; } h2 { font-size: 16px; margin: 24px 0 8px; }
        a { color: var(--accent); }
        .muted { color: var(--muted); } .small { font-size: 12px; }
        table { border-collapse: collapse; background: white; margin: 6px 0 12px; }
        th, td { border: 1px solid var(--line); padding: 4px 8px; text-align: left; vertical-align: top; }
        th { background: #f2f4f7; font-weight: 600; white-space: nowrap; }
        th.sortable { cursor: pointer; } th.sortable:after { content: " ↕"; color: #aab; }
        th.asc:after { content: " ↑"; color: var(--fg); } th.desc:after { content: " ↓"; color: var(--fg); }
        td.num { text-align: right; font-variant-numeric: tabular-nums; }
        tr.selected td { background: #eef4ff; }
        .status-done, .outcome-ran { color: #2e8b57; } .status-failed, .outcome-failed { color: var(--router); } .outcome-cached { color: var(--muted); }
        .default { color: var(--muted); } .tag { font-size: 11px; border: 1px solid var(--line); border-radius: 8px; padding: 0 6px; color: var(--muted); }
        pre { background: #f6f8fa; border: 1px solid var(--line); padding: 8px; overflow: auto; max-height: 420px; white-space: pre-wrap; }
        .pictures { display: flex; flex-wrap: wrap; gap: 16px; align-items: flex-start; }
        .pictures > div, .scroll { background: white; border: 1px solid var(--line); padding: 6px; overflow: auto; }
        .toolbar { display: flex; gap: 12px; align-items: center; margin: 8px 0; flex-wrap: wrap; }
        input[type=search] { padding: 4px 8px; min-width: 260px; }
        button { padding: 4px 12px; cursor: pointer; }
        .turn { border-left: 3px solid var(--line); padding: 4px 10px; margin: 6px 0; background: white; }
        .turn.teacher { border-color: #9467bd; } .turn.student { border-color: #1f77b4; }
        .turn .who { font-size: 12px; color: var(--muted); }
        .turn pre { max-height: 200px; margin: 4px 0; }
        .error { color: var(--router); background: #fbe4e4; padding: 8px 12px; border-radius: 4px; }
        .cols { display: grid; grid-template-columns: minmax(480px, 1fr) minmax(480px, 1fr); gap: 20px; }
        #question-table td:nth-child(4) { min-width: 300px; }
        @media (max-width: 900px) { .cols { grid-template-columns: 1fr; } }
        img.file { max-width: 100%; background: white; border: 1px solid var(--line); }
        """#

    static let script = #"""
        "use strict";
        const main = document.getElementById("main");
        const esc = s => String(s ?? "").replace(/[&<>"']/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
        const num = (v, d = 4) => v === null || v === undefined || v === "" ? "–" : (typeof v === "number" ? v.toFixed(d) : esc(v));
        const signed = v => (v >= 0 ? "+" : "") + v.toFixed(4);
        const interval = i => i ? `${signed(i.mean)} [${signed(i.low)}, ${signed(i.high)}]` : "–";
        const secs = s => s === null || s === undefined ? "" : s < 60 ? s.toFixed(s < 10 ? 2 : 1) + " s" : (s / 60).toFixed(1) + " min";
        const enc = encodeURIComponent;

        async function api(path) {
          if (window.HAPS_DATA) {
            if (path in window.HAPS_DATA) return window.HAPS_DATA[path];
            throw new Error("this report file does not hold " + path);
          }
          const r = await fetch(path, {credentials: "same-origin"});
          const body = await r.json().catch(() => ({error: {message: r.statusText}}));
          if (!r.ok) throw new Error(body.error ? body.error.message : r.statusText);
          return body;
        }

        // A table whose columns sort when their header is clicked; `cols`: {title, value(row), html(row), num}.
        function sortableTable(id, cols, rows, opts = {}) {
          const state = {col: null, dir: 1};
          const wrap = document.createElement("div");
          function render() {
            let shown = rows.slice();
            if (state.col !== null) {
              const c = cols[state.col];
              shown.sort((a, b) => { const x = c.value(a), y = c.value(b);
                return (x === y ? 0 : x === null || x === undefined ? 1 : y === null || y === undefined ? -1 : x < y ? -1 : 1) * state.dir; });
            }
            const filter = opts.filter ? opts.filter() : "";
            if (filter) shown = shown.filter(r => cols.some(c => String(c.value(r) ?? "").toLowerCase().includes(filter)));
            wrap.innerHTML = `<table id="${id}"><thead><tr>${cols.map((c, i) =>
              `<th class="sortable ${state.col === i ? (state.dir > 0 ? "asc" : "desc") : ""}" data-col="${i}">${esc(c.title)}</th>`).join("")}</tr></thead><tbody>${
              shown.map(r => `<tr${opts.rowAttrs ? opts.rowAttrs(r) : ""}>${cols.map(c => `<td${c.num ? ' class="num"' : ""}>${c.html ? c.html(r) : esc(c.value(r))}</td>`).join("")}</tr>`).join("")
            }</tbody></table>`;
            wrap.querySelectorAll("th").forEach(th => th.onclick = () => {
              const i = +th.dataset.col; state.dir = state.col === i ? -state.dir : 1; state.col = i; render(); });
            if (opts.after) opts.after(wrap);
          }
          wrap.render = render;
          render();
          return wrap;
        }

        const pages = {
          async experiments() {
            const o = await api("/api/overview");
            document.getElementById("where").textContent = o.store;
            main.innerHTML = `<h1>Experiments</h1><p class="muted">Every pipeline's experiments (the spec as written, and each set of --set overrides), with the latest run of each and the figures that differ between them. Tick two to compare.</p>
              <div class="toolbar"><input type="search" id="filter" placeholder="filter rows"><button id="compare" disabled>Compare the two ticked</button></div><div id="tables"></div><div id="diff"></div>
              <h2>Sweeps</h2><div id="sweeps"></div><h2>Recent runs</h2><div id="runs"></div>`;
            if (!o.pipelines.length) document.getElementById("tables").innerHTML = `<p>No experiments in this store yet: <code>haps-pipe run SPEC</code> makes the first.</p>`;
            const ticked = [];
            const tables = [];
            for (const p of o.pipelines) {
              const h = document.createElement("h2"); h.textContent = p.name; document.getElementById("tables").append(h);
              const cols = [
                {title: "", value: () => null, html: e => `<input type="checkbox" class="tick" data-p="${esc(p.name)}" data-e="${esc(e.name)}">`},
                {title: "experiment", value: e => e.name, html: e => `<a href="#/run/${enc(p.name)}/${enc(e.name)}">${esc(e.name)}</a>`},
                {title: "runs", value: e => e.runs, num: true},
                {title: "last run", value: e => e.started, html: e => esc(e.started_text)},
                {title: "status", value: e => e.status, html: e => `<span class="status-${esc(e.status)}">${esc(e.status)}</span>`},
                {title: "stages (ran, cached, failed)", value: e => e.stages, html: e => `${e.stages} (${e.ran}, ${e.cached}, ${e.failed})`},
              ].concat(p.differing.map(f => ({title: f, value: e => e.figures[f] ?? null, html: e => num(e.figures[f]), num: true})));
              const t = sortableTable("experiments-" + p.name, cols, p.experiments, {
                filter: () => document.getElementById("filter").value.toLowerCase(),
                after: w => w.querySelectorAll(".tick").forEach(cb => {
                  cb.checked = ticked.some(x => x.p === cb.dataset.p && x.e === cb.dataset.e);
                  cb.onchange = () => {
                    const i = ticked.findIndex(x => x.p === cb.dataset.p && x.e === cb.dataset.e);
                    if (cb.checked && i < 0) ticked.push({p: cb.dataset.p, e: cb.dataset.e}); else if (!cb.checked && i >= 0) ticked.splice(i, 1);
                    while (ticked.length > 2) ticked.shift();
                    tables.forEach(x => x.render());
                    document.getElementById("compare").disabled = !(ticked.length === 2 && ticked[0].p === ticked[1].p);
                  };
                })});
              tables.push(t);
              document.getElementById("tables").append(t);
            }
            document.getElementById("filter").oninput = () => tables.forEach(t => t.render());
            document.getElementById("compare").onclick = async () => {
              const [a, b] = ticked;
              const d = await api(`/api/diff?pipeline=${enc(a.p)}&a=${enc(a.e)}&b=${enc(b.e)}`);
              document.getElementById("diff").innerHTML = `<h2>${esc(d.a)} → ${esc(d.b)}</h2>
                <table id="diff-params"><tr><th>stage (key differs)</th><th>parameters and inputs</th></tr>${d.stages.map(s => `<tr><td>${esc(s.stage)}</td><td>${s.changes.map(esc).join("<br>")}</td></tr>`).join("") || `<tr><td colspan="2">none: every stage has the same key</td></tr>`}</table>
                <table id="diff-figures"><tr><th>figure</th><th>${esc(d.a)}</th><th>${esc(d.b)}</th><th>change</th></tr>${d.figures.map(f => `<tr><td>${esc(f.name)}</td><td class="num">${num(f.a)}</td><td class="num">${num(f.b)}</td><td class="num">${signed(f.change)}</td></tr>`).join("") || `<tr><td colspan="4">no figure differs</td></tr>`}</table>`;
            };
            document.getElementById("sweeps").innerHTML = o.sweeps.length ? `<ul>${o.sweeps.map(s => `<li><a href="#/sweep/${enc(s.name)}">${esc(s.name)}</a> <span class="muted">${s.points} points${s.failed ? `, ${s.failed} failed` : ""}</span></li>`).join("")}</ul>` : `<p class="muted">none</p>`;
            document.getElementById("runs").innerHTML = `<table id="runs-table"><tr><th>run</th><th>pipeline</th><th>experiment</th><th>started</th><th>took</th><th>status</th><th>stages (ran, cached, failed)</th></tr>${o.runs.map(r =>
              `<tr><td>${r.experiment !== null ? `<a href="#/run/${enc(r.pipeline)}/${enc(r.experiment)}/${enc(r.id)}">${esc(r.id)}</a>` : esc(r.id)}</td><td>${esc(r.pipeline)}</td><td>${esc(r.experiment ?? "–")}</td><td>${esc(r.started_text)}</td><td>${secs(r.seconds)}</td><td class="status-${esc(r.status)}">${esc(r.status)}</td><td>${r.stages} (${r.ran}, ${r.cached}, ${r.failed})</td></tr>`).join("")}</table>`;
          },

          async run(pipeline, experiment, id) {
            const r = await api(`/api/run?pipeline=${enc(pipeline)}&experiment=${enc(experiment)}${id ? "&run=" + enc(id) : ""}`);
            main.innerHTML = `<h1>${esc(r.pipeline)} · ${esc(r.experiment)}</h1>
              <p class="muted">run ${esc(r.run)} · started ${esc(r.started_text)} · took ${secs(r.seconds)} · <span class="status-${esc(r.status)}">${esc(r.status)}</span> · ${r.stages} stages: ${r.ran} ran, ${r.cached} cached, ${r.failed} failed${r.overrides.length ? " · overrides " + r.overrides.map(esc).join(" ") : ""}</p>
              ${r.run_ids.length > 1 ? `<p class="small">runs of this experiment: ${r.run_ids.map(x => `<a href="#/run/${enc(r.pipeline)}/${enc(r.experiment)}/${enc(x)}">${esc(x)}</a>`).join(", ")}</p>` : ""}
              <h2>Graph</h2><p class="small muted">green: ran in this run · grey: cached · red: failed. A box opens its result.</p><div class="scroll" id="dag">${r.svg}</div>
              <h2>Stages</h2><div id="stages"></div>`;
            document.getElementById("stages").append(sortableTable("stage-table", [
              {title: "stage", value: s => s.stage, html: s => s.output ? `<a href="#/result/${esc(s.output)}">${esc(s.stage)}</a>` : esc(s.stage)},
              {title: "type", value: s => s.type},
              {title: "outcome", value: s => s.outcome, html: s => `<span class="outcome-${esc(s.outcome)}">${esc(s.outcome)}</span>${s.error ? `<div class="error small">${esc(s.error)}</div>` : ""}`},
              {title: "time", value: s => s.seconds, html: s => secs(s.seconds), num: true},
              {title: "inputs", value: s => s.inputs.map(i => i.port).join(" "), html: s => s.inputs.map(i => `${esc(i.port)} ← ${i.from ? `<a href="#/result/${esc(i.digest)}">${esc(i.from)}</a>` : `<a href="#/result/${esc(i.digest)}">${esc(i.name ?? i.digest.slice(0, 12))}</a>`}`).join("<br>")},
              {title: "why it ran", value: s => s.reasons.join("; "), html: s => s.outcome === "ran" ? s.reasons.map(esc).join("<br>") : ""},
            ], r.stage_list));
          },

          async result(digest) {
            const r = await api(`/api/result?target=${enc(digest)}`);
            const fileURL = (f, dl) => `/api/file?digest=${enc(r.digest)}&name=${enc(f.name)}${dl ? "&download=1" : ""}`;
            main.innerHTML = `<h1>${esc(r.name ?? r.digest.slice(0, 12))} <span class="tag">${esc(r.kind)}</span></h1>
              <p class="muted">${esc(r.type ?? "")}${r.summary ? ": " + esc(r.summary) : ""}</p>
              ${r.evaluation ? `<p><a id="open-evaluation" href="#/eval/${esc(r.digest)}">Open the evaluation page →</a></p>` : ""}
              <table id="provenance"><tr><th>artifact</th><td><code>${esc(r.digest)}</code></td></tr><tr><th>key</th><td><code>${esc(r.key ?? "–")}</code></td></tr>
              <tr><th>stage type</th><td>${esc(r.type ?? "–")} (version ${esc(r.version ?? "–")}), seed ${esc(r.seed ?? "–")}</td></tr>
              <tr><th>computed</th><td>${esc(r.ran_at ?? "–")} in ${secs(r.seconds)}</td></tr><tr><th>named</th><td>${r.refs.map(esc).join(", ") || "–"}</td></tr>
              <tr><th>why it ran</th><td>${r.reasons.map(esc).join("<br>") || "–"}</td></tr><tr><th>size</th><td>${r.size} bytes</td></tr></table>
              <div class="cols"><div><h2>Parameters</h2><table id="params"><tr><th>name</th><th>value</th></tr>${r.params.map(p =>
                `<tr title="${esc(p.help)}"><td>${esc(p.name)}</td><td class="${p.is_default ? "default" : ""}"><code>${esc(JSON.stringify(p.value))}</code>${p.is_default ? ' <span class="tag">default</span>' : ""}</td></tr>`).join("")}</table>
              <h2>Inputs</h2><table id="inputs"><tr><th>port</th><th>artifact</th></tr>${r.inputs.map(i => `<tr><td>${esc(i.port)}</td><td><a href="#/result/${esc(i.digest)}">${esc(i.name ?? "")}</a> <code class="small">${esc(String(i.digest).slice(0, 12))}</code></td></tr>`).join("")}</table>
              ${r.resources ? `<h2>Resources</h2><pre>${esc(JSON.stringify(r.resources, null, 2))}</pre>` : ""}</div>
              <div><h2>Figures</h2><table id="figures"><tr><th>figure</th><th>value</th></tr>${r.figures.map(f => `<tr><td>${esc(f.name)}</td><td class="num">${num(f.value)}</td></tr>`).join("") || `<tr><td colspan="2" class="muted">none</td></tr>`}</table></div></div>
              <h2>Files</h2><div id="files">${r.files.map(f => `<div class="file"><h3 class="small"><code>${esc(f.name)}</code> <span class="muted">${f.size} bytes</span> <a href="${fileURL(f, true)}">download</a></h3>${
                f.kind === "image" ? `<img class="file" alt="${esc(f.name)}" src="${fileURL(f)}">` : f.kind === "text" ? `<pre>${esc(f.preview)}${f.lines > f.preview.split("\n").length ? `\n… (${f.lines} lines)` : ""}</pre>` : `<p class="muted">binary</p>`}</div>`).join("")}</div>
              ${r.log ? `<h2>Log (its end)</h2><pre id="log">${esc(r.log)}</pre>` : ""}`;
          },

          async evaluation(digest, question) {
            const ev = await api(`/api/evaluation?digest=${enc(digest)}`);
            const res = ev.results;
            const rowNames = res.rows.map(r => r.name);
            const types = res.rows.length ? Object.keys(res.rows[0].by_type) : [];
            main.innerHTML = `<h1>Evaluation ${esc(ev.name ?? ev.digest.slice(0, 12))}</h1>
              <p class="muted">${res.questions} questions · best fixed chosen on valid: action ${res.best_fixed_action} (${esc(ev.actions[res.best_fixed_action] ?? "")}) · paired bootstrap ${Math.round(res.bootstrap.confidence * 100)}% intervals, ${res.bootstrap.resamples} resamples, seed ${res.bootstrap.seed}
              ${window.HAPS_DATA ? "" : ` · <a href="#/result/${esc(ev.digest)}">the result's files</a>`}</p>
              <h2>Rows</h2><div id="rows"></div>
              ${types.length ? `<h2>Mean F1 by question type</h2><div id="by-type"></div>` : ""}
              ${res.comparisons.length ? `<h2>HAPS against the router its training started from</h2><table id="comparisons"><tr><th>row</th><th>against</th><th>F1 difference [95% CI]</th></tr>${res.comparisons.map(c => `<tr><td>${esc(c.row)}</td><td>${esc(c.against)}</td><td class="num">${interval(c.difference)}</td></tr>`).join("")}</table>` : ""}
              <div class="pictures"><div id="intervals">${ev.intervals_svg}</div><div id="cost-quality">${ev.cost_quality_svg ?? ""}</div>${ev.cost_curves_svg ? `<div id="cost-curves">${ev.cost_curves_svg}</div>` : ""}${ev.strong_share_svg ? `<div id="strong-share">${ev.strong_share_svg}</div>` : ""}</div>
              ${(res.curves ?? []).length ? `<h2>Cost-aware routing (score − λ·cost)</h2><p class="small muted">AIQ: the area under each router's non-decreasing convex hull of quality against cost, over the cost range (RouterBench). With two candidates, APGR: the share of the weak–strong gap recovered, averaged over the share of strong calls; CPT(x): the share of strong calls needed to recover x of it (RouteLLM).</p>
                <table id="curves-table"><tr><th>row</th><th>AIQ</th><th>APGR</th><th>CPT(50%)</th><th>CPT(80%)</th></tr>${res.curves.map(c => `<tr><td>${esc(c.row)}</td><td class="num">${num(c.aiq)}</td><td class="num">${num(c.apgr)}</td><td class="num">${num(c.cpt50, 3)}</td><td class="num">${num(c.cpt80, 3)}</td></tr>`).join("")}</table>` : ""}
              <h2>Questions</h2><p class="small muted">Click a question to see each row's action, answer and F1, and the dialogue a row chose.</p>
              <div class="toolbar"><input type="search" id="qfilter" placeholder="filter questions (text, id, type, gold)"></div>
              <div class="cols"><div id="questions" class="scroll" style="max-height: 640px"></div><div id="question"></div></div>`;
            document.getElementById("rows").append(sortableTable("rows-table", [
              {title: "row", value: r => r.name, html: r => `<span style="color: ${r.router ? "var(--router)" : "inherit"}">${esc(r.name)}</span>`},
              {title: "what", value: r => r.label},
              {title: "F1", value: r => r.f1_mean, html: r => num(r.f1_mean), num: true},
              {title: "EM", value: r => r.em_mean, html: r => num(r.em_mean), num: true},
              {title: "tokens/q", value: r => r.tokens_mean, html: r => num(r.tokens_mean, 1), num: true},
              {title: "cost/q", value: r => r.cost_mean, html: r => num(r.cost_mean, 6), num: true},
              {title: "gap share", value: r => r.gap_share, html: r => num(r.gap_share, 3), num: true},
              {title: "F1 − best fixed [95% CI]", value: r => r.diff_vs_best_fixed.mean, html: r => interval(r.diff_vs_best_fixed), num: true},
            ], res.rows));
            if (types.length) document.getElementById("by-type").append(sortableTable("by-type-table",
              [{title: "row", value: r => r.name}].concat(types.map(t => ({title: t, value: r => r.by_type[t], html: r => num(r.by_type[t]), num: true}))), res.rows));
            const shown = ["oracle", "best_fixed"].concat(rowNames.filter(n => res.rows.find(r => r.name === n).router)).slice(0, 6);
            const qt = sortableTable("question-table", [
              {title: "#", value: q => q.question_index, num: true},
              {title: "id", value: q => q.id ?? ""},
              {title: "type", value: q => q.type ?? ""},
              {title: "question", value: q => q.question, html: q => `<a href="#/eval/${esc(ev.digest)}/q/${q.question_index}">${esc(q.question)}</a>`},
              {title: "gold", value: q => q.gold ?? ""},
            ].concat(shown.map(n => ({title: n + " F1", value: q => q[n] ? q[n].f1 : null, html: q => q[n] ? num(q[n].f1, 2) : "–", num: true}))), ev.questions, {
              filter: () => document.getElementById("qfilter").value.toLowerCase(),
              rowAttrs: q => ` data-q="${q.question_index}"${question === q.question_index ? ' class="selected"' : ""}`});
            document.getElementById("questions").append(qt);
            document.getElementById("qfilter").oninput = () => qt.render();
            if (question !== undefined) await pages.question(ev, question);
          },

          async question(ev, index) {
            const q = await api(`/api/question?digest=${enc(ev.digest)}&index=${index}`);
            const box = document.getElementById("question");
            box.innerHTML = `<h2>Question ${q.index}${q.id ? ` <span class="tag">${esc(q.id)}</span>` : ""}${q.type ? ` <span class="tag">${esc(q.type)}</span>` : ""}</h2>
              <p id="question-text"><b>${esc(q.question)}</b></p><p>gold answer: <b id="gold">${esc(q.gold ?? "–")}</b></p>
              <table id="question-rows"><tr><th>row</th><th>action</th><th>answer</th><th>F1</th><th></th></tr>${q.rows.map(r =>
                `<tr data-row="${esc(r.name)}"><td>${esc(r.name)}</td><td>${r.action === null ? "–" : r.action + (r.assignment ? ` <span class="small muted">${esc(r.assignment)}</span>` : "")}</td><td>${esc(r.answer ?? "–")}${r.live ? ' <span class="tag">live</span>' : ""}</td><td class="num">${num(r.f1, 2)}</td><td>${r.dialogue ? `<button class="show-dialogue" data-row="${esc(r.name)}">dialogue</button>` : ""}</td></tr>`).join("")}</table>
              <div id="dialogue"></div>`;
            box.querySelectorAll(".show-dialogue").forEach(b => b.onclick = () => pages.dialogue(ev, index, b.dataset.row));
            box.scrollIntoView({block: "nearest"});
          },

          async dialogue(ev, index, row) {
            const d = await api(`/api/dialogue?digest=${enc(ev.digest)}&index=${index}&row=${enc(row)}`);
            document.getElementById("dialogue").innerHTML = `<h2>Dialogue of ${esc(row)}</h2>
              <p class="small muted">${d.source === "live" ? "run live by the evaluation (the router's action and the generated updates)" : "sampled for the score table (action " + d.action + ")"} · ${esc(d.assignment ?? "")} · answer <b>${esc(d.answer ?? "–")}</b></p>
              ${d.turns.map(t => `<div class="turn ${esc(t.role ?? "")}"><div class="who">${esc(t.role ?? "")} · ${esc(t.call ?? "")}${t.step !== undefined ? " · step " + t.step : ""}</div>${t.prompt ? `<details><summary class="small">prompt</summary><pre>${esc(t.prompt)}</pre></details>` : ""}<pre>${esc(t.reply ?? "")}</pre></div>`).join("")}`;
          },

          async sweeps() {
            const o = await api("/api/overview");
            main.innerHTML = `<h1>Sweeps</h1>${o.sweeps.length ? `<ul id="sweep-list">${o.sweeps.map(s => `<li><a href="#/sweep/${enc(s.name)}">${esc(s.name)}</a> <span class="muted">${s.points} points</span></li>`).join("")}</ul>` : `<p>No sweeps in this store: <code>haps-pipe sweep run SPEC --grid stage.param=a,b</code> makes one.</p>`}`;
          },

          async sweep(name) {
            const s = await api(`/api/sweep?name=${enc(name)}`);
            const t = s.replicates ?? s.table;
            const chosen = s.varying.slice(0, 3);
            main.innerHTML = `<h1>Sweep ${esc(s.name)}</h1><p class="muted">${s.points} points of ${esc(s.spec)}${s.failed.length ? ` · failed: ${s.failed.map(esc).join(", ")}` : ""}${s.replicates ? " · replicates pooled: mean, sd, 95% interval" : ""}</p>
              <h2>Curves</h2><div class="toolbar">against <select id="x">${s.parameters.map(p => `<option>${esc(p)}</option>`).join("")}</select></div>
              <div class="toolbar" id="figure-choice">${s.figures.map(f => `<label class="small"><input type="checkbox" value="${esc(f)}"${chosen.includes(f) ? " checked" : ""}> ${esc(f)}</label>`).join("")}</div>
              <div id="plot" class="scroll"></div><h2>Table</h2><div id="sweep-table" class="scroll"></div>`;
            document.getElementById("sweep-table").append(sortableTable("sweep-rows", t.header.map((h, i) => ({title: h, value: r => { const v = parseFloat(r[i]); return isNaN(v) || /[a-z]/i.test(r[i]) ? r[i] : v; }, html: r => esc(r[i])})), t.rows));
            async function plot() {
              const figures = [...document.querySelectorAll("#figure-choice input:checked")].map(i => i.value);
              const el = document.getElementById("plot");
              if (!figures.length || !s.parameters.length) { el.innerHTML = `<p class="muted">tick a figure to plot it</p>`; return; }
              const r = await fetch(`/api/sweep/plot?name=${enc(s.name)}&x=${enc(document.getElementById("x").value)}&figures=${enc(figures.join(","))}`);
              el.innerHTML = r.ok ? await r.text() : `<p class="error">${esc((await r.json()).error.message)}</p>`;
            }
            document.getElementById("x").onchange = plot;
            document.querySelectorAll("#figure-choice input").forEach(i => i.onchange = plot);
            await plot();
          },
        };

        async function route() {
          const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
          try {
            if (parts[0] === "run") await pages.run(parts[1], parts[2], parts[3]);
            else if (parts[0] === "result") await pages.result(parts[1]);
            else if (parts[0] === "eval") await pages.evaluation(parts[1], parts[2] === "q" ? +parts[3] : undefined);
            else if (parts[0] === "sweeps") await pages.sweeps();
            else if (parts[0] === "sweep") await pages.sweep(parts[1]);
            else await pages.experiments();
            document.body.dataset.page = parts[0] || "experiments";
          } catch (e) {
            main.innerHTML = `<p class="error" id="page-error">${esc(e.message)}</p>`;
            document.body.dataset.page = "error";
          }
        }
        window.addEventListener("hashchange", route);
        if (window.HAPS_DATA) document.getElementById("nav").style.display = "none";
        if (window.HAPS_DATA && !location.hash) location.hash = window.HAPS_START; else route();
        """#
}
