"""The one atomic writer: a file is replaced whole or not at all, never left half-written."""
from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path


def default_mode() -> int:
    """The permissions a new file gets from open(): 0o666 less the process's umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_atomically(path: str | os.PathLike, content: str | bytes) -> None:
    """Replace `path` with `content` in one step: a temporary file beside it, then os.replace. The file keeps
    its permissions, or gets those of a new file (not the temporary file's private 0o600)."""
    path = Path(path)
    data = content.encode() if isinstance(content, str) else content
    mode = path.stat().st_mode & 0o7777 if path.exists() else default_mode()
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".partial",
                                     delete=False) as staged:
        try:
            staged.write(data)
            staged.close()
            os.chmod(staged.name, mode)
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
