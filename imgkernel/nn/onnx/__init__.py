"""ONNX import: ``convert_onnx`` turns an ONNX graph into an imgkernel model (needs ``onnx``)."""

from imgkernel.nn.onnx.convert import convert_onnx

__all__ = ["convert_onnx"]
