"""MkDocs hooks for permsolve's site (a local file, no plugin to install or fetch).

* ``on_config``: drops nav entries whose page is not in ``docs/`` (pages that
  other branches add: the nav names them before they land), so the built nav
  never links to a missing page; and lays out the package's sources as they
  are installed (``solvers/`` and ``problems/`` are installed as
  ``permsolve.solvers`` and ``permsolve.problems``) in ``build/apisrc``, where
  mkdocstrings reads the docstrings (``paths`` in ``mkdocs.yml``).
* ``on_files`` / ``on_page_markdown``: the pages link repository files outside
  ``docs/`` with plain relative links (``../results/bench/anytime.png``,
  ``../benchmarks/scaling.py``), which work when the Markdown is read in the
  repository.  The hook copies every such linked file into the site under its
  repository path and rewrites the link to it, so the same link works in the
  built site (a link to a folder gets a generated listing of its files).  A
  link to a repository file that does not exist is left as it is, and
  MkDocs's strict link check fails the build on it.  It also puts a
  blank line before a list that follows a paragraph line directly, and
  doubles the indentation inside lists (GitHub nests by 2 spaces,
  Python-Markdown by 4), so that lists render as they do on GitHub.
* ``on_page_content``: the docstrings use Sphinx roles (``:func:`solve```,
  ``:class:`~permsolve.TileProblem```), which mkdocstrings leaves as text;
  the role prefix and the ``~`` are dropped, leaving the name in code.
"""
from __future__ import annotations

import logging
import posixpath
import re
import shutil
from pathlib import Path

from mkdocs.structure.files import File

log = logging.getLogger("mkdocs.hooks.permsolve")

# [text](target "title") and ![alt](target); src="target" / href="target" in raw HTML
_MD_LINK = re.compile(r"(\]\()([^)\s]+)((?:\s+\"[^\"]*\")?\))")
_HTML_LINK = re.compile(r"((?:src|href)=\")([^\"]+)(\")")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
_LIST_ITEM = re.compile(r"^(?:[-*+]|\d+\.) ")


def _root(config) -> Path:
    return Path(config["docs_dir"]).resolve().parent


def _page_exists(config, item) -> bool:
    return (Path(config["docs_dir"]) / item).is_file()


def _prune_nav(config, nav):
    out = []
    for entry in nav:
        if isinstance(entry, str):
            if entry.startswith(("http://", "https://")) or _page_exists(config, entry):
                out.append(entry)
            else:
                log.info("nav: %s is not in docs/ (yet); left out", entry)
        elif isinstance(entry, dict):
            (title, value), = entry.items()
            if isinstance(value, list):
                value = _prune_nav(config, value)
                if value:
                    out.append({title: value})
            elif value.startswith(("http://", "https://")) or _page_exists(config, value):
                out.append(entry)
            else:
                log.info("nav: %s (%s) is not in docs/ (yet); left out", title, value)
    return out


#: where the installed layout is copied for mkdocstrings (mkdocs.yml: ``paths: [build/apisrc]``)
API_SRC = "build/apisrc"
#: installed package -> folder in the repository (pyproject.toml's package-dir)
PACKAGE_DIRS = {"permsolve": "permsolve", "permsolve/solvers": "solvers", "permsolve/problems": "problems"}


def _lay_out_sources(root: Path) -> None:
    dest = root / API_SRC
    if dest.exists():
        shutil.rmtree(dest)
    for pkg, src in PACKAGE_DIRS.items():
        shutil.copytree(root / src, dest / pkg, dirs_exist_ok=True,
                        ignore=lambda d, names: [n for n in names if not (n.endswith(".py") or
                                                                           (Path(d) / n).is_dir())
                                                 or n == "__pycache__"])


def on_config(config):
    if config.get("nav"):
        config["nav"] = _prune_nav(config, config["nav"])
    _lay_out_sources(_root(config))
    return config


def _outside_target(config, page_src_uri: str, target: str) -> str | None:
    """The repository path (posix) of ``target`` linked from ``page_src_uri`` if it lies outside docs/."""
    if not target or target.startswith(("#", "/")) or _SCHEME.match(target):
        return None
    path = target.split("#", 1)[0].split("?", 1)[0]
    if not path:
        return None
    docs = Path(config["docs_dir"]).resolve()
    real = (docs / posixpath.dirname(page_src_uri) / path).resolve()
    root = _root(config)
    try:
        real.relative_to(docs)
        return None                     # inside docs/: MkDocs handles it
    except ValueError:
        pass
    try:
        rel = real.relative_to(root).as_posix()
    except ValueError:
        return None                     # outside the repository: left for MkDocs to report
    if rel == "." or rel.startswith((".git", ".venv", "build/")) or not real.exists():
        return None
    if real.is_dir():
        return rel + "/"                # a folder: linked to a generated listing (see on_files)
    return rel


def _outside_links(config, src_uri: str, text: str):
    fence = False
    for line in text.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fence = not fence
            continue
        if fence:
            continue
        for rx in (_MD_LINK, _HTML_LINK):
            for m in rx.finditer(line):
                rel = _outside_target(config, src_uri, m.group(2))
                if rel:
                    yield rel


class RepoFile(File):
    """A repository file outside docs/, copied into the site as it is (never rendered as a page)."""

    def is_documentation_page(self) -> bool:
        return False

    def is_static_page(self) -> bool:
        return False

    def is_media_file(self) -> bool:
        return True

    def is_javascript(self) -> bool:
        return False

    def is_css(self) -> bool:
        return False


#: files larger than this are listed in a folder's listing but not copied into the site
MAX_COPY = 5 * 2**20


def _listing(rel_dir: str, names: list[str], copied: set[str]) -> str:
    import html

    items = "".join(f'<li><a href="{html.escape(n)}">{html.escape(n)}</a></li>' if n in copied
                    else f"<li>{html.escape(n)}</li>" for n in names)
    return (f"<!doctype html><meta charset=utf-8><title>{html.escape(rel_dir)}</title>"
            f"<h1><code>{html.escape(rel_dir)}/</code></h1><p>Files of this repository folder:</p><ul>{items}</ul>")


def on_files(files, config):
    root = _root(config)
    wanted = set()
    for f in files.documentation_pages():
        wanted.update(_outside_links(config, f.src_uri, Path(f.abs_src_path).read_text(encoding="utf-8")))
    for rel in sorted(wanted):
        if rel.endswith("/"):          # a folder: copy its files, and write a listing as its index.html
            d = rel.rstrip("/")
            names = sorted(n.name for n in (root / d).iterdir() if not n.name.startswith((".", "__pycache__")))
            copied = set()
            for n in names:
                p = root / d / n
                if p.is_file() and p.stat().st_size <= MAX_COPY:
                    copied.add(n)
                    if files.get_file_from_path(f"{d}/{n}") is None:
                        files.append(RepoFile(f"{d}/{n}", str(root), config["site_dir"],
                                              config["use_directory_urls"]))
            if files.get_file_from_path(f"{d}/index.html") is None:
                files.append(File.generated(config, f"{d}/index.html", content=_listing(d, names, copied)))
        elif files.get_file_from_path(rel) is None:
            files.append(RepoFile(rel, str(root), config["site_dir"], config["use_directory_urls"]))
    return files


def _rewrite(config, page_src_uri: str, text: str) -> str:
    page_dir = posixpath.dirname(page_src_uri)

    def sub(m):
        target = m.group(2)
        rel = _outside_target(config, page_src_uri, target)
        if not rel:
            return m.group(0)
        anchor = target[len(target.split("#", 1)[0]):]
        dest = rel + "index.html" if rel.endswith("/") else rel
        return m.group(1) + posixpath.relpath(dest, page_dir or ".") + anchor + m.group(3)

    out = []
    fence = None        # inside a fenced block: the shift its lines get (see below)
    in_list = False
    for line in text.split("\n"):
        indent = len(line) - len(line.lstrip(" "))
        if fence is not None:
            if line.lstrip().startswith(("```", "~~~")):
                out.append(" " * fence + line)
                fence = None
            else:
                out.append(" " * fence + line if line.strip() else line)
            continue
        if line.lstrip().startswith(("```", "~~~")):
            fence = indent if in_list else 0
            out.append(" " * fence + line)
            continue
        line = _HTML_LINK.sub(sub, _MD_LINK.sub(sub, line))
        if line.strip() and indent == 0:
            in_list = bool(_LIST_ITEM.match(line))
        prev = out[-1] if out else ""
        if (_LIST_ITEM.match(line) and prev.strip() and not _LIST_ITEM.match(prev)
                and not prev.startswith((" ", "\t", "|", "#", ">"))):
            out.append("")
        if in_list and indent:
            # GitHub nests lists by the item's content column (2 spaces under "- "), Python-Markdown
            # by 4: doubling the indentation inside a list keeps every level
            line = " " * indent + line
        out.append(line)
    return "\n".join(out)


def on_page_markdown(markdown, page, config, files):
    return _rewrite(config, page.file.src_uri, markdown)


_ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|data|attr|obj|exc|const):(<code>)~?")


def on_page_content(html, page, config, files):
    return _ROLE.sub(r"\1", html)


__all__ = ["on_config", "on_files", "on_page_markdown", "on_page_content", "RepoFile"]


if __name__ == "__main__":
    # `make docs` lays the sources out before MkDocs starts: mkdocstrings reads its search
    # paths while it is configured, which can be before this hook's on_config has run, so a
    # first build from a clean checkout would not find build/apisrc.
    _lay_out_sources(Path(__file__).resolve().parent.parent)
