"""The audit estimators stored in ``estimators.joblib``: refits by scikit-learn / lifelines.

A ridge or unpenalized fit is refitted independently at the chosen penalty, so the report's audit
table compares two implementations. Heuristic shrinkage is the maximum likelihood refit with the
shrinkage factor applied to its coefficients (the logistic intercept re-estimated by our solver),
so the table checks the maximum likelihood part. Firth's estimate has no scikit-learn or lifelines
implementation: the estimator is the maximum likelihood refit carrying the Firth coefficients, and
the manifest says so (``penalty.equivalent``).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from training.fitting import cox, logistic

LOGISTIC_EQUIVALENT = {
    "aic_ridge": "scikit-learn LogisticRegression(C=1/lambda, l1_ratio=0) on the standardized columns",
    "cv_ridge": "scikit-learn LogisticRegression(C=1/lambda, l1_ratio=0) on the standardized columns",
    "mle": "scikit-learn LogisticRegression(C=inf) on the standardized columns",
    "heuristic_shrinkage": ("scikit-learn LogisticRegression(C=inf) on the standardized columns, "
                            "coefficients x the shrinkage factor, intercept re-estimated"),
    "firth": ("no scikit-learn equivalent: the stored estimator is the C=inf refit carrying the "
              "Firth coefficients"),
    "heuristic_shrinkage_fallback": ("scikit-learn LogisticRegression(C=inf) on the standardized "
                                     "columns carrying the shrunken coefficients (Firth's under "
                                     "separation) and the re-estimated intercept"),
    "firth_heuristic_shrinkage": ("no scikit-learn equivalent: the stored estimator is the C=inf "
                                  "refit carrying the shrunken Firth coefficients"),
    "bootstrap_shrinkage": ("scikit-learn LogisticRegression(C=inf) on the standardized columns, "
                            "coefficients x the bootstrap shrinkage factor, intercept re-estimated"),
}
COX_EQUIVALENT = {
    "aic_ridge": ("lifelines CoxPHFitter(penalizer=lambda/n, l1_ratio=0) on the standardized "
                  "columns; Efron ties"),
    "cv_ridge": ("lifelines CoxPHFitter(penalizer=lambda/n, l1_ratio=0) on the standardized "
                 "columns; Efron ties"),
    "mle": "lifelines CoxPHFitter(penalizer=0) on the standardized columns; Efron ties",
    "heuristic_shrinkage": ("lifelines CoxPHFitter(penalizer=0) on the standardized columns, "
                            "coefficients x the shrinkage factor; Efron ties"),
    "firth": ("no lifelines equivalent: the stored estimator is the unpenalized refit carrying the "
              "Firth coefficients"),
}


def logistic_estimator(fit: logistic.LogisticFit, X: np.ndarray, y: np.ndarray):
    """scikit-learn estimator of ``fit`` (see the module docstring)."""
    if fit.method in ("aic_ridge", "cv_ridge", "mle"):
        return logistic.to_sklearn(fit, X, y)
    model = logistic.to_sklearn(replace(fit, lam=0.0), X, y)
    if fit.method in ("heuristic_shrinkage", "bootstrap_shrinkage"):
        model.coef_ = model.coef_ * fit.shrinkage
    else:
        model.coef_ = fit.coef[None, :].copy()
    model.intercept_ = np.array([fit.intercept])
    return model


def cox_estimator(fit: cox.CoxFit, X: np.ndarray, time: np.ndarray, event: np.ndarray, names):
    """lifelines estimator of ``fit`` (see the module docstring)."""
    if fit.method in ("aic_ridge", "cv_ridge", "mle"):
        estimator = cox.fit_lifelines(fit, X, time, event, names=names)
    else:
        estimator = cox.fit_lifelines(replace(fit, lam=0.0), X, time, event, names=names)
        if fit.method == "heuristic_shrinkage":
            estimator.params_ = estimator.params_ * fit.shrinkage
        else:
            estimator.params_ = estimator.params_ * 0.0 + fit.coef[fit.active]
    # lifelines stamps the wall-clock time of the fit; the bundle's own `created` says when it was
    # trained, and without the stamp identical runs give byte-identical estimator files.
    for fitted in (estimator, getattr(estimator, "_model", None)):
        if fitted is not None:
            fitted._time_fit_was_called = "see manifest.json: created"
    return estimator
