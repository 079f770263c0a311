"""``--precision=auto``: bfloat16 where the hardware has it natively, float32 elsewhere, stated and recorded."""

import pytest

from tf_cyclegan import config as config_lib
from tf_cyclegan.precision import choose, choose_here, cpu_flags

# Flag lists read off real machines (/proc/cpuinfo), abridged to what matters and a few neighbours.
ICE_LAKE = "fpu avx avx2 fma avx512f avx512dq avx512bw avx512vl avx512_vnni avx512_vbmi2 gfni vaes".split()
SAPPHIRE_RAPIDS = ICE_LAKE + "avx512_bf16 avx512_fp16 amx_bf16 amx_tile amx_int8".split()
COOPER_LAKE = ICE_LAKE + ["avx512_bf16"]
EPYC_ZEN2 = "fpu avx avx2 fma sha_ni".split()


@pytest.mark.parametrize(
    "flags, gpus, expected",
    [
        (ICE_LAKE, [], "float32"),
        (EPYC_ZEN2, [], "float32"),
        ([], [], "float32"),
        (SAPPHIRE_RAPIDS, [], "mixed_bfloat16"),
        (COOPER_LAKE, [], "mixed_bfloat16"),
        (ICE_LAKE, [(8, 0)], "mixed_bfloat16"),
        (ICE_LAKE, [(9, 0), (8, 6)], "mixed_bfloat16"),
        (SAPPHIRE_RAPIDS, [(7, 0)], "mixed_float16"),  # the GPUs train, not the CPU
        (ICE_LAKE, [(8, 0), (7, 5)], "mixed_float16"),  # the oldest GPU decides
        (ICE_LAKE, [(6, 1)], "float32"),
    ],
)
def test_auto_picks_by_cpu_flags_and_gpus(flags, gpus, expected):
    choice = choose("auto", frozenset(flags), gpus)
    assert choice.precision == expected and choice.reason.startswith("auto: ")


def test_the_reason_names_the_flag_or_the_gpu():
    assert "amx_bf16" in choose("auto", frozenset(SAPPHIRE_RAPIDS), []).reason
    assert "no native bfloat16" in choose("auto", frozenset(ICE_LAKE), []).reason
    assert "7.5" in choose("auto", frozenset(), [(7, 5)]).reason


@pytest.mark.parametrize("requested", ["float32", "mixed_bfloat16", "mixed_float16"])
def test_an_explicit_precision_wins(requested):
    for flags in (ICE_LAKE, SAPPHIRE_RAPIDS):
        assert choose(requested, frozenset(flags), []).precision == requested


def test_explicit_bfloat16_on_a_cpu_without_it_says_it_is_emulated():
    assert "emulated" in choose("mixed_bfloat16", frozenset(ICE_LAKE), []).reason
    assert "emulated" not in choose("mixed_bfloat16", frozenset(SAPPHIRE_RAPIDS), []).reason
    assert "emulated" not in choose("mixed_bfloat16", frozenset(ICE_LAKE), [(8, 0)]).reason


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    (tmp_path / "cpuinfo").write_text(
        "processor\t: 0\nmodel name\t: X\nflags\t\t: fpu avx512_bf16 amx_bf16\n\n"
        "processor\t: 1\nflags\t\t: fpu avx512_bf16 amx_bf16\n"
    )
    assert cpu_flags(tmp_path / "cpuinfo") == {"fpu", "avx512_bf16", "amx_bf16"}
    assert cpu_flags(tmp_path / "missing") == frozenset()


def test_auto_is_the_default_and_the_run_records_what_it_used(tiny_run):
    assert config_lib.Config().train.precision == "auto"
    used = choose_here("auto")
    assert config_lib.load_yaml(tiny_run.path / "config.yaml").train.precision == used.precision
    assert used.line() in tiny_run.stdout
