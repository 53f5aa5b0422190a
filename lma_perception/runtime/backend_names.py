"""The inference backends' names, without importing any of them (the command line lists them)."""

BACKENDS = ('torch', 'onnxruntime', 'openvino', 'tensorrt', 'auto')
# What the node and the commands run unless told: the fastest backend installed
# (`SegmentationEngine` itself defaults to torch, which runs any model on any device as it is).
DEFAULT_BACKEND = 'auto'
# The backends `auto` tries, in order, per device type.
AUTO_ORDER = {'cpu': ('onnxruntime', 'openvino', 'torch'), 'cuda': ('tensorrt', 'torch')}
# Runtimes that run on the CPU only.
CPU_RUNTIMES = ('onnxruntime', 'openvino')
# The backends that run each reduced precision, per device type (every backend runs fp32).
# torch's half precisions are CUDA autocast; on the CPU, bf16 is OpenVINO's (CPUs with AVX-512
# BF16 or AMX), which keeps fp32 accumulation.
REDUCED_PRECISION_BACKENDS = {
    ('fp16', 'cuda'): ('torch',),
    ('bf16', 'cuda'): ('torch',),
    ('bf16', 'cpu'): ('openvino',),
}


def precision_problem(backend: str, precision: str, device_type: str) -> str | None:
    """Say why ``backend`` cannot run ``precision`` on ``device_type``; None when it can."""
    if precision == 'fp32':
        return None
    runs = REDUCED_PRECISION_BACKENDS.get((precision, device_type), ())
    if backend == 'auto':
        return None if runs else f'no backend runs {precision} on {device_type}'
    if backend in runs:
        return None
    where = [f'{", ".join(names)} on {device}' for (name, device), names
             in REDUCED_PRECISION_BACKENDS.items() if name == precision]
    return f'backend {backend!r} does not run {precision} on {device_type}; {precision} runs ' \
        f'with {"; ".join(where)}'


def auto_candidates(device_type: str, precision: str) -> tuple[str, ...]:
    """Return the backends `auto` tries for a device type and precision, in order."""
    return tuple(name for name in AUTO_ORDER[device_type]
                 if precision_problem(name, precision, device_type) is None)
