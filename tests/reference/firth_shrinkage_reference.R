# Reference values for tests/test_methods_round2.py: heuristic shrinkage of Firth's logistic fit,
# computed independently of training/methods.py (a different language and optimizer: Firth's
# penalized log-likelihood maximized by optim BFGS with its modified score as gradient; intercept re-estimated by glm with an offset).
# Run from the repository root:  Rscript tests/reference/firth_shrinkage_reference.R
# Produced with R 4.2.2 Patched (2022-11-10 r83330), base stats only (no logistf installed).
d <- read.csv("tests/reference/firth_shrinkage_data.csv")
options(digits = 15)
pl <- function(b, X, y) {  # Firth: l(b) + 1/2 log det I(b), intercept penalized (as logistf)
  eta <- drop(X %*% b); mu <- plogis(eta)
  sum(y * eta - log1p(exp(eta))) + 0.5 * determinant(crossprod(X * sqrt(mu * (1 - mu))))$modulus
}
score <- function(b, X, y) {  # Firth's modified score X' (y - mu + h (1/2 - mu))
  mu <- plogis(drop(X %*% b)); w <- mu * (1 - mu)
  h <- rowSums((X %*% solve(crossprod(X * sqrt(w)))) * X) * w
  drop(crossprod(X, y - mu + h * (0.5 - mu)))
}
firth <- function(X, y) {
  o <- optim(rep(0, ncol(X)), function(b) -pl(b, X, y), function(b) -score(b, X, y),
             method = "BFGS", control = list(reltol = 1e-16, maxit = 10000))
  o$par
}
for (outcome in c("y_separated", "y_overlapping")) {
  y <- d[[outcome]]
  X <- cbind(1, d$x1, d$x2)
  b <- firth(X, y)
  # logistf's null model: the intercept alone maximizes l* with the full design's penalty
  a0 <- optimize(function(a) pl(c(a, 0, 0), X, y), c(-20, 20), maximum = TRUE, tol = 1e-12)$maximum
  lr <- 2 * (pl(b, X, y) - pl(c(a0, 0, 0), X, y))
  s <- max(0, (lr - 2) / lr)
  slopes <- s * b[2:3]
  a <- coef(glm(y ~ 1, offset = drop(X[, 2:3] %*% slopes), family = binomial,
                control = glm.control(epsilon = 1e-14, maxit = 100)))
  cat(outcome, "firth", format(b, digits = 15), "lr", format(lr, digits = 15),
      "s", format(s, digits = 15), "intercept", format(a, digits = 15),
      "coef", format(slopes, digits = 15), "\n")
}
# Maximum likelihood + heuristic shrinkage where the MLE exists (the fallback's usual path).
y <- d$y_overlapping
m <- glm(y ~ x1 + x2, data = d, family = binomial, control = glm.control(epsilon = 1e-14, maxit = 100))
lr <- m$null.deviance - m$deviance
s <- (lr - 2) / lr
slopes <- s * coef(m)[2:3]
a <- coef(glm(y ~ 1, offset = drop(as.matrix(d[, c("x1", "x2")]) %*% slopes), family = binomial,
              control = glm.control(epsilon = 1e-14, maxit = 100)))
cat("y_overlapping mle", format(coef(m), digits = 15), "lr", format(lr, digits = 15),
    "s", format(s, digits = 15), "intercept", format(a, digits = 15),
    "coef", format(slopes, digits = 15), "\n")
