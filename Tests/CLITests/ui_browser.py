"""Drives `haps-pipe ui` in a real browser (Debian's chromium through Playwright) and prints
what each page showed as JSON, for UITests.swift to check; saves a screenshot of each page.
docs/ui.md's screenshots come from this script too:

    python Tests/CLITests/ui_browser.py http://127.0.0.1:8300 docs/ui [REPORT.html [EXPERIMENT]]

EXPERIMENT (default "spec") is the one whose run and results the script opens; it filters the
experiments table by it.
The browser is $HAPS_CHROMIUM, else /usr/bin/chromium (no browser is downloaded)."""
import json, os, sys
from playwright.sync_api import sync_playwright

base, shots = sys.argv[1], sys.argv[2]
report = sys.argv[3] if len(sys.argv) > 3 else ""
experiment = sys.argv[4] if len(sys.argv) > 4 else "spec"
os.makedirs(shots, exist_ok=True)
out = {"errors": [], "failed": []}


def texts(page, selector):
    return page.eval_on_selector_all(selector, "es => es.map(e => e.textContent)")


chromium = os.environ.get("HAPS_CHROMIUM", "/usr/bin/chromium")
if not os.access(chromium, os.X_OK):
    sys.exit(f"no browser at {chromium}: install Debian's chromium (scripts/install-deps.sh does), or set HAPS_CHROMIUM")
with sync_playwright() as p:
    # --no-sandbox: CI runs as root; --disable-dev-shm-usage: containers' small /dev/shm.
    browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.on("console", lambda m: out["errors"].append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: out["errors"].append(str(e)))
    page.on("requestfailed", lambda r: out["failed"].append(r.url))
    page.on("response", lambda r: out["failed"].append(f"{r.status} {r.url}") if r.status >= 400 else None)

    # Experiments: the rows, sorting by a column both ways, two ticked and compared.
    page.goto(base + "/#/")
    page.wait_for_selector("body[data-page=experiments]")
    out["tables"] = page.eval_on_selector_all("table[id^=experiments-]", "ts => ts.map(t => t.id)")
    table = "#" + out["tables"][0]
    names = lambda: texts(page, f"{table} tbody tr td:nth-child(2)")
    out["experiments"] = names()
    page.click(f"{table} th:nth-child(2)")
    out["sorted_asc"] = names()
    page.click(f"{table} th:nth-child(2)")
    out["sorted_desc"] = names()
    page.fill("#filter", experiment)
    out["filtered"] = names()
    page.fill("#filter", "")
    if len(out["experiments"]) >= 2:
        page.check(f"{table} tbody tr:nth-child(1) .tick")
        page.check(f"{table} tbody tr:nth-child(2) .tick")
        page.click("#compare")
        page.wait_for_selector("#diff-figures")
        out["diff_stages"] = texts(page, "#diff-params tr td:first-child")
        out["diff_figures"] = texts(page, "#diff-figures tr td:first-child")
    page.screenshot(path=f"{shots}/experiments.png", full_page=True)

    # A run: the graph's boxes and the stage table.
    page.click(f"{table} a:text-is('{experiment}')")
    page.wait_for_selector("body[data-page=run]")
    out["dag"] = page.eval_on_selector_all("#dag g.node", "gs => gs.map(g => [g.dataset.stage, g.dataset.outcome])")
    out["stage_rows"] = texts(page, "#stage-table tbody tr td:first-child")
    page.screenshot(path=f"{shots}/run.png")

    # A result, opened from its box in the graph.
    page.click("#dag g.node[data-stage=evaluate]")
    page.wait_for_selector("body[data-page=result]")
    out["params"] = texts(page, "#params tr td:first-child")
    out["defaults"] = page.eval_on_selector_all("#params td.default", "tds => tds.length")
    out["files"] = texts(page, "#files h3 code")
    page.wait_for_function("[...document.querySelectorAll('img.file')].every(i => i.complete)")
    out["images"] = page.eval_on_selector_all("img.file", "is => is.map(i => [i.alt, i.naturalWidth])")
    page.screenshot(path=f"{shots}/result.png")

    # The evaluation, a question, and every dialogue its rows chose.
    page.click("#open-evaluation")
    page.wait_for_selector("#question-table")
    out["rows"] = texts(page, "#rows-table tbody tr td:first-child")
    out["questions"] = texts(page, "#question-table tbody tr td:nth-child(4)")
    out["intervals"] = page.eval_on_selector_all("#intervals g.row", "gs => gs.map(g => g.dataset.row)")
    out["error_bars"] = page.eval_on_selector_all("#cost-quality line.error-bar", "ls => ls.length")
    page.screenshot(path=f"{shots}/evaluation.png")
    page.locator(".pictures").screenshot(path=f"{shots}/pictures.png")
    page.click("#question-table tbody tr:first-child td:nth-child(4) a")
    page.wait_for_selector("#question-rows")
    out["question_text"] = page.text_content("#question-text")
    out["gold"] = page.text_content("#gold")
    out["question_rows"] = page.eval_on_selector_all("#question-rows tr[data-row]", "trs => trs.map(t => t.dataset.row)")
    out["dialogues"] = {}
    for row in page.eval_on_selector_all(".show-dialogue", "bs => bs.map(b => b.dataset.row)"):
        page.click(f".show-dialogue[data-row='{row}']")
        page.wait_for_selector(f"#dialogue h2:text-is('Dialogue of {row}')")
        out["dialogues"][row] = texts(page, "#dialogue .turn > pre")
    if "rl_train" in out["dialogues"]:  # the live HAPS row's dialogue, for the screenshots
        page.click(".show-dialogue[data-row='rl_train']")
        page.wait_for_selector("#dialogue h2:text-is('Dialogue of rl_train')")
    page.locator("#dialogue").screenshot(path=f"{shots}/dialogue.png")
    page.evaluate("document.getElementById('question').scrollIntoView()")
    page.screenshot(path=f"{shots}/question.png")

    # Sweeps: the list, a sweep's table and its curve.
    page.goto(base + "/#/sweeps")
    page.wait_for_selector("body[data-page=sweeps]")
    out["sweeps"] = texts(page, "#sweep-list a")
    if out["sweeps"]:
        page.click("#sweep-list a")
        page.wait_for_selector("#plot svg")
        out["sweep_lines"] = page.eval_on_selector_all("#plot svg polyline", "ps => ps.length")
        out["sweep_bands"] = page.eval_on_selector_all("#plot svg polygon.band", "ps => ps.length")
        out["sweep_rows"] = page.eval_on_selector_all("#sweep-rows tbody tr", "trs => trs.length")
        page.screenshot(path=f"{shots}/sweep.png", full_page=True)

    # The report file: the same evaluation page, with no server.
    if report:
        page.goto("file://" + os.path.abspath(report))
        page.wait_for_selector("#question-table")
        out["report_rows"] = texts(page, "#rows-table tbody tr td:first-child")
        page.click("#question-table tbody tr:first-child td:nth-child(4) a")
        page.wait_for_selector("#question-rows")
        rows = page.eval_on_selector_all(".show-dialogue", "bs => bs.map(b => b.dataset.row)")
        page.click(f".show-dialogue[data-row='{rows[-1]}']")
        page.wait_for_selector(f"#dialogue h2:text-is('Dialogue of {rows[-1]}')")
        out["report_dialogue"] = [rows[-1], texts(page, "#dialogue .turn > pre")]
    browser.close()
print(json.dumps(out))
