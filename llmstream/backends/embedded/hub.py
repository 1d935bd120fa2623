"""GGUF models from the Hugging Face Hub, named as Ollama and llama.cpp name them.

`hf.co/ORG/REPO:QUANT` picks, in a GGUF repository, the file whose name contains QUANT;
without QUANT, the repository's single GGUF file or else its Q4_K_M. huggingface_hub
(installed with Gradio) fetches it once into the usual Hub cache, so a file any Hub tool
fetched before is not fetched again, and `HF_HUB_OFFLINE=1` chooses among cached files
only. Every failure becomes one of our errors with a sentence that names the repository,
never the token.

Nothing is imported from huggingface_hub until a model is fetched.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tqdm import tqdm

from llmstream.errors import AuthFailed, LLMStreamError, ModelNotFound, ServerError, Unreachable
from llmstream.secrets import Secret

log = logging.getLogger(__name__)

_PREFIX = re.compile(r"^(?:https?://)?(?:hf\.co|huggingface\.co)/", re.IGNORECASE)
_REF = re.compile(r"^([A-Za-z0-9][\w.-]*)/([A-Za-z0-9][\w.-]*?)(?::([\w.-]+))?/?$")
_SPLIT = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$", re.IGNORECASE)
DEFAULT_QUANT = "Q4_K_M"
LOG_EVERY = 5.0  # seconds between progress lines in the log


@dataclass(frozen=True, slots=True)
class HubRef:
    repo: str
    quant: str | None = None

    def __str__(self) -> str:
        return f"hf.co/{self.repo}" + (f":{self.quant}" if self.quant else "")


def parse_ref(value: str) -> HubRef | None:
    """A Hub reference, None for anything else (a path), `ValueError` for a malformed one.

    >>> parse_ref("hf.co/Qwen/Qwen3-0.6B-GGUF:Q8_0")
    HubRef(repo='Qwen/Qwen3-0.6B-GGUF', quant='Q8_0')
    >>> parse_ref("https://huggingface.co/bartowski/SmolLM2-360M-Instruct-GGUF")
    HubRef(repo='bartowski/SmolLM2-360M-Instruct-GGUF', quant=None)
    >>> parse_ref("~/models/qwen.gguf") is None
    True
    >>> parse_ref("hf.co/Qwen")
    Traceback (most recent call last):
    ...
    ValueError: EMBEDDED_MODEL 'hf.co/Qwen' is not a Hub repository: write hf.co/ORG/REPO or hf.co/ORG/REPO:QUANT
    """
    text = value.strip()
    prefix = _PREFIX.match(text)
    if prefix is None:
        return None
    match = _REF.match(text[prefix.end() :])
    if match is None:
        raise ValueError(
            f"EMBEDDED_MODEL {value!r} is not a Hub repository: write hf.co/ORG/REPO or hf.co/ORG/REPO:QUANT"
        )
    return HubRef(f"{match[1]}/{match[2]}", match[3])


def _name(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def choose_files(ref: HubRef, files: list[str]) -> list[str]:
    """The file (or, for a model split in parts, the files) that `ref` means.

    >>> files = ["README.md", "m-Q4_K_M.gguf", "m-Q8_0.gguf", "mmproj-m-f16.gguf"]
    >>> choose_files(HubRef("o/r"), files), choose_files(HubRef("o/r", "q8_0"), files)
    (['m-Q4_K_M.gguf'], ['m-Q8_0.gguf'])
    >>> choose_files(HubRef("o/r", "Q8_0"), ["big-Q8_0-00001-of-00002.gguf", "big-Q8_0-00002-of-00002.gguf"])
    ['big-Q8_0-00001-of-00002.gguf', 'big-Q8_0-00002-of-00002.gguf']
    """
    models = sorted(f for f in files if f.lower().endswith(".gguf") and "mmproj" not in _name(f).lower())
    firsts = [f for f in models if (m := _SPLIT.search(f)) is None or m[1] == "00001"]
    if not firsts:
        raise ModelNotFound(
            f"{ref} has no GGUF file.", hint="Name a GGUF repository (their names usually end in -GGUF)."
        )
    offered = ", ".join(_name(_SPLIT.sub(".gguf", f)) for f in firsts[:8]) + (", …" if len(firsts) > 8 else "")
    quant = ref.quant or (None if len(firsts) == 1 else DEFAULT_QUANT)
    chosen = firsts
    if quant:
        chosen = [f for f in firsts if quant.lower() in _name(f).lower()]
        if len(chosen) > 1:  # Q4_K matches Q4_K_M and Q4_K_S: prefer the file where it stands alone
            alone = re.compile(rf"(?<![a-z0-9]){re.escape(quant.lower())}(?![a-z0-9_])")
            chosen = [f for f in chosen if alone.search(_name(f).lower())] or chosen
    if not chosen:
        what = f"matches {quant}" if ref.quant else f"is {DEFAULT_QUANT}, the default when a repository has several"
        raise ModelNotFound(
            f"No GGUF file in {ref.repo} {what}.", hint=f"Name one with hf.co/{ref.repo}:QUANT; it has {offered}."
        )
    if len(chosen) > 1:
        names = ", ".join(_name(f) for f in chosen)
        raise ModelNotFound(f"Several GGUF files in {ref.repo} match {quant}: {names}.", hint="Name one more exactly.")
    first = chosen[0]
    split = _SPLIT.search(first)
    if split is None:
        return [first]
    return [f"{first[: split.start()]}-{i:05d}-of-{split[2]}.gguf" for i in range(1, int(split[2]) + 1)]


class Progress:
    """How far a fetch has got: read by the page's status line and written to the log."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.what: str | None = None
        self.done = 0
        self.total: int | None = None
        self._logged = 0.0

    def begin(self, what: str) -> None:
        with self._lock:
            self.what, self.done, self.total = what, 0, None
        log.info("fetching %s from the Hugging Face Hub", what)

    def start_file(self, total: int | None, initial: int) -> None:
        with self._lock:
            self.total = (total or 0) or None
            self.done = initial

    def advance(self, n: int) -> None:
        with self._lock:
            self.done += n
            now = time.monotonic()
            if now - self._logged < LOG_EVERY:
                return
            self._logged = now
        log.info("fetching %s: %s", self.what, self._amount())

    def end(self) -> None:
        with self._lock:
            if self.what is not None:
                log.info("fetched %s", self.what)
            self.what = None

    def _amount(self) -> str:
        mb = self.done / 1e6
        if self.total:
            return f"{100 * self.done / self.total:.0f}% of {self.total / 1e6:,.0f} MB"
        return f"{mb:,.0f} MB"

    def sentence(self) -> str | None:
        with self._lock:
            if self.what is None:
                return None
            return f"Fetching {self.what} from the Hugging Face Hub: {self._amount()}…"

    def bar(self) -> type[tqdm[Any]]:
        """A tqdm class for huggingface_hub that reports here instead of drawing a bar."""
        from tqdm import tqdm

        # tqdm is generic in its stubs only: the class can't be subscripted at run time.
        bar: type[tqdm[Any]] = tqdm
        progress = self

        class Report(bar):  # type: ignore[misc,valid-type]  # a base class from a variable: fine at run time
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                kwargs["disable"] = True
                super().__init__(*args, **kwargs)
                progress.start_file(kwargs.get("total"), kwargs.get("initial") or 0)

            def update(self, n: float | None = 1) -> bool | None:
                progress.advance(int(n or 0))
                return None

        return Report


def fetch(ref: HubRef, *, token: Secret | None = None, progress: Progress | None = None) -> Path:
    """The local path of the GGUF file `ref` names, fetching it into the Hub cache if needed."""
    progress = progress or Progress()
    try:
        return _fetch(ref, token.reveal() if token else None, progress)
    except LLMStreamError:
        raise
    except Exception as exc:
        log.info("fetching %s failed: %s", ref, type(exc).__name__)
        raise _error(ref, exc, with_token=token is not None) from None
    finally:
        progress.end()


def _fetch(ref: HubRef, token: str | None, progress: Progress) -> Path:
    from huggingface_hub import hf_hub_download

    files, cached = _listing(ref, token)
    parts = choose_files(ref, files)
    paths = []
    for part in parts:
        if not cached:
            progress.begin(f"{ref} ({_name(part)})")
        path = hf_hub_download(ref.repo, part, token=token, tqdm_class=progress.bar(), local_files_only=cached)
        paths.append(Path(path))
    return paths[0]


def _listing(ref: HubRef, token: str | None) -> tuple[list[str], bool]:
    """The repository's files, and whether they come from the cache: offline, or the Hub out of reach."""
    from huggingface_hub import HfApi, constants

    if constants.HF_HUB_OFFLINE:
        return _cached_files(ref), True
    try:
        return HfApi().list_repo_files(ref.repo, token=token), False
    except Exception as exc:
        if not isinstance(_error(ref, exc), Unreachable):
            raise
        try:
            files = _cached_files(ref)
        except Exception:
            raise exc from None
        log.info("the Hugging Face Hub can't be reached: %s comes from the local cache", ref)
        return files, True


def _cached_files(ref: HubRef) -> list[str]:
    from huggingface_hub import snapshot_download

    snapshot = Path(snapshot_download(ref.repo, local_files_only=True, allow_patterns=["*.gguf"]))
    return [p.relative_to(snapshot).as_posix() for p in snapshot.rglob("*.gguf")]


def _error(ref: HubRef, exc: Exception, *, with_token: bool = False) -> LLMStreamError:
    """One sentence for each way a fetch fails; the library's own message may carry URLs, never ours to show."""
    import httpx
    from huggingface_hub import errors

    if isinstance(exc, errors.GatedRepoError):
        return AuthFailed(
            f"{ref} is a gated repository.",
            hint=f"Accept its terms at https://huggingface.co/{ref.repo} and set HF_TOKEN to a token of that account.",
        )
    if isinstance(exc, errors.RepositoryNotFoundError):
        if with_token:
            return ModelNotFound(
                f"The Hugging Face Hub has no repository {ref.repo} that HF_TOKEN can read.",
                hint="Check the name, and that the token's account can see the repository.",
            )
        return ModelNotFound(
            f"The Hugging Face Hub has no public repository {ref.repo}.",
            hint="Check the name; for a private repository, set HF_TOKEN.",
        )
    if isinstance(exc, errors.LocalEntryNotFoundError | errors.OfflineModeIsEnabled):
        return Unreachable(
            f"{ref} is not in the local Hub cache, and the Hub can't be reached (offline).",
            hint="Fetch it once while online, or unset HF_HUB_OFFLINE.",
        )
    if isinstance(exc, errors.HfHubHTTPError):
        status = exc.response.status_code if exc.response is not None else None
        if status in (401, 403):
            return AuthFailed(f"The Hugging Face Hub refused the token for {ref}.", hint="Check HF_TOKEN.")
        return ServerError(f"The Hugging Face Hub answered {status} for {ref}.", status=status, hint="Try again later.")
    if isinstance(exc, httpx.TransportError | OSError) or type(exc).__module__.startswith("httpx"):
        return Unreachable(
            f"The Hugging Face Hub could not be reached to fetch {ref}.",
            hint="Check the network, or set HF_HUB_OFFLINE=1 to use the local cache only.",
        )
    return ServerError(f"Fetching {ref} from the Hugging Face Hub failed ({type(exc).__name__}).")
