import dataclasses
import math

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from nas.arch import MIXERS, ArchConfig, StageConfig
from nas.errors import ConfigError
from nas.latency import HardwareProfile, count_macs, count_params, enumerate_ops, predict_latency
from nas.latency.predictor import layer_latency_us
from nas.model import build_model
from tests.conftest import fitted_calibration

NPU = HardwareProfile(
    name="test_npu", mac_per_s=2e12, vector_ops_per_s=1e11, sram_bytes=2 * 2**20, dram_bytes_per_s=8e9,
    launch_overhead_us=5, invoke_overhead_us=50, efficiency={"dwconv": 0.1, "matmul": 0.2},
    fused_kinds=["bn", "relu"], host_kinds=["ln"],
)


def _arch(mixers=("sepconv", "conv", "attn"), widths=(16, 32, 64), depths=(1, 2, 1), norm="bn", act="relu", **kw):
    return ArchConfig(
        stages=tuple(StageConfig(mixer=m, depth=d, width=w, kernel=3, mlp_ratio=3, head_dim=16 if w % 16 == 0 else 8)
                     for m, w, d in zip(mixers, widths, depths)),
        norm=norm, act=act, **kw,
    )


@pytest.mark.parametrize("mixer", MIXERS)
@pytest.mark.parametrize("norm", ["bn", "ln"])
def test_params_match_the_built_model(mixer, norm):
    arch = _arch(mixers=(mixer,) * 3, norm=norm)
    assert count_params(arch) == sum(p.numel() for p in build_model(arch).parameters())


@pytest.mark.parametrize("mixer", ["identity", "pool", "sepconv", "conv"])
def test_macs_match_torch_flop_counter(mixer):
    arch = _arch(mixers=(mixer,) * 3)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        build_model(arch).eval()(torch.rand(1, 1, 28, 28))
    assert count_macs(arch) == counter.get_total_flops() // 2


def test_layers_sum_to_total_and_name_every_op():
    arch = _arch()
    report = predict_latency(arch, NPU)
    assert math.isclose(sum(l.ms for l in report.layers), report.total_ms, rel_tol=1e-12)
    assert math.isclose(sum(report.by_stage().values()), report.total_ms, rel_tol=1e-12)
    assert math.isclose(sum(report.by_kind().values()), report.total_ms, rel_tol=1e-12)
    assert len(report.layers) == len(enumerate_ops(arch)) + 1  # + the per-inference overhead
    assert set(report.by_stage()) == {"overhead", "stem", "stage0", "stage1", "stage2", "head"}
    assert report.params == count_params(arch) and report.macs == count_macs(arch)


@pytest.mark.parametrize("mixer", MIXERS)
@pytest.mark.parametrize("hw_name", ["npu", "cpu"])
def test_wider_and_deeper_are_slower(mixer, hw_name):
    hw = NPU if hw_name == "npu" else dataclasses.replace(NPU, host_kinds=[], bytes_per_element=4, mac_per_s=6e10)
    base = predict_latency(_arch(mixers=(mixer,) * 3, widths=(16, 32, 64)), hw).total_ms
    wider = predict_latency(_arch(mixers=(mixer,) * 3, widths=(32, 64, 128)), hw).total_ms
    deeper = predict_latency(_arch(mixers=(mixer,) * 3, depths=(2, 3, 2)), hw).total_ms
    assert wider > base and deeper > base


def test_host_fallback_costs_transfer_and_sync():
    bn = predict_latency(_arch(norm="bn"), NPU)
    ln = predict_latency(_arch(norm="ln"), NPU)
    host_layers = [l for l in ln.layers if l.bound == "host"]
    assert host_layers and all(l.kind == "ln" for l in host_layers)
    assert all(l.ms * 1000 >= NPU.host_sync_us for l in host_layers)
    assert ln.total_ms > bn.total_ms + len(host_layers) * NPU.host_sync_us / 1000 * 0.99


def test_foldable_bn_and_relu_are_free_only_when_the_chip_fuses_them():
    arch = _arch()
    fused = [l for l in predict_latency(arch, NPU).layers if l.bound == "fused"]
    assert fused and {l.kind for l in fused} <= {"bn", "relu"} and all(l.ms == 0 for l in fused)
    no_fusion = dataclasses.replace(NPU, fused_kinds=[])
    assert not [l for l in predict_latency(arch, no_fusion).layers if l.bound == "fused"]
    assert predict_latency(arch, no_fusion).total_ms > predict_latency(arch, NPU).total_ms


def test_activations_beyond_sram_spill_to_dram():
    op = next(o for o in enumerate_ops(_arch()) if o.name == "stem.conv")
    roomy, _ = layer_latency_us(op, NPU)
    tiny_sram = dataclasses.replace(NPU, sram_bytes=16, dram_bytes_per_s=1e8)
    spilled, bound = layer_latency_us(op, tiny_sram)
    assert bound == "memory" and spilled > roomy


def test_depthwise_efficiency_is_applied():
    op = next(o for o in enumerate_ops(_arch()) if o.kind == "dwconv")
    slow, _ = layer_latency_us(op, NPU)
    fast, _ = layer_latency_us(op, dataclasses.replace(NPU, efficiency={"dwconv": 1.0}, launch_overhead_us=0))
    assert slow > fast


@pytest.mark.parametrize(
    ("change", "fragment"),
    [({"mac_per_s": 0}, "hw.mac_per_s=0"), ({"precision": "int4"}, "hw.precision='int4'"),
     ({"efficiency": {"warp": 0.5}}, "unknown op kind 'warp'"), ({"efficiency": {"conv": 1.5}}, "hw.efficiency.conv=1.5"),
     ({"host_kinds": ["softmaxx"]}, "unknown op kind 'softmaxx'"),
     # yaml.safe_load reads 2.0e12 as a string; a bare string where a list belongs would be read letter by letter
     ({"mac_per_s": "2.0e12"}, "hw.mac_per_s='2.0e12' must be a finite number"),
     ({"fused_kinds": "bn"}, "hw.fused_kinds='bn' must be a list"), ({"efficiency": [0.5]}, "hw.efficiency=[0.5] must be a mapping"),
     ({"measured_inputs": ["3x64x32"]}, "hw.measured_inputs has '3x64x32'; allowed: <in_chans>x<img_size>x<img_size>"),
     ({"measured_inputs": "3x64x64"}, "hw.measured_inputs='3x64x64' must be a list"),
     ({"measured_extent": {"widths": [64, 16]}}, "hw.measured_extent.widths=[64, 16] must be [smallest, largest], whole "
                                                 "numbers >= 1, as a fit writes it"),
     ({"measured_extent": {"mixers": "conv"}}, "hw.measured_extent.mixers='conv' must be a list of names"),
     ({"measured_extent": {"width": [16, 64]}}, "hw.measured_extent has unknown key 'width'; allowed: stages, widths, "
                                               "depths, mixers, norms, acts"),
     ({"measured_extent": [16, 64]}, "hw.measured_extent=[16, 64] must be a mapping"),
     # bits where bytes go (int8 read off a datasheet as 8): every byte moved was costed 8x
     ({"bytes_per_element": 8}, "hw.bytes_per_element=8 must be 1, 2 or 4 (bytes per weight or activation value, not bits: "
                                "int8 1, fp16 2, fp32 4)"),
     ({"bytes_per_element": 3}, "hw.bytes_per_element=3 must be 1, 2 or 4"),
     # wider than any width: pruning left every layer as it was, and a latency target read as unreachable at 90% pruned
     ({"channel_multiple": 10**12}, "hw.channel_multiple=1000000000000 must be an integer in [1, 256] (the channels "
                                    "pruning rounds each width to; 1: no rounding)"),
     ({"channel_multiple": 257}, "hw.channel_multiple=257 must be an integer in [1, 256]"),
     ({"channel_multiple": 0}, "hw.channel_multiple=0 must be an integer in [1, 256]"),
     ({"channel_multiple": 8.5}, "hw.channel_multiple=8.5 must be an integer in [1, 256]")],
)
def test_bad_hardware_values_are_named_when_the_profile_is_built(change, fragment):
    # Built by hand (not through Hydra), a bad profile is refused at once, not inside predict_latency.
    with pytest.raises(ConfigError) as err:
        HardwareProfile(**{**dataclasses.asdict(NPU), **change})
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_name_and_thread_checks_take_the_setting_name_by_keyword():
    # House rule: keyword-only after the value, so the value and the setting's name cannot be swapped unseen.
    from nas.latency.hardware import check_name, check_threads

    with pytest.raises(TypeError):
        check_name("chip", "hw.name")
    with pytest.raises(TypeError):
        check_threads(4, "hw.threads")
    check_name("chip", name="hw.name")
    check_threads(4, name="hw.threads")
    with pytest.raises(ConfigError, match=r"^data.name='' is empty"):
        check_name("", name="data.name")
    with pytest.raises(ConfigError, match=r"^compress.latency_threads=0 must be an integer"):
        check_threads(0, name="compress.latency_threads")


def test_bytes_per_element_unlike_the_precision_is_warned_about_in_one_line(tmp_path, caplog):
    # `bytes_per_element: 2` with `precision: int8` (a file copied from an fp16 chip, one key edited) priced every byte
    # moved at 2 without a word; not refused, since a chip may keep int8 values in 16-bit buffers.
    import logging
    from pathlib import Path

    from nas.config import load_hw_profile
    from nas.latency.hardware import element_size_warning

    for precision, size in (("int8", 1), ("fp16", 2), ("fp32", 4)):
        assert element_size_warning(dataclasses.replace(NPU, precision=precision, bytes_per_element=size)) is None
    wide = element_size_warning(dataclasses.replace(NPU, name="chip", precision="int8", bytes_per_element=2))
    assert wide == ("hw=chip: bytes_per_element=2 with precision=int8, whose values take 1 byte; every byte moved is priced "
                    "at 2: set bytes_per_element: 1, unless the chip does keep int8 values in 2-byte buffers")
    assert "bytes_per_element=1 with precision=fp32, whose values take 4 bytes" in element_size_warning(
        dataclasses.replace(NPU, precision="fp32", bytes_per_element=1))
    # said when the profile is loaded from Python, as the commands say it
    shipped = (Path(__file__).parents[1] / "conf" / "hw" / "edge_npu.yaml").read_text()
    (tmp_path / "chip.yaml").write_text(shipped.replace("name: edge_npu", "name: chip").replace("bytes_per_element: 1", "bytes_per_element: 2"))
    with caplog.at_level(logging.WARNING, logger="nas.config"):
        assert load_hw_profile(tmp_path / "chip.yaml").bytes_per_element == 2
    assert caplog.messages == [wide]


def test_a_search_space_outside_the_archs_a_profile_was_fitted_on_is_warned_about_in_one_line():
    # A profile fitted on one space's archs and searched with another's gave no word that the wider, deeper archs or an
    # op kind never timed (attention, priced from the datasheet numbers) are predicted by extrapolation.
    from nas.config import SpaceConfig, StageSpace
    from nas.latency.hardware import extent_warning

    fitted = dataclasses.replace(NPU, name="chip", calibration=fitted_calibration({"invoke": {"fixed": 10.0}}), measured_extent={
        "stages": [2, 2], "widths": [16, 128], "depths": [1, 3], "mixers": ["conv", "pool"], "norms": ["bn"], "acts": ["relu"]})

    def space(*stages: StageSpace, **choices) -> SpaceConfig:
        return SpaceConfig(name="wide", stages=list(stages), **choices)

    inside = space(StageSpace(mixers=["identity", "conv"], depths=[1, 2], widths=[16, 32]),
                   StageSpace(mixers=["pool"], depths=[3], widths=[64, 128]))
    # identity adds no ops: none to measure
    assert extent_warning(fitted, inside, in_chans=1, img_size=28, num_classes=10) is None
    wide = space(StageSpace(mixers=["conv", "attn"], depths=[1, 2], widths=[16, 32]),
                 StageSpace(mixers=["conv"], depths=[1, 4], widths=[64, 256]),
                 StageSpace(mixers=["pool"], depths=[2], widths=[128]), norms=["bn", "ln"], acts=["relu"])
    line = extent_warning(fitted, wide, in_chans=3, img_size=64, num_classes=100)
    assert line is not None and "\n" not in line
    assert line.startswith("space=wide reaches outside the archs hw=chip was fitted on (its measured_extent): stages 3 "
                           "(measured 2), widths 16-256 (measured 16-128), depths 1-4 (measured 1-3), mixer=attn, norm=ln, "
                           "so their predicted latencies are extrapolated")
    # its commands sample the space at the search's input and classes (profile has none for a space but metaformer_t,
    # builds metaformer_t's at 1x28x28, and a 10-class head otherwise), exported for a chip timed with its own tools
    assert ("(`python -m nas.latency.profile hw=chip space=wide in_chans=3 img_size=64 num_classes=100 export_only=true ...`, "
            "timed with the chip's own tools, then `python -m nas.latency.fit hw=chip ...`") in line
    assert extent_warning(dataclasses.replace(fitted, measured_extent={"mixers": ["conv", "pool"]}), wide,
                          in_chans=3, img_size=64, num_classes=10).startswith(
        "space=wide reaches outside the archs hw=chip was fitted on (its measured_extent): mixer=attn, so")
    # Nothing to compare with: a profile fitted before the extent was recorded, or an uncalibrated one.
    assert extent_warning(dataclasses.replace(fitted, measured_extent={}), wide, in_chans=3, img_size=64, num_classes=10) is None
    assert extent_warning(dataclasses.replace(fitted, calibration={}), wide, in_chans=3, img_size=64, num_classes=10) is None


def test_an_arch_outside_the_archs_a_profile_was_fitted_on_is_warned_about_as_a_space_is():
    # compress.run prices one checkpoint's arch, validate the archs it scores: a profile fitted on narrower archs, or
    # without attention, predicted them by extrapolation without a word, where a search over their space warned.
    from nas.config import SpaceConfig, StageSpace
    from nas.latency.hardware import arch_extent_warning, extent_warning

    fitted = dataclasses.replace(NPU, name="chip", calibration=fitted_calibration({"invoke": {"fixed": 10.0}}), measured_extent={
        "stages": [2, 2], "widths": [16, 128], "depths": [1, 3], "mixers": ["conv", "pool"], "norms": ["bn"], "acts": ["relu"]})
    inside = ArchConfig(stages=[StageConfig(mixer="identity", depth=1, width=16), StageConfig(mixer="pool", depth=3, width=128)])
    assert arch_extent_warning(fitted, [inside]) is None  # identity adds no ops: none to measure
    wide = ArchConfig(stages=[StageConfig(mixer="conv", depth=1, width=16), StageConfig(mixer="attn", depth=4, width=256),
                              StageConfig(mixer="pool", depth=2, width=128)], norm="ln", in_chans=3, img_size=64,
                      num_classes=100)
    line = arch_extent_warning(fitted, [wide], space="wide")
    assert line is not None and "\n" not in line
    # the words, and the commands, of the warning about a space reaching as far
    space = SpaceConfig(name="wide", norms=["ln"], acts=["relu"], stages=[
        StageSpace(mixers=["conv"], depths=[1], widths=[16]), StageSpace(mixers=["attn"], depths=[4], widths=[256]),
        StageSpace(mixers=["pool"], depths=[2], widths=[128])])
    assert line == extent_warning(fitted, space, in_chans=3, img_size=64, num_classes=100).replace(
        "space=wide reaches", f"arch {wide.arch_id} reaches").replace(
        "so their predicted latencies are", "so its predicted latency is").replace(
        "measure archs of this space", "measure archs like it")
    assert line.startswith(f"arch {wide.arch_id} reaches outside the archs hw=chip was fitted on (its measured_extent): "
                           "stages 3 (measured 2), widths 16-256 (measured 16-128), depths 1-4 (measured 1-3), mixer=attn, "
                           "norm=ln, so its predicted latency is extrapolated")
    # several archs (validate's): how many reach outside, what of them does, and no input where they differ
    several = arch_extent_warning(fitted, [inside, wide, wide.replace(in_chans=1, img_size=28)])
    assert several.startswith("2 of the 3 archs reach outside the archs hw=chip was fitted on (its measured_extent): stages "
                              "2-3 (measured 2), widths 16-256 (measured 16-128), depths 1-4 (measured 1-3), mixer=attn, "
                              "norm=ln, so their predicted latencies are extrapolated")
    assert "(`python -m nas.latency.profile hw=chip export_only=true ...`, timed with the chip's own tools" in several
    # Nothing to compare with: a profile fitted before the extent was recorded, or an uncalibrated one.
    assert arch_extent_warning(dataclasses.replace(fitted, measured_extent={}), [wide]) is None
    assert arch_extent_warning(dataclasses.replace(fitted, calibration={}), [wide]) is None


def test_a_search_input_outside_the_measured_ones_is_warned_about_in_one_line():
    from nas.latency.hardware import input_warning

    calibrated = dataclasses.replace(NPU, name="chip", calibration=fitted_calibration({"invoke": {"fixed": 10.0}}),
                                     measured_inputs=["1x28x28", "3x64x64"])
    # Within the measured sizes, at a measured channel count (not necessarily a measured pair): interpolated.
    for in_chans, img_size in ((1, 28), (3, 64), (3, 28), (1, 48), (3, 32)):
        assert input_warning(calibrated, in_chans=in_chans, img_size=img_size) is None, (in_chans, img_size)
    big = input_warning(calibrated, in_chans=3, img_size=96)
    assert big is not None and "\n" not in big
    assert big.startswith("hw=chip was calibrated on inputs 1x28x28, 3x64x64, not on this data's 3x96x96: img_size=96 is "
                          "above the largest measured, 64, so its predicted latencies are extrapolated")
    assert "in_chans=3 img_size=96" in big
    # its commands, pasted, run: a chip without a runtime here is exported (the profile refuses to time it), and the fit
    # names the profile (it is refused without hw=)
    assert ("(`python -m nas.latency.profile hw=chip in_chans=3 img_size=96 export_only=true ...`, timed with the chip's own "
            "tools, then `python -m nas.latency.fit hw=chip ...`;") in big
    # with the search's space, the command samples it (the profile's default space, metaformer_t, is another's archs)
    spaced = input_warning(calibrated, in_chans=3, img_size=96, space="metaformer_s")
    assert "(`python -m nas.latency.profile hw=chip space=metaformer_s in_chans=3 img_size=96 export_only=true ...`" in spaced
    # the data's classes, where known: the command's archs get their heads (profile's default is 10)
    classes = input_warning(calibrated, in_chans=3, img_size=96, space="metaformer_s", num_classes=100)
    assert "hw=chip space=metaformer_s in_chans=3 img_size=96 num_classes=100 export_only=true ...`" in classes
    host = input_warning(dataclasses.replace(calibrated, runtime="openvino"), in_chans=3, img_size=96)
    assert "(`python -m nas.latency.profile hw=chip in_chans=3 img_size=96 ...`, then `python -m nas.latency.fit hw=chip" in host
    assert "img_size=16 is below the smallest measured, 28" in input_warning(calibrated, in_chans=1, img_size=16)
    assert ": in_chans=2 is not among the measured 1/3, so" in input_warning(calibrated, in_chans=2, img_size=32)
    both = input_warning(dataclasses.replace(calibrated, measured_inputs=["3x64x64"]), in_chans=1, img_size=28)
    assert "in_chans=1 is not among the measured 3 and img_size=28 is below the smallest measured, 64" in both
    # Nothing to compare with: a profile fitted before the inputs were recorded, or an uncalibrated one.
    assert input_warning(dataclasses.replace(calibrated, measured_inputs=[]), in_chans=3, img_size=96) is None
    assert input_warning(dataclasses.replace(calibrated, calibration={}), in_chans=3, img_size=96) is None


@pytest.mark.parametrize("chip", ["edge_npu", "cpu"])  # a roofline profile, and a calibrated one (another code path)
def test_predict_latency_batch_takes_a_generator_as_it_takes_a_list(chip):
    # `predict_latency_batch(a for a in archs)` returned an empty array without a word: the type check used it up
    from nas.config import load_hw_profile
    from nas.latency import predict_latency_batch

    hw = load_hw_profile(chip)
    archs = [ArchConfig(stages=(StageConfig(mixer=m, depth=1, width=16),)) for m in ("pool", "conv", "sepconv")]
    expected = [predict_latency(a, hw).total_ms for a in archs]
    assert predict_latency_batch(archs, hw) == pytest.approx(expected)
    assert predict_latency_batch((a for a in archs), hw) == pytest.approx(expected)
