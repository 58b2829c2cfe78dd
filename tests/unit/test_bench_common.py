"""What a bench result records about the machine it was measured on."""

from __future__ import annotations

from bench.common import cpu_model_and_simd, machine

CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B13
flags\t\t: fpu sse2 avx avx2 fma
processor\t: 1
model name\t: Another CPU
flags\t\t: fpu avx2 avx512f avx512_vnni amx_int8
"""


def test_the_first_processor_names_the_cpu_and_its_simd_features() -> None:
    assert cpu_model_and_simd(CPUINFO) == ("AMD EPYC 7B13", ["avx2"])


def test_vnni_and_amx_are_reported_where_the_cpu_has_them() -> None:
    text = "model name : Xeon\nflags : avx2 avx512f avx512_vnni amx_int8 amx_bf16\n"
    assert cpu_model_and_simd(text) == ("Xeon", ["avx2", "avx512f", "avx512_vnni", "amx_int8"])


def test_text_without_the_fields_gives_nothing_and_machine_still_names_a_cpu() -> None:
    assert cpu_model_and_simd("") == ("", [])
    info = machine()
    assert info["cpu"] and isinstance(info["simd"], list) and info["cores"] >= 1
