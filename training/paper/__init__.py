"""The paper: Li et al.'s published statistics, their analyses re-run, and the cohort rebuilt from them.

``analyses`` computes every published statistic with the paper's own test; ``derivations`` the counts
those numbers determine; ``assumptions``, ``reconstruction``, ``survival_search`` and ``t_test_tuning``
build a 78-patient cohort that reproduces them; ``ensemble`` many such cohorts. Imports nothing else
of ``training``.
"""
