# Reference values for tests/test_ensemble_validation.py: the optimism bootstrap of one ensemble
# member's CR model, (1) recomputed on the very resamples our code drew, and (2) by rms::validate.
# Data: tests/reference/ensemble_member0_cr.csv (member 0 of training/data/ensemble, the CR model's
# columns); resamples: tests/reference/ensemble_member0_resamples.csv, one resample per line
# (1-based rows), the 200 draws of optimism_bootstrap(seed = 20170201) for this model.
# Both written by tests/reference/ensemble_member_inputs.py.
# Run from the repository root:  Rscript tests/reference/ensemble_member_validation.R
# Produced with R 4.2.2 Patched (2022-11-10 r83330), rms 6.5.0, Hmisc (Debian r-cran-hmisc),
# survival 3.5.3; seeds of (2): set.seed(1) .. set.seed(5).
suppressPackageStartupMessages({library(rms)})
options(digits = 15)
d <- read.csv("tests/reference/ensemble_member0_cr.csv")
rows <- as.matrix(read.csv("tests/reference/ensemble_member0_resamples.csv", header = FALSE))
ctl <- glm.control(epsilon = 1e-14, maxit = 100)
metrics <- function(fit, data) {
  p <- predict(fit, newdata = data, type = "response")
  lp <- qlogis(pmin(pmax(p, 1e-12), 1 - 1e-12))
  slope <- coef(glm(data$cr ~ lp, family = binomial, control = ctl))[2]
  c(C = unname(somers2(p, data$cr)["C"]), slope = unname(slope))
}
# (1) Efron-Gong optimism on the given resamples, maximum likelihood refits (glm).
original <- glm(cr ~ log10_blasts + age_years, binomial, d, control = ctl)
apparent <- metrics(original, d)
diffs <- t(sapply(seq_len(nrow(rows)), function(b) {
  r <- d[rows[b, ], ]
  fit <- suppressWarnings(glm(cr ~ log10_blasts + age_years, binomial, r, control = ctl))
  metrics(fit, r) - metrics(fit, d)
}))
corrected <- apparent - colMeans(diffs)
cat("same_resamples apparent_C", apparent["C"], "apparent_slope", apparent["slope"], "\n")
cat("same_resamples corrected_C", corrected["C"], "corrected_slope", corrected["slope"], "\n")
# (2) rms::validate, B = 200, five seeds (its own resamples).
f <- lrm(cr ~ log10_blasts + age_years, data = d, x = TRUE, y = TRUE)
for (seed in 1:5) {
  set.seed(seed)
  v <- validate(f, B = 200)
  cat("rms_validate seed", seed, "corrected_C", (v["Dxy", "index.corrected"] + 1) / 2,
      "corrected_slope", v["Slope", "index.corrected"], "\n")
}
