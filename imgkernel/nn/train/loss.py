"""The training loss: softmax cross-entropy, fused with the final softmax."""

from __future__ import annotations

import numpy as np

from imgkernel.errors import check_float


def softmax_cross_entropy(
    logits: np.ndarray, labels: np.ndarray, label_smoothing: float = 0.0
) -> tuple[float, np.ndarray, np.ndarray]:
    """Mean cross-entropy of softmax(``logits``) against integer ``labels``, fused.

    Returns ``(loss, dlogits, probabilities)``; computed through log-sum-exp
    of the max-shifted logits, so large logits neither overflow nor lose the
    gradient: ``dlogits = (softmax - onehot) / N``.

    With ``label_smoothing`` = e > 0 the target of every sample is
    ``(1 - e) * onehot + e / K`` for K classes (as
    ``torch.nn.functional.cross_entropy(..., label_smoothing=e)``) and
    ``dlogits = (softmax - target) / N``.

    >>> loss, grad, p = softmax_cross_entropy(np.array([[1000.0, 0.0]]), np.array([0]))
    >>> float(loss), grad.tolist()
    (0.0, [[0.0, 0.0]])
    >>> loss, grad, p = softmax_cross_entropy(np.zeros((1, 4)), np.array([2]), 0.2)
    >>> round(loss, 6) == round(float(np.log(4)), 6), np.round(grad, 6).tolist()
    (True, [[0.2, 0.2, -0.6, 0.2]])
    """
    eps = check_float(label_smoothing, "label smoothing", minimum=0, maximum=1, max_open=True)
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    s = e.sum(axis=1, keepdims=True)
    idx = np.arange(len(labels))
    logs = np.log(s[:, 0])
    logp = z[idx, labels] - logs
    k = logits.shape[1]
    if eps:
        mean_logp = z.mean(axis=1, dtype=np.float64) - logs  # mean over classes of log p
        per = (1 - eps) * logp.astype(np.float64) + eps * mean_logp
        loss = float(-np.mean(per)) + 0.0
    else:
        loss = float(-np.mean(logp, dtype=np.float64)) + 0.0  # no -0.0
    p = e / s
    grad = p.copy()
    if eps:
        grad -= grad.dtype.type(eps / k)
        grad[idx, labels] -= grad.dtype.type(1 - eps)
    else:
        grad[idx, labels] -= 1
    grad /= len(labels)
    return loss, grad.astype(logits.dtype, copy=False), p
