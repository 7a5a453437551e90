"""Risk forecasts and their backtests: VaR and ES, coverage and ES tests, proper scores, model comparison.

Sign convention: returns are profits, the level is the tail probability $\\alpha$ (0.01 for a 99% VaR),
and VaR and ES are positive losses, so an exceedance is a return below $-\\mathrm{VaR}_t$.
"""

from bayesvol.backtest._result import BacktestResult, TrafficLightResult, backtest_table
from bayesvol.backtest.coverage import (
    christoffersen_independence,
    conditional_coverage,
    dynamic_quantile,
    kupiec,
    traffic_light,
    var_backtest,
)
from bayesvol.backtest.mcs import MCSResult, model_confidence_set
from bayesvol.backtest.plots import plot_pit, plot_var
from bayesvol.backtest.predictive import DrawsPredictive, NormalPredictive, StudentTPredictive, as_predictive
from bayesvol.backtest.risk import exceedances, expected_shortfall, portfolio_normal, portfolio_returns, value_at_risk
from bayesvol.backtest.scores import crps, diebold_mariano, log_score, mixture_log_score, newey_west_lag, pit
from bayesvol.backtest.shortfall import acerbi_szekely, mcneil_frey

__all__ = [
    "BacktestResult",
    "DrawsPredictive",
    "MCSResult",
    "NormalPredictive",
    "StudentTPredictive",
    "TrafficLightResult",
    "acerbi_szekely",
    "as_predictive",
    "backtest_table",
    "christoffersen_independence",
    "conditional_coverage",
    "crps",
    "diebold_mariano",
    "dynamic_quantile",
    "exceedances",
    "expected_shortfall",
    "kupiec",
    "log_score",
    "mcneil_frey",
    "mixture_log_score",
    "model_confidence_set",
    "newey_west_lag",
    "pit",
    "plot_pit",
    "plot_var",
    "portfolio_normal",
    "portfolio_returns",
    "traffic_light",
    "value_at_risk",
    "var_backtest",
]
