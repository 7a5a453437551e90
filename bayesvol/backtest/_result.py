"""The result of a backtest: statistic, p-value, the decision at a significance level, a one-row table."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

__all__ = ["BacktestResult", "TrafficLightResult", "backtest_table"]


@dataclass(frozen=True, repr=False)
class BacktestResult:
    """A test's outcome.

    Attributes
    ----------
    test : str
        The test's name.
    statistic : float
        The test statistic.
    p_value : float
        Its p-value under the null hypothesis of a correct forecast.
    significance : float
        The level at which [`reject`][bayesvol.backtest.BacktestResult.reject] is decided.
    null : str
        The null distribution the p-value comes from (``"chi2(1)"``, ``"simulation"``, ...).
    details : dict
        Counts and settings behind the statistic (exceptions, expected exceptions, lags, ...).
    """

    test: str
    statistic: float
    p_value: float
    significance: float
    null: str
    details: dict = field(default_factory=dict)

    @property
    def reject(self) -> bool:
        """Whether the null of a correct forecast is rejected at `significance`."""
        return bool(self.p_value < self.significance)

    @property
    def decision(self) -> str:
        return "reject" if self.reject else "do not reject"

    def table(self) -> pd.DataFrame:
        """One row, indexed by the test's name: statistic, p-value, null law, decision and the details."""
        row = {"statistic": self.statistic, "p_value": self.p_value, "null": self.null,
               "significance": self.significance, "decision": self.decision, **self.details}
        return pd.DataFrame([row], index=pd.Index([self.test], name="test"))

    def __repr__(self) -> str:
        with pd.option_context("display.width", 200, "display.max_columns", 20):
            return f"{type(self).__name__}\n{self.table().to_string()}"

    def _repr_html_(self) -> str:
        return self.table().to_html()


@dataclass(frozen=True, repr=False)
class TrafficLightResult(BacktestResult):
    """The Basel traffic light: the zone from the number of exceptions.

    `statistic` is the number of exceptions, `p_value` the probability of at least that many
    under the null, and `decision` the zone (``"green"``, ``"yellow"`` or ``"red"``);
    [`reject`][bayesvol.backtest.BacktestResult.reject] is true in the red zone.
    """

    zone: str = "green"

    @property
    def reject(self) -> bool:
        return self.zone == "red"

    @property
    def decision(self) -> str:
        return self.zone

    def table(self) -> pd.DataFrame:
        """One row: exceptions, P(X >= x), the binomial null, the zone and the details (no significance level)."""
        return super().table().drop(columns="significance")


def backtest_table(results) -> pd.DataFrame:
    """Stack the tables of several results (a list, or a dict label -> result) into one DataFrame.

    Examples
    --------
    >>> from bayesvol.backtest import backtest_table, kupiec
    >>> hits = [0] * 95 + [1] * 5
    >>> table = backtest_table({"model A": kupiec(hits, 0.05), "model B": kupiec(hits, 0.01)})
    >>> table["decision"].tolist()
    ['do not reject', 'reject']
    """
    if isinstance(results, BacktestResult):
        results = [results]
    if isinstance(results, dict):
        frames = [r.table().assign(model=label).set_index("model", append=True) for label, r in results.items()]
        return pd.concat(frames).reorder_levels(["model", "test"])
    return pd.concat([r.table() for r in results])
