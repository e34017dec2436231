"""What needs the training install (TensorFlow, Keras, scikit-learn, matplotlib), or serves it.

* ``train.py``: one recipe, read top to bottom: data -> hands -> split -> fit -> figures -> a bundle.
* ``crossval.py``: the recipe's k-fold figures; ``evaluate.py``: a bundle's figures on data.
* ``metrics.py`` (figures of predictions) and ``plots.py`` (their pictures).
* ``download.py``: the Kaggle set, with the official client.

Nothing here is imported at package import: each module pulls in its heavy libraries when used,
and the serving install imports only ``metrics.brief`` (a bundle's summary line).
"""
