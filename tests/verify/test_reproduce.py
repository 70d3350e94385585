import json
import sqlite3

from ablab.cli.main import main


def _run(study, *args):
    return main(["run", str(study), "-j", "2", "-q", *args])


def _json(capsys, argv):
    capsys.readouterr()
    rc = main(argv)
    return rc, json.loads(capsys.readouterr().out)


def test_reproduce_bit_identical_then_planted_nondeterminism(vstudy, capsys):
    assert _run(vstudy) == 0
    rc, res = _json(capsys, ["reproduce", str(vstudy), "--variant", "baseline", "--json"])
    assert rc == 0
    assert [r["verdict"] for r in res] == ["reproduced (bit-identical)"] * 2
    assert all(r["metrics"]["identical"] and r["series"]["identical"] for r in res)
    rc, res = _json(
        capsys, ["reproduce", str(vstudy), "--variant", "noisy", "--seed", "0", "--json"]
    )
    assert rc == 1
    assert res[0]["verdict"] == "differs"
    assert any("non-determinism" in c for c in res[0]["causes"])
    # the original run's record is untouched
    capsys.readouterr()
    main(["runs", str(vstudy), "--format", "json"])
    runs = json.loads(capsys.readouterr().out)
    assert all(r["status"] == "done" for r in runs)


def test_reproduce_by_key_and_verification_shown(vstudy, capsys):
    assert _run(vstudy) == 0
    capsys.readouterr()
    main(["runs", str(vstudy), "--format", "json"])
    key = json.loads(capsys.readouterr().out)[0]["key"]
    rc, res = _json(capsys, ["reproduce", key, "--store", str(vstudy.parent / ".ablab"), "--json"])
    assert rc == 0 and res[0]["key"] == key
    rc, shown = _json(capsys, ["show", key, "--study", str(vstudy), "--json"])
    assert shown["verifications"][0]["verdict"] == "reproduced (bit-identical)"
    capsys.readouterr()
    main(["report", str(vstudy), "--format", "json"])
    report = json.loads(capsys.readouterr().out)
    assert report["verification"].startswith("1 of 1 verified runs reproduced bit-identically")


def test_data_change_is_reported(vstudy, capsys):
    assert _run(vstudy) == 0
    (vstudy.parent / "data.txt").write_text("1 2 4\n")
    rc, res = _json(
        capsys, ["reproduce", str(vstudy), "--variant", "baseline", "--seed", "0", "--json"]
    )
    assert rc == 1
    assert res[0]["data"]["changed"] == ["data_file"]
    assert res[0]["causes"][0].startswith("data changed: data_file")


def test_environment_difference_is_reported(vstudy, capsys):
    assert _run(vstudy) == 0
    db = vstudy.parent / ".ablab" / "ablab.db"
    con = sqlite3.connect(db)
    rows = con.execute("SELECT id, data FROM environments").fetchall()
    for i, data in rows:
        env = json.loads(data)
        env["packages"]["numpy"] = "0.0.1"
        env["python"] = "3.0.0"
        con.execute("UPDATE environments SET data = ? WHERE id = ?", (json.dumps(env), i))
    con.commit()
    con.close()
    rc, res = _json(
        capsys, ["reproduce", str(vstudy), "--variant", "baseline", "--seed", "1", "--json"]
    )
    env = res[0]["environment"]
    assert {"what": "python", "recorded": "3.0.0", "now": env["differences"][0]["now"]} in env[
        "differences"
    ]
    assert any(p["package"] == "numpy" and p["recorded"] == "0.0.1" for p in env["packages"])
    # same numbers despite the drift: still reproduced
    assert rc == 0 and res[0]["verdict"] == "reproduced (bit-identical)"
    main(["reproduce", str(vstudy), "--variant", "noisy", "--seed", "1"])
    out = capsys.readouterr().out
    assert "environment python: 3.0.0" in out and "environment drift" in out


def test_check_determinism(vstudy, capsys):
    rc, res = _json(capsys, ["check-determinism", str(vstudy), "--json"])
    assert rc == 0 and res["deterministic"] is True
    rc, res = _json(capsys, ["check-determinism", str(vstudy), "--variant", "noisy", "--json"])
    assert rc == 1 and res["deterministic"] is False
    assert res["first_metric"]["metric"] == "score"
    assert any("unseeded" in c for c in res["checklist"])
    assert main(["check-determinism", str(vstudy), "--variant", "nosuch"]) == 2


def test_reproduce_sample_one_per_variant(vstudy, capsys):
    assert _run(vstudy) == 0
    rc, res = _json(capsys, ["reproduce", str(vstudy), "--sample", "2", "--json"])
    assert sorted(r["variant"] for r in res) == ["baseline", "noisy"]
    rc2, res2 = _json(capsys, ["reproduce", str(vstudy), "--sample", "2", "--json"])
    assert [r["key"] for r in res] == [r["key"] for r in res2]  # sampled reproducibly
