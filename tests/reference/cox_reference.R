# Reference values for tests/test_cox_reference.py: survival::cox.zph and survfit on the
# unpenalized Efron Cox fits of the committed reconstructed cohort with the default features.
# Run from the repository root:  Rscript tests/reference/cox_reference.R
# Produced with R 4.2.2 Patched (2022-11-10 r83330), survival 3.5.3 (Debian r-cran-survival).
library(survival)
d <- read.csv("training/data/reconstructed_cohort.csv")
d$log10_blasts <- log10(pmax(d$marrow_blasts_pct, 0.01))
options(digits = 15)
for (outcome in c("efs", "os")) {
  f <- as.formula(sprintf("Surv(%s_months, %s_event) ~ log10_blasts + age_years + ph_positive + prior_hsct + relapsed",
                          outcome, outcome))
  fit <- coxph(f, data = d, ties = "efron")
  cat(outcome, "coef", format(coef(fit), digits = 15), "\n")
  for (tr in c("km", "rank", "identity")) {
    z <- cox.zph(fit, transform = tr, terms = TRUE)
    for (i in seq_len(nrow(z$table))) {
      cat(outcome, tr, rownames(z$table)[i], format(z$table[i, "chisq"], digits = 15),
          format(z$table[i, "p"], digits = 15), "\n")
    }
  }
  # Baseline survival at the covariate means (coxph centres at the means), Efron estimator.
  sf <- survfit(fit, newdata = as.data.frame(t(colMeans(model.matrix(fit)))), ctype = 2)
  s <- summary(sf, times = c(1, 3, 6, 12, 24, 36))
  cat(outcome, "surv", format(s$time), "|", format(s$surv, digits = 15), "\n")
  cat(outcome, "default_ctype_equal", isTRUE(all.equal(survfit(fit, newdata = as.data.frame(t(colMeans(model.matrix(fit)))))$surv, sf$surv)), "\n")
}
