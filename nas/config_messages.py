"""The one-line messages for a config that does not compose or convert: a YAML syntax error, a misspelt key (with the
close and the allowed ones), a group option or a launcher's setting that is not there, a number written with its unit,
a value of the wrong kind (with what the setting takes), each naming the file that set it where one did. Hydra's and
OmegaConf's own messages span lines and name neither the fix nor, often, the setting.

They need the schemas of `nas.config`, which imports them at call time."""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Sequence

import yaml
from omegaconf._utils import get_yaml_loader
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, ValidationError

from nas import config  # config.CONF_DIR read at call time: one setting of it (a copy of conf/) reaches every message
from nas.config import COMPRESS_FIELD_UNITS, CompressRunConfig, RunConfig, group_file
from nas.latency.hardware import FIELD_UNITS


def unknown_key_message(full_key: str, schema: type) -> str:
    """One line for a key that `schema` (a config dataclass) does not have: the closest setting and all allowed."""
    parent, _, key = str(full_key).rpartition(".")
    allowed = [f.name for f in dataclasses.fields(schema)]
    close = difflib.get_close_matches(key, allowed, n=1)
    hint = f" (did you mean {parent + '.' if parent else ''}{close[0]}?)" if close else ""
    if not parent and (nested := _group_keys_like(key, schema, rival=close[0] if close else None)):
        # a setting of a group given without its group (n_trials=3 for search.n_trials=3): the groups were listed as
        # allowed, so the user had to guess which group holds it
        hint = f" (did you mean {' or '.join(nested)}?)"
    return f"{full_key} is not a setting of {parent or 'the config'}{hint}; allowed: {', '.join(allowed)}"


def _dotted_keys(schema: type, prefix: str = "") -> list[str]:
    """The dotted key of every setting below the config dataclass `schema`, groups within groups included
    (`compress.prune.ratio`), in the order they are declared."""
    import typing

    try:
        hints = typing.get_type_hints(schema)
    except (NameError, TypeError):  # an annotation that cannot be resolved: no hint rather than an error in the error
        return []
    keys = []
    for name, hint in hints.items():
        keys += _dotted_keys(hint, f"{prefix}{name}.") if dataclasses.is_dataclass(hint) else [f"{prefix}{name}"]
    return keys


def _group_keys_like(key: str, schema: type, *, rival: str | None = None) -> list[str]:
    """The dotted keys of the settings named `key` within the groups of `schema` (a top-level config dataclass), or
    else those of the setting name closest to it (`n_trail` -> `search.n_trials`) where it is closer than `rival` (the
    closest top-level name, whose hint is kept otherwise); empty where none is."""
    keys = [k for k in _dotted_keys(schema) if "." in k]
    exact = [k for k in keys if k.rsplit(".", 1)[1] == key]
    if exact:
        return exact
    names = difflib.get_close_matches(key, sorted({k.rsplit(".", 1)[1] for k in keys}), n=1, cutoff=0.8)
    if not names or (rival is not None and difflib.SequenceMatcher(None, key, rival).ratio()
                     >= difflib.SequenceMatcher(None, key, names[0]).ratio()):
        return []
    return [k for k in keys if k.rsplit(".", 1)[1] == names[0]]


def _launcher_key_message(full_key: str) -> str:
    """One line for a launcher's setting (`hydra.launcher.n_jobs=2`) given without choosing that launcher: Hydra's basic
    launcher, which runs when no `hydra/launcher=` is given, has none, and Hydra said only that the key is not in
    'BasicLauncherConf'. Names the installed launchers that have the key."""
    from hydra.core.config_store import ConfigStore
    from hydra.core.plugins import Plugins

    Plugins.instance()  # registers the installed launcher plugins' configs in the ConfigStore
    store = ConfigStore.instance()
    key = full_key.split(".")[2]
    installed = sorted(Path(name).stem for name in store.list("hydra/launcher"))
    having = [name for name in installed if key in store.load(f"hydra/launcher/{name}.yaml").node]
    head = f"{full_key} is a setting of a launcher, and none is chosen (Hydra's basic launcher, which runs the jobs one by one, has no settings)"
    if having:
        return f"{head}; add {' or '.join(f'hydra/launcher={name}' for name in having)} to the command line"
    return (f"{head}; add hydra/launcher=<the launcher it belongs to> to the command line (installed: {', '.join(installed)}; "
            "another comes with its plugin, e.g. pip install hydra-submitit-launcher for submitit_slurm)")


def yaml_error_message(exc: yaml.YAMLError) -> str:
    """One line for a YAML syntax error in a config file: the file, the line, the line's text and PyYAML's problem, with
    the usual fix of a hand-edited file (a setting's missing colon, a tab in the indentation).

    PyYAML's own message spans lines, and its first, all a one-line error showed, is only where it was ("while scanning
    a simple key"), naming neither file nor line."""
    if not isinstance(exc, yaml.MarkedYAMLError) or exc.problem_mark is None:
        return f"not valid YAML: {' '.join(str(exc).split())}"
    # A key without its colon is found one line late: the scan started at the culprit, which the context mark names.
    mark = exc.context_mark if exc.context == "while scanning a simple key" and exc.context_mark else exc.problem_mark
    text = None
    try:
        source = mark.buffer if mark.buffer is not None else Path(mark.name).read_text(encoding="utf-8")
        text = source.rstrip("\0").splitlines()[mark.line]
    except (OSError, UnicodeDecodeError, IndexError):
        pass
    problem = exc.problem or "a syntax error"
    hint = ("; indent with spaces, not tabs" if "'\\t'" in problem or "\t" in problem
            else "; each setting is `key: value`" if "expected ':'" in problem else "")
    shown = f"{text!r} is not valid YAML ({problem})" if text is not None else f"not valid YAML ({problem})"
    return f"{mark.name}, line {mark.line + 1}: {shown}{hint}"


def compose_error_message(exc: BaseException, *, config_dir: str | None = None) -> str:
    """One line for a Hydra composition error (unknown group option, wrong type, unknown key). `config_dir`: the
    command's --config-dir, where a group's file it names may be."""
    if isinstance(exc, yaml.YAMLError):  # a group's file (the user's chip file) that is no valid YAML
        return yaml_error_message(exc)
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    head = lines[0] if lines else type(exc).__name__
    if "Available options in" in str(exc):  # unknown group option: name the allowed ones
        i = next(i for i, ln in enumerate(lines) if ln.startswith("Available options in"))
        options = [ln for ln in lines[i + 1:] if not ln.startswith(("Config search path", "provider="))]
        # Hydra's head, "In 'search': Could not find 'hw/edge_npuu'", names the primary config file, which reads as if
        # the search.* settings were at fault; say it as the user typed it, with the closest option.
        found = re.search(r"Could not find '(.+)/([^/']*)'", head)
        if found is None:
            return f"{head}; available: {', '.join(options)}"
        group, name = found.groups()
        if not name:  # `hw=`: Hydra looked for a file named '' ("Could not find 'hw/'")
            return f"{group}= needs an option's name; available: {', '.join(options)}"
        close = difflib.get_close_matches(name, options, n=1) or difflib.get_close_matches(name.lower(), options, n=1)
        hint = f" (did you mean {group}={close[0]}?)" if close else ""
        plugin = (" (a launcher other than these comes with its plugin, e.g. pip install hydra-submitit-launcher for "
                  "submitit_slurm)" if group == "hydra/launcher" and not close else "")
        return f"{group}={name} is not an option of {group}{hint}; available: {', '.join(options)}{plugin}"
    if (own := _override_refusal(exc, head)) is not None:
        return own
    cause = exc.__cause__
    schema = getattr(cause, "object_type", None)
    if isinstance(cause, (ConfigAttributeError, ConfigKeyError)) and dataclasses.is_dataclass(schema) and cause.full_key:
        if str(cause.full_key).startswith("hydra.launcher.") and schema.__name__ == "BasicLauncherConf":
            return _launcher_key_message(str(cause.full_key))
        # a misspelt key: name the close and the allowed ones, by its whole key (in space.stages=[{widthz: [16]}]
        # OmegaConf's is only 'widthz'), each item of a list numbered after a dot, as an override writes it
        full_key = re.sub(r"\[(\d+)\]", r".\1", _whole_key(str(exc).strip(), str(cause.full_key)))
        return unknown_key_message(full_key, schema)
    if (inside := _group_file_error(lines, config_dir=config_dir)) is not None:
        return inside
    # Hydra's head, "Error merging override data.metric=f1", is its own words: the override as typed says it
    override = re.fullmatch(r"Error merging override (.+)", head)
    head = override[1] if override else head
    if override and (entry := _entry_override(head, cause)) is not None:
        # an entry of a mapping given whole (hw.efficiency={conv: abc}): its own key and value, whose kind is what is wrong
        head = entry
    enum = re.match(r"Invalid value '.*', expected one of \[(.*)\]", str(cause or "").strip())
    if override and enum:  # an enum setting (data.metric, train.precision): the allowed values, as the other refusals say
        return f"{head} is unknown; allowed: {enum[1]}"
    item = re.fullmatch(r".+\[(\d+)\]", str(getattr(cause, "full_key", "") or ""))
    if override and item and (number := _NOT_CONVERTED.search(str(cause or ""))):
        # space.stem_strides=[a]: an item of a list of numbers (it read "space.stem_strides='[a]' must be a whole number")
        kind = "a whole number" if number["to"] == "Integer" else "a number"
        return f"{head}: its items must each be {kind}, and item {item[1]} is {number['value']!r}"
    # the key without Hydra's `++` (set or add): compress.prune.ratio's range is looked up by it
    if override and "=" in head and (number := not_a_number_message(
            head.split("=", 1)[0].lstrip("+"), str(cause or ""), path=None, command_line=True, typed=head.split("=", 1)[1],
            optional=_optional_field(schema, getattr(cause, "key", None)))) is not None:
        # hw.mac_per_s='4 TOPS', search.latency_budget_ms=1ms: the unit the number goes in, as for the same value in the
        # chip's file; compress.prune.ratio=25%: its range and that 25% is 0.25; search.n_trials=abc, whose name has no
        # unit: the key, the value and the kind of number (OmegaConf's "Value 'abc' of type 'str' could not be
        # converted to Integer" named neither a whole number nor null)
        return number
    if override and "=" in head and NOT_A_LIST.match(str(cause or "").strip()):
        # One value where a list goes (measurements=m.csv, search.seed_archs=convformer-M): say how a list is written
        key, value = head.split("=", 1)
        return f"{head} must be a list, in brackets and quoted for the shell: '{key}=[{value}]'"
    if override and cause is not None and (wrong := wrong_kind_message(head, cause)) is not None:
        # null where none is taken, a list for a number or a name, 2 for an enum: OmegaConf's "field 'train.epochs' is
        # not Optional" or "Value [1, 2] (list) is not a valid input for <enum 'Precision'>" said neither what it takes
        return wrong
    if cause is not None and str(cause).strip():
        # A key Hydra refuses to add (a mapping of a schema not made by `schema_node`): its second line says how to add it
        append = next((ln for ln in lines[1:] if ln.startswith("To append to your config use ")), None)
        hint = f"; {append[0].lower()}{append[1:]}" if append else ""
        return f"{head}: {str(cause).strip().splitlines()[0]}{hint}"
    return "; ".join(lines[:2])


NOT_A_LIST = re.compile(r"Invalid value assigned: \w+ is not a ListConfig")
"""OmegaConf's error for one value where the schema has a list (`fused_kinds: bn`); `not_a_list_message` says it."""


def not_a_list_message(full_key: str) -> str:
    """One line for a list setting of a config file given one value (`fused_kinds: bn` in a chip's file)."""
    return f"{full_key} must be a list, in brackets: `{full_key.rsplit('.', 1)[-1]}: [a, b]` (`[]` for none)"


def _group_file_error(lines: Sequence[str], *, config_dir: str | None = None) -> str | None:
    """One line for a misspelt key or a wrong type inside a group's file (`mac_per_sec:` in hw/my_chip.yaml): Hydra
    raises those with no cause, the key and schema only in its message's lines, e.g. "In 'hw/typo': ConfigKeyError
    raised while composing config:", "Key 'mac_per_sec' not in 'HardwareProfile'", "full_key: hw.mac_per_sec",
    "object_type=HardwareProfile". A value with its unit (`mac_per_s: 4 TOPS`) is named with the file, looked up in
    conf/ and `config_dir` (the command's --config-dir). None for other messages."""
    found = re.fullmatch(r"(In '([^']+)'): (ConfigKeyError|ValidationError) raised while composing config:", lines[0]) if lines else None
    fields = dict(ln.replace("=", ": ", 1).split(": ", 1) for ln in lines[2:] if re.match(r"\w+(: |=)", ln))
    if found is None or len(lines) < 2 or not fields.get("full_key"):
        return None
    schema = _schemas().get(fields.get("object_type", ""))
    group, _, name = found[2].rpartition("/")
    folders = [config.CONF_DIR / group] + ([Path(config_dir).absolute() / group] if config_dir is not None else [])
    path = group_file(group, name, folders) if group else None
    # "In 'hw/acme'" with the file's path, as a value's error says "(set in <path>)": the name alone left the user to
    # guess which acme.yaml (conf/ or --config-dir) holds the typo
    head = f"{found[1]} ({path})" if path is not None else found[1]
    number = _NOT_CONVERTED.search(lines[1])
    full_key = _file_key(fields["full_key"], group=group.split("/")[-1], path=path,
                         fits=(lambda v: not isinstance(v, list)) if NOT_A_LIST.match(lines[1])
                         else (lambda v: str(v) == number["value"]) if number
                         else (lambda v: v is None) if "is not Optional" in lines[1] else None)
    if found[3] == "ConfigKeyError" and schema is not None:
        return f"{head}: {unknown_key_message(full_key, schema)}"
    if NOT_A_LIST.match(lines[1]):
        return f"{head}: {not_a_list_message(full_key)}"
    optional = _optional_field(schema, full_key.rsplit(".", 1)[-1])
    if (number := not_a_number_message(full_key, lines[1], path=path, optional=optional)) is not None:
        return number if path is not None else f"{head}: {number}"
    if (wrong := file_wrong_kind_message(full_key, lines[1], path)) is not None:
        # `epochs: null`, `threads: [1]`: what the setting takes, as `train.epochs=null` on the command line is told
        return f"{head}: {wrong}"
    return f"{head}: {full_key}: {lines[1]}"


def _file_key(full_key: str, *, group: str, path: Path | None, fits: Callable[[Any], bool] | None = None) -> str:
    """OmegaConf's `full_key` of a value refused in the `group`'s file at `path`, as an override writes it: with its
    group, each item of a list numbered after a dot (`space.stages.1.widths.1`, not `widths[1]`). OmegaConf checks an
    item of a list of mappings (a space's `stages:`) alone, its key relative to the item: found in the file, among the
    values `fits` (the value refused), where one place alone holds it; else the key as OmegaConf gives it, dotted."""
    key = re.sub(r"\[(\d+)\]", r".\1", full_key)
    if not group or key == group or key.startswith(f"{group}."):
        return key
    parts = key.split(".")

    def places(value: Any, at: tuple[str, ...]) -> list[tuple[str, ...]]:
        found = []
        if len(at) >= len(parts) and list(at[-len(parts):]) == parts and (fits is None or fits(value)):
            found.append(at)
        items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
        for k, v in items:
            found += places(v, (*at, str(k)))
        return found

    found = places(yaml_value(path, ""), ())
    return f"{group}.{'.'.join(found[0])}" if len(found) == 1 else key


_NOT_CONVERTED = re.compile(r"Value '(?P<value>.*)' of type '(?P<type>str|float)' could not be converted to (?P<to>Integer|Float)")


# The unit a setting's name ends in (search.latency_budget_ms, search.timeout_s, search.memory_budget_gb), with the
# ways a value may carry it (`1ms`, `2 s`): such a value is refused naming the unit, as a chip's numbers are (FIELD_UNITS).
NAME_UNITS: dict[str, tuple[str, tuple[str, ...]]] = {
    "ms": ("milliseconds", ("ms", "msec", "millisecond", "milliseconds")),
    "s": ("seconds", ("s", "sec", "secs", "second", "seconds")),
    "us": ("microseconds", ("us", "µs", "usec", "microsecond", "microseconds")),
    "bytes": ("bytes", ("b", "byte", "bytes")),
    "gb": ("GiB", ("g", "gb", "gib")),
}
_NUMBER_AND_UNIT = re.compile(r"\s*(?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(?P<unit>\S*)\s*")


def name_unit(full_key: str, value: str = "") -> tuple[str, str] | None:
    """(`in <unit>`, an example) for a setting whose name ends in its unit (`search.latency_budget_ms`: milliseconds;
    not a rate such as `mac_per_s`), None for others. The example turns `value` written with that unit (`1ms`) into
    the setting without it (`1ms is search.latency_budget_ms=1`); '' when `value` is not so written."""
    name = full_key.rsplit(".", 1)[-1]
    suffix = name.rsplit("_", 1)[-1] if "_" in name else ""
    if suffix not in NAME_UNITS or name.endswith(f"_per_{suffix}"):
        return None
    unit, spellings = NAME_UNITS[suffix]
    found = _NUMBER_AND_UNIT.fullmatch(value)
    written = found is not None and found["unit"].lower() in spellings
    return f"in {unit}", (f"{value.strip()} is {full_key}={found['number']}" if written else "")


def not_a_number_message(full_key: str, error: str, *, path: Path | None, command_line: bool = False,
                         typed: str | None = None, optional: bool = False) -> str | None:
    """One line for OmegaConf's `error` ("Value '4 TOPS' of type 'str' could not be converted to Float") about the
    number `full_key` (`hw.mac_per_s`) of a group's file at `path` (None: not known), or given as a command-line
    override (`command_line`): the key, the value as written, where it was set, and that a plain number goes there,
    with its unit and an example for a hw profile's (`FIELD_UNITS`: a datasheet's `4 TOPS` is 2.0e12 MAC/s), its
    range for a compress setting's (`COMPRESS_FIELD_UNITS`: `25%` is 0.25) and for a setting whose name ends in its
    unit (`name_unit`: `1ms is search.latency_budget_ms=1`); for another (`search.n_trials=abc`), whether a whole
    number goes there; and null where the setting takes it (`optional`) and its range does not say so already, as
    `null (not none)` where the value is none. `typed`: the value as the command line gave it, shown instead of
    OmegaConf's (which writes `1e3` as '1000.0'). None for other errors."""
    found = _NOT_CONVERTED.search(error)
    if found is None:
        return None
    value = typed if typed is not None and not typed.startswith(("'", '"')) else found["value"]
    group, _, key = full_key.partition(".")
    unit, example = (FIELD_UNITS.get(key.split(".")[0], ("", "")) if group == "hw"
                     else COMPRESS_FIELD_UNITS.get(key) or name_unit(full_key, value) or ("", "") if group == "compress"
                     else name_unit(full_key, value) or ("", ""))
    where = " (set on the command line)" if command_line else f" (set in {path})" if path is not None else ""
    kind = "a whole number" if found["to"] == "Integer" else "a plain number"
    what = f"{kind} {unit}" if unit else kind
    # the compress table's ranges say what null means there; a name's unit ("in milliseconds") does not: without it,
    # search.latency_budget_ms=none (no budget, meant) read as if a number were required
    if optional and value.strip().lower() == "none":
        # Python's word for no value, which YAML and Hydra read as a text: theirs is null
        what = what.replace("(null: ", "(null, not none: ") if "null" in unit else f"{what} or null (not none)"
        return f"{full_key}={value!r}{where} must be {what}"
    if optional and "null" not in unit:
        what += " or null"
    # 2.0e6 for an integer count of bytes: YAML reads it as a float, which OmegaConf refuses for an int field
    how = "written as digits, without a point or exponent" if found["type"] == "float" else "without units"
    return f"{full_key}={value!r}{where} must be {what}, {how}" + (f" ({example})" if example else "")


def _optional_field(schema: Any, key: Any) -> bool:
    """Whether the field `key` of the config dataclass `schema` (OmegaConf's `object_type` of an error) takes None."""
    import typing

    if not (dataclasses.is_dataclass(schema) and isinstance(key, str)):
        return False
    try:
        hint = typing.get_type_hints(schema).get(key)
    except (NameError, TypeError):  # a hint that does not resolve: say nothing rather than something wrong
        return False
    return type(None) in typing.get_args(hint)


def field_takes(schema: Any, key: Any) -> str | None:
    """What the field `key` of the config dataclass `schema` takes, in words for a refusal: "a whole number", "a
    number or null", "true or false", "one of auto, fp32, bf16", "a list, in brackets", "a text". None where the
    field is not known (its line then stays OmegaConf's)."""
    import typing

    if not (dataclasses.is_dataclass(schema) and isinstance(key, str)):
        return None
    try:
        hint = typing.get_type_hints(schema).get(key)
    except (NameError, TypeError):
        return None
    return type_takes(hint)


def type_takes(hint: Any) -> str | None:
    """`field_takes` of a type hint (`Optional[int]`: "a whole number or null"); None for a type it has no words for."""
    import typing

    if hint is None:
        return None
    args = typing.get_args(hint)
    optional = type(None) in args
    if optional:
        hint = next(a for a in args if a is not type(None))
    origin = typing.get_origin(hint) or hint
    if isinstance(origin, type) and issubclass(origin, Enum):
        what = f"one of {', '.join(m.value for m in origin)}"
    elif origin is bool:
        what = "true or false"
    elif origin is int:
        what = "a whole number"
    elif origin is float:
        what = "a number"
    elif origin is str:
        what = "one text value (a name or a path)"
    elif origin in (list, tuple):
        item = args[0] if (args := typing.get_args(hint)) else None
        what = (f"a list of mappings of {item.__name__}'s settings, in brackets" if dataclasses.is_dataclass(item)
                else "a list, in brackets")
    elif origin is dict:
        what = "a mapping, in braces"
    elif dataclasses.is_dataclass(origin):
        what = f"a mapping of {origin.__name__}'s settings"
    else:
        return None
    return what + (" or null" if optional else "")


_WRONG_TYPE = re.compile(r"field '[^']*' is not Optional|Value .* could not be converted to (Integer|Float)|Value .* is "
                         r"not a valid bool|Value .* is not a valid input for <enum|Cannot convert '\w+' to string|"
                         r"Invalid type assigned: \w+ is not a subclass of|Incompatible value '.*' for field of type|"
                         r"Cannot assign \w+ to (Dict|List)\[|Cannot merge (Dict|List)Config with (Dict|List)Config")
"""OmegaConf's refusals of a value of the wrong kind (null where none is taken, a list for a number, 2.5 for an enum),
which name neither what the setting takes nor, for an enum, its values."""


def _whole_key(head: str, full_key: str) -> str:
    """`full_key` (OmegaConf's key of a refused entry) below the key Hydra's `head` names ("Could not override
    'space.stages'."), where it is relative to that value (`widthz` of `space.stages=[{widthz: [16]}]`:
    'space.stages.0.widthz'); `full_key` itself otherwise."""
    found = re.match(r"Could not override '(.+)'\.", head)
    if found is None or re.split(r"[.\[]", full_key)[0] == found[1].split(".")[0]:  # a whole key already
        return full_key
    key, first = found[1], full_key.split(".")[0].split("[")[0]
    line = next((ln for ln in head.splitlines() if ln.startswith("To append")), "")
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        value = OverridesParser.create().parse_overrides([line.rsplit(" +", 1)[-1]])[0].value() if line else None
    except Exception:  # noqa: BLE001 - the override parsed when composed; without its value, the item is not named
        value = None
    if isinstance(value, list):
        index = next((i for i, item in enumerate(value) if isinstance(item, dict) and first in item), None)
        return f"{key}.{index}.{full_key}" if index is not None else full_key
    return f"{key}.{full_key}"


def _override_refusal(exc: BaseException, head: str) -> str | None:
    """One line for Hydra's refusal of how an override is written rather than of its value: `+key=` for a key that is
    there (`+search.n_trials=3`), `~key` for a setting (`~search.n_trials`: a setting is set, not deleted), for a key
    that is not there, or for an item of a list (`~space.stages.0`, which failed with Python's "list indices must be
    integers"). None for other errors."""
    cause = exc.__cause__
    if found := re.fullmatch(r"Could not append to config\. An item is already at '(.+)'\.", head):
        return f"+{found[1]}: + adds a key that is not there, and {found[1]} is; drop the + to set it"
    if found := re.fullmatch(r"Could not delete from config\. '(.+)' does not exist\.", head):
        return f"~{found[1]}: there is no {found[1]} to delete"
    if re.fullmatch(r"Error merging override ~.+", head) and "does not support deletion" in str(cause):
        key = head.split("~", 1)[1].split("=", 1)[0]
        return f"~{key}: a setting cannot be deleted, only set: give {key}=<value> instead"
    if isinstance(exc, TypeError) and "list indices must be" in str(exc):
        return "an item of a list cannot be deleted with ~: give the whole list instead, e.g. 'space.stages=[...]'"
    return None


def _entry_override(head: str, cause: BaseException | None) -> str | None:
    """`<entry's key>=<its value>` for OmegaConf's refusal `cause` of one entry of a mapping given whole (`head`
    `hw.measured_extent={stages: abc}`: 'hw.measured_extent.stages=abc'), its value as OmegaConf's message shows it;
    None where the refusal is of the override's own key."""
    key = head.split("=", 1)[0].lstrip("+")
    full_key = str(getattr(cause, "full_key", "") or "")
    if not full_key.startswith(f"{key}.") or not isinstance(cause, ValidationError):
        return None
    found = re.search(r"Value '(.*?)' (?:of type|\(str\))|Value (.*?) \(\w+\) is incompatible", str(cause))
    if found is None:
        return None
    bad = found[1] if found[1] is not None else found[2]
    # OmegaConf names the entry it was making (hw.calibration.conv for {conv: {fixed: abc}}): the path down to the value
    # refused is looked up in the override's own value
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        value = OverridesParser.create().parse_overrides([head])[0].value()
    except Exception:  # noqa: BLE001 - it parsed when composed; without its value, OmegaConf's key stays
        value = None
    for part in full_key[len(key) + 1:].split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return f"{full_key}{_path_to(value, bad) or ''}={bad}"


def _path_to(value: Any, bad: str) -> str | None:
    """'.a.b' where `value` (an override's mapping) holds a scalar written `bad` at value[a][b]; '' where `value` is it;
    None where it holds none."""
    if isinstance(value, dict):
        return next((f".{k}{p}" for k, v in value.items() if (p := _path_to(v, bad)) is not None), None)
    return "" if not isinstance(value, list) and str(value) == bad else None


def wrong_kind_message(head: str, cause: BaseException) -> str | None:
    """One line for OmegaConf's refusal `cause` of the override `head` (`train.epochs=null`, `search.sampler=[1,2]`) of
    the wrong kind: the value as typed and what the setting takes (`field_takes`). None for other refusals."""
    # an entry of a mapping given whole (hw.measured_extent={stages: abc}), which `_entry_override` put in `head`
    entry = "is incompatible with type hint" in str(cause)
    if not (_WRONG_TYPE.search(str(cause)) or entry):
        return None
    if isinstance(cause, ValidationError) and (found := re.search(r"is not a subclass of (\w+)", str(cause))):
        key = head.split("=", 1)[0].lstrip("+")
        if (index := re.fullmatch(r"(.+)\[(\d+)\]", str(getattr(cause, "full_key", "")))) and f"{index[1]}.{index[2]}." in key:
            # space.stages.9.widths=[16]: OmegaConf made an empty item 9 and refused it
            return f"{head}: {index[1]} has no item {index[2]}; give the whole list to add one: '{index[1]}=[...]'"
        # search.early_stop=true: a mapping of settings; space.stages=[abc]: an item of a list of such mappings
        what = key_takes(key)
        what = what if what is not None and found[1] in what else f"a list of mappings of {found[1]}'s settings, in brackets"
        return f"{head} is not allowed; allowed: {what}"
    what = field_takes(getattr(cause, "object_type", None), getattr(cause, "key", None))
    # compress.prune=null: OmegaConf names PruneConfig, whose field `prune` is not; an entry of a mapping
    # (hw.efficiency.conv=null): the schema's value type, found by the key's path
    if what is None and "=" in head:
        what = key_takes(head.split("=", 1)[0].lstrip("+"))
    if what is None:
        return None
    value = head.split("=", 1)[1] if "=" in head else ""
    problem = "takes no null" if value.strip().lower() in ("null", "~") else "is not allowed"
    return f"{head} {problem}; allowed: {what}"


def key_takes(full_key: str) -> str | None:
    """`type_takes` of the setting `full_key` (`hw.efficiency.conv`, `compress.prune`), its type looked up from the
    run configs' schemas down its dotted path (`nas.config.key_hint`); None where the path leaves them."""
    from nas.config import key_hint

    hint = key_hint(full_key)
    return type_takes(hint) if hint is not None else None


def _yaml_text(value: Any) -> str:
    """`value` as a YAML file or the command line writes it: null, true, [1, 2], {a: 1}."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, dict)):
        return yaml.safe_dump(value, default_flow_style=True, width=math.inf).strip().removesuffix("...").strip()
    return str(value)


NOT_FOUND = object()  # yaml_value's answer where the file gives no value (None is YAML's null)


def yaml_value(path: Path | None, key: str) -> Any:
    """The value the YAML file at `path` gives the dotted `key`, as OmegaConf reads it; `NOT_FOUND` where it gives
    none or cannot be read."""
    if path is None:
        return NOT_FOUND
    try:
        found = yaml.load(path.read_text(encoding="utf-8"), Loader=get_yaml_loader())
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return NOT_FOUND
    for part in key.split(".") if key else []:
        if isinstance(found, list) and part.isdigit() and int(part) < len(found):
            found = found[int(part)]
        elif isinstance(found, dict) and part in found:
            found = found[part]
        else:
            return NOT_FOUND
    return found


def file_wrong_kind_message(full_key: str, error: str, path: Path | None) -> str | None:
    """One line, in the command line's words (`wrong_kind_message`: `train.epochs=null takes no null; allowed: a whole
    number`), for OmegaConf's refusal `error` of a value of the wrong kind that the group file at `path` gives the
    setting `full_key` (`epochs: null` in train/<name>.yaml): the value as the file writes it (OmegaConf's own words,
    "Incompatible value 'None' for field of type 'int'", named no YAML value nor what the setting takes). None for
    other errors, or a setting whose type is not known."""
    if not _WRONG_TYPE.search(error) or (what := key_takes(full_key)) is None:
        return None
    value = yaml_value(path, full_key.split(".", 1)[1]) if "." in full_key else NOT_FOUND
    if value is NOT_FOUND:  # not in the file as such (an interpolation): OmegaConf's rendering of it
        found = re.search(r"[Vv]alue '(.*?)'(?: of type| for field)|Value (.*) \(\w+\) is not", error)
        text = next((g for g in found.groups() if g is not None), "") if found else ""
        text = "null" if text == "None" else text
    else:
        text = _yaml_text(value)
    problem = "takes no null" if value is None or (value is NOT_FOUND and text == "null") else "is not allowed"
    return f"{full_key}={text} {problem}; allowed: {what}"


def _schemas() -> dict[str, type]:
    """The config dataclasses by class name (HardwareProfile, SpaceConfig, ...), as reachable from the run configs."""
    import typing

    found: dict[str, type] = {}
    todo: list[Any] = [RunConfig, CompressRunConfig]
    while todo:
        t = todo.pop()
        if dataclasses.is_dataclass(t) and t.__name__ not in found:
            found[t.__name__] = t
            hints = list(typing.get_type_hints(t).values())
            todo += hints + [arg for hint in hints for arg in typing.get_args(hint)]  # a list's items: StageSpace
    return found
