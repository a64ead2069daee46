"""Every code example of README.md and docs/*.md runs here, against the embedded emulator.

Conventions (also on the "Testing your code" page of the docs):

* Fenced blocks marked ```` ```python ```` are run, in page order; ```` ```py ```` blocks are
  shown but not run (keep them rare: FalconPy code, fragments).
* A ```` ```output ```` block that follows a python block (the next fenced block of the page)
  is what that block must print, compared line by line (trailing spaces ignored).
* Blocks of one page share their globals (``mc`` made in the first block is used by the next),
  one emulator (``Emulator.seeded(n_cases=500, seed=7)``, what ``falcon-mc emulator`` serves)
  and one working directory holding ``testfile.png`` and ``report.pdf``.
* A block titled like a file (```` ```python title="escalation.py" ````) is not run: it is
  written to the working directory (on ``sys.path``) for later blocks to import; the test files
  of docs/testing.md run as a separate project in ``tests/test_plugin.py``.
* Top-level ``await`` works (as in ``python -m asyncio``): such blocks run on the page's event
  loop, which lives in a worker thread for the whole page. Blocks that call ``anyio.run``
  (``asyncio.run``, ``trio.run``) run as scripts in the test's own thread.
* While a block runs, ``FALCON_CLIENT_ID``/``FALCON_CLIENT_SECRET`` are set and an
  ``AsyncMessageCenter`` made without ``transport=`` is wired to the page's emulator in-process
  (any cloud or https URL lands there; a loopback ``http://`` URL is left alone: the example
  served an emulator itself) with no retry delay, so examples read as they would against a
  tenant.
* Warnings fail the block, except the ``DeprecationWarning`` of the legacy routes
  (``create_case``, ``update_case``), which the docs mention.
"""

from __future__ import annotations

import ast
import contextlib
import difflib
import functools
import inspect
import io
import os
import re
import shutil
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import CodeType
from typing import Any

import anyio.from_thread
import pytest

from falcon_mc import AsyncMessageCenter
from falcon_mc.emulator import Emulator

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]

RUN = "python"
OUTPUT = "output"
SCRIPT_RUNNERS = {("anyio", "run"), ("asyncio", "run"), ("trio", "run")}
LEGACY_WARNING = "removed from CrowdStrike's current API"

# A 1x1 PNG and a minimal PDF for the upload examples.
PNG_1X1 = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082"
)
PDF_MINIMAL = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<ticks>`{3,})(?P<info>[^`]*)$")
_TITLE = re.compile(r'title="(?P<title>[^"]+)"')


@dataclass
class Block:
    """One fenced code block of a page."""

    page: str
    lang: str
    line: int  # 1-based line of the first code line
    code: str
    index: int = 0  # position among the page's runnable blocks (1-based)
    output: str | None = None
    title: str | None = None  # ```python title="name.py": a file, not a snippet


def parse_blocks(path: Path) -> list[Block]:
    """Every fenced block of a Markdown file (indented fences, as in tabs, included)."""
    page = path.relative_to(ROOT).as_posix()
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        opener = _FENCE.match(lines[i])
        if opener is None:
            i += 1
            continue
        indent, ticks = opener["indent"], opener["ticks"]
        info = opener["info"].strip().lstrip("{").lstrip(".")
        lang = info.split()[0].rstrip("}") if info else ""
        body: list[str] = []
        i += 1
        while i < len(lines):
            closing = lines[i].strip()
            if closing.startswith(ticks) and set(closing) == {"`"} and (
                lines[i].startswith(indent) or not lines[i].strip()
            ):
                break
            text = lines[i]
            body.append(text[len(indent):] if text.startswith(indent) else text.lstrip())
            i += 1
        block = Block(page, lang, i - len(body) + 1, "\n".join(body) + "\n")
        if (title := _TITLE.search(info)) is not None:
            block.title = title["title"]
        blocks.append(block)
        i += 1
    return blocks


def runnable_blocks(path: Path) -> list[Block]:
    """The page's ```python blocks, numbered, each with the output block that follows it."""
    blocks = parse_blocks(path)
    runnable: list[Block] = []
    for position, block in enumerate(blocks):
        if block.lang != RUN:
            continue
        block.index = len(runnable) + 1
        following = blocks[position + 1] if position + 1 < len(blocks) else None
        if following is not None and following.lang == OUTPUT:
            block.output = following.code
        runnable.append(block)
    return runnable


ALL_BLOCKS = [block for page in PAGES for block in runnable_blocks(page)]


def _is_script(tree: ast.Module) -> bool:
    """Whether a block starts its own event loop (``anyio.run(main)`` and the like)."""
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and (node.func.value.id, node.func.attr) in SCRIPT_RUNNERS
        ):
            return True
    return False


def _is_loopback(base_url: object) -> bool:
    """A client aimed at a loopback URL talks to a server the example started itself."""
    return isinstance(base_url, str) and base_url.startswith(
        ("http://127.0.0.1", "http://localhost", "http://[::1]")
    )


def _compare_output(block: Block, printed: str) -> None:
    assert block.output is not None
    want = [line.rstrip() for line in block.output.rstrip().splitlines()]
    got = [line.rstrip() for line in printed.rstrip().splitlines()]
    if want != got:
        diff = "\n".join(difflib.unified_diff(want, got, "documented", "printed", lineterm=""))
        pytest.fail(f"{block.page}:{block.index} printed something else:\n{diff}", pytrace=False)


class _Stdout(io.TextIOBase):
    """The page's ``sys.stdout``: one object for the whole page (a logging handler made in one
    block keeps working in the next), writing into the running block's buffer."""

    def __init__(self) -> None:
        self.buffer_ = io.StringIO()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        return self.buffer_.write(text)

    def take(self) -> str:
        text, self.buffer_ = self.buffer_.getvalue(), io.StringIO()
        return text


@dataclass
class PageRun:
    """The shared state of one page: globals, emulator, event loop, working directory."""

    page: str
    emulator: Emulator = field(default_factory=lambda: Emulator.seeded(n_cases=500, seed=7))
    namespace: dict[str, Any] = field(default_factory=lambda: {"__name__": "__main__"})
    done: int = 0
    stdout: _Stdout = field(default_factory=_Stdout)
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    _portal: anyio.from_thread.BlockingPortal | None = None
    _workdir: Path | None = None

    @property
    def portal(self) -> anyio.from_thread.BlockingPortal:
        if self._portal is None:
            self._portal = self._stack.enter_context(anyio.from_thread.start_blocking_portal())
        return self._portal

    @property
    def workdir(self) -> Path:
        if self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix="falcon-mc-docs-"))
            (self._workdir / "testfile.png").write_bytes(PNG_1X1)
            (self._workdir / "report.pdf").write_bytes(PDF_MINIMAL)
        return self._workdir

    @contextlib.contextmanager
    def environment(self) -> Iterator[None]:
        """Credentials, working directory and the client wired to this page's emulator."""
        original = AsyncMessageCenter.__init__
        emulator = self.emulator

        @functools.wraps(original)
        def wired(client: AsyncMessageCenter, **kwargs: Any) -> None:
            if kwargs.get("transport") is None and not _is_loopback(kwargs.get("base_url")):
                kwargs["transport"] = emulator.transport()
                kwargs.setdefault("retry_base_delay", 0)
            original(client, **kwargs)

        saved_env = {k: os.environ.get(k) for k in ("FALCON_CLIENT_ID", "FALCON_CLIENT_SECRET")}
        cwd = Path.cwd()
        sys.path.insert(0, str(self.workdir))
        os.environ["FALCON_CLIENT_ID"] = "docs-client-id"
        os.environ["FALCON_CLIENT_SECRET"] = "docs-client-secret"
        os.chdir(self.workdir)
        setattr(AsyncMessageCenter, "__init__", wired)  # noqa: B010 - a method patch
        try:
            yield
        finally:
            setattr(AsyncMessageCenter, "__init__", original)  # noqa: B010
            os.chdir(cwd)
            sys.path.remove(str(self.workdir))
            for key, value in saved_env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    def run(self, block: Block) -> str:
        """Run one block; return what it printed. Raises what the block raised."""
        source = "\n" * (block.line - 1) + block.code  # line numbers of the page in tracebacks
        tree = ast.parse(source, filename=str(ROOT / block.page))
        if block.title is not None and block.title.endswith(".py"):
            (self.workdir / block.title).write_text(block.code, encoding="utf-8")
            return ""  # a file of the example project (test files run in test_plugin.py)
        code = compile(
            source, str(ROOT / block.page), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
        )
        self.stdout.take()
        with (
            self.environment(),
            contextlib.redirect_stdout(self.stdout),
            warnings.catch_warnings(record=True) as caught,
        ):
            warnings.simplefilter("always")
            if _is_script(tree):
                self._evaluate_sync(code)
            else:
                self.portal.call(self._evaluate, code)
        unexpected = [
            w for w in caught
            if not (issubclass(w.category, DeprecationWarning) and LEGACY_WARNING in str(w.message))
        ]
        if unexpected:
            pytest.fail(
                f"{block.page}:{block.index} warned: "
                + "; ".join(f"{w.category.__name__}: {w.message}" for w in unexpected),
                pytrace=False,
            )
        return self.stdout.take()

    def _evaluate_sync(self, code: CodeType) -> None:
        result = eval(code, self.namespace)  # noqa: S307 - the documentation's own examples
        assert result is None

    async def _evaluate(self, code: CodeType) -> None:
        result = eval(code, self.namespace)  # noqa: S307 - the documentation's own examples
        if inspect.iscoroutine(result):
            await result

    def close(self) -> None:
        """Close the clients the page left open, the event loop, and the working directory."""
        try:
            if self._portal is not None:
                for value in list(self.namespace.values()):
                    if isinstance(value, AsyncMessageCenter):
                        self._portal.call(value.aclose)
        finally:
            self._stack.close()
            if self._workdir is not None:
                shutil.rmtree(self._workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def page_runs() -> Iterator[Callable[[str], PageRun]]:
    """One :class:`PageRun` per page, closed at the end of the module."""
    runs: dict[str, PageRun] = {}

    def get(page: str) -> PageRun:
        if page not in runs:
            runs[page] = PageRun(page)
        return runs[page]

    yield get
    for run in runs.values():
        run.close()


@pytest.mark.parametrize("block", ALL_BLOCKS, ids=[f"{b.page}:{b.index}" for b in ALL_BLOCKS])
def test_example(block: Block, page_runs: Callable[[str], PageRun]) -> None:
    run = page_runs(block.page)
    earlier = [b for b in ALL_BLOCKS if b.page == block.page and run.done < b.index < block.index]
    for previous in earlier:  # when selected alone, replay the page up to this block
        with contextlib.suppress(Exception):
            run.run(previous)
        run.done = previous.index
    run.done = block.index
    printed = run.run(block)
    if block.output is not None:
        _compare_output(block, printed)


def test_examples_found() -> None:
    """The harness sees the examples (a broken fence would silently drop them)."""
    pages = {block.page for block in ALL_BLOCKS}
    assert "README.md" in pages
    assert "docs/quickstart.md" in pages
    assert "docs/migration.md" in pages
    assert all(block.code.strip() for block in ALL_BLOCKS)
