"""A network being trained: layers plus their weights, with the forward and backward pass.

The layers (:mod:`imgkernel.nn.layers`) give the types, attributes and the
arithmetic; the weights being trained live in :attr:`Network.params`
(``"name.key"`` -> array, as in the model file) in the network's dtype
(float32 for training, float64 for gradient checks). The forward pass keeps
each layer's cache, the backward pass runs the layers' ``backward`` in
reverse. A trailing softmax is fused with the cross-entropy loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from imgkernel.errors import UsageError
from imgkernel.nn.layers import Layer, trainable_types
from imgkernel.nn.model import Model
from imgkernel.nn.spec import InputSpec
from imgkernel.nn.train.loss import softmax_cross_entropy


class Network:
    """A sequential network being trained (see the module docstring)."""

    def __init__(
        self,
        layers: Sequence[Layer],
        input_shape: tuple[int, int, int],
        params: dict[str, np.ndarray] | None = None,
        dtype: Any = np.float32,
    ) -> None:
        self.layers = list(layers)
        self.input_shape = tuple(int(d) for d in input_shape)
        self.dtype = np.dtype(dtype)
        for layer in self.layers:
            problem = layer.training_problem()
            if problem is not None:
                supported = ", ".join(trainable_types())
                raise UsageError(f"layer {layer.name!r}: {problem} (supported: {supported})")
        source = (
            params
            if params is not None
            else {
                f"{layer.name}.{key}": arr
                for layer in self.layers
                for key, arr in layer.parameters().items()
            }
        )
        self.params = {k: np.array(v, dtype=self.dtype) for k, v in source.items()}

    @classmethod
    def from_model(cls, model: Model, dtype: Any = np.float32) -> Network:
        if model.input_spec is None or not model.is_sequential:
            raise UsageError("training needs a sequential model of images (a chain of layers)")
        return cls(model.layers, model.input_spec.shape, dtype=dtype)

    def layer_params(self, layer: Layer) -> dict[str, np.ndarray]:
        """The weights of ``layer`` by array key."""
        prefix = layer.name + "."
        return {k[len(prefix) :]: v for k, v in self.params.items() if k.startswith(prefix)}

    @property
    def fused_softmax(self) -> bool:
        return bool(self.layers) and self.layers[-1].type == "softmax"

    def forward(
        self,
        x: np.ndarray,
        *,
        training: bool = False,
        rng: np.random.Generator | None = None,
        logits: bool = True,
    ) -> tuple[np.ndarray, list[Any]]:
        """Run the layers, keeping their caches; with ``logits`` stop before a trailing softmax."""
        stop = len(self.layers) - (1 if logits and self.fused_softmax else 0)
        caches = []
        x = np.asarray(x, dtype=self.dtype)
        for layer in self.layers[:stop]:
            x, cache = layer.forward_train(self.layer_params(layer), x, training, rng)
            caches.append(cache)
        return x, caches

    def _backward(
        self, caches: list[Any], dout: np.ndarray, need_input: bool
    ) -> tuple[np.ndarray | None, dict[str, np.ndarray]]:
        grads: dict[str, np.ndarray] = {}
        dy: np.ndarray | None = dout
        for i in range(len(caches) - 1, -1, -1):
            layer = self.layers[i]
            assert dy is not None
            dy, g = layer.backward(self.layer_params(layer), caches[i], dy, need_input or i > 0)
            for key, arr in g.items():
                grads[f"{layer.name}.{key}"] = arr
        return dy, grads

    def backward(self, caches: list[Any], dout: np.ndarray) -> dict[str, np.ndarray]:
        """Parameter gradients from the gradient ``dout`` of the (logit) output."""
        return self._backward(caches, dout, False)[1]

    def input_gradient(self, x: np.ndarray, dout: np.ndarray) -> np.ndarray:
        """Gradient with respect to the input (for tests)."""
        _, caches = self.forward(x, training=False)
        dx, _ = self._backward(caches, dout, True)
        assert dx is not None
        return dx

    def loss_and_grads(
        self,
        x: np.ndarray,
        y: np.ndarray,
        rng: np.random.Generator | None = None,
        label_smoothing: float = 0.0,
    ) -> tuple[float, np.ndarray, dict[str, np.ndarray]]:
        """Softmax cross-entropy loss, the logits and the parameter gradients (training mode)."""
        z, caches = self.forward(x, training=True, rng=rng)
        if z.ndim != 2:
            raise UsageError(f"the network's output is {z.shape[1:]}, not one value per class")
        loss, dz, _ = softmax_cross_entropy(z, y, label_smoothing)
        return loss, z, self.backward(caches, dz)

    def predict_logits(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        outs = [
            self.forward(x[i : i + batch_size])[0] for i in range(0, max(len(x), 1), batch_size)
        ]
        return np.concatenate(outs) if outs else np.zeros((0, 0), self.dtype)

    def to_model(
        self,
        labels: Sequence[str] | None = None,
        spec: InputSpec | None = None,
        description: str = "",
    ) -> Model:
        """A :class:`Model` with fresh layers holding the current weights (as float32)."""
        layers = []
        for layer in self.layers:
            arrays = {k: v.astype(np.float32) for k, v in self.layer_params(layer).items()}
            layers.append(type(layer)(layer.name, **layer.attributes(), **arrays))
        if spec is None:
            c, h, w = self.input_shape
            spec = InputSpec(channels=c, height=h, width=w)
        return Model(layers, labels, spec, description)
