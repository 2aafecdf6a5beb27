"""The command line's overrides, checked before Hydra runs them and written back for a shell: `precheck_overrides`
(`exit_on_bad_overrides`, each command's first step) composes them once, so that a typo, a flag Hydra refuses, a
value its grammar takes only in quotes or a chip's file in the wrong folder is one line naming the fix instead of
Hydra's multi-line message; `shell_override` and `shell_command` quote settings for the hints that repeat them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf

from nas import config  # config.CONF_DIR read at call time: one setting of it (a copy of conf/) reaches every check
from nas.config import (RunConfig, checked_naming_file, group_file, overridden_keys, register_configs,
                        to_compress_run_config, to_run_config, unknown_keys, with_whole_mappings)
from nas.config_messages import compose_error_message, unknown_key_message, yaml_value
from nas.errors import ConfigError, exit_with_error


def searchpath_folder(overrides: Sequence[str]) -> str | None:
    """The last `file://` folder an override `hydra.searchpath=[...]` puts on Hydra's search path; None without one."""
    for override in reversed(overrides):
        key, eq, value = override.lstrip("+").partition("=")
        if eq and key == "hydra.searchpath" and (found := re.findall(r"file://([^,'\"\]]+)", value)):
            return found[-1].strip()
    return None


# The setting a path given alone most likely meant, per command (its config name), for the hint.
_PATH_KEYS = {"compress_run": "checkpoint={}", "latency": "'measurements=[{}]'"}


def precheck_overrides(argv: Sequence[str], *, config_name: str,
                       check: Callable[[DictConfig], Any] | None = None) -> str | None:
    """Compose the command line's overrides on `config_name` (conf/<name>.yaml, its schema registered) once, before
    Hydra runs: a wrong group option, key or type becomes one line (returned) instead of Hydra's multi-line message,
    and a value the command's own check refuses (`value_problem`; `check`, where given: the check of a command that
    shares its config with others, as the latency tools do) is named before the command loads torch. None when they
    compose and pass."""
    from hydra import compose, initialize_config_dir

    if (problem := hydra_flags_problem(argv)) is not None:
        return problem
    multirun = {"-m", "--multirun"}
    argv, config_dir = split_config_dir(argv)
    if any(a.startswith("-") and a not in multirun for a in argv):  # --help, --cfg, --info ...: left to Hydra
        return None
    # Hydra's own settings and groups are composed too (hydra/launcher=joblib hydra.launcher.n_jobs=2, as README's local
    # workers use): a misspelt launcher, or a launcher's key given without its launcher, got Hydra's multi-line message.
    overrides = [a for a in argv if a not in multirun]
    if (problem := split_setting_problem(overrides)) is not None:  # `key=[1, 2]` unquoted, `key = 3`
        return problem
    bare = next((a for a in overrides if "=" not in a and not a.startswith("~")), None)  # `~key` deletes a key
    if bare is not None:  # a path given alone (a checkpoint folder, a CSV): Hydra says only "missing EQUAL"
        template = _PATH_KEYS.get(config_name)
        example = f"; e.g. {template.format(bare)}" if template else ""
        before = overrides[overrides.index(bare) - 1] if overrides.index(bare) > 0 else ""
        if (not example and "=" in before and not before.startswith("-") and not ("/" in bare or Path(bare).exists())
                and (kind := _text_kind(before.partition("=")[0].lstrip("+~"), overrides, config_name=config_name))):
            # search.study_name=my study: the shell split the value at its space. Not for a path given alone, nor after
            # a group or a number (hw=cpu exp1, search.n_trials=30 50), which no value with a space would suit
            example = _joined_hint(before, bare, kind=kind, multirun=bool(multirun & set(argv)))
        return f"{bare!r} is not a setting: every argument is key=value{example}"
    for override in overrides:  # `~hw`, `hw=null`: Hydra's "Config group override must be a string" or a later error
        if (problem := group_override_problem(override)) is not None:
            return problem
    for override in overrides:  # a path with `(`, `'` or `~`: Hydra said "mismatched input" or "LexerNoViableAlt"
        if (problem := override_syntax_problem(override, multirun=bool(multirun & set(argv)))) is not None:
            return problem
    if config_dir is not None:
        # The user's --config-dir (README "Installed as a package") joins the search path as Hydra's own flag adds it,
        # after conf/: without it a typo next to --config-dir got Hydra's multi-line message instead of one line.
        folder = Path(config_dir).absolute()
        if not folder.is_dir():
            return f"--config-dir {config_dir}: folder {folder} not found"
        quoted = str(folder).replace("\\", "\\\\").replace("'", "\\'")
        overrides.append(f"hydra.searchpath=['file://{quoted}']")
    with initialize_config_dir(config_dir=str(config.CONF_DIR), version_base="1.3"):
        try:
            for job in _sweep_jobs(overrides) if multirun & set(argv) else [overrides]:
                # with Hydra's node: its choices and search path name the group files (--config-dir's, the shipped)
                cfg = compose(config_name=config_name, overrides=job, return_hydra_config=True)
                try:  # a mapping given whole is the value, as the command's own composition makes it
                    with_whole_mappings(cfg, job)
                except ConfigError as e:
                    return str(e)
                if config_dir is not None and (problem := shadowed_file(cfg.hydra.runtime.choices, config_dir)):
                    return problem
                if (problem := number_for_a_switch(cfg, job) or number_for_a_switch_in_files(cfg, job)) is not None:
                    return problem
                # a key the schema lacks, added with `+key=`: named here too (`structured` would), before the command
                # imports what its run needs
                if unknown := [(key, schema) for key, schema in unknown_keys(cfg) if key != "hydra"]:
                    return unknown_key_message(*unknown[0])
                if (problem := value_problem(cfg, config_name=config_name, check=check)) is not None:
                    return problem
        except Exception as exc:  # Hydra/OmegaConf composition errors
            # A chip's file kept outside the config folders, named by its path or beside its group folder: say where it goes.
            return (_group_path_problem(overrides) or compose_error_message(exc, config_dir=config_dir)
                    + flat_file_hint(overrides, config_dir))
    return None


def _joined_hint(before: str, bare: str, *, kind: str, multirun: bool) -> str:
    """The hint for the word `bare` that the shell split from the value of the setting `before` (`search.study_name=my
    study`), of `kind` ("text" or "list", `_text_kind`): that setting with the word joined to its value, quoted for the
    shell and, where Hydra's grammar needs it, for Hydra. In a sweep (`-m search.study_name=a,b c`) the word joins the
    last value alone, in quotes of its own: the whole sweep in one pair of quotes would be one value to Hydra's ','."""
    import shlex

    from hydra.core.override_parser.overrides_parser import OverridesParser

    key, _, value = before.partition("=")
    if kind == "list":  # search.seed_archs=my arch: the word joins the list's last item
        joined = f"{value[:-1]} {bare}]" if value.endswith("]") else f"{value} {bare}" if value.startswith("[") else f"[{value} {bare}]"
        return f"; a value with spaces goes in quotes: {shlex.quote(f'{key}={joined}')}"
    parser = OverridesParser.create()
    text = f"{value} {bare}"
    try:
        # a plain a,b sweep only: the quoting of its last value would split Hydra's choice(a,b) or glob(a*) apart
        sweep = multirun and "(" not in value and parser.parse_overrides([before])[0].is_sweep_override()
    except Exception:  # noqa: BLE001 - Hydra's OverrideParseException, or a HydraException from its lexer
        sweep = False
    if sweep:
        return (f"; a value with spaces in a sweep goes in quotes of its own: "
                f"{_quoted_override(key, text, spans=[(value.rfind(',') + 1, len(text))])}")
    quoted = shlex.quote(f"{key}={text}") if _plain_value(parser, text, key=key) else _quoted_override(key, text)
    return f"; a value with spaces goes in quotes: {quoted}"


def _text_kind(key: str, overrides: Sequence[str], *, config_name: str) -> str | None:
    """"text" when setting `key` of `config_name`'s config (composed with the `key=value` items of `overrides`, or alone
    where they do not compose) holds a string, "list" for a list of strings: the settings a value with a space suits.
    None for a group, a number, a true/false, a mapping or a key the config lacks."""
    from hydra import compose, initialize_config_dir
    from omegaconf.nodes import AnyNode, StringNode

    settings = [o for o in overrides if "=" in o]
    with initialize_config_dir(config_dir=str(config.CONF_DIR), version_base="1.3"):
        for job in (settings, []):
            try:
                node = _node_at(compose(config_name=config_name, overrides=job, return_hydra_config=True), key)
                break
            except Exception:  # noqa: BLE001 - a hint only: overrides that do not compose leave it to the defaults
                node = None
    if isinstance(node, StringNode) or isinstance(node, AnyNode) and isinstance(node._value(), str):
        return "text"
    if isinstance(node, ListConfig) and node._metadata.element_type is str:
        return "list"
    return None


def _node_at(cfg: DictConfig, key: str) -> Any:
    """The node of `cfg` at the dotted `key` (`space.stages.0.widths`: a list's item by its number); None where there
    is none."""
    node: Any = cfg
    for part in key.split("."):
        node = node._get_node(int(part) if isinstance(node, ListConfig) and part.isdigit() else part) \
            if isinstance(node, (DictConfig, ListConfig)) else None
        if node is None:
            break
    return node


def search_values(cfg: DictConfig) -> RunConfig:
    """The search's check of its composed config: `to_run_config`'s, and its `search.seed_archs` (a family's name, an
    arch.json the space can express: `nas.families.seed_archs`), read as given, as the search reads them once its data
    is loaded. A misspelt seed was refused only then, after torch, Optuna and the data had loaded."""
    from nas.families import seed_archs

    run = to_run_config(cfg)
    # a seed set in the user's search/<name>.yaml is named with that file, as the other values are
    checked_naming_file(cfg, check=lambda: seed_archs(run.search.seed_archs, space=run.space, in_chans=run.data.channels,
                                                      img_size=run.data.img_size))
    return run


# The check each command makes first of the config it composed (ranges, a space's stages, a chip's profile and the
# keys of its mappings), before it loads anything; the latency tools' differs by tool (a fit does not read the fitted
# file), so each passes its own (`nas.latency.profile.latency_cli`)
_VALUE_CHECKS: dict[str, Callable[[DictConfig], Any]] = {"search": search_values, "compress_run": to_compress_run_config}


def value_problem(cfg: DictConfig, *, config_name: str, check: Callable[[DictConfig], Any] | None = None) -> str | None:
    """The one line of the value check `config_name`'s command makes of its config first (`_VALUE_CHECKS`, or `check`
    where given), run on `cfg`, composed with its `hydra` node, as the Hydra run that follows would: a bad value in a
    group file of the user's (`lr: 100` in train/mine.yaml under --config-dir) is named with that file before torch
    loads (seconds), and each value of a sweep before the sweep launches. None when the values pass, and for a command
    without such a check."""
    from hydra.core.hydra_config import HydraConfig

    if (check := check or _VALUE_CHECKS.get(config_name)) is None:
        return None
    hydra_config = HydraConfig.instance()
    before = hydra_config.cfg
    # as in the run: the group files its choices and search path name, and the keys its command line sets, name the
    # file that set a bad value (`nas.config.checked_naming_file`)
    hydra_config.set_config(cfg)
    try:
        check(cfg)
    except ConfigError as e:
        return str(e)
    except Exception:  # noqa: BLE001 - anything else is the run's to say, in its own words
        return None
    finally:
        hydra_config.cfg = before
    return None


def _open_brackets(text: str) -> int:
    """How many `[` and `{` of `text` are not closed, outside quotes (negative: more closed than opened)."""
    depth, quote = 0, None
    for c in text:
        if quote:
            quote = None if c == quote else quote
        elif c in "'\"":
            quote = c
        else:
            depth += (c in "[{") - (c in "]}")
    return depth


def split_setting_problem(overrides: Sequence[str]) -> str | None:
    """One line for a setting the shell split into several arguments: a list or mapping with spaces left unquoted
    (`space.stem_strides=[1, 2]`: Hydra got `space.stem_strides=[1,` and `2]`, and said "'2]' is not a setting" or
    that the list is not closed), or spaces around `=` (`search.n_trials = 3`). None otherwise."""
    import shlex

    for i, arg in enumerate(overrides):
        key, eq, value = arg.partition("=")
        if eq and not key.startswith("-") and _open_brackets(value) > 0 and i + 1 < len(overrides):
            parts = [arg]
            for rest in overrides[i + 1:]:
                parts.append(rest)
                if _open_brackets(" ".join(parts)) <= 0:
                    break
            if _open_brackets(" ".join(parts)) == 0:
                return (f"{' and '.join(repr(p) for p in parts)} are one setting that the shell split at its spaces; "
                        f"quote it whole: {shlex.quote(' '.join(parts))}")
        after = overrides[i + 1] if i + 1 < len(overrides) else None
        if not eq and after is not None and after.startswith("=") or eq and key != key.rstrip():
            value = (after[1:] or (overrides[i + 2] if i + 2 < len(overrides) else "")) if not eq else value.strip()
            return f"{arg!r}: write {key.strip()}={value} without spaces around ="
        if eq and not value and after is not None and "=" not in after and not after.startswith("-"):
            return f"{arg!r} {after!r}: write {key}={after} without spaces around ="
    return None


def group_override_problem(override: str) -> str | None:
    """One line for a group of the project's conf/ deleted (`~hw`: the command then ran without a chip, and said
    hw.name is required) or given null (`hw=null`, `compress=null` for compress=none: Hydra's "Config group override
    must be a string or a list. Got NoneType", naming neither). None otherwise."""
    key, eq, value = override.partition("=")
    group = key.lstrip("~+")
    folder = config.CONF_DIR / group
    if "." in group or "/" in group or not folder.is_dir() or not (key.startswith("~") or value.strip() == "null"):
        return None
    options = sorted(p.stem for p in folder.glob("*.yaml"))
    hint = f" (did you mean {group}=none?)" if "none" in options else ""
    if key.startswith("~"):
        return f"{override}: the command needs its {group} group; choose an option instead: {group}=<option>{hint}; available: {', '.join(options)}"
    return f"{override}: {group}= takes an option's name, not null{hint}; available: {', '.join(options)}"


def number_for_a_switch(cfg: DictConfig, overrides: Sequence[str]) -> str | None:
    """One line for an override that gives a true/false setting a number other than 0 or 1 (`train.channels_last=2`,
    `search.export_onnx=-1`): OmegaConf takes any integer there, as true but for 0, so such a typo was run as if it
    said true. None when every override of a true/false setting (in the composed `cfg`) is a bool, 0, 1 or a word."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf.nodes import BooleanNode

    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except Exception:  # noqa: BLE001 - the composition that passed has parsed them; say nothing rather than fail here
        return None
    for override in parsed:
        if override.is_sweep_override() or override.is_delete():
            continue
        value = override.value()
        if not isinstance(value, int) or isinstance(value, bool) or value in (0, 1):
            continue
        if isinstance(_node_at(cfg, override.key_or_group), BooleanNode):
            return f"{override.key_or_group}={value} is not allowed; allowed: true or false"
    return None


def number_for_a_switch_in_files(cfg: DictConfig, overrides: Sequence[str]) -> str | None:
    """`number_for_a_switch` for the group files `cfg` was composed from (`channels_last: 2` in a train/<name>.yaml given
    with --config-dir): one line naming the file, the value as written and what it takes, as for a value of the wrong
    kind there. `cfg` is composed with its `hydra` node (`return_hydra_config=True`), whose choices and search path say
    which files those are. A key the command line sets is left to its override. None when every true/false setting
    the files give is a bool, 0 or 1."""
    from omegaconf.nodes import BooleanNode

    runtime = OmegaConf.select(cfg, "hydra.runtime", default=None)
    if runtime is None:
        return None
    sources = [Path(str(s.path)) for s in runtime.config_sources if s.schema == "file"]
    typed = overridden_keys(overrides)

    def first_bad(node: Any, value: Any, key: str) -> str | None:
        if isinstance(value, dict) and isinstance(node, DictConfig):
            return next((bad for k, v in value.items() if isinstance(k, str) and k in node
                         and (bad := first_bad(node._get_node(k), v, f"{key}.{k}")) is not None), None)
        if (isinstance(node, BooleanNode) and isinstance(value, int) and not isinstance(value, bool)
                and value not in (0, 1) and key not in typed):
            return f"{key}={value} is not allowed; allowed: true or false"
        return None

    for group, name in runtime.choices.items():
        if group.startswith("hydra") or "/" in group or not isinstance(name, str) or not isinstance(cfg.get(group), DictConfig):
            continue
        path = group_file(group, name, [folder / group for folder in sources])
        raw = yaml_value(path, "") if path is not None else None
        if isinstance(raw, dict) and (bad := first_bad(cfg[group], raw, group)) is not None:
            return f"In '{group}/{name}' ({path}): {bad}"
    return None


def hydra_flag_names() -> frozenset[str]:
    """Every option of Hydra's command line (--cfg, -m, --config-dir, -h ...), from Hydra's own parser, so that a
    command that is no Hydra app (nas.report) can name one given to it without keeping a list of its own."""
    from hydra._internal.utils import get_args_parser

    return frozenset(flag for action in get_args_parser()._actions for flag in action.option_strings)


def hydra_flags_problem(argv: Sequence[str]) -> str | None:
    """One line for Hydra flags that Hydra refuses together (`-m --cfg job`, `--resolve` without `--cfg`): Hydra raised
    a ValueError, a traceback, before any of its own messages; and for a flag Hydra does not know (`--export-only`, a
    setting written as other tools take them), where its parser printed its usage lines. None otherwise, and where its
    parser refuses a choice (`--cfg jobs`: its usage line says so)."""
    from hydra._internal.utils import get_args_parser

    flags = [a for a in argv if a.startswith("-")]
    if not flags:  # plain key=value settings: nothing for the parser to find
        return None
    try:
        args, unknown = get_args_parser().parse_known_args(list(argv))
    except SystemExit:  # --version, or a choice it refuses: Hydra's own parser answers, in its usage line
        return None
    if flag := next((a for a in unknown if a.startswith("-")), None):
        # `--export-only`, as other tools take settings: Hydra printed its usage lines and "unrecognized arguments"
        key = flag.lstrip("-").split("=", 1)[0].replace("-", "_")
        return f"{flag} is not an option of this command: settings are key=value, without dashes ({key}=...)"
    modes = [name for name, given in (("--run", args.run), ("--multirun", args.multirun), ("--cfg", args.cfg is not None),
                                      ("--info", args.info is not None), ("--shell-completion", args.shell_completion))
             if given]
    if len(modes) > 1 and not (args.help or args.hydra_help):  # a help flag answers before the modes are counted
        return (f"{' and '.join(modes)} cannot be given together: a command takes one of --run, --multirun, --cfg, --info "
                "and --shell-completion; drop all but one")
    if args.resolve and args.cfg is None and not args.help:
        return "--resolve goes with --cfg (or --help): it resolves the interpolations of the settings printed"
    return None


def _group_path_problem(overrides: Sequence[str]) -> str | None:
    """One line for a group option given as a file's path (`hw=/my/chips/acme.yaml`), for a command that did not
    compose: Hydra read it as a group named `hw//my/chips` and said that group has no option `acme.yaml`. None where no
    group option looks like a path (an option in a subfolder of its group, hw=vendor/chip, composes and is not asked)."""
    groups = {d.name for d in config.CONF_DIR.iterdir() if d.is_dir()}
    for arg in overrides:
        group, eq, value = arg.lstrip("+~").partition("=")
        if not eq or group not in groups or not ("/" in value or "\\" in value or value.endswith((".yaml", ".yml"))):
            continue
        path = Path(value)
        name = path.name.rsplit(".", 1)[0] if path.suffix in (".yaml", ".yml") else path.name
        where = (f"pass --config-dir {path.parent.parent} {group}={name}" if path.parent.name == group else
                 f"move the file to <your folder>/{group}/{name}.yaml and pass --config-dir <your folder> {group}={name}")
        return (f"{group}={value} is a path; {group}= takes a file's name without .yaml, from a {group}/ folder on the config "
                f"search path: {where} (README, 'Onboarding a chip')")
    return None


def flat_file_hint(overrides: Sequence[str], config_dir: str | None) -> str:
    """'; <dir>/<name>.yaml is there, but ...' for a group option that is not found where `config_dir` (the user's
    --config-dir), or else the project's conf/, holds a file of that name directly (mine/acme.yaml or conf/acme.yaml for
    hw=acme, not mine/hw/acme.yaml or conf/hw/acme.yaml), else ''; where `config_dir` is the group's folder itself
    (--config-dir mine/hw), it says to pass the folder above. conf/'s own primary configs (search.yaml, ...) are
    no group's option put in the wrong place."""
    for arg in overrides:
        group, eq, name = arg.lstrip("+~").partition("=")
        if not eq or not (config.CONF_DIR / group).is_dir() or "/" in name:
            continue
        # <name>.yml, a usual spelling of YAML files, where its group looks: Hydra offers only .yaml files (and a fit
        # writes its numbers to <name>.fitted.yml so that they are no choice), so the file was not an option, unexplained
        folders = ([Path(config_dir).absolute() / group] if config_dir is not None else []) + [config.CONF_DIR / group]
        if not name.endswith(".fitted") and (yml := next((f / f"{name}.yml" for f in folders
                                                          if (f / f"{name}.yml").is_file()), None)) is not None:
            return f"; {yml} is there, but {group}= chooses only .yaml files: rename it to {yml.with_suffix('.yaml')}"
        if config_dir is not None and (flat := Path(config_dir).absolute() / f"{name}.yaml").is_file():
            if flat.parent.name == group:  # --config-dir myconf/hw: the file is where it goes, the folder is one too deep
                return (f"; {flat} is there, but --config-dir names the folder above {group}/: pass --config-dir "
                        f"{flat.parent.parent}")
            return (f"; {flat} is there, but --config-dir reads a group's files from its subfolder: move it to "
                    f"{flat.parent / group / flat.name}")
        if (flat := config.CONF_DIR / f"{name}.yaml").is_file() and not _is_primary_config(flat):
            return (f"; {flat} is there, but {group}= reads its files from {config.CONF_DIR / group}: move {flat} to "
                    f"{config.CONF_DIR / group / flat.name}")
        if (config_dir is None and name and not (config.CONF_DIR / group / f"{name}.yaml").is_file()
                and (mine := _own_group_file(group, name)) is not None):
            # README's steps name --config-dir once ("add it to each command below"): a command typed without it, from
            # the folder that holds the user's config folder, was only "not an option of hw".
            folder = mine.parent.parent
            return (f"; {mine} is there, but a folder of your own is read only with --config-dir: pass --config-dir "
                    f"{folder if folder != Path('.') else '.'} {group}={name}")
    return ""


def _own_group_file(group: str, name: str) -> Path | None:
    """`<group>/<name>.yaml` in the current folder or in one of its subfolders (`myconf/hw/acme.yaml`), relative to it;
    None where there is none."""
    try:
        found = [Path(group) / f"{name}.yaml", *sorted(p.relative_to(Path.cwd()) for p in Path.cwd().glob(f"*/{group}/{name}.yaml"))]
        return next((p for p in found if p.is_file()), None)
    except OSError:  # a current folder that is gone or unreadable: no hint
        return None


def _is_primary_config(path: Path) -> bool:
    """Whether the YAML file at `path` is a command's config (it lists `defaults:`, as conf/search.yaml does)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False
    return isinstance(data, dict) and "defaults" in data


def override_syntax_problem(override: str, *, multirun: bool = False) -> str | None:
    """One line for a command-line override `key=value` whose value Hydra's override grammar refuses unquoted (a path
    with `(`, `'`, `#`, `~` or an accented letter; a `,`, read as several values outside a multirun), naming those
    characters and the same value in quotes, as typed in a POSIX shell. None when it parses, or when quoting would not
    be what was meant (a list, dict, function such as `choice(...)`, interpolation, or an already quoted value)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    key, equals, value = override.partition("=")
    if equals and (item := re.fullmatch(r"([~+]*[\w.]+)\[(\d+)\](.*)", key)):
        # space.stages[0].widths, as OmegaConf's messages write an item: Hydra's lexer refused it
        return f"{override}: an item of a list is numbered after a dot: {item[1]}.{item[2]}{item[3]}={value}"
    if equals and value[:1] in ("[", "{"):
        return _bracketed_value_problem(override)
    if not equals or not value or value[0] in "'\"" or "${" in value:
        return None
    parser = OverridesParser.create()
    if re.match(rf"({'|'.join(parser.functions.definitions)})\s*\(", value):  # choice(a,b), range(1,4), ...
        return None
    try:
        parsed = parser.parse_overrides([override])[0]
    except Exception:  # Hydra's OverrideParseException, or a HydraException from its lexer
        parsed = None
    if parsed is not None:
        if multirun or not parsed.is_sweep_override():
            return None
        # a,b outside -m: Hydra's "Ambiguous value ... use it as a list"; quoted, it is the one string typed
        return (f"{override}: Hydra reads ',' as separating several values; quote the value: "
                f"{_quoted_override(key, value)} (a list is written {key}=[...])")
    if not _plain_value(parser, "x", key=key):  # the key, not the value, is what Hydra refuses: left to its message
        return None
    refused = [c for c in dict.fromkeys(value) if not _plain_value(parser, f"a{c}b")]
    if not refused or (multirun and "," in value):  # a sweep of values: each would need its own quotes
        return None
    shown = ", ".join(repr(c) for c in refused)
    home = " (Hydra does not expand ~ to your home folder; the shell expands $HOME)" if re.match(r"~(/|$)", value) else ""
    return (f"{override}: Hydra's override syntax takes {shown} only inside quotes; quote the value: "
            f"{_quoted_override(key, value)}{home}")


def _bracketed_value_problem(override: str) -> str | None:
    """One line for a list or mapping (`key=[...]`, `key={...}`) that Hydra's grammar refuses: brackets that do not
    pair up, quoted keys of a mapping, a key without its `:`. Hydra said "no viable alternative at input" and linked
    its grammar. None when it parses."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        OverridesParser.create().parse_overrides([override])
        return None
    except Exception:  # Hydra's OverrideParseException, or a HydraException from its lexer
        pass
    how = "a list is written key=[a, b], a mapping key={a: 1, b: [1, 2]}"
    if (problem := _unquoted_items_problem(override)) is not None:
        return problem
    depth = _open_brackets(override.partition("=")[2])
    if depth:
        return f"{override}: {'a [ or { is not closed' if depth > 0 else 'a ] or } closes nothing'}; {how}"
    if re.search(r"[{,]\s*['\"]", override):
        return f"{override}: the keys of a mapping go without quotes; {how}"
    return f"{override} is not a list or mapping Hydra reads: {how} (a value with spaces or commas in quotes)"


def _item_spans(value: str) -> list[tuple[int, int]] | None:
    """Where the unquoted items of the list or mapping `value` are (`[a, b(1)]`: (1, 2), (4, 8); a mapping's values,
    not its keys), as (start, end) in `value`; quoted items, `${...}` and empty ones left out. None where its brackets
    do not pair up. A quote inside an item (`it's`) is part of it, as Hydra reads only a leading quote as quoting."""
    spans: list[tuple[int, int]] = []
    closing: list[str] = []
    i = 0
    while i < len(value):
        c = value[i]
        if c in "[{":
            closing.append("]" if c == "[" else "}")
            i += 1
        elif c in "]}":
            if not closing or closing.pop() != c:
                return None
            i += 1
        elif c == "," or c.isspace():
            i += 1
        elif c in "'\"":  # a quoted item: to its closing quote (a backslash escapes the next character)
            end = re.match(rf"{c}(\\.|[^{c}\\])*{c}", value[i:])
            if end is None:
                return None
            i += end.end()
        else:  # an item (or a mapping's key: its value starts after the `:`) up to the next , or bracket
            end = re.match(r"(\$\{[^}]*\}|[^,\[\]{}])*", value[i:]).end() + i
            start = i
            if closing and closing[-1] == "}" and (key := re.match(r"[\w.-]+\s*:\s*", value[i:end])):
                start += key.end()
                if value[start:start + 1] in ("'", '"', "") or start == end:
                    i = start  # a quoted or bracketed value: read next
                    continue
            item = value[start:end].rstrip()
            if item and "${" not in item:
                spans.append((start, start + len(item)))
            i = end
    return spans if not closing else None


def _unquoted_items_problem(override: str) -> str | None:
    """One line for a list or mapping (`key=[~/runs/x]`, `key=[runs/exp(1)/x]`) whose items have a character that
    Hydra's grammar takes only in quotes, as `override_syntax_problem` names it for a value alone: the items, the
    characters, and the override with those items quoted. None where no item has such a character."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    key, _, value = override.partition("=")
    parser = OverridesParser.create()
    if (spans := _item_spans(value)) is None or not _plain_value(parser, "x", key=key):
        return None
    refused: dict[str, None] = {}
    bad = []
    for start, end in spans:
        if chars := [c for c in dict.fromkeys(value[start:end]) if not _plain_value(parser, f"a{c}b")]:
            refused.update(dict.fromkeys(chars))
            bad.append((start, end))
    if not bad:
        return None
    items = " and ".join(value[s:e] for s, e in bad)
    home = (" (Hydra does not expand ~ to your home folder; the shell expands $HOME)"
            if any(re.match(r"~(/|$)", value[s:e]) for s, e in bad) else "")
    return (f"{override}: Hydra's override syntax takes {', '.join(repr(c) for c in refused)} only inside quotes, as "
            f"in the item{'s' if len(bad) > 1 else ''} {items}; quote {'them' if len(bad) > 1 else 'it'}: "
            f"{_quoted_override(key, value, spans=bad)}{home}")


def _plain_value(parser: Any, value: str, *, key: str = "k") -> bool:
    """Whether Hydra's parser reads `key=value` as the string `value` itself (no error, no sweep)."""
    try:
        parsed = parser.parse_overrides([f"{key}={value}"])[0]
    except Exception:  # Hydra's OverrideParseException, or a HydraException from its lexer
        return False
    return not parsed.is_sweep_override() and parsed.value() == value


def _quoted_override(key: str, value: str, *, spans: Sequence[tuple[int, int]] = ()) -> str:
    """`key=value` with `value` (or the parts of it at `spans`, (start, end) each: a list's items) in Hydra's quotes,
    as a POSIX shell argument that reaches Hydra as written: Hydra's single quotes inside the shell's double quotes,
    or, for a value with a `!` (bash's history expansion, even inside double quotes) and no `'`, Hydra's double quotes
    inside the shell's single quotes. A leading `~` of a quoted part becomes $HOME, which the shell expands (Hydra
    would take `~` as a folder's name)."""
    spans = list(spans) or [(0, len(value))]
    home = [re.match(r"~(?=/|$)", value[s:e]) is not None for s, e in spans]
    double = "!" in value and "'" not in value and not any(home)
    text, last = f"{key}=", 0
    for (start, end), at_home in zip(spans, home):
        part = value[start + at_home:end]
        if double:  # in the shell's single quotes every character is itself; Hydra's double quotes need \" and a
            # trailing \ doubled
            quoted = '"' + re.sub(r'(\\*)("|$)', lambda m: m[1] * 2 + ('\\"' if m[2] else ""), part) + '"'
        else:  # Hydra: a run of backslashes before a quote or the end is doubled, and ' is \'; \0 marks $HOME
            quoted = "'" + "\0" * at_home + re.sub(r"(\\*)('|$)", lambda m: m[1] * 2 + ("\\'" if m[2] else ""), part) + "'"
        text, last = text + value[last:start] + quoted, end
    text += value[last:]
    if double:
        return f"'{text}'"
    # the shell's double quotes: " $ ` are escaped, and a \ where it precedes one of them or a \ (elsewhere the shell
    # keeps it as it is)
    shell = re.sub(r'\\(?=[\\"$`])|["$`]', lambda m: "\\" + m[0], text)
    return '"' + shell.replace("\0", "$HOME") + '"'


def shell_override(*, key: str, value: str) -> str:
    """`key=value` as one POSIX shell argument that reaches Hydra as the string `value`, for a hint that names a setting
    with a value the toolkit found or recorded (a data.root): as it is where neither the shell nor Hydra's override
    syntax reads anything into it, else quoted as `_quoted_override` quotes it (`"data.root='/my photos é'"`; unquoted,
    the shell split it at the space and Hydra refused the 'é'). A `value` starting with `~` is taken as the home folder's
    (`$HOME` in the quotes), as `_quoted_override` takes it."""
    import shlex

    from hydra.core.override_parser.overrides_parser import OverridesParser

    arg = f"{key}={value}"
    if shlex.quote(arg) == arg and _plain_value(OverridesParser.create(), value, key=key):
        return arg
    return _quoted_override(key, value)


def shell_command(module: str, argv: Sequence[str]) -> str:
    """`python -m <module> <argv>` as one line to paste into a POSIX shell, each argument reaching the command as it did:
    as typed where the shell takes it unchanged; a `key=value` whose value Hydra reads as a plain string quoted as
    `override_syntax_problem` quotes one (`_quoted_override`: `"data.root='/my photos'"`); any other in the shell's
    single quotes. For a "rerun with" hint that repeats every setting the user gave, not only the one it is about."""
    import shlex

    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    parts = []
    for arg in argv:
        key, eq, value = arg.partition("=")
        plain = None
        # a leading ~ is kept as typed: _quoted_override would make it $HOME, which Hydra's quotes had kept from it
        if shlex.quote(arg) != arg and eq and value and not key.startswith("-") and not value.startswith("~"):
            try:
                parsed = parser.parse_overrides([arg])[0]
                plain = parsed.value() if not parsed.is_sweep_override() and isinstance(parsed.value(), str) else None
            except Exception:  # Hydra's OverrideParseException, or a HydraException from its lexer
                plain = None
        parts.append(_quoted_override(key, plain) if plain is not None else shlex.quote(arg))
    return shlex.join(["python", "-m", module]) + "".join(f" {part}" for part in parts)


def mappings_replaced(cfg: DictConfig) -> DictConfig:
    """The config a Hydra command's function is given, with each mapping its command line gives whole set to that
    mapping alone (`nas.config.with_whole_mappings`: Hydra merged `hw.efficiency={conv: 0.5}` into the chip file's).
    Errors are one-line `ConfigError`s."""
    from hydra.core.hydra_config import HydraConfig

    return with_whole_mappings(cfg, list(HydraConfig.get().overrides.task)) if HydraConfig.initialized() else cfg


def exit_on_bad_overrides(argv: Sequence[str], *, config_name: str) -> None:
    """Print `precheck_overrides`' one line for the command line `argv` as `error: ...` and exit with status 2; return
    when they compose. The search and compress.run call it first thing as `__main__`, before importing torch and
    Optuna (seconds), so that a typo on the command line is named at once."""
    register_configs()
    if (problem := precheck_overrides(argv, config_name=config_name)) is not None:
        exit_with_error(problem)


def shadowed_file(choices: Mapping[str, Any], config_dir: str | Path) -> str | None:
    """One line when a group option chosen (`choices`, e.g. {"hw": "cpu"}) is a file both in the shipped conf/ and in the
    user's `config_dir`, with other contents: Hydra composes the shipped one, as it comes first in its search path, so
    the user's file (their chip, recalibrated) would be ignored without a word. None otherwise (an identical copy, as in
    a copy of all of conf/, composes the same)."""
    for group, name in choices.items():
        if group.startswith("hydra") or not isinstance(name, str):
            continue
        shipped, mine = config.CONF_DIR / group / f"{name}.yaml", Path(config_dir) / group / f"{name}.yaml"
        if shipped.is_file() and mine.is_file() and shipped.read_bytes() != mine.read_bytes():
            try:
                raw = yaml.safe_load(mine.read_text())
            except (OSError, yaml.YAMLError):
                raw = None
            named = isinstance(raw, dict) and "name" in raw  # hw, space and data files say their name inside too
            return (f"{group}={name} names two files, the shipped {shipped} and yours, {mine}, which is ignored (Hydra "
                    f"takes the shipped one first); give yours a name of its own: rename it to "
                    f"{mine.with_name(f'my_{name}.yaml')}{f', set name: my_{name} in it,' if named else ''} "
                    f"and pass {group}=my_{name}")
    return None


def split_config_dir(argv: Sequence[str]) -> tuple[list[str], str | None]:
    """`argv` without Hydra's `--config-dir DIR` / `--config-dir=DIR` / `-cd DIR`, and that DIR (the last one given,
    as argparse keeps it; None when there is none)."""
    rest: list[str] = []
    config_dir = None
    args = iter(argv)
    for arg in args:
        if arg in ("--config-dir", "-cd"):
            config_dir = next(args, None)
            if config_dir is None:  # a flag without its folder: Hydra's argparse names the problem
                rest.append(arg)
        elif arg.startswith("--config-dir="):
            config_dir = arg.split("=", 1)[1]
        else:
            rest.append(arg)
    return rest, config_dir


def _sweep_jobs(overrides: list[str]) -> list[list[str]]:
    """The overrides of a multirun sweep, one list per value of each swept key (`search.worker=0,1` -> two lists, the
    other sweeps at their first value): each value is checked once, not every combination."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    first = [f"{o.get_key_element()}={next(iter(o.sweep_string_iterator()))}" if o.is_sweep_override() else text
             for o, text in zip(parsed, overrides)]
    jobs = [first]
    for i, o in enumerate(parsed):
        if o.is_sweep_override():
            jobs += [first[:i] + [f"{o.get_key_element()}={value}"] + first[i + 1:] for value in o.sweep_string_iterator()]
    return jobs
