"""A bundle's serving model: the LiteRT export, run without TensorFlow (~6 us a call)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import BundleError


class Classifier:
    """The bundle's LiteRT model. Not thread-safe; Predictor hands out one per stream."""

    def __init__(self, tflite_path: Path):
        from ai_edge_litert.interpreter import Interpreter

        try:
            self._interp = Interpreter(model_path=str(tflite_path), num_threads=1)
            self._interp.allocate_tensors()
        except (RuntimeError, ValueError) as exc:
            raise BundleError(f"{tflite_path} is not a loadable LiteRT model ({exc}); retrain or restore the bundle") from None
        inp = self._interp.get_input_details()[0]
        self._in, self._out = inp["index"], self._interp.get_output_details()[0]["index"]
        self.input_shape = tuple(int(d) for d in inp["shape"][1:])
        self.num_outputs = int(self._interp.get_output_details()[0]["shape"][-1])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Probabilities for one input (without the batch axis)."""
        self._interp.set_tensor(self._in, np.asarray(x, dtype=np.float32)[None])
        self._interp.invoke()
        return self._interp.get_tensor(self._out)[0].copy()

    def close(self) -> None:
        self._interp = None


def check_export(classifier: Classifier, n_labels: int, runtime, where, listed: str = "bundle.json lists") -> None:
    """Raises BundleError where the export at ``where`` does not have ``n_labels`` outputs or
    cannot take ``runtime``'s inputs; ``listed`` says where the labels are listed."""
    if classifier.num_outputs != n_labels:
        raise BundleError(f"{where} has {classifier.num_outputs} outputs but {listed} {n_labels} labels")
    problem = runtime.input_problem(classifier.input_shape)
    if problem:
        raise BundleError(f"{where} {problem}")
