"""The integrations are optional: ablab imports, loads studies and runs its CLI with Lightning,
transformers and Hydra impossible to import, and the bridges say what to install."""

from __future__ import annotations

import subprocess
import sys
import textwrap

BLOCK = textwrap.dedent(
    """\
    import sys
    BLOCKED = {"lightning", "pytorch_lightning", "transformers", "hydra", "omegaconf"}

    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"blocked: {name}")
            return None

    sys.meta_path.insert(0, Block())
    """
)


def run_py(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", BLOCK + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_ablab_works_without_the_optional_frameworks(tmp_path):
    (tmp_path / "s.toml").write_text(
        'name = "s"\nentry = "e.py:f"\n[metrics]\nm = "max"\n[baseline]\na = 1\n'
        "[ablations]\nb = { a = 2 }\n"
    )
    res = run_py(
        f"""
        import ablab, ablab.integrations
        from ablab.cli.main import main
        study = ablab.Study.load({str(tmp_path / "s.toml")!r})
        assert list(study.spec.variants) == ["baseline", "b"]
        ablab.load(study)
        assert main(["--version"]) == 0
        loaded = BLOCKED & {{m.split(".")[0] for m in sys.modules}}
        assert not loaded, loaded
        for mod, extra in (("lightning", "lightning"), ("transformers", "hf")):
            try:
                __import__("ablab.integrations." + mod)
            except ImportError as e:
                assert f"ablab-toolkit[{{extra}}]" in str(e), e
            else:
                raise AssertionError(mod + " imported without its framework")
        print("ok")
        """
    )
    assert res.returncode == 0 and res.stdout.strip().endswith("ok"), res.stdout + res.stderr


def test_hydra_study_without_hydra_is_a_clear_spec_error(tmp_path):
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "train.yaml").write_text("a: 1\n")
    (tmp_path / "s.toml").write_text(
        'name = "s"\nentry = "e.py:f"\n'
        'baseline = { hydra = { config_path = "conf", config_name = "train" } }\n'
        '[metrics]\nm = "max"\n'
    )
    res = run_py(
        f"""
        from ablab.cli.main import main
        sys.exit(main(["run", {str(tmp_path / "s.toml")!r}]))
        """
    )
    assert res.returncode == 2, res.stdout + res.stderr
    assert "hydra-core is not installed" in res.stderr and "Traceback" not in res.stderr
