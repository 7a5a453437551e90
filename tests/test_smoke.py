import bayesvol


def test_import():
    assert bayesvol.__version__
