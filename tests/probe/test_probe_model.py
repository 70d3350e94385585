import json

import numpy as np
import pytest
import torch

from ablab import data
from ablab.errors import AblabError, DataError
from ablab.probe import FeatureCache, probe_model

from .conftest import SMALL, small_cnn


@pytest.fixture(scope="module")
def report(trained_cnn, id_data, ood_sets):
    return probe_model(trained_cnn, id_data, ood_sets)


def test_report_layers_accuracies_and_metrics(report, id_data):
    assert report.layers == ["0", "3", "6"]
    assert report.id_acc.shape == (3,) and (report.id_acc > 0.8).all()
    assert set(report.ood) == {"fonts", "letters"}
    assert report.n_classes_ood == {"fonts": 10, "letters": 26}
    assert (report.ood["letters"] > 1 / 26).all()  # new classes probed with a new head
    s = report.summary()
    assert s["r"] == pytest.approx(np.mean([report.r["fonts"], report.r["letters"]]))
    assert s["r/fonts"] == pytest.approx(100 * report.ood["fonts"][-1] / report.ood["fonts"].max())
    assert s["A/letters"] == pytest.approx(
        (report.id_acc[-1] - 0.1) * (report.ood["letters"][-1] - 1 / 26)
    )
    assert report.tunnel_strength in {"negligible", "weak", "medium", "strong"}
    assert (report.numerical_rank >= 1).all() and (report.nc1 > 0).all()


def test_frame_json_and_plot(report, tmp_path):
    df = report.to_frame()
    assert list(df["layer"]) == report.layers
    assert {"id_acc", "ood_acc[fonts]", "ood_acc[letters]", "numerical_rank", "nc1"} <= set(df)
    d = json.loads(report.to_json(tmp_path / "r.json"))
    assert d["layers"] == report.layers and (tmp_path / "r.json").exists()
    assert d["r"]["fonts"] == pytest.approx(report.r["fonts"])
    report.plot(tmp_path / "plot")
    png, svg = tmp_path / "plot.png", tmp_path / "plot.svg"
    assert png.read_bytes()[:4] == b"\x89PNG" and b"<svg" in svg.read_bytes()[:500]


def test_deterministic_and_trained_beats_random(trained_cnn, id_data, ood_sets, report):
    again = probe_model(trained_cnn, id_data, ood_sets)
    assert np.array_equal(again.id_acc, report.id_acc)
    torch.manual_seed(1)
    rand = probe_model(small_cnn(), id_data, {"fonts": ood_sets["fonts"]})
    assert rand.id_acc[-1] < report.id_acc[-1]


def test_names_resolve_through_registry(trained_cnn):
    rep = probe_model(trained_cnn, "glyphs-digits", "corrupt-noise,glyphs-heldout-fonts",
                      layers=["3"], data_options=SMALL)  # fmt: skip
    assert rep.layers == ["3"] and list(rep.ood) == ["corrupt-noise", "glyphs-heldout-fonts"]


def test_disk_cache_reuses_extraction(trained_cnn, id_data, ood_sets, tmp_path):
    cache = FeatureCache(tmp_path)
    a = probe_model(trained_cnn, id_data, {"fonts": ood_sets["fonts"]}, cache=cache)
    assert cache.misses == 4 and cache.hits == 0
    b = probe_model(
        trained_cnn, id_data, {"fonts": ood_sets["fonts"]}, cache=FeatureCache(tmp_path)
    )
    assert np.allclose(a.id_acc, b.id_acc, atol=0.03)  # float16 storage
    assert len(list(tmp_path.glob("*/meta.json"))) == 4


def test_logistic_method(trained_cnn, id_data, ood_sets, report):
    lg = probe_model(trained_cnn, id_data, {"fonts": ood_sets["fonts"]}, method="logistic")
    assert np.abs(lg.id_acc - report.id_acc).max() < 0.1


def test_bad_inputs(trained_cnn, id_data):
    one = data.Dataset("one", id_data.x_train, np.zeros_like(id_data.y_train),
                       id_data.x_test, np.zeros_like(id_data.y_test), ("0",))  # fmt: skip
    with pytest.raises(DataError, match="single class"):
        probe_model(trained_cnn, id_data, {"one": one})
    with pytest.raises(DataError, match="no test split"):
        probe_model(trained_cnn, id_data, [(id_data.x_train, id_data.y_train)])
    with pytest.raises(AblabError, match="available"):
        probe_model(trained_cnn, id_data, "glyphs-heldout-fonts", layers=["conv9"],
                    data_options=SMALL)  # fmt: skip
    with pytest.raises(DataError, match="cannot take inputs"):
        probe_model(trained_cnn, "glyphs-digits", "glyphs-heldout-fonts",
                    data_options={**SMALL, "resolution": 20})  # fmt: skip
    with pytest.raises(DataError, match="unknown dataset"):
        probe_model(trained_cnn, id_data, "glyph-fonts")


def test_default_method_is_lda_logistic_and_ridge_stays_available(
    trained_cnn, id_data, ood_sets, report
):
    assert report.meta["method"] == "lda-logistic"
    ridge = probe_model(trained_cnn, id_data, {"fonts": ood_sets["fonts"]}, method="ridge")
    assert ridge.meta["method"] == "ridge"
    assert np.abs(ridge.id_acc - report.id_acc).max() < 0.1
    with pytest.raises(DataError, match="lda-logistic, ridge, lda, logistic"):
        probe_model(trained_cnn, id_data, {"fonts": ood_sets["fonts"]}, method="svm")
