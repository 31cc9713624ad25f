"""Kubernetes YAML files and the `ocibake://PATH` references in them.

ruamel.yaml parses every document (multi-document files, directories recursively) and says where each string that
starts with ocibake:// sits (line and column). The rewrite swaps exactly those characters in the original text, so
everything else (comments, quoting, indentation, key order, blank lines) stays byte for byte as it was; the result is
parsed again and must equal the original documents with only the references replaced.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ocibake.errors import InputError, OcibakeError

if TYPE_CHECKING:
    from ruamel.yaml import YAML

SCHEME = "ocibake://"
SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class Reference:
    file: Path
    line: int  # 0-based, in the file
    column: int  # 0-based: where the scalar starts (its opening quote, if quoted)
    value: str  # ocibake://PATH as written

    @property
    def path(self) -> str:
        return self.value[len(SCHEME) :]

    def where(self) -> str:
        return f"{self.file}:{self.line + 1}"


@dataclass(frozen=True)
class YamlFile:
    path: Path
    text: str
    documents: tuple[object, ...]  # as ruamel.yaml's round-trip loader parsed them
    references: tuple[Reference, ...]


def _yaml() -> YAML:
    from ruamel.yaml import YAML

    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    return yaml


def collect_files(arguments: Iterable[str]) -> list[Path]:
    """The YAML files named: files as given, directories searched recursively for *.yaml and *.yml (sorted)."""
    files: list[Path] = []
    for arg in arguments:
        path = Path(arg)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix in SUFFIXES and p.is_file())
            if not found:
                raise InputError(f"{arg} holds no .yaml or .yml file", hint="pass Kubernetes YAML files or directories")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise InputError(f"-f {arg}: no such file or directory", hint="pass Kubernetes YAML files or directories")
    return list(dict.fromkeys(files))


def read_file(path: Path) -> YamlFile:
    from ruamel.yaml.error import YAMLError

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path} cannot be read: {exc}", hint="pass UTF-8 YAML files you may read") from None
    try:
        documents = tuple(_yaml().load_all(text))
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InputError(f"{where}: not valid YAML: {problem}", hint="fix the YAML; nothing was built") from None
    refs = tuple(Reference(path, line, col, value) for line, col, value in _scan(documents))
    lines = text.splitlines(keepends=True)
    for ref in refs:
        if not ref.path.strip():
            raise InputError(
                f"{ref.where()}: {ref.value!r} names no service",
                hint="write ocibake://PATH, the service's directory (e.g. ocibake://services/api)",
            )
        _locate(lines, ref)  # before anything is built: a folded scalar or an alias cannot be rewritten
    return YamlFile(path, text, documents, refs)


def _locate(lines: list[str], ref: Reference) -> int:
    """Where ``ref``'s text starts on its line; bad input when the parser's value is not written there as is."""
    line = lines[ref.line] if ref.line < len(lines) else ""
    at = line.find(ref.value, ref.column)
    if at < 0 or at > ref.column + 1:
        raise InputError(
            f"{ref.where()}: {ref.value!r} is not written as one plain or quoted scalar",
            hint="write each ocibake:// reference on one line, without a block scalar (>, |), an "
            "anchor or an alias; nothing was built",
        )
    return at


def _scan(node: object) -> Iterator[tuple[int, int, str]]:
    """(line, column, value) of every string starting with ocibake:// under ``node``."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    if isinstance(node, tuple):
        for doc in node:
            yield from _scan(doc)
    elif isinstance(node, CommentedMap):
        for key, value in node.items():
            if isinstance(value, str) and value.startswith(SCHEME):
                line, col = node.lc.value(key)
                yield line, col, str(value)
            else:
                yield from _scan(value)
    elif isinstance(node, CommentedSeq):
        for i, value in enumerate(node):
            if isinstance(value, str) and value.startswith(SCHEME):
                line, col = node.lc.item(i)
                yield line, col, str(value)
            else:
                yield from _scan(value)


def rewrite(yaml_file: YamlFile, replacements: Mapping[str, str]) -> str:
    """The file's text with each reference replaced by ``replacements[reference.value]``, checked by parsing."""
    if not yaml_file.references:
        return yaml_file.text
    lines = yaml_file.text.splitlines(keepends=True)
    # right to left within a line, so earlier columns stay valid
    for ref in sorted(yaml_file.references, key=lambda r: (r.line, r.column), reverse=True):
        line = lines[ref.line]
        at = _locate(lines, ref)
        lines[ref.line] = line[:at] + replacements[ref.value] + line[at + len(ref.value) :]
    text = "".join(lines)
    expected = [_plain(d) for d in yaml_file.documents]
    got = [_plain(d) for d in _yaml().load_all(text)]
    if got != [_replaced(d, replacements) for d in expected]:
        raise OcibakeError(
            f"rewriting the references in {yaml_file.path} changed more than the references",
            hint="write each ocibake:// reference as a plain or quoted scalar on one line",
        )
    return text


def _plain(node: object) -> object:
    """A parsed document as plain dicts, lists and strings, to compare documents by value."""
    if isinstance(node, dict):
        return {_plain(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    if isinstance(node, str):
        return str(node)
    return node


def _replaced(node: object, replacements: Mapping[str, str]) -> object:
    """A plain document with every ocibake:// string replaced as ``replacements`` says."""
    if isinstance(node, dict):
        return {k: _replaced(v, replacements) for k, v in node.items()}
    if isinstance(node, list):
        return [_replaced(v, replacements) for v in node]
    if isinstance(node, str) and node.startswith(SCHEME):
        return replacements[node]
    return node


def join(texts: Iterable[str]) -> str:
    """Several files as one YAML stream: each ends with a newline, and files are separated by `---`."""
    out = io.StringIO()
    first = True
    for text in texts:
        if not text.strip():
            continue
        if not first and not text.lstrip().startswith("---"):
            out.write("---\n")
        out.write(text if text.endswith("\n") else text + "\n")
        first = False
    return out.getvalue()
