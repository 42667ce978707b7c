"""The simulation studies: cohorts drawn where every patient's true risk is known.

``dgp`` is the reconstruction's data-generating process, ``study`` the pre-registered fitting-method
study (``cart-risk simulate``, docs/method-selection.md), ``tables`` its summaries and figure,
``monte_carlo`` the Monte Carlo standard errors; ``feature_sets`` the feature-set candidates of the
study, ``truths`` the step and smooth true-risk processes, ``coverage`` the direct coverage study of
the shipped intervals and ``coverage_tables`` its published tables (Amendment 4). Imports the layers below it.
"""
