import dataclasses
import json
import re

import pytest

from nas.arch import ArchConfig, StageConfig
from nas.errors import ConfigError


def _arch(**kw):
    stages = kw.pop("stages", (StageConfig(mixer="sepconv", depth=1, width=16, kernel=5),
                                StageConfig(mixer="attn", depth=2, width=32, head_dim=16)))
    return ArchConfig(stages=stages, **kw)


def test_json_round_trip_preserves_equality_and_id():
    a = _arch(norm="ln", act="gelu", in_chans=3, img_size=32, num_classes=5)
    b = ArchConfig.from_json(a.to_json())
    assert b == a
    assert b.arch_id == a.arch_id
    assert ArchConfig.from_dict(json.loads(a.to_json(indent=2))) == a


def test_arch_id_is_stable_short_hex_and_changes_with_the_spec():
    a = _arch()
    assert len(a.arch_id) == 10 and int(a.arch_id, 16) >= 0
    assert a.arch_id == _arch().arch_id
    assert a.arch_id != _arch(act="gelu").arch_id


def test_summary_names_stem_and_every_stage():
    a = _arch(stem_kernel=3, stem_stride=2)
    assert a.summary() == "bn/relu stemk3s2 | sepconvk5x1@16r4 | attnh2x2@32r4"
    # The stem stride sets every stage's resolution (and so the latency): archs differing only there read apart.
    assert _arch(stem_kernel=3, stem_stride=1).summary() == "bn/relu stemk3s1 | sepconvk5x1@16r4 | attnh2x2@32r4"


def test_irrelevant_fields_do_not_change_the_id():
    # kernel means nothing to attention, head_dim nothing to sepconv: same network, same id.
    a = ArchConfig(stages=(StageConfig(mixer="attn", depth=1, width=32, head_dim=16, kernel=3),))
    b = ArchConfig(stages=(StageConfig(mixer="attn", depth=1, width=32, head_dim=16, kernel=7),))
    assert a.arch_id == b.arch_id


def test_specs_describing_the_same_network_compare_and_hash_equal():
    # An explicit num_heads of width // head_dim, a kernel on attention, a head_dim on pooling: == agrees with arch_id.
    plain = ArchConfig(stages=(StageConfig(mixer="attn", depth=1, width=32), StageConfig(mixer="pool", depth=1, width=64)))
    spelled = ArchConfig(stages=(StageConfig(mixer="attn", depth=1, width=32, num_heads=2, kernel=7),
                                 StageConfig(mixer="pool", depth=1, width=64, head_dim=8, expand=3, mlp_ratio=4)))
    assert spelled == plain and hash(spelled) == hash(plain) and len({spelled, plain}) == 1
    assert spelled.stages[0].num_heads is None and spelled.stages[1].head_dim == 16
    # Heads that do not fill the width are part of the network and stay.
    pruned = ArchConfig(stages=(StageConfig(mixer="attn", depth=1, width=40, num_heads=2),))
    assert pruned.stages[0].num_heads == 2 and pruned != ArchConfig(stages=(StageConfig(mixer="attn", depth=1, width=40, head_dim=8),))


def test_stage_resolutions_follow_stem_and_stride_two_downsampling():
    a = ArchConfig(stages=tuple(StageConfig(mixer="pool", depth=1, width=8) for _ in range(4)), img_size=28, stem_stride=2)
    assert a.stage_resolutions() == (14, 7, 4, 2)


@pytest.mark.parametrize(
    ("stage", "fragment"),
    [
        (dict(mixer="pool", depth=0, width=8), "depth=0"),
        (dict(mixer="pool", depth=1, width=-4), "width=-4"),
        (dict(mixer="conv", depth=1, width=8, kernel=4), "kernel=4"),
        (dict(mixer="attn", depth=1, width=24, head_dim=16), "head_dim=16 does not divide width=24"),
        (dict(mixer="pool", depth=1, width=8, mlp_ratio=0), "mlp_ratio=0"),
    ],
)
def test_invalid_stage_gives_one_line_error_naming_the_value(stage, fragment):
    with pytest.raises(ConfigError) as err:
        ArchConfig(stages=(StageConfig(**stage),))
    msg = str(err.value)
    assert fragment in msg and "\n" not in msg
    assert "stages[0]" in msg


def test_an_unknown_mixer_is_refused_when_the_stage_is_built():
    # StageConfig(mixer="atn") was accepted, and refused only once the stage was put in an ArchConfig
    with pytest.raises(ConfigError, match=r"^stage\.mixer='atn' is unknown; allowed: \['identity', 'pool', 'sepconv', 'conv', 'attn'\]$"):
        StageConfig(mixer="atn", depth=1, width=8)
    with pytest.raises(ConfigError, match=r"^stage\.mixer='mamba' is unknown; allowed: "):
        dataclasses.replace(StageConfig(mixer="pool", depth=1, width=8), mixer="mamba")
    # a stage dict given to ArchConfig still names its place
    with pytest.raises(ConfigError, match=r"^arch\.stages\[1\]\.mixer='atn' is unknown; allowed: \['identity', "):
        ArchConfig(stages=[{"mixer": "pool", "depth": 1, "width": 8}, {"mixer": "atn", "depth": 1, "width": 16}])


@pytest.mark.parametrize(
    ("kw", "fragment"),
    [(dict(norm="rms"), "arch.norm='rms'"), (dict(act="swish"), "arch.act='swish'"), (dict(stem_stride=3), "stem_stride=3"),
     (dict(num_classes=1), "num_classes=1"), (dict(stages=()), "stages is empty")],
)
def test_invalid_arch_fields(kw, fragment):
    with pytest.raises(ConfigError, match="allowed|must|empty") as err:
        _arch(**kw)
    assert fragment in str(err.value)


def test_from_json_reads_an_arch_json_file_given_its_path(tmp_path):
    # README: "ArchConfig.from_json reads the arch.json of any member". Given that file's path it said "arch spec is not
    # valid JSON: Expecting value: line 1 column 1 (char 0)" (a str) or raised json's TypeError (a pathlib.Path).
    arch = _arch()
    path = tmp_path / "arch.json"
    path.write_text(arch.to_json())
    assert ArchConfig.from_json(path) == arch
    assert ArchConfig.from_json(arch.to_json()) == arch  # a str is the JSON text, as before
    with pytest.raises(ConfigError, match=rf"^arch spec is not valid JSON: .* \({re.escape(repr(str(path)))} is a file: "
                                          rf"pass pathlib\.Path\({re.escape(repr(str(path)))}\) to read it\)$"):
        ArchConfig.from_json(str(path))
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ConfigError, match=rf"^arch spec {re.escape(str(tmp_path / 'bad.json'))} is not valid JSON: "):
        ArchConfig.from_json(tmp_path / "bad.json")
    with pytest.raises(ConfigError, match=rf"^cannot read arch spec {re.escape(str(tmp_path / 'gone.json'))}: "):
        ArchConfig.from_json(tmp_path / "gone.json")


def test_from_json_rejects_unknown_fields_and_bad_json():
    data = json.loads(_arch().to_json())
    data["stages"][0]["dilation"] = 2
    with pytest.raises(ConfigError, match="unknown field.*dilation"):
        ArchConfig.from_dict(data)
    with pytest.raises(ConfigError, match="not valid JSON"):
        ArchConfig.from_json("{not json")
    for stages in (3, "ab", {"mixer": "pool"}):  # a hand-written arch.json (a search seed): one line, not a TypeError
        with pytest.raises(ConfigError, match=r"arch spec 'stages' must be a list of stage objects, got "):
            ArchConfig.from_json(json.dumps({"stages": stages}))


def test_arch_is_frozen():
    a = _arch()
    with pytest.raises(Exception):
        a.norm = "ln"  # type: ignore[misc]


def test_specs_hash_by_value_and_pickles_carry_no_cached_hash(tmp_path):
    import copy
    import pickle
    import subprocess
    import sys

    a = _arch(norm="ln")
    assert hash(a) == hash(_arch(norm="ln")) and {a: 1}[_arch(norm="ln")] == 1
    assert hash(a) != hash(_arch())
    assert hash(copy.deepcopy(a)) == hash(a) and hash(copy.copy(a.stages[0])) == hash(a.stages[0])
    # The hash is cached on first use; another process (other string hashes) must not inherit it.
    path = tmp_path / "arch.pkl"
    path.write_bytes(pickle.dumps(a))
    code = ("import pickle, sys; from nas.arch import ArchConfig; a = pickle.loads(open(sys.argv[1], 'rb').read()); "
            "b = ArchConfig.from_json(sys.argv[2]); assert {b: 1}[a] == 1 and {b.stages[0]: 1}[a.stages[0]] == 1")
    subprocess.run([sys.executable, "-c", code, str(path), a.to_json()], check=True, env={"PYTHONHASHSEED": "12345"})


def test_pruned_fields_round_trip_and_leave_searched_ids_unchanged():
    searched = ArchConfig(stages=(StageConfig(mixer="sepconv", depth=1, width=32, expand=2),
                                  StageConfig(mixer="attn", depth=1, width=64, head_dim=16)))
    d = searched.to_dict()
    # Specs written before pruning existed had no num_heads key and an integer expand: same JSON, same id.
    assert "num_heads" not in d["stages"][1] and d["stages"][0]["expand"] == 2 and isinstance(d["stages"][0]["expand"], int)
    explicit = searched.replace(stages=(searched.stages[0], StageConfig(mixer="attn", depth=1, width=64, head_dim=16, num_heads=4)))
    assert explicit.arch_id == searched.arch_id
    pruned = ArchConfig(stages=(StageConfig(mixer="sepconv", depth=1, width=24, expand=40 / 24),
                                StageConfig(mixer="attn", depth=1, width=48, head_dim=16, num_heads=2, mlp_ratio=100 / 48)))
    assert pruned.stages[0].sepconv_hidden == 40 and pruned.stages[1].mlp_hidden == 100
    assert pruned.stages[1].heads == 2 and pruned.stages[1].attn_dim == 32
    assert ArchConfig.from_json(pruned.to_json()) == pruned and pruned.arch_id != searched.arch_id
    with pytest.raises(ConfigError, match=r"num_heads=0 must be an integer >= 1"):
        StageConfig(mixer="attn", depth=1, width=48, num_heads=0).validate()


def test_pruned_attention_keeps_its_heads_through_json_and_bad_stage_values_are_named():
    # 2 heads of 16 in width 40, as channel pruning leaves an attention stage of width 48 on a chip of 8-channel
    # multiples: width // head_dim gives the 2 heads back, but the heads do not fill the width, so they are kept
    pruned = ArchConfig(stages=(StageConfig(mixer="sepconv", depth=1, width=16),
                                StageConfig(mixer="attn", depth=1, width=40, head_dim=16, num_heads=2)))
    again = ArchConfig.from_json(pruned.to_json())
    assert again == pruned and again.arch_id == pruned.arch_id and again.stages[1].num_heads == 2
    whole = StageConfig(mixer="attn", depth=1, width=32, head_dim=16, num_heads=2)
    assert "num_heads" not in whole.canonical()  # heads that fill the width: the ids of searched specs are unchanged
    with pytest.raises(ConfigError, match="mlp_ratio=inf must be a finite number > 0"):  # would build no model
        StageConfig(mixer="conv", depth=1, width=16, mlp_ratio=float("inf")).validate()
    with pytest.raises(ConfigError, match="expand=inf must be a finite number > 0"):
        StageConfig(mixer="sepconv", depth=1, width=16, expand=float("inf")).validate()
    for stages in (None, StageConfig(mixer="conv", depth=1, width=8), ["conv"]):
        with pytest.raises(ConfigError, match=r"must be a list of StageConfig \(or of stage dicts\)"):
            ArchConfig(stages=stages)


def test_stage_dicts_given_to_arch_config_name_a_wrong_field_and_the_allowed_ones():
    # ArchConfig(stages=[dict]) is documented ("or of stage dicts"), but a misspelt key there was the dataclass's
    # "StageConfig.__init__() got an unexpected keyword argument 'mixr'": no stage, no allowed fields
    with pytest.raises(ConfigError, match=r"^arch\.stages\[1\] has unknown field \['mixr'\]; allowed: \['depth', 'expand', "):
        ArchConfig(stages=[{"mixer": "pool", "depth": 1, "width": 8}, {"mixr": "pool", "depth": 1, "width": 16}])
    with pytest.raises(ConfigError, match=r"^arch\.stages\[0\] lacks 'depth'; required: \['mixer', 'depth', 'width'\]$"):
        ArchConfig(stages=[{"mixer": "pool", "width": 16}])
    with pytest.raises(ConfigError, match=r"^arch spec stages\[0\] lacks 'depth', 'width'; required: "):
        ArchConfig.from_dict({"stages": [{"mixer": "pool"}]})
    assert ArchConfig(stages=[{"mixer": "pool", "depth": 1, "width": 8}]).stages[0] == StageConfig("pool", 1, 8)


def test_from_json_names_a_dict_and_a_path_of_no_file_given_as_str(tmp_path):
    arch = _arch()
    with pytest.raises(TypeError, match=r"^source=\{'stages': \[\]\} is a dict; ArchConfig\.from_dict\(\.\.\.\) takes a "
                                        r"dict; pass JSON text \(a str\) or the pathlib\.Path of an arch\.json$"):
        ArchConfig.from_json({"stages": []})
    missing = str(tmp_path / "arch.json")  # a str is JSON text; a path that is no file was only "not valid JSON"
    with pytest.raises(ConfigError, match=rf"not valid JSON: .*\(a str is read as JSON text; a file is read from a "
                                          rf"pathlib\.Path, and {re.escape(repr(missing))} does not exist\)$"):
        ArchConfig.from_json(missing)
    assert ArchConfig.from_json(arch.to_json().encode()) == arch  # bytes, as json.loads takes them
