import matplotlib
import pytest

matplotlib.use("Agg")


@pytest.fixture(scope="session")
def gbpusd():
    import bayesvol

    return bayesvol.datasets.load("gbpusd")
