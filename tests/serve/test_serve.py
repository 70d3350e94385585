"""`ablab serve`: the API and its security in process (Starlette's TestClient), and the live
pages in real headless Chromium against the real command while a study runs."""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time

import pytest

EVIL = "<img src=x onerror=alert(1)>[/data/train.csv]"


@pytest.fixture(scope="module")
def done_study(tmp_path_factory, tools):
    root = tmp_path_factory.mktemp("served")
    path = tools.write_study(
        root,
        variants={"wide": {"hidden": 8}, "broken": {"mode": "raise"}},
        seeds=2,
        baseline={**tools.BASELINE, "note": EVIL},
    )
    res = tools.cli("run", path, "-j", "2", "--quiet", cwd=root)
    assert res.returncode == 1, res.stderr  # the broken variant fails
    return root


def _client(stores, **kw):
    from starlette.testclient import TestClient

    from ablab.serve import make_app

    return TestClient(make_app(stores, **kw), base_url="http://127.0.0.1")


def test_api_lists_studies_runs_and_analysis(done_study):
    c = _client([done_study / ".ablab"])
    studies = c.get("/api/studies").json()
    assert [s["name"] for s in studies] == ["tiny"]
    s = studies[0]
    assert s["id"] == "0-1" and s["revision"] == "main"
    assert s["counts"] == {"pending": 0, "running": 0, "done": 4, "failed": 2, "interrupted": 0}
    runs = c.get("/api/studies/0-1/runs").json()
    assert len(runs) == 6 and {r["variant"] for r in runs} == {"baseline", "wide", "broken"}
    analysis = c.get("/api/studies/0-1/analysis").json()
    assert analysis["study"] == "tiny" and analysis["primary_metric"] == "score"
    key = next(r["key"] for r in runs if r["status"] == "done")
    run = c.get(f"/api/runs/0-1/{key}").json()
    assert run["config"]["note"] == EVIL and run["series"]
    # pages render and escape the hostile value
    page = c.get(f"/r/0-1/{key}")
    assert page.status_code == 200 and EVIL not in page.text
    assert "&lt;img src=x onerror=alert(1)&gt;[/data/train.csv]" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    for url in ("/", "/s/0-1", "/s/0-1/report", "/compare?a=0-1&b=0-1", "/static/app.js"):
        assert c.get(url).status_code == 200, url


def test_paths_methods_hosts_are_guarded(done_study):
    c = _client([done_study / ".ablab"])
    for bad in ("/s/..%2F..%2Fetc", "/s/0-99", "/s/7-1", "/r/0-1/../../x", "/r/0-1/ZZZ",
                "/static/..%2Fapp.py", "/api/runs/0-1/deadbeef"):  # fmt: skip
        assert c.get(bad).status_code == 404, bad
    for method in ("post", "put", "delete", "patch"):
        r = getattr(c, method)("/api/studies")
        assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD"
    assert c.get("/", headers={"Host": "evil.example"}).status_code == 400  # DNS rebinding


def test_token_is_required_when_given(done_study):
    token = "t" * 24
    c = _client([done_study / ".ablab"], token=token, hosts=["*"])
    assert c.get("/api/studies").status_code == 401
    assert (
        c.get("/api/studies", headers={"Authorization": "Bearer wrong-token-xxxxxx"}).status_code
        == 401
    )
    assert c.get("/api/studies", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    r = c.get(f"/s/0-1?token={token}", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/s/0-1"
    assert c.get("/s/0-1").status_code == 200  # the cookie set by the redirect


def test_cli_refuses_other_addresses_without_a_token_and_missing_stores(tmp_path, cli):
    code, _, err = cli("serve", "--store", tmp_path / "nothing")
    assert code == 2 and "no ablab store here" in err
    code, _, err = cli("serve", "--store", tmp_path, "--host", "0.0.0.0", "--token", "short")
    assert code == 2 and "at least 16 characters" in err


@pytest.mark.slow
def test_api_under_concurrent_drivers(tmp_path, tools, drivers):
    path = tools.write_study(tmp_path, variants={f"v{i}": {"hidden": 5 + i} for i in range(3)},
                             seeds=3, baseline={**tools.BASELINE, "steps": 30})  # fmt: skip
    a = drivers.start("run", path, "-j", "1", "--quiet", cwd=tmp_path)
    b = drivers.start("run", path, "-j", "1", "--quiet", cwd=tmp_path)
    tools.wait_for(lambda: (tmp_path / ".ablab" / "ablab.db").exists(), what="the store")
    c = _client([tmp_path / ".ablab"])
    seen, errors = [], []

    def hammer():
        while a.poll() is None or b.poll() is None:
            r = c.get("/api/studies")
            if r.status_code != 200:
                errors.append(r.status_code)
            elif r.json():
                seen.append(r.json()[0]["counts"]["done"])
            c.get("/s/0-1/progress")

    t = threading.Thread(target=hammer)
    t.start()
    assert a.wait(timeout=300) == 0 and b.wait(timeout=300) == 0
    t.join()
    assert not errors and seen and seen == sorted(seen)  # progress only moves forward
    assert c.get("/api/studies").json()[0]["counts"]["done"] == 12
    assert sorted(tools.starts(tmp_path)) == sorted(set(tools.starts(tmp_path)))  # each run once


@pytest.mark.slow
@pytest.mark.browser
def test_live_page_in_chromium(tmp_path, tools, drivers, browser):
    path = tools.write_study(tmp_path, variants={"wide": {"hidden": 8}}, seeds=2,
                             baseline={**tools.BASELINE, "mode": "gate", "note": EVIL})  # fmt: skip
    drivers.start("run", path, "-j", "2", "--quiet", cwd=tmp_path)
    tools.wait_for(lambda: len(tools.starts(tmp_path)) >= 2, timeout=120, what="runs to start")
    server = subprocess.Popen(
        [str(tools.ABLAB), "serve", str(path), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
    )  # fmt: skip
    try:
        url = None
        for line in server.stdout:
            m = re.search(r"http://127\.0\.0\.1:\d+/", line)
            if m:
                url = m.group(0)
                break
        assert url, server.stderr.read()
        page = browser.new_page()
        log = {"console": [], "requests": [], "dialogs": []}
        page.on("console", lambda m: m.type == "error" and log["console"].append(m.text))
        page.on("pageerror", lambda e: log["console"].append(str(e)))
        page.on("request", lambda r: log["requests"].append(r.url))
        page.on(
            "response", lambda r: r.status >= 400 and log["console"].append(f"{r.status} {r.url}")
        )
        page.on("dialog", lambda d: (log["dialogs"].append(d.message), d.dismiss()))
        page.goto(url)
        page.click("text=tiny")
        assert page.url.endswith("/s/0-1")
        assert int(page.text_content("#count-running")) >= 1
        assert page.text_content("#count-done") == "0"
        (tmp_path / "open").write_text("")  # let the runs finish; the page follows by itself
        tools.wait_for(lambda: len(tools.store_runs(tmp_path)) == 4 and all(
            r["status"] == "done" for r in tools.store_runs(tmp_path)), timeout=240,
            interval=0.2, what="the study to finish")  # fmt: skip
        finished = time.monotonic()
        tools.wait_for(lambda: page.text_content("#count-done") == "4", timeout=10, interval=0.1,
                       what="the page to show 4 done runs")  # fmt: skip
        latency = time.monotonic() - finished
        page.wait_for_selector("#analysis table", timeout=30_000)  # the analysis appeared live
        assert latency < 5, f"the page took {latency:.1f} s to show the finished study"
        # keyboard: Tab to a run link in the runs table, Enter opens the run
        for _ in range(60):
            page.keyboard.press("Tab")
            if (page.evaluate("document.activeElement.id") or "").startswith("run-"):
                break
        else:
            raise AssertionError("no run link reachable with Tab")
        page.keyboard.press("Enter")
        page.wait_for_url(re.compile(r".*/r/0-1/[0-9a-f]+$"))
        assert EVIL in page.text_content("main")  # the hostile value shown as text
        assert page.locator("img[src=x]").count() == 0
        assert not log["console"], log["console"]
        assert not log["dialogs"]
        assert all(u.startswith(url) for u in log["requests"]), log["requests"]
        json.loads(page.evaluate(f"fetch('{url}api/studies').then(r => r.text())"))
    finally:
        server.terminate()
        server.wait(timeout=30)
