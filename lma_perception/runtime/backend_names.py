"""The inference backends' names, without importing any of them (the command line lists them)."""

BACKENDS = ('torch', 'onnxruntime', 'openvino', 'tensorrt', 'auto')
# The backends `auto` tries, in order, per device type.
AUTO_ORDER = {'cpu': ('onnxruntime', 'openvino', 'torch'), 'cuda': ('tensorrt', 'torch')}
# Runtimes that run on the CPU only.
CPU_RUNTIMES = ('onnxruntime', 'openvino')
