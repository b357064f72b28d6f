"""The surface's figures: PNGs that decode, with content, from a real fit's surface.json."""

from __future__ import annotations

import io
import json

import matplotlib.image as mpimg
import numpy as np
import pytest

from popmix.analysis.surface_figures import MAX_SLICES, surface_figures, write_surface_plots
from popmix.analysis.swarm_fit import fit_surface


@pytest.fixture(scope="module")
def surface():
    rng = np.random.default_rng(0)
    k = 4
    t = np.diag(-rng.uniform(2, 4, k)) + rng.normal(0, 0.3, (k, k))
    w = rng.dirichlet(np.ones(k), size=20)
    y = 2.0 + np.exp(w @ t.T) + rng.normal(0, 0.005, (20, k))
    s = fit_surface(w, y, [f"d{i}" for i in range(k)], n_boot=10, seed=0)
    # through JSON and with the keys the search adds, as surface.json holds it
    return {**json.loads(json.dumps(s.to_dict())), "seed": 0, "runs": 20}


def _decoded(png):
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = mpimg.imread(io.BytesIO(png), format="png")
    assert pixels.ndim == 3 and pixels.shape[0] > 200 and pixels.shape[1] > 400
    return pixels[..., :3]


def test_figures_decode_and_are_not_blank(surface, tmp_path):
    figures = surface_figures(surface)
    assert [n for n, _ in figures] == ["surface_sensitivity.png", "surface_slices.png"]
    for _, png in figures:
        rgb = _decoded(png)
        # drawn: many pixels are neither white nor one flat colour
        assert (rgb.min(axis=2) < 0.9).mean() > 0.02
        assert len(np.unique(rgb.reshape(-1, 3), axis=0)) > 50
    paths = write_surface_plots(surface, tmp_path / "surface" / "seed0")
    assert [p.name for p in paths] == ["surface_sensitivity.png", "surface_slices.png"]
    assert paths[0].read_bytes() == figures[0][1]


def test_many_domains_draw_the_largest_effects_and_bad_input_is_one_line(surface):
    names = [f"d{i}" for i in range(20)]
    big = dict(surface)
    big["names"] = names
    for key in ("optimum", "sensitivity", "curvature"):
        big[key] = [0.05] * 20
    for key in ("optimum_ci", "sensitivity_ci", "curvature_ci"):
        big[key] = [[0.04, 0.06]] * 20
    one = surface["slices"]["d0"]
    big["slices"] = {n: one for n in names}
    rgb = _decoded(dict(surface_figures(big))["surface_slices.png"])
    assert rgb.shape[0] < 1200  # a 4 x 4 grid, not 5 rows
    assert MAX_SLICES == 16
    with pytest.raises(ValueError, match="not a swarm surface") as err:
        surface_figures({"format": "popmix-summary/1"})
    assert "\n" not in str(err.value)
