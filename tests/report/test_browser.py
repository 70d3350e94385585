"""The HTML report opened in real headless Chromium (Debian ``chromium`` via Playwright).

Never silently skipped in CI: without /usr/bin/chromium these tests fail when ``CI`` is set
(`make test` installs the package with apt-get when run as root)."""

import pytest

from ablab.report import render

from .conftest import EVIL, EVIL_IMG

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def opened(browser, study, tmp_path_factory):
    """The full report loaded in a page, with console errors, dialogs and requests recorded."""
    path = tmp_path_factory.mktemp("html") / "report.html"
    path.write_text(
        render(
            study["result"],
            "html",
            runs=study["runs"],
            series=study["series"],
            provenance=study["provenance"],
            verifications=study["verifications"],
        ),
        encoding="utf-8",
    )
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    log = {"console": [], "dialogs": [], "requests": []}
    page.on("console", lambda m: log["console"].append((m.type, m.text)))
    page.on("pageerror", lambda e: log["console"].append(("pageerror", str(e))))
    page.on("dialog", lambda d: (log["dialogs"].append(d.message), d.dismiss()))
    page.on("request", lambda r: log["requests"].append(r.url))
    page.goto(path.as_uri(), wait_until="load")
    yield page, log, path
    page.close()


def test_no_console_errors_and_no_network(opened):
    page, log, path = opened
    assert [m for m in log["console"] if m[0] in ("error", "pageerror", "warning")] == []
    assert log["requests"] == [path.as_uri()]  # the file itself and nothing else


def test_plots_present_and_screenshot(opened, tmp_path):
    page, _, _ = opened
    assert page.locator("#forest svg").count() == 2
    assert page.locator("#seeds svg").count() == 2
    assert page.locator("#curves svg").count() == 1
    box = page.locator("#forest svg").first.bounding_box()
    assert box["width"] > 200 and box["height"] > 100  # rendered, not collapsed
    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 20_000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def column(page, table, col):
    return page.eval_on_selector_all(
        f"{table} tbody tr", f"rows => rows.map(r => r.cells[{col}].getAttribute('data-v'))"
    )


def test_sorting_works(opened):
    page, _, _ = opened
    table = "#results-0"
    mean_col = 2
    header = page.locator(f"{table} thead th").nth(mean_col)
    header.click()
    asc = [float(x) for x in column(page, table, mean_col)]
    assert asc == sorted(asc) and len(asc) == 6
    assert header.get_attribute("aria-sort") == "ascending"
    header.click()
    desc = [float(x) for x in column(page, table, mean_col)]
    assert desc == sorted(desc, reverse=True)
    # text column, and the baseline's empty delta stays last in both directions
    page.locator(f"{table} thead th").nth(7).click()
    deltas = column(page, table, 7)
    assert deltas[-1] is None and [float(x) for x in deltas[:-1]] == sorted(
        float(x) for x in deltas[:-1]
    )
    page.locator(f"{table} thead th").nth(0).press("Enter")  # keyboard sorting
    names = page.eval_on_selector_all(
        f"{table} tbody tr", "rs => rs.map(r => r.cells[0].innerText)"
    )
    assert [n.lower() for n in names] == sorted(n.lower() for n in names)


def test_hostile_names_render_as_text_and_run_nothing(opened):
    page, log, _ = opened
    assert log["dialogs"] == []
    assert page.evaluate("window.__pwned === undefined")
    text = page.inner_text("#results-0")
    assert EVIL in text and EVIL_IMG in text
    assert page.locator("#results img").count() == 0
    assert page.title().startswith("demo <script>")
    assert EVIL in page.inner_text("header h1")
