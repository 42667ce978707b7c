"""How coefficients are estimated: penalized logistic and Cox likelihoods on one ridge path.

``newton`` is the shared solver, ``ridge`` and ``tuning`` the penalty and its grid, ``logistic`` and
``cox`` the two likelihoods, ``firth`` Firth's correction, ``recalibration`` unpenalized fits with an
offset. The bottom layer: imports nothing else of ``training``.
"""
