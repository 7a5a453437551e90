"""Parameter recovery on simulated SV data by EIS-MLE and PF-MLE, judged by the estimators' own standard errors.

For a correctly specified model the MLE is asymptotically normal around the truth with covariance the inverse
observed information, which :func:`bayesvol.fit` reports as ``cov``. So with the true parameter vector
:math:`\\theta_0` and the estimate :math:`\\hat\\theta`, the Wald statistic
:math:`(\\hat\\theta - \\theta_0)^\\top \\widehat{\\mathrm{cov}}^{-1} (\\hat\\theta - \\theta_0)` is approximately
:math:`\\chi^2_3`, and each :math:`|\\hat\\theta_j - \\theta_{0,j}| / \\mathrm{se}_j` approximately :math:`|N(0, 1)|`.
The simulated-likelihood estimators add Monte Carlo error (EIS: log-likelihood SD of a few hundredths, which
moves the optimum by a small fraction of a standard error; PF with few particles: more, see below), so the
thresholds are the 0.999 quantile of :math:`\\chi^2_3` (16.27) for the joint statistic and 3.3 SE per parameter
(two-sided 0.001): a correct estimator fails with probability about 0.001 per dataset, and the seeds are fixed.
"""

import numpy as np
import pytest
import scipy.stats

import bayesvol

TRUTH = {"mu": -0.8, "phi": 0.95, "sigma": 0.25}
NAMES = ("mu", "phi", "sigma")
JOINT_LIMIT = scipy.stats.chi2.ppf(0.999, df=3)
MARGINAL_LIMIT = 3.3


@pytest.fixture(scope="module")
def simulated():
    return np.asarray(bayesvol.simulate(bayesvol.models.SV(), TRUTH, 1500, seed=11).y)


@pytest.fixture(scope="module")
def eis_fit(simulated):
    # Five fixed-point iterations from the Bellman start reach the kernel to about 1e-2 (changes of the
    # log-likelihood of order 1e-3, far below its Monte Carlo SD), at half the cost of the default eight.
    return bayesvol.fit(bayesvol.models.SV(), simulated, method="eis", num_draws=16, num_iterations=5,
                        num_starts=1, warn=False)


def wald(params, cov):
    """Per-parameter z-scores and the joint Wald statistic of an estimate against the truth."""
    assert tuple(params) == NAMES
    error = np.array([params[n] - TRUTH[n] for n in NAMES])
    z = error / np.sqrt(np.diag(cov))
    return z, float(error @ np.linalg.solve(cov, error))


@pytest.mark.slow
def test_eis_mle_recovers_simulated_parameters(eis_fit):
    assert eis_fit.converged
    assert np.allclose(np.sqrt(np.diag(eis_fit.cov)), [eis_fit.se[n] for n in NAMES])
    z, statistic = wald(eis_fit.params, eis_fit.cov)
    assert np.all(np.abs(z) < MARGINAL_LIMIT), dict(zip(NAMES, z, strict=True))
    assert statistic < JOINT_LIMIT, statistic
    # The Monte Carlo error of the EIS log-likelihood is small against the change of the log-likelihood over
    # one standard error of one parameter (about 0.5).
    assert eis_fit.diagnostics["loglik_mc_sd"] < 0.5


@pytest.mark.slow
def test_pf_mle_recovers_simulated_parameters(simulated, eis_fit):
    # Bootstrap filter with continuous resampling and fixed random numbers (a smooth surface), few particles:
    # the estimate carries simulation error on top of sampling error; the log-likelihood's downward bias
    # (about var/2) is nearly constant across nearby parameters, so the optimum moves little. The Hessian of
    # one noisy 200-particle surface is not a reliable curvature estimate (its "standard errors" can be NaN;
    # see the filters docs), so the Wald statistic uses the observed information of the same likelihood from
    # the EIS fit: the asymptotic covariance of any consistent MLE of this model on these data.
    # Started from the EIS estimate (a data-based start, as in practice), not from the truth.
    res = bayesvol.fit(bayesvol.models.SV(), simulated, method="pf", num_particles=200, num_starts=1,
                       start=eis_fit.params, warn=False)
    assert res.converged
    z, statistic = wald(res.params, eis_fit.cov)
    assert np.all(np.abs(z) < MARGINAL_LIMIT), dict(zip(NAMES, z, strict=True))
    assert statistic < JOINT_LIMIT, statistic
    # Its Monte Carlo SD (20 replications at the estimate) is reported and of the expected order for
    # N = 200, T = 1500 (about 1).
    assert 0.2 < res.diagnostics["loglik_mc_sd"] < 3.0
