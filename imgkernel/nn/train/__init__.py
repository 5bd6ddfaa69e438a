"""Training: imgkernel's own backward pass, optimizers, architectures and folder datasets.

* :mod:`~imgkernel.nn.train.network` - a network being trained: the layers'
  forward and backward passes over weights held apart from the model;
* :mod:`~imgkernel.nn.train.loss` - softmax cross-entropy;
  :mod:`~imgkernel.nn.train.optim` - SGD and Adam;
* :mod:`~imgkernel.nn.train.arch` - named architectures, TOML layer lists,
  building a fresh network;
* :mod:`~imgkernel.nn.train.options` - the training options, checked once
  (and the defaults of ``imgkernel train``); :mod:`~imgkernel.nn.train.loop` -
  :func:`fit`; :mod:`~imgkernel.nn.train.schedule` - learning-rate schedules;
  :mod:`~imgkernel.nn.train.stopping` - early stopping on the validation loss;
* :mod:`~imgkernel.nn.train.data` - image folders, the validation split,
  augmentation; :mod:`~imgkernel.nn.train.folder` - :func:`train_folder`
  (``imgkernel train``).
"""

from imgkernel.nn.train.folder import train_folder
from imgkernel.nn.train.loop import fit

__all__ = ["fit", "train_folder"]
