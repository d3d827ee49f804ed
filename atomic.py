"""The one atomic writer: a file is replaced whole or not at all, never left half-written."""
from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path


def write_atomically(path: str | os.PathLike, content: str | bytes) -> None:
    """Replace `path` with `content` in one step: a temporary file beside it, then os.replace."""
    path = Path(path)
    data = content.encode() if isinstance(content, str) else content
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".partial",
                                     delete=False) as staged:
        try:
            staged.write(data)
            staged.close()
            os.replace(staged.name, path)
        except BaseException:
            Path(staged.name).unlink(missing_ok=True)
            raise


def torch_save_atomically(value: object, path: str | os.PathLike) -> None:
    """torch.save `value` to `path` in one step (write_atomically), making its folder if needed."""
    import torch  # imported here: the other writers do not need it
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(value, buffer)
    write_atomically(path, buffer.getvalue())
