"""Card warnings: calibration judged once; Riley's shortfall never contradicts it."""
import numpy as np

from training.development.bootstrap import BootstrapResult
from training.development.card_warnings import card_warnings


def result(B=10):
    return BootstrapResult(apparent={}, optimism={}, optimism_corrected={}, optimism_mean={},
                           optimism_median={}, optimism_corrected_median={}, apparent_boot={},
                           test={}, n_finite={"calibration_slope": B}, fit=None, fits=[], samples=np.zeros((B, 0), int),
                           redraws=np.zeros(B, int), B=B, seed=1)


def entry(slope, median_slope, shortfall=True, edges=0):
    riley = {"shortfall": "78 patients are fewer than the 397 needed for this binary-outcome "
                          "model: overfitting (expected shrinkage below 0.90).",
             "warning": "78 patients are fewer than ... Expect its predictions to be too extreme "
                        "in new patients; treat them as exploratory."} if shortfall else {"warning": None}
    return {"sample_size": riley, "events_per_variable": 11.5, "events": 23, "events_label": "x",
            "features": [1, 2], "coefficients": {},
            "optimism_corrected": {"calibration_slope": slope},
            "optimism_corrected_median": {"calibration_slope": median_slope},
            "tuning": {"tuned": True, "resamples": 10, "edge_resamples": edges}}


def test_over_shrunk_model_is_not_also_called_too_extreme():
    text = " ".join(card_warnings(entry(1.49, 1.00), result(), 10))
    assert "over-shrunk" in text and "too extreme" not in text
    assert "1.49 by the bootstrap mean" in text and "1.00 by the median" in text


def test_too_extreme_model_is_said_once():
    warnings = card_warnings(entry(0.62, 0.65), result(), 10)
    assert sum("too extreme" in w for w in warnings) == 1
    assert not any("median" in w for w in warnings)  # 0.03 apart: not material


def test_calibrated_model_gets_the_shortfall_and_its_slope():
    warnings = card_warnings(entry(1.05, 1.02), result(), 10)
    assert any("fewer than the 397" in w and "(1.05) is within 0.8-1.25" in w for w in warnings)
    assert not any("over-shrunk" in w or "too extreme" in w for w in warnings)


def test_grid_edges_in_more_than_one_percent_of_resamples_are_warned():
    assert any("end of its grid" in w for w in card_warnings(entry(1.0, 1.0, edges=1), result(), 10))
    assert not any("end of its grid" in w for w in card_warnings(entry(1.0, 1.0), result(), 10))
