"""Training: imgkernel's own backward pass, optimizers, architectures and folder datasets."""

from imgkernel.nn.train.loop import fit, train_folder

__all__ = ["fit", "train_folder"]
