import matplotlib
import pytest

matplotlib.use("Agg")


@pytest.fixture(scope="session")
def gbpusd():
    import bayesvol

    return bayesvol.datasets.load("gbpusd")


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    # Each test module compiles its own programs; dropping them afterwards keeps a worker's memory from
    # growing over the whole suite (several GB otherwise).
    yield
    import jax

    jax.clear_caches()
