# Reference values for tests/test_external_validation.py::test_matches_r_reference.
# Run: Rscript tests/reference/validation_reference.R  (from the repository root)
# Inputs: validation_binary_input.csv (y, p: severe CRS outcome and the default-seed bundle's
# predicted probability on tests/data/synthetic_center_cohort.csv) and
# validation_survival_input.csv (time, event, lp: OS and the bundle's linear predictor).
suppressPackageStartupMessages({library(rms); library(survival)})
options(digits = 15)
b <- read.csv("tests/reference/validation_binary_input.csv")
v <- val.prob(b$p, b$y, pl = FALSE)
citl <- glm(y ~ offset(qlogis(p)), family = binomial, data = b)
slope <- glm(y ~ qlogis(p), family = binomial, data = b)
cat("C", v[["C (ROC)"]], "\n")
cat("Brier", v[["Brier"]], "\n")
cat("slope", coef(slope)[2], confint.default(slope)[2, ], "\n")
cat("citl", coef(citl)[1], confint.default(citl)[1, ], "\n")
s <- read.csv("tests/reference/validation_survival_input.csv")
fit <- coxph(Surv(time, event) ~ lp, data = s, ties = "efron")
cat("cox_slope", coef(fit), confint(fit), "\n")
cat("harrell_c", concordance(Surv(time, event) ~ lp, data = s, reverse = TRUE)$concordance, "\n")
km <- summary(survfit(Surv(time, event) ~ 1, data = s, conf.type = "log-log"), times = c(6, 12, 24))
cat("km", km$surv, "\n"); cat("km_lower", km$lower, "\n"); cat("km_upper", km$upper, "\n")
cat("n_risk", km$n.risk, "\n")
