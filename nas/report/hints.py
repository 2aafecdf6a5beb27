"""What the report's refusals say to do about a run folder's missing or damaged files: rebuild them from the
run's study (`python -m nas.report search.runs_dir=... search.study_name=...`) with the settings the search ran on,
after moving a folder copied or renamed from another run's back to its study's name."""

from __future__ import annotations

import pathlib
from collections.abc import Sequence


def _rebuild_hint(run_dir: pathlib.Path) -> str:
    """What to do about a damaged pareto.json of `run_dir`: the search that wrote it ran, so not 'run it first', but
    rebuild the folder's files from its study (`_rebuild_text`)."""
    return f"damaged; {_rebuild_text(run_dir)}"


def _searched(run_dir: pathlib.Path) -> bool:
    """Whether a search ran in `run_dir` (its study.db or config.yaml is there): a file of it that is gone is written
    again by the rebuild from its study, not by running the search first."""
    return (run_dir / "study.db").is_file() or (run_dir / "config.yaml").is_file()


def _rebuild_text(run_dir: pathlib.Path) -> str:
    """'rebuild the run folder's files from its study: python -m nas.report ...' (which writes trials.csv and pareto.json
    anew), with the search's data.root, final_train and compress as its config.yaml records them
    (`nas.rebuild.rebuild_settings`: without them the rebuild was refused, or trained and compressed the members again
    with the defaults); where config.yaml cannot be read, those named."""
    settings = None
    try:
        # nas.rebuild (Hydra, OmegaConf; no torch) only here: the report of a sound run folder imports nothing from nas
        from nas.rebuild import rebuild_settings
    except ImportError:  # the report's files copied alone: the settings are named instead
        pass
    else:
        settings = rebuild_settings(run_dir)
    moved, study = _moved_from(run_dir)
    named = _rebuild_command(str(run_dir), [], study_name=study)
    if settings is None:
        return (f"{moved}rebuild the run folder's files from its study: python -m nas.report {named} with the search's "
                "settings (its data.root, final_train and compress: config.yaml holds them; search.storage for a study "
                "not in its study.db)")
    # each setting is one shell argument already (a data.root quoted as `nas.overrides.shell_override` quotes it)
    return (f"{moved}rebuild the run folder's files from its study: python -m nas.report {' '.join([named, *settings])}"
            " (and search.storage=... for a study not in its study.db)")


def _study_names(run_dir: pathlib.Path) -> list[str] | None:
    """The names of the studies in the run folder's own study.db (Optuna's `studies` table), sorted; None where it has
    none or it cannot be read. Opened read-only (a `mode=ro` URI): neither Optuna (absent where only the report runs)
    nor a connection that would create or migrate the database."""
    import contextlib
    import sqlite3

    db = run_dir / "study.db"
    if not db.is_file():
        return None
    try:
        with contextlib.closing(sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)) as connection:
            return sorted(str(name) for name, in connection.execute("SELECT study_name FROM studies"))
    except (sqlite3.Error, OSError, ValueError):  # not a database, of another schema, locked, unreadable
        return None


# The study name of a rebuild hint for a folder whose database holds several studies, none of its name: the user's
# choice
_CHOSEN_STUDY = "<its name>"


def _moved_from(run_dir: pathlib.Path) -> tuple[str, str | None]:
    """For a run folder copied or renamed from another run's (its study.db holds no study of the folder's name): what
    to do first, and the study name its rebuild takes (`_CHOSEN_STUDY` where it holds several); else ("", None): the
    folder's name is the study's, or its study is elsewhere (search.storage) or unreadable. The rebuild reads the run
    folder search.runs_dir/search.study_name, so `search.study_name=<folder name>` was refused (the study is not in the
    database) and the study's own name alone reads another folder."""
    folder = run_dir.resolve() if run_dir.name in ("", "..") else run_dir
    names = _study_names(run_dir)
    if not names or folder.name in names:
        return "", None
    if len(names) > 1:
        return (f"its study.db holds studies {', '.join(map(repr, names))}, none named {folder.name!r}: move the "
                f"folder to {folder.parent}/<the name of the study to rebuild> (the rebuild reads the run folder "
                "search.runs_dir/search.study_name), then "), _CHOSEN_STUDY
    study = names[0]
    target = folder.parent / study
    where = (f"move it back to {target}" if not target.exists()
             else f"move it into another folder as {study} ({target} is taken) and pass that folder as search.runs_dir")
    return (f"its study.db holds study {study!r}, so the folder was copied or renamed from a run of that name (the "
            f"rebuild reads the run folder search.runs_dir/search.study_name): {where}, then "), study


def _rebuild_command(run_dir: str, overrides: Sequence[str], *, study_name: str | None = None) -> str:
    """The settings that rebuild the run folder `run_dir` from its study with `overrides` (its runs_dir and study_name
    from the folder's path, unless given among them: each key once; `study_name`, where given, the study's name, which
    the folder's database holds, rather than the folder's), quoted for a shell. The path's parts quoted for
    Hydra too (`nas.overrides.shell_override`): in the shell's quotes alone, a runs_dir with a space or a quote reached
    Hydra, which refused it or read another folder; `overrides` as typed, each one shell argument."""
    import shlex

    folder = pathlib.Path(run_dir)
    if folder.name in ("", ".."):  # `.`, `..`: the folder's own name is needed
        folder = folder.resolve()
    given = {o.lstrip("+~").split("=", 1)[0] for o in overrides}
    try:
        from nas.overrides import shell_override  # Hydra, no torch; this module's files copied alone: the shell's quotes
    except ImportError:
        def shell_override(*, key: str, value: str) -> str:
            return shlex.quote(f"{key}={value}")
    named = [f"{key}={value}" if value == _CHOSEN_STUDY else shell_override(key=key, value=str(value))
             for key, value in (("search.runs_dir", folder.parent), ("search.study_name", study_name or folder.name))
             if key not in given]
    return " ".join([*named, *(shlex.quote(o) for o in overrides)])
