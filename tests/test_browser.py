"""A real browser: JupyterLab on 127.0.0.1, headless Chromium runs a notebook and opens its student edition.

Needs Debian's ``chromium`` (``/usr/bin/chromium``) and the ``playwright`` Python
package, which drives that binary (no browser download). Skips only where no
Chromium can be found or started. Chromium resolves no host but 127.0.0.1, and
the test fails if the page asks for anything else, so it also proves the lesson
works offline.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest
from local_jupyter import _stop, free_port, local_jupyter
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, expect, sync_playwright

from helpers.commands.check import NOT_ANSWERED, NOT_ATTEMPTED, PASSED, check_submissions
from helpers.commands.classroom import EXERCISE_TAG, SERIES_METADATA, write_student_edition
from helpers.commands.runner import NOTEBOOKS_DIR, list_notebooks

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",  # only loopback traffic
]
# quick notebooks with a figure first; 06 and 07 train for a while
PREFERRED = ["03_build_model.ipynb", "04_model_layers.ipynb", "05_model_parameters.ipynb", "01_tensors.ipynb"]
RUN_TIMEOUT_MS = 240_000
LOAD_TIMEOUT_MS = 90_000
STDERR = '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'
STATUS_BAR = "(document.querySelector('#jp-main-statusbar') || {}).textContent || ''"
ALL_RAN_OR_ERROR = f"""() => {{
  const stderr = document.querySelector('{STDERR}');
  const prompts = [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt')]
    .map(e => e.textContent.trim());
  const ran = prompts.length > 0 && prompts.every(p => /^\\[\\d+\\]:$/.test(p));
  return Boolean(stderr) || (ran && /\\| Idle/.test({STATUS_BAR}));
}}"""


def find_chromium() -> str | None:
    """Debian's Chromium (or the one named by $CHROMIUM_PATH), if installed."""
    for candidate in (os.environ.get("CHROMIUM_PATH"), "/usr/bin/chromium", "chromium", "chromium-browser"):
        if candidate and shutil.which(candidate):
            return shutil.which(candidate)
    return None


def has_figure(nb: nbformat.NotebookNode) -> bool:
    """True when a stored output of the notebook is an image."""
    return any(
        "image/png" in out.get("data", {}) for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs
    )


def pick_notebook() -> Path:
    """The quickest notebook of the series that draws a figure."""
    by_name = {p.name: p for p in list_notebooks()}
    for name in PREFERRED + sorted(by_name):
        if name in by_name and has_figure(nbformat.read(by_name[name], as_version=4)):
            return by_name[name]
    pytest.fail(f"no notebook in {NOTEBOOKS_DIR} stores a figure; the browser test needs one")


def open_notebook(page: Page, url: str, token: str, path: str) -> None:
    """Open a notebook in JupyterLab and wait until its kernel is idle."""
    page.goto(f"{url}/lab/tree/{path}?token={token}", timeout=LOAD_TIMEOUT_MS)
    page.wait_for_selector(".jp-NotebookPanel .jp-Notebook .jp-Cell", timeout=LOAD_TIMEOUT_MS)
    page.wait_for_function(f"() => /\\| Idle/.test({STATUS_BAR})", timeout=LOAD_TIMEOUT_MS)


def menu(page: Page, menu_name: str, item: str) -> None:
    """Choose an item from JupyterLab's menu bar, as a teacher would."""
    page.click(f".lm-MenuBar-itemLabel >> text='{menu_name}'")
    page.click(f".lm-Menu-itemLabel >> text='{item}'")


def wait_for_saved_run(path: Path, timeout: float = 30.0) -> list[dict]:
    """The code cells of the saved notebook once every one of them has an execution count."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            code = [c for c in json.loads(path.read_text(encoding="utf-8"))["cells"] if c["cell_type"] == "code"]
        except ValueError:  # caught halfway through the save
            code = [{"execution_count": None}]
        if all(c["execution_count"] for c in code):
            return code
        if time.monotonic() > deadline:
            pytest.fail(f"the saved {path.name} does not show every code cell as run after {timeout:.0f} s")
        time.sleep(0.5)


@pytest.fixture
def browser():
    executable = find_chromium()
    if executable is None:
        pytest.skip("Chromium not found (/usr/bin/chromium or on PATH): install the Debian package chromium")
    with sync_playwright() as playwright:
        try:
            chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, timeout=60_000)
        except PlaywrightError as exc:
            pytest.skip(f"Chromium at {executable} could not be started: {str(exc).splitlines()[0]}")
        try:
            yield chromium
        finally:
            chromium.close()


def test_jupyterlab_runs_a_notebook_and_opens_its_student_edition(browser, tmp_path):
    source = pick_notebook()
    root = tmp_path / "root"
    (root / "notebooks").mkdir(parents=True)
    nb = nbformat.read(source, as_version=4)
    for cell in nb.cells:  # start from no outputs: whatever shows up below comes from this run
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    copy = root / "notebooks" / source.name
    nbformat.write(nb, copy)
    if (NOTEBOOKS_DIR.parent / "data").is_dir():
        (root / "data").symlink_to(NOTEBOOKS_DIR.parent / "data")  # notebooks read ../data
    student = write_student_edition(root / "student", [source.name])[0]

    with local_jupyter(root, app="lab") as (url, token):
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        elsewhere: list[str] = []  # Chromium cannot resolve any other host (see CHROMIUM_ARGS); list the tries
        context.on(
            "request", lambda r: None if r.url.startswith((f"{url}/", "data:", "blob:")) else elsewhere.append(r.url)
        )
        page = context.new_page()
        page.set_default_timeout(30_000)
        try:
            open_notebook(page, url, token, f"notebooks/{source.name}")
            menu(page, "Run", "Run All Cells")
            page.wait_for_function(ALL_RAN_OR_ERROR, timeout=RUN_TIMEOUT_MS)
            errors = page.locator(STDERR).all_text_contents()
            assert not errors, f"{source.name} shows an error or stderr output in JupyterLab:\n{errors[0][-2000:]}"

            # what the kernel produced, as JupyterLab saves it
            menu(page, "File", "Save Notebook")
            code = wait_for_saved_run(copy)
            outputs = [out for c in code for out in c["outputs"]]
            assert not [o for o in outputs if o["output_type"] == "error"]
            assert any("image/png" in o.get("data", {}) for o in outputs), f"no figure among the new outputs: {outputs}"

            figure = page.locator(".jp-NotebookPanel:visible .jp-OutputArea-output img").first
            figure.scroll_into_view_if_needed()
            assert figure.evaluate("img => img.complete && img.naturalWidth > 0"), "the figure did not load"
            page.screenshot(path=str(tmp_path / "run_all.png"))

            # the student edition opens, with its exercise cells and the stored figures
            open_notebook(page, url, token, f"student/{student.name}")
            student_nb = nbformat.read(student, as_version=4)
            panel = page.locator(".jp-NotebookPanel:visible")  # the tab in front
            expect(panel.locator(".jp-Cell")).to_have_count(len(student_nb.cells), timeout=LOAD_TIMEOUT_MS)
            exercises = sum(EXERCISE_TAG in c.metadata.get("tags", []) for c in student_nb.cells)
            expect(panel.locator(".jp-CodeCell .jp-InputArea-editor", has_text="# TODO")).to_have_count(exercises)
            expect(panel.locator(".jp-OutputArea-output img").first).to_be_attached()
            page.screenshot(path=str(tmp_path / "student.png"))
        except BaseException:  # pytest.fail and assertion errors included
            page.screenshot(path=str(tmp_path / "failure.png"))  # what the page showed when the check failed
            raise
        finally:
            context.close()
        assert not elsewhere, f"the page asked for something other than 127.0.0.1: {elsewhere[:5]}"


def test_an_answer_typed_and_saved_in_jupyterlab_is_checked(browser, tmp_path):
    """A student types an answer into the student edition and saves it; `check` still finds and marks it."""
    from tests.test_check import fixture_lesson  # a tiny lesson: exercise 1 is one line of code

    root = tmp_path / "root"
    (root / "notebooks").mkdir(parents=True)
    nbformat.write(fixture_lesson(), root / "notebooks" / "01_tiny.ipynb")
    student = write_student_edition(root / "student", notebooks_dir=root / "notebooks")[0]
    before = student.read_text(encoding="utf-8")
    answer = "total = sum(values) + base"

    with local_jupyter(root, app="lab") as (url, token):
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        page = context.new_page()
        page.set_default_timeout(30_000)
        try:
            open_notebook(page, url, token, f"student/{student.name}")
            panel = page.locator(".jp-NotebookPanel:visible")
            editor = panel.locator(".jp-CodeCell .jp-InputArea-editor", has_text="# TODO").first
            editor.click()
            page.keyboard.press("Control+A")
            page.keyboard.type(answer)
            menu(page, "File", "Save Notebook")
            deadline = time.monotonic() + 30
            while answer not in student.read_text(encoding="utf-8"):
                if time.monotonic() > deadline:
                    pytest.fail("JupyterLab did not save the typed answer")
                time.sleep(0.5)
        except BaseException:
            page.screenshot(path=str(tmp_path / "failure.png"))
            raise
        finally:
            context.close()

    saved = json.loads(student.read_text(encoding="utf-8"))
    assert saved["metadata"][SERIES_METADATA] == json.loads(before)["metadata"][SERIES_METADATA]
    assert [c["metadata"].get("tags") for c in saved["cells"]] == [
        c["metadata"].get("tags") for c in json.loads(before)["cells"]
    ]
    (root / "class" / "li").mkdir(parents=True)
    shutil.copy(student, root / "class" / "li" / student.name)
    with ThreadPoolExecutor(1) as pool:  # playwright's sync API keeps an event loop running in this thread
        [row] = pool.submit(
            check_submissions, [root / "class"], notebooks_dir=root / "notebooks", cell_timeout=30
        ).result()
    assert row.student == "li" and not row.problem
    assert {n: e.status for n, e in row.exercises.items()} == {1: PASSED, 2: NOT_ATTEMPTED, 3: NOT_ANSWERED}


NEWS_PROMPT = "official Jupyter news"
DIRTY_TAB = ".lm-TabBar-tab.jp-mod-dirty"


@contextlib.contextmanager
def project_lab(root: Path, home: Path):
    """``python -m helpers lab ROOT`` in a fresh account (empty Jupyter config and settings) on 127.0.0.1."""
    from helpers.commands.lab import lab_command

    port, token = free_port(), secrets.token_hex(16)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "IPYTHON"))}
    env.update(
        HOME=str(home),
        JUPYTER_CONFIG_DIR=str(home / "config"),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        JUPYTER_DATA_DIR=str(home / "data"),
        JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"),
        IPYTHONDIR=str(home / "ipython"),
    )
    env.pop("MPLBACKEND", None)
    command = lab_command(
        [
            str(root),
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}",
            "--ServerApp.terminals_enabled=False",
            "--allow-root",
        ]
    )
    url = f"http://127.0.0.1:{port}"
    with open(home / "server.log", "wb") as log:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                pytest.fail(
                    f"python -m helpers lab exited with {process.returncode}:\n"
                    + (home / "server.log").read_text(errors="replace")[-3000:]
                )
            try:
                request = urllib.request.Request(f"{url}/api/status", headers={"Authorization": f"token {token}"})
                with urllib.request.urlopen(request, timeout=5):
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    pytest.fail("python -m helpers lab did not answer within 90 s")
                time.sleep(0.5)
        yield url, token
    finally:
        _stop(process)


def test_a_lesson_opens_clean_and_no_news_prompt_appears(browser, tmp_path):
    """Opened with ``python -m helpers lab`` as the README says: once the kernel is idle the lesson is not
    modified, and JupyterLab does not ask about Jupyter news. Controls in the same session show that both
    checks can fail: a copy with the old incomplete metadata turns dirty, and the prompt appears once the
    project's setting is overridden."""
    lesson = list_notebooks()[0]
    root, home = tmp_path / "root", tmp_path / "home"
    (root / "notebooks").mkdir(parents=True)
    home.mkdir()
    shutil.copy(lesson, root / "notebooks" / lesson.name)
    stale = nbformat.read(lesson, as_version=4)
    stale.metadata["language_info"] = {"name": "python", "pygments_lexer": "ipython3"}  # as stored before
    nbformat.write(stale, root / "notebooks" / "stale.ipynb")
    before = (root / "notebooks" / lesson.name).read_bytes()

    with project_lab(root, home) as (url, token):
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        page = context.new_page()
        page.set_default_timeout(30_000)
        try:
            open_notebook(page, url, token, f"notebooks/{lesson.name}")
            page.wait_for_timeout(3000)  # kernel info has arrived; give JupyterLab time to apply it and to prompt
            assert page.locator(DIRTY_TAB).count() == 0, f"{lesson.name} was marked modified when its kernel started"
            assert page.get_by_text(NEWS_PROMPT).count() == 0, "JupyterLab asked about Jupyter news"

            open_notebook(page, url, token, "notebooks/stale.ipynb")  # control: the old metadata turns dirty
            expect(page.locator(DIRTY_TAB, has_text="stale.ipynb")).to_have_count(1)
            expect(page.locator(DIRTY_TAB, has_text=lesson.name)).to_have_count(0)

            # control: with the setting back at JupyterLab's default ("ask"), the prompt does appear
            page.evaluate(
                """async ([url, token]) => {
                const r = await fetch(`${url}/lab/api/settings/@jupyterlab/apputils-extension:notification`, {
                  method: 'PUT', headers: {'Authorization': `token ${token}`, 'Content-Type': 'application/json'},
                  body: JSON.stringify({raw: '{"fetchNews": "none"}'})});
                if (!r.ok) throw new Error(`settings PUT: ${r.status}`);
            }""",
                [url, token],
            )
            page.reload()
            expect(page.get_by_text(NEWS_PROMPT).first).to_be_visible(timeout=LOAD_TIMEOUT_MS)
        except BaseException:
            page.screenshot(path=str(tmp_path / "failure.png"))
            raise
        finally:
            context.close()
    assert (root / "notebooks" / lesson.name).read_bytes() == before
