import re

from ablab.report import render
from ablab.report.html_parts import SCRIPT, script_hash

from .conftest import EVIL, EVIL_IMG


def page(study, **kw):
    return render(
        study["result"],
        "html",
        runs=study["runs"],
        series=study["series"],
        provenance=study["provenance"],
        verifications=study["verifications"],
        **kw,
    )


def test_html_is_self_contained_and_deterministic(study):
    html = page(study)
    assert html == page(study)
    assert html.startswith("<!DOCTYPE html>")
    # no external resource of any kind
    assert not re.search(r'(src|href)\s*=\s*"(https?:)?//', html)
    assert "<link" not in html and "@import" not in html and "url(http" not in html
    assert html.count("<script") == 1 and SCRIPT in html
    assert f"script-src {script_hash()}" in html and "default-src 'none'" in html


def test_every_user_string_is_escaped(study):
    html = page(study)
    assert EVIL not in html and EVIL_IMG not in html
    assert "&lt;script&gt;window.__pwned=1;alert(1)&lt;/script&gt;" in html
    assert "Test CPU &lt;b&gt;x&lt;/b&gt;" in html  # provenance strings too
    # the only <script> element is ours, at the end of the body
    assert html.index("<script>") > html.index("</main>")


def test_sections_and_plots_present(study):
    html = page(study)
    for sid in (
        "summary",
        "results",
        "forest",
        "seeds",
        "curves",
        "sensitivity",
        "verifications",
        "checklist",
        "provenance",
    ):
        assert f'<section id="{sid}">' in html, sid
    svgs = re.findall(r"<svg ", html)
    # 2 forest + 2 strip + 1 learning curve + 1 CI-width plot
    assert len(svgs) == 6
    ids = re.findall(r'\sid="([^"]+)"', html)
    assert len(ids) == len(set(ids)), "element ids must be unique across inline SVGs"
    assert 'class="sortable results"' in html
    assert "Mean runtime per run" in html and "4.5 s over 36 runs" in html


def test_factorial_sections(factorial_study):
    html = render(factorial_study["result"], "html", runs=factorial_study["runs"])
    assert '<section id="effects">' in html and "ANOVA" in html and "Shapley values" in html
    assert "Interaction matrix" in html and "Interaction plots" in html
    assert html.count("<svg ") == 2 + 2 + 1 + 1 + 1  # forest, strip, interaction, Shapley, CI width
    assert 'aria-label="interaction of augment and loss"' in html


def test_minimal_result_renders_without_extras(study):
    html = render(study["result"], "html")
    assert '<section id="seeds">' not in html and '<section id="provenance">' not in html
    assert "not recorded" in html  # checklist says what is missing


def test_provenance_reads_like_a_record(study):
    """Timestamps in ISO 8601, the command as a shell command, no 'None' for a missing git
    state, the package list folded away, mean runtime from the recorded wall time, counts
    with thousands separators (issue 16)."""
    from ablab.report._fmt import num

    runs = study["runs"].rename(columns={"wall_s": "wall_seconds"})
    prov = {
        "python": "3.11.7",
        "recorded_at": 1796220278.97,
        "command": ["/x/.venv/bin/ablab", "run", "my study.toml"],
        "git": None,
        "packages": {f"pkg{i}": f"1.{i}" for i in range(104)},
    }
    html = render(study["result"], "html", runs=runs, provenance=prov)
    assert "2026-12-02T" in html and "1.7962e+09" not in html
    assert "ablab run &#x27;my study.toml&#x27;" in html
    assert "not a git repository" in html and ">None<" not in html
    assert "<details><summary>104 installed packages</summary>" in html
    assert "not recorded" not in html.split("Mean runtime per run", 1)[1][:200]
    assert num(205_000.0) == "205,000" and num(3.0) == "3" and num(0.12345) == "0.1235"


def test_plots_keep_ticks_apart_and_legends_off_the_data(study):
    """Forest plot: at most 6 x ticks (long labels never overlap); learning curves: the legend
    sits right of the axes, outside the data area (issue 16)."""
    from ablab.report import plots

    fig = plots.forest_plot(study["result"], "acc")
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig).draw()
    ax = fig.axes[0]
    assert len(ax.get_xticks()) <= 7
    boxes = [t.get_window_extent() for t in ax.get_xticklabels() if t.get_text()]
    assert all(a.x1 <= b.x0 for a, b in zip(boxes, boxes[1:], strict=False))
    assert "vs the baseline" in ax.get_xlabel()
    fig = plots.learning_curves(study["series"], study["result"], "val_acc")
    FigureCanvasAgg(fig).draw()
    ax = fig.axes[0]
    legend = ax.get_legend().get_window_extent()
    assert legend.x0 >= ax.get_window_extent().x1
