"""Per-user cache of exported ONNX files, keyed by what makes an export differ.

An entry is ``<key>.onnx`` with a ``<key>.json`` record beside it, under
``$XDG_CACHE_HOME/lma_perception/exports`` (default ``~/.cache``). The key holds the graph kind,
the weights' hash, the input size, the backend and its version, the package version and
whether the graph has the confidence output. An entry is used only when its record matches the
key's fields, the file's SHA-256 matches the record and the file's own metadata names the
same weights; otherwise it is rebuilt, with one log line saying why. Files are written to a
temporary name and renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path

import onnx
from torch import nn

from lma_perception import __version__
from lma_perception.runtime.onnx_export import (
    GRAPH_FORMAT,
    export_onnx,
    graph_kind,
    read_metadata,
    weights_hash,
)

log = logging.getLogger(__name__)


def cache_root() -> Path:
    """Return the folder the exports are cached in."""
    base = Path(os.environ.get('XDG_CACHE_HOME') or Path.home() / '.cache')
    return base / 'lma_perception' / 'exports'


def _file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open('rb') as stream:
        for block in iter(lambda: stream.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def _problem(onnx_path: Path, record_path: Path, fields: dict[str, object]) -> str | None:
    """Why the entry cannot be used; None when it can."""
    if not onnx_path.is_file() or not record_path.is_file():
        return 'missing'
    try:
        record = json.loads(record_path.read_text())
    except (OSError, ValueError) as error:
        return f'unreadable record ({error})'
    if not isinstance(record, dict):
        return 'unreadable record'
    changed = [name for name, value in fields.items() if record.get(name) != value]
    if changed:
        return f'stale ({", ".join(changed)} changed)'
    if record.get('sha256') != _file_hash(onnx_path):
        return 'corrupt (file hash differs from its record)'
    try:
        metadata = read_metadata(onnx.load(str(onnx_path), load_external_data=False))
    except Exception as error:  # any parse failure means a corrupt file
        return f'corrupt ({type(error).__name__})'
    if metadata.get('weights_sha256') != fields['weights_sha256']:
        return 'stale (the file holds other weights)'
    return None


def cached_export(
    model: nn.Module, input_size: tuple[int, int], backend: str, backend_version: str, *,
    confidence: bool, root: Path | None = None,
) -> Path:
    """Return the path of ``model``'s exported graph, exporting it if no valid entry exists."""
    fields: dict[str, object] = {
        'graph': graph_kind(model),
        'weights_sha256': weights_hash(model),
        'input_size': list(input_size),
        'backend': backend,
        'backend_version': backend_version,
        'package_version': __version__,
        'graph_format': GRAPH_FORMAT,
        'confidence': confidence,
    }
    height, width = input_size
    key = (
        f'{fields["graph"]}-{str(fields["weights_sha256"])[:16]}-{width}x{height}-{backend}-'
        f'{backend_version}-{"conf" if confidence else "labels"}'
    )
    folder = root or cache_root()
    onnx_path, record_path = folder / f'{key}.onnx', folder / f'{key}.json'
    problem = _problem(onnx_path, record_path, fields)
    if problem is None:
        return onnx_path
    if problem != 'missing':
        log.warning('export cache entry %s is %s: rebuilding it', onnx_path, problem)
    folder.mkdir(parents=True, exist_ok=True)
    temporary = _temporary(folder, '.onnx.partial')
    temporary_record = _temporary(folder, '.json.partial')
    try:
        export_onnx(model, temporary, input_size, confidence=confidence)
        record = {**fields, 'sha256': _file_hash(temporary)}
        temporary_record.write_text(json.dumps(record, indent=1))
        os.replace(temporary, onnx_path)
        os.replace(temporary_record, record_path)
    finally:
        temporary.unlink(missing_ok=True)
        temporary_record.unlink(missing_ok=True)
    return onnx_path


def _temporary(folder: Path, suffix: str) -> Path:
    handle, name = tempfile.mkstemp(dir=folder, suffix=suffix)
    os.close(handle)
    return Path(name)
